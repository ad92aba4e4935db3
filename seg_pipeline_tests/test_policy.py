"""The asset policy of `defs.policy` reaches every asset, and the stage modules of `defs` stand alone."""

import ast
from pathlib import Path

import dagster as dg
import pytest

import seg_pipeline
from seg_pipeline.defs import build_definitions
from seg_pipeline.defs.partitions import daily_partitions
from seg_pipeline.defs.policy import (
    KINDS,
    OWNERS,
    RETRIED_GROUPS,
    SHARDS_GROUP,
    STORE_POOL,
    TRANSIENT_RETRY,
    PolicyError,
    apply_policy,
)
from seg_pipeline.defs.resources import StoreResource

DEFS = Path(seg_pipeline.__file__).parent / "defs"
#: what every stage module may share; a stage module importing another stage module is a chain to untangle
SHARED = {"policy", "partitions", "metadata", "resources"}


def test_every_asset_carries_the_policy(settings):
    sharded = settings.model_copy(update={"customer_shards": 2})  # the shard steps too
    assets = build_definitions(sharded).resolve_asset_graph().assets_defs
    store_assets = [a for a in assets if "store" in a.required_resource_keys]
    assert len(store_assets) == len(assets) - 1  # all but the report, which reads the published analyst file
    for asset in assets:
        name, [group] = asset.node_def.name, set(asset.group_names_by_key.values())
        assert asset.backfill_policy == dg.BackfillPolicy.single_run(), name
        sharded = group == SHARDS_GROUP
        assert asset.op.pool == (STORE_POOL if asset in store_assets and not sharded else None), name
        assert asset.op.retry_policy == (TRANSIENT_RETRY if group in RETRIED_GROUPS else None), name
        for spec in asset.specs:
            assert KINDS.get(group, set()) <= spec.kinds, name
            assert list(spec.owners) == OWNERS and spec.code_version, name
    marts = [spec for a in assets for spec in a.specs if spec.group_name == "marts"]
    assert marts and all(spec.code_version != seg_pipeline.__version__ for spec in marts)  # their SQL's hash


def test_an_asset_breaking_the_op_policy_is_refused():
    @dg.asset(partitions_def=daily_partitions("2024-03-01"), group_name="features")
    def unpooled(store: StoreResource) -> None: ...

    @dg.asset(group_name="marts", pool=STORE_POOL)
    def unretried(store: StoreResource) -> None: ...

    @dg.asset(group_name=SHARDS_GROUP, pool=STORE_POOL, retry_policy=TRANSIENT_RETRY)
    def pooled_shard(store: StoreResource) -> None: ...

    for asset, error in [(unpooled, "must run in the 'seg_store' pool"), (unretried, "breaks RETRIED_GROUPS"),
                         (pooled_shard, "must run outside the 'seg_store' pool")]:  # fmt: skip
        with pytest.raises(PolicyError, match=error):
            apply_policy([asset])


def _defs_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "seg_pipeline.defs":
                names |= {alias.name for alias in node.names}
            elif node.module.startswith("seg_pipeline.defs."):
                names.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[2] for a in node.names if a.name.startswith("seg_pipeline.defs.")}
    return names


def test_the_stage_modules_of_defs_do_not_import_each_other():
    stages = {p.stem for p in DEFS.glob("*.py")} - SHARED - {"__init__"}
    assert {"ingestion", "features", "models", "marts", "warehouse", "report", "automation"} <= stages
    for path in DEFS.glob("*.py"):
        if path.stem != "__init__":
            assert not _defs_imports(path) & stages, path.name
    for shared in SHARED:
        assert not _defs_imports(DEFS / f"{shared}.py"), shared
