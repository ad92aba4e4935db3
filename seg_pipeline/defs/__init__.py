"""All Dagster definitions of the pipeline, built from one settings object."""

import os
import warnings
from pathlib import Path

import dagster as dg

from seg_pipeline.defs.audiences import audience_assets
from seg_pipeline.defs.automation import daily_schedule, dead_runs, jobs, landing_sensor, run_failure_summary
from seg_pipeline.defs.features import feature_assets
from seg_pipeline.defs.ingestion import ingestion_assets
from seg_pipeline.defs.marts import mart_assets
from seg_pipeline.defs.models import model_assets
from seg_pipeline.defs.partitions import daily_partitions
from seg_pipeline.defs.report import report_assets
from seg_pipeline.defs.resources import build_resources
from seg_pipeline.defs.warehouse import warehouse_assets
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.sql_models import SQL_DIR, load_sql_models


def build_definitions(settings: PipelineSettings, sql_dir: Path | None = None) -> dg.Definitions:
    """The whole code location for `settings`: assets, checks, jobs, schedule, sensors, resources."""
    partitions = daily_partitions(settings.partition_start)
    sql_dir = sql_dir or Path(os.environ.get("SEG_SQL_DIR") or SQL_DIR)
    marts = load_sql_models(sql_dir)
    with warnings.catch_warnings():
        # BackfillPolicy.single_run() is beta; we use it on purpose (a backfill is one run), once per asset
        warnings.filterwarnings("ignore", category=dg.BetaWarning, message="Parameter `backfill_policy`")
        assets = [
            *ingestion_assets(partitions),
            *feature_assets(partitions),
            *model_assets(partitions),
            *mart_assets(partitions, sql_dir, {"churn_horizon_days": settings.churn_horizon_days}),
            *warehouse_assets(partitions, marts),
            *report_assets(partitions),
            *audience_assets(partitions),
        ]
    return dg.Definitions(
        assets=assets,
        jobs=jobs(),
        schedules=[daily_schedule(settings, partitions)],
        sensors=[landing_sensor(settings), run_failure_summary, dead_runs],
        resources=build_resources(settings),
    )
