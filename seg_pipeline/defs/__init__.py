"""All Dagster definitions of the pipeline, built from one settings object.

This is the `defs_module` of the `dg` project (pyproject's `[tool.dg]`): `dg.load_from_defs_folder` finds
`location` here; the modules beside it only build definitions when asked.
"""

from pathlib import Path

import dagster as dg

from seg_pipeline.defs.audiences import audience_assets
from seg_pipeline.defs.automation import daily_schedule, dead_runs, jobs, landing_sensor, run_failure_summary
from seg_pipeline.defs.executors import build_executor
from seg_pipeline.defs.features import feature_assets
from seg_pipeline.defs.ingestion import ingestion_assets
from seg_pipeline.defs.marts import mart_assets
from seg_pipeline.defs.models import model_assets
from seg_pipeline.defs.partitions import daily_partitions
from seg_pipeline.defs.policy import apply_policy
from seg_pipeline.defs.report import report_assets
from seg_pipeline.defs.resources import build_resources
from seg_pipeline.defs.warehouse import warehouse_assets
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage.sql_models import load_sql_models


def build_definitions(settings: PipelineSettings) -> dg.Definitions:
    """The whole code location for `settings`: assets (with the policy of `defs.policy`), checks, jobs, schedule,
    sensors, resources, and the executor of every job (`defs.executors`, from SEG_EXECUTOR)."""
    partitions = daily_partitions(settings.partition_start)
    sql_dir = Path(settings.sql_dir)
    marts = load_sql_models(sql_dir)
    assets = [
        *ingestion_assets(partitions),
        *feature_assets(partitions, settings.customer_shards),
        *model_assets(partitions, settings.customer_shards),
        *mart_assets(partitions, sql_dir, {"churn_horizon_days": settings.churn_horizon_days}, marts),
        *warehouse_assets(partitions, marts),
        *report_assets(partitions),
        *audience_assets(partitions),
    ]
    return dg.Definitions(
        assets=apply_policy(assets),
        jobs=jobs(),
        schedules=[daily_schedule(settings, partitions)],
        sensors=[landing_sensor(settings), run_failure_summary, dead_runs],
        resources=build_resources(settings),
        executor=build_executor(settings),
    )


@dg.definitions
def location() -> dg.Definitions:
    """The code location: settings are read from the environment when it loads, not at import."""
    return build_definitions(PipelineSettings.from_env())
