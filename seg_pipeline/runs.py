"""Launching real Dagster runs of the code location's jobs for one as-of date."""

from __future__ import annotations

from datetime import date

import dagster as dg

from seg_pipeline import ingest
from seg_pipeline.defs import build_definitions
from seg_pipeline.defs.automation import INGEST_ORDERS_JOB, SEGMENTS_JOB
from seg_pipeline.defs.partitions import daily_partitions
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.store import WorkingStore


class RunFailed(RuntimeError):
    """A run or its preconditions failed; `str()` is one line saying what and why."""


def materialize_as_of(settings: PipelineSettings, as_of: date, instance: dg.DagsterInstance | None = None) -> str:
    """Make version `as_of` exist: ingest stale landed days <= D in one run, then run D's pipeline.

    Returns a one-line summary; raises `RunFailed` with a one-line reason otherwise.
    """
    key = as_of.isoformat()
    partitions = daily_partitions(settings.partition_start)
    if key not in partitions.get_partition_keys():
        raise RunFailed(f"--as-of {key} is not a partition: they run from SEG_PARTITION_START={settings.partition_start} to yesterday (UTC)")
    store = WorkingStore(settings.store_path)
    stale = [day for day in ingest.stale_days(store, settings.landing_dir, "orders", as_of) if day < as_of]
    too_early = [day for day in stale if day.isoformat() < settings.partition_start]
    if too_early:
        raise RunFailed(
            f"orders of {too_early[0]} landed before SEG_PARTITION_START={settings.partition_start}; "
            "set SEG_PARTITION_START to the first landed day"
        )
    defs = build_definitions(settings)
    instance = instance or dg.DagsterInstance.get()
    if stale:
        _run(defs, INGEST_ORDERS_JOB, instance, {
            "dagster/asset_partition_range_start": stale[0].isoformat(),
            "dagster/asset_partition_range_end": stale[-1].isoformat(),
        }, f"ingest {stale[0]}..{stale[-1]}")  # fmt: skip
    _run(defs, SEGMENTS_JOB, instance, {"dagster/partition": key}, f"version {key}")
    row = store.frame(
        "select segment_version, customers, prospects, orders_accepted, orders_quarantined from segment_versions where as_of = ?",
        [as_of],
    ).row(0, named=True)
    return (
        f"published {row['segment_version']} to {settings.warehouse_path}: {row['customers']:,} customers "
        f"({row['prospects']:,} prospects), {row['orders_accepted']:,} orders accepted, "
        f"{row['orders_quarantined']:,} quarantined; {len(stale)} earlier day(s) ingested"
    )


def _run(defs: dg.Definitions, job_name: str, instance: dg.DagsterInstance, tags: dict[str, str], what: str) -> None:
    result = defs.resolve_job_def(job_name).execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    if not result.success:
        raise RunFailed(f"{what} failed (run {result.run_id[:8]}): {failure_line(result)}")


def failure_line(result: dg.ExecuteInProcessResult) -> str:
    """The first error of a failed run, as one line naming the step."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error:
            message = event.step_failure_data.error.message.strip().splitlines()[0]
            return f"{event.step_key}: {message.removeprefix('dagster._core.definitions.events.Failure: ')}"
    return "the run failed without a step error; see the run in the Dagster UI"
