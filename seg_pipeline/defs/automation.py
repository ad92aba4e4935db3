"""Jobs, the daily schedule and the sensors: how versions get made without anyone asking."""

import hashlib
from datetime import UTC, timedelta
from typing import Any

import dagster as dg

from seg_pipeline.launch.processes import recover_dead_runs
from seg_pipeline.services import ingest
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage.landing import scan
from seg_pipeline.storage.store import WorkingStore

SEGMENTS_JOB = "segments_job"


def jobs() -> list:
    return [
        dg.define_asset_job(
            SEGMENTS_JOB,
            selection=dg.AssetSelection.all(),
            # one process for the whole run, from the UI and the schedule as from the CLI: a step per process
            # would pay Python's and the code location's start-up a dozen times
            executor_def=dg.in_process_executor,
            description="Ingest new or changed landed days, validate, build features, models, segments "
            "and marts, publish: one as-of date.",
        )
    ]


def daily_schedule(settings: PipelineSettings, partitions: dg.TimeWindowPartitionsDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(
        job_name=SEGMENTS_JOB,
        cron_schedule=settings.schedule_cron,
        execution_timezone=settings.schedule_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def daily_segments(context: dg.ScheduleEvaluationContext):
        """Yesterday's version (UTC), every day at SEG_SCHEDULE_CRON in SEG_SCHEDULE_TIMEZONE."""
        day = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date().isoformat()
        if day not in partitions.get_partition_keys(context.scheduled_execution_time):
            return dg.SkipReason(f"{day} is outside the partitions (SEG_PARTITION_START={settings.partition_start})")
        return dg.RunRequest(run_key=day, partition_key=day)

    return daily_segments


def landing_sensor(settings: PipelineSettings) -> dg.SensorDefinition:
    @dg.sensor(job_name=SEGMENTS_JOB, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
    def landing_files(context: dg.SensorEvaluationContext):
        """Rebuild the latest landed day's version when order or profile files are new or re-delivered."""
        landed = sorted(scan(settings.landing_dir, "orders"))
        if not landed:
            return dg.SkipReason(f"no order files in {settings.landing_dir}/orders")
        latest = landed[-1]
        store = WorkingStore.open_existing(settings.store_uri)  # reads a snapshot: never waits for a run
        stale = [
            (kind, ingest.stale_days(store, settings.landing_dir, kind, latest)) for kind in ("orders", "profiles")
        ]
        changed = [f"{kind} {day}" for kind, days in stale for day in days]
        if not changed:
            return dg.SkipReason(f"every landed file up to {latest} is ingested")
        files = [
            f"{f.name}:{f.size}:{f.mtime_ns}"
            for kind, days in stale
            for day in days
            for f in scan(settings.landing_dir, kind, day)[day]
        ]
        run_key = hashlib.sha256(",".join(files).encode()).hexdigest()[:16]
        return dg.RunRequest(
            run_key=run_key, partition_key=latest.isoformat(), tags={"seg/changed": ", ".join(changed[:10])}
        )

    return landing_files


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_summary(context: dg.RunFailureSensorContext):
    """One paragraph per failed run: what failed, for which partition, and the error line."""
    run = context.dagster_run
    tags = run.tags
    partition = tags.get("dagster/partition") or "{}..{}".format(
        tags.get("dagster/asset_partition_range_start", "?"), tags.get("dagster/asset_partition_range_end", "?")
    )
    steps = context.get_step_failure_events()
    failed = ", ".join(sorted({e.step_key for e in steps})) or "the run"
    if steps and steps[0].step_failure_data.error:
        line = error_line(steps[0].step_failure_data.error)
    else:
        line = (context.failure_event.message or "no error message").strip().splitlines()[0]
    context.log.error(
        f"Run {run.run_id[:8]} of {run.job_name} for partition {partition} failed in {failed}: {line} "
        f"Re-run it from the UI (Runs > Re-execute) or with `seg-pipeline materialize --as-of <day>` once fixed."
    )


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def dead_runs(context: dg.SensorEvaluationContext):
    """Fail the runs of this host whose process died (kill -9, out of memory, a crash) and free their pool slots."""
    lines = recover_dead_runs(context.instance)
    for line in lines:
        context.log.warning(line)
    return dg.SkipReason("; ".join(lines) or "no run of this host lost its process")


def error_line(error: Any) -> str:
    """The first line of the user code's own error in Dagster's error info (not Dagster's wrapper), without the
    Failure class name.

    The innermost cause is the user's error, except the text of a traceback that joblib (scikit-learn's worker
    processes) chains under the error it re-raises: that error, one level up, already says what went wrong.
    """
    while error.cause is not None and error.cause.cls_name != "_RemoteTraceback":
        error = error.cause
    lines = error.message.strip().splitlines() or ["no error message"]
    return lines[0].removeprefix("dagster._core.definitions.events.Failure: ")
