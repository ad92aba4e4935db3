"""The analyst file: the final asset publishes each version atomically (see seg_pipeline.storage.warehouse)."""

from datetime import timedelta

import dagster as dg

from seg_pipeline.defs.partitions import as_of_dates
from seg_pipeline.defs.policy import STORE_POOL
from seg_pipeline.defs.resources import StoreResource
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage import warehouse
from seg_pipeline.storage.sql_models import SqlModel


def warehouse_assets(partitions: dg.PartitionsDefinition, marts: list[SqlModel]) -> list[dg.AssetsDefinition]:
    """The analyst-file asset (its column comments from the schema registry)."""

    @dg.asset(
        partitions_def=partitions,
        pool=STORE_POOL,
        deps=["customer_features", "customer_segments", "quarantine_orders", "quarantine_profiles",
              *[m.name for m in marts]],
        group_name="warehouse",
        # the daily schedule publishes yesterday's version each morning; a day late is a failure
        freshness_policy=dg.FreshnessPolicy.time_window(
            fail_window=timedelta(hours=30), warn_window=timedelta(hours=26)
        ),
    )  # fmt: skip
    def current_segments(context: dg.AssetExecutionContext, settings: PipelineSettings, store: StoreResource):
        """The analyst DuckDB file (SEG_WAREHOUSE_PATH), made new by each publish and swapped in by atomic rename.

        Its `current_segments` view shows the latest version of `customer_segments`; each version of the
        per-customer tables is one Parquet file, written once, in the `_versions` folder beside it. Both it and the
        working store then keep the newest SEG_KEEP_VERSIONS versions of customer_features and customer_segments
        (the store also the versions action_lift has yet to measure).
        """
        days = as_of_dates(context)
        with store.open() as working:
            try:
                counts, dropped, written = warehouse.publish(
                    working, settings.warehouse_path, days, {m.name: m.description for m in marts},
                    keep_versions=settings.keep_versions,
                )  # fmt: skip
            except warehouse.WarehouseBusy as error:
                raise dg.Failure(description=str(error), allow_retries=False) from None
            # a version stays until action_lift has measured it, SEG_CHURN_HORIZON_DAYS later
            working.keep_versions(settings.keep_versions, settings.churn_horizon_days + 1)
        if too_old := [str(day) for day in days if day in dropped]:
            context.log.warning(
                f"version(s) {', '.join(too_old)} are older than the newest "
                f"SEG_KEEP_VERSIONS={settings.keep_versions}: "
                "not kept in customer_features and customer_segments"
            )
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(settings.warehouse_path),
                **{f"rows {t}": n for t, n in counts.items()},
                "versions dropped": len(dropped),
                "bytes written": written,
            }
        )

    return [current_segments]
