"""Cross-cutting asset policy, declared here once and applied to every asset by `apply_policy`.

Asset decorators carry only what is specific to their asset. The op-level pool and retry policy are
the exception Dagster 1.13 forces: it takes them only when an asset is decorated (no public API sets
them on a built `AssetsDefinition`), so the decorators name `STORE_POOL` and `TRANSIENT_RETRY` from
here and `apply_policy` refuses definitions that break the rules below.
"""

from collections.abc import Iterable

import dagster as dg

from seg_pipeline import __version__

STORE_POOL = "seg_store"  # every asset writing the working store; dagster.yaml limits it to 1
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
#: groups whose steps are retried on an error that does not refuse retries: reading landed files and running the
#: marts' SQL; the model and segment steps are deterministic and minutes long at scale, so a retry would only repeat
#: the steps of a sharded version (SEG_CUSTOMER_SHARDS > 1): they write only the store's staging folder, so they
#: run outside the store pool, in parallel; a retry repeats one shard (a lost worker, an evicted pod), not the version
SHARDS_GROUP = "shards"
RETRIED_GROUPS = frozenset({"ingestion", "marts", SHARDS_GROUP})
#: a backfill of any range is one run, whose assets loop over `context.partition_keys`
BACKFILL = dg.BackfillPolicy.single_run()
OWNERS = ["team:segmentation"]
#: what each group is made with, shown as kinds in the UI; an asset's own kinds are kept beside them
KINDS = {
    "ingestion": {"polars", "great_expectations"},
    "features": {"polars"},
    "models": {"scikit-learn"},
    SHARDS_GROUP: {"scikit-learn", "polars"},
    "marts": {"duckdb", "sql"},
    "warehouse": {"duckdb"},
}


class PolicyError(ValueError):
    """An asset breaks the op-level policy (pool or retry policy)."""


def apply_policy(assets: Iterable[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """`assets` with the project's policy: checked pool and retry policy, then the single-run backfill policy on
    partitioned assets and, on every spec, its group's kinds, the owners and the package version as code version
    where the asset has none of its own (a mart's is the hash of its SQL)."""
    assets = list(assets)
    for asset in assets:
        _check_op_policy(asset)
    # set here, not by the decorators, whose `backfill_policy` parameter warns that it is beta
    assets = [a.with_attributes(backfill_policy=BACKFILL) if a.partitions_def else a for a in assets]
    return list(dg.map_asset_specs(_spec_policy, assets))


def _spec_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
    spec = spec.merge_attributes(kinds=KINDS.get(spec.group_name, set()), owners=OWNERS)
    return spec if spec.code_version else spec.replace_attributes(code_version=__version__)


def _check_op_policy(asset: dg.AssetsDefinition) -> None:
    name, groups = asset.node_def.name, set(asset.group_names_by_key.values())
    sharded = SHARDS_GROUP in groups
    if "store" in asset.required_resource_keys and asset.op.pool != (None if sharded else STORE_POOL):
        where = f"outside the {STORE_POOL!r} pool (a {SHARDS_GROUP} step)" if sharded else f"in the {STORE_POOL!r} pool"
        raise PolicyError(f"{name} uses the working store: it must run {where}")
    retried = bool(groups & RETRIED_GROUPS)
    if asset.op.retry_policy != (TRANSIENT_RETRY if retried else None):
        raise PolicyError(f"{name}: retry policy {asset.op.retry_policy} breaks RETRIED_GROUPS {sorted(groups)}")
