"""Launching real Dagster runs of the code location's jobs for one as-of date."""

from __future__ import annotations

from datetime import date

import dagster as dg

from seg_pipeline.defs import build_definitions
from seg_pipeline.defs.automation import SEGMENTS_JOB, error_line
from seg_pipeline.defs.partitions import daily_partitions
from seg_pipeline.landing import scan
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.store import WorkingStore


class RunFailed(RuntimeError):
    """A run or its preconditions failed; `str()` is one line saying what and why."""


def materialize_as_of(
    settings: PipelineSettings, as_of: date, instance: dg.DagsterInstance | None = None, log_level: str = "WARNING"
) -> str:
    """Make version `as_of` exist with one run of the segments job for partition D.

    That run ingests every landed day <= D that is new or changed, then builds and publishes
    version D. `log_level` INFO prints one line per stage. Returns a one-line summary; raises
    `RunFailed` with a one-line reason otherwise.
    """
    key = as_of.isoformat()
    partitions = daily_partitions(settings.partition_start)
    if key not in partitions.get_partition_keys():
        raise RunFailed(
            f"--as-of {key} is not a partition: they run from SEG_PARTITION_START={settings.partition_start} "
            "to yesterday (UTC)"
        )
    early = [day for day in scan(settings.landing_dir, "orders", as_of) if day.isoformat() < settings.partition_start]
    if early:
        raise RunFailed(
            f"orders of {early[0]} landed before SEG_PARTITION_START={settings.partition_start}; "
            "set SEG_PARTITION_START to the first landed day"
        )
    result = (
        build_definitions(settings)
        .resolve_job_def(SEGMENTS_JOB)
        .execute_in_process(
            instance=instance or dg.DagsterInstance.get(),
            partition_key=key,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
    )
    if not result.success:
        raise RunFailed(f"version {key} failed (run {result.run_id[:8]}): {failure_line(result)}")
    row = WorkingStore(settings.store_path).frame(
        "select segment_version, customers, prospects, orders_accepted, orders_quarantined "
        "from segment_versions where as_of = ?",
        [as_of],
    ).row(0, named=True)
    return (
        f"published {row['segment_version']} to {settings.warehouse_path}: {row['customers']:,} customers "
        f"({row['prospects']:,} prospects), {row['orders_accepted']:,} orders accepted, "
        f"{row['orders_quarantined']:,} quarantined"
    )


def failure_line(result: dg.ExecuteInProcessResult) -> str:
    """The first failure of a run as one line: a failed blocking check, else the first step error."""
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            check = f"{evaluation.asset_key.to_user_string()} check {evaluation.check_name}"
            return f"{check} failed: {evaluation.description}" if evaluation.description else f"{check} failed"
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error:
            return f"{event.step_key}: {error_line(event.step_failure_data.error)}"
    return "the run failed without a step error; see the run in the Dagster UI"
