"""The customer feature table: one version per as-of date, computed by the Polars core."""

from datetime import date

import dagster as dg

from seg_pipeline.core.features import FEATURE_COLUMNS
from seg_pipeline.defs.metadata import frame_metadata, per_partition
from seg_pipeline.defs.partitions import as_of_dates
from seg_pipeline.defs.policy import STORE_POOL
from seg_pipeline.defs.resources import StoreResource
from seg_pipeline.services import ingest
from seg_pipeline.services.features import store_features
from seg_pipeline.settings import PipelineSettings
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


def feature_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions,
        pool=STORE_POOL,
        deps=["orders", "profiles"],
        group_name="features",
    )
    def customer_features(context: dg.AssetExecutionContext, settings: PipelineSettings, store: StoreResource):
        """Point-in-time customer features (RFM, BTYD summary, rhythm, mix, profile) per as-of date."""
        built = []
        with store.open() as working:
            for as_of in as_of_dates(context):
                ensure_not_blocked(working, settings, as_of)
                version = store_features(working, as_of, settings.customer_shards)
                built.append((as_of, version.customers, version.how))
                context.log.info(f"customer_features {as_of}: {version.customers} customers, {version.how}")
        metadata = {**frame_metadata(version.head, FEATURE_COLUMNS), "dagster/row_count": version.customers,
                    "as_of": str(as_of), "computed": version.how,
                    **per_partition(["customers", "computed"], built)}  # fmt: skip
        return dg.MaterializeResult(metadata=metadata)

    return [customer_features]
