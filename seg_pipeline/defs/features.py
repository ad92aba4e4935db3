"""The customer feature table: one version per as-of date, computed by the Polars core."""

from datetime import date, timedelta

import dagster as dg
import polars as pl

from seg_pipeline import __version__
from seg_pipeline.core.features import FEATURE_COLUMNS, changed_day_ranges, compute_customer_features, roll_forward
from seg_pipeline.defs.metadata import frame_metadata, per_partition
from seg_pipeline.defs.partitions import as_of_dates
from seg_pipeline.defs.policy import STORE_POOL
from seg_pipeline.defs.resources import StoreResource
from seg_pipeline.services import ingest
from seg_pipeline.services.inputs import features_at, orders_until, profiles_at
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


#: a version at most this many days old is rolled forward; an older one would touch most customers anyway
ROLL_FORWARD_MAX_DAYS = 31


def orders_state(store: WorkingStore, as_of: date) -> str:
    """Which Parquet files hold the accepted orders of the days <= `as_of` now, and the code version."""
    return f"{__version__}:{store.fingerprint('orders', as_of)}"


def build_features(store: WorkingStore, as_of: date) -> tuple[pl.DataFrame, str, str]:
    """The feature table at `as_of`, the state of the orders it was made from, and how it was made.

    The latest earlier version (at most ROLL_FORWARD_MAX_DAYS old) made by this code version from
    exactly the orders stored now is rolled forward: only customers with orders on the new days or on days leaving
    a window are recomputed (`core.features.roll_forward`, equal to computing from all orders).
    Without one, every order <= `as_of` is read.
    """
    state = orders_state(store, as_of)
    earlier = store.feature_sources(since=as_of - timedelta(days=ROLL_FORWARD_MAX_DAYS), before=as_of)
    previous_as_of = next((day for day, made_from in earlier if made_from == orders_state(store, day)), None)
    profiles = profiles_at(store, as_of)
    if previous_as_of is None:
        return compute_customer_features(orders_until(store, as_of), profiles, as_of), state, "from all orders"
    ranges = changed_day_ranges(previous_as_of, as_of)
    touched = store.customers_ordering(ranges)
    features = roll_forward(
        features_at(store, previous_as_of), previous_as_of, orders_until(store, as_of, touched), profiles, as_of
    )
    return features, state, f"rolled forward from {previous_as_of}, {touched.height:,} customers recomputed"


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
                features, state, how = build_features(working, as_of)
                working.replace_feature_version(as_of, features, state)
                built.append((as_of, features.height, how))
                context.log.info(f"customer_features {as_of}: {features.height} customers, {how}")
        metadata = {**frame_metadata(features, FEATURE_COLUMNS), "as_of": str(as_of), "computed": how,
                    **per_partition(["customers", "computed"], built)}  # fmt: skip
        return dg.MaterializeResult(metadata=metadata)

    return [customer_features]
