"""The customer feature table: one version per as-of date, computed by the Polars core."""

from datetime import date

import dagster as dg
import polars as pl

from seg_pipeline import ingest
from seg_pipeline.core.features import FEATURE_COLUMNS, compute_customer_features
from seg_pipeline.defs.ingestion import STORE_POOL
from seg_pipeline.defs.metadata import frame_metadata
from seg_pipeline.defs.resources import StoreResource
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.store import PART_TABLES, WorkingStore, replace_rows


ORDER_COLUMNS = ("order_id", "customer_id", "order_ts", "order_day", "amount", "status", "channel", "category")


def orders_until(store: WorkingStore, as_of: date, customers: pl.DataFrame | None = None) -> pl.DataFrame:
    """Accepted orders of every day <= `as_of` (the only orders a version may see), optionally of `customers` only."""
    return store.read_parts("orders", ORDER_COLUMNS, until=as_of, semi=customers)


def profiles_at(store: WorkingStore, as_of: date, customers: pl.DataFrame | None = None) -> pl.DataFrame | None:
    """The accepted profiles of the latest snapshot <= `as_of` (optionally of `customers` only), or None if none."""
    snapshot = store.scalar("select max(day) from parts where table_name = 'profiles' and day <= ?", [as_of])
    if snapshot is None:
        return None
    columns = [c for c in PART_TABLES["profiles"][1] if c not in ("snapshot_date", "source_file", "source_row")]
    return store.read_parts("profiles", columns, day=snapshot, semi=customers)


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
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=STORE_POOL,
        deps=["orders", "profiles"],
        group_name="features",
    )
    def customer_features(context: dg.AssetExecutionContext, settings: PipelineSettings, store: StoreResource):
        """Point-in-time customer features (RFM, BTYD summary, rhythm, mix, profile) per as-of date."""
        working = store.open()
        for key in context.partition_keys:
            as_of = date.fromisoformat(key)
            ensure_not_blocked(working, settings, as_of)
            features = compute_customer_features(orders_until(working, as_of), profiles_at(working, as_of), as_of)
            with working.transaction() as con:
                replace_rows(con, "customer_features", "as_of = ?", [as_of], features)
            context.log.info(f"customer_features {as_of}: {features.height} customers")
        return dg.MaterializeResult(metadata={**frame_metadata(features, FEATURE_COLUMNS), "as_of": key})

    return [customer_features]
