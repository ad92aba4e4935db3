"""The customer feature table: one version per as-of date, computed by the Polars core."""

from datetime import date

import dagster as dg

from seg_pipeline.core.features import FEATURE_COLUMNS
from seg_pipeline.core.shards import CustomerShard, feature_shard_asset
from seg_pipeline.defs.metadata import frame_metadata, per_partition
from seg_pipeline.defs.partitions import as_of_dates
from seg_pipeline.defs.policy import SHARDS_GROUP, STORE_POOL, TRANSIENT_RETRY
from seg_pipeline.defs.resources import StoreResource
from seg_pipeline.services import ingest
from seg_pipeline.services.features import (
    FeatureVersion,
    StaleFeatures,
    commit_feature_shards,
    stage_feature_shard,
    store_features,
)
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage.staging import StagingMissing
from seg_pipeline.storage.store import WorkingStore


def ensure_not_blocked(store: WorkingStore, settings: PipelineSettings, as_of: date) -> None:
    """Refuse to build on a landed day whose quarantined share broke the threshold."""
    for kind in ("orders", "profiles"):
        blocked = ingest.blocked_days(store, kind, as_of, settings.quarantine_threshold, settings.quarantine_min_rows)
        if not blocked.is_empty():
            day, share = blocked.row(0)
            raise dg.Failure(
                description=(
                    f"{kind} of {day} is blocked: {share:.1%} of its rows were quarantined "
                    f"(> SEG_QUARANTINE_THRESHOLD {settings.quarantine_threshold:.0%}); see quarantine_{kind}, "
                    "then re-deliver the file or raise the threshold"
                ),
                allow_retries=False,
            )


def feature_assets(partitions: dg.PartitionsDefinition, shards: int = 1) -> list[dg.AssetsDefinition]:
    """customer_features; with `shards` > 1 (SEG_CUSTOMER_SHARDS) it commits what one step per shard made
    (README "Customer shards")."""
    inputs = ["orders", "profiles"] if shards == 1 else [feature_shard_asset(k) for k in range(shards)]

    @dg.asset(partitions_def=partitions, pool=STORE_POOL, deps=inputs, group_name="features")
    def customer_features(context: dg.AssetExecutionContext, settings: PipelineSettings, store: StoreResource):
        """Point-in-time customer features (RFM, BTYD summary, rhythm, mix, profile) per as-of date."""
        built = []
        with store.open() as working:
            for as_of in as_of_dates(context):
                ensure_not_blocked(working, settings, as_of)
                try:
                    version = store_features(working, as_of) if shards == 1 else commit_feature_shards(
                        working, as_of, shards
                    )  # fmt: skip
                except (StaleFeatures, StagingMissing) as error:
                    raise dg.Failure(str(error), allow_retries=False) from None
                built.append((as_of, version.customers, version.how))
                context.log.info(f"customer_features {as_of}: {version.customers} customers, {version.how}")
        return dg.MaterializeResult(metadata=_metadata(version, as_of, built))

    if shards == 1:
        return [customer_features]
    return [customer_features, *(_shard_asset(partitions, k, shards) for k in range(shards))]


def _shard_asset(partitions: dg.PartitionsDefinition, shard: int, shards: int) -> dg.AssetsDefinition:
    @dg.asset(
        name=feature_shard_asset(shard), partitions_def=partitions, deps=["orders", "profiles"],
        group_name=SHARDS_GROUP, retry_policy=TRANSIENT_RETRY,
    )  # fmt: skip
    def feature_shard(context: dg.AssetExecutionContext, settings: PipelineSettings, store: StoreResource):
        """The customer_features rows of one customer shard, from its own orders and profiles: a file of the
        version that customer_features commits."""
        built = []
        with store.open() as working:
            for as_of in as_of_dates(context):
                ensure_not_blocked(working, settings, as_of)
                version = stage_feature_shard(working, as_of, CustomerShard(shard, shards))
                built.append((as_of, version.customers, version.how))
        return dg.MaterializeResult(metadata={**_metadata(version, as_of, built), "shard": f"{shard} of {shards}"})

    return feature_shard


def _metadata(version: FeatureVersion, as_of: date, built: list[tuple]) -> dict:
    """A feature step's metadata: the last version's first rows, size and making, and one row per as-of date."""
    return {**frame_metadata(version.head, FEATURE_COLUMNS), "dagster/row_count": version.customers,
            "as_of": str(as_of), "computed": version.how,
            **per_partition(["customers", "computed"], built)}  # fmt: skip
