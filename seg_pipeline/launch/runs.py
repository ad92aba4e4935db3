"""Runs of the segments job for one as-of date, started by the CLI as ordinary Dagster runs.

A run the CLI starts carries the origin of the workspace's code location (the module
`seg_pipeline.definitions` that workspace.yaml loads), exactly like a run the UI or the schedule
launches: the UI can re-execute it and the run-failure sensor sees it. It is executed in this
process, as the job's in-process executor would in a run worker, so the CLI pays no second
process start-up. Dagster has no public API for creating a run with an origin and executing it
in process; the internals it takes are imported in this module only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import dagster as dg
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.definitions.repository_definition.valid_definitions import SINGLETON_REPOSITORY_NAME
from dagster._core.execution.api import create_execution_plan, execute_run
from dagster._core.execution.execute_in_process import merge_run_tags
from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.utils import make_new_run_id
from dagster._core.workspace.load import location_origin_from_module_name

from seg_pipeline.defs import build_definitions
from seg_pipeline.defs.automation import SEGMENTS_JOB, error_line
from seg_pipeline.defs.partitions import daily_partitions
from seg_pipeline.defs.policy import STORE_POOL
from seg_pipeline.launch.processes import process_tags, recover_dead_runs, slot_holders
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage.landing import scan
from seg_pipeline.storage.store import WorkingStore

#: the code location of workspace.yaml, whose runs the UI re-executes
CODE_LOCATION_MODULE = "seg_pipeline.definitions"


class RunFailed(RuntimeError):
    """A run or its preconditions failed; `str()` is one line saying what and why, `log_file` the run's log."""

    def __init__(self, message: str, log_file: Path | None = None) -> None:
        super().__init__(message)
        self.log_file = log_file


@dataclass
class Outcome:
    """What a run of the CLI did: a summary line and warning lines."""

    summary: str
    warnings: list[str] = field(default_factory=list)


def materialize_as_of(
    settings: PipelineSettings,
    as_of: date,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "CRITICAL",
    notify: Callable[[str], None] = lambda line: None,
) -> Outcome:
    """Make version `as_of` exist with one run of the segments job for partition D.

    That run ingests every landed day <= D that is new or changed, then builds and publishes
    version D. A failed run's event log, with stack traces, is written to a file; the Dagster console
    logger prints events of `log_level` and above. `notify` is called at once with a line about each
    run found dead and about a live run the new one waits for. Raises `RunFailed` with a one-line
    reason and the log file.
    """
    instance = instance or dg.DagsterInstance.get()
    key = _check_partition(settings, as_of)
    for line in recover_dead_runs(instance):
        notify(line)
    if holders := slot_holders(instance, STORE_POOL):
        notify(f"waiting for run {', '.join(r[:8] for r in holders)}, which holds the {STORE_POOL} pool")
    job = build_definitions(settings).resolve_job_def(SEGMENTS_JOB)
    run = _create_run(instance, job, key, {"loggers": {"console": {"config": {"log_level": log_level}}}})
    result = execute_run(InMemoryJob(job), run, instance)
    if not result.success:
        log_file = write_run_log(instance, run.run_id, _log_dir(instance))
        raise RunFailed(f"version {key} failed (run {run.run_id[:8]}): {failure_line(result)}", log_file)
    row = WorkingStore.open_existing(settings.store_uri).version_summary(as_of)
    summary = (
        f"published {row['segment_version']} to {settings.warehouse_path}: {row['customers']:,} customers "
        f"({row['prospects']:,} prospects), {row['orders_accepted']:,} orders accepted, "
        f"{row['orders_quarantined']:,} quarantined"
    )
    return Outcome(summary, warning_lines(result))


def _check_partition(settings: PipelineSettings, as_of: date) -> str:
    """The partition key of `as_of`, or `RunFailed` saying why it cannot be one."""
    key = as_of.isoformat()
    if not Path(settings.landing_dir).is_dir():
        raise RunFailed(f"SEG_LANDING_DIR: {settings.landing_dir} does not exist (it holds orders/ and profiles/)")
    landed = sorted(scan(settings.landing_dir, "orders"))
    if landed and landed[0].isoformat() < settings.partition_start:
        raise RunFailed(
            f"orders of {landed[0]} landed before SEG_PARTITION_START={settings.partition_start}; "
            "set SEG_PARTITION_START to the first landed day"
        )
    if key not in daily_partitions(settings.partition_start).get_partition_keys():
        raise RunFailed(
            f"--as-of {key} is not a partition: they run from SEG_PARTITION_START={settings.partition_start} "
            "to yesterday (UTC)"
        )
    if not landed or as_of < landed[0]:
        first = f"the first landed order day is {landed[0]}" if landed else "no orders have landed yet"
        raise RunFailed(f"--as-of {key} has nothing to segment: {first} (in {settings.landing_dir}/orders)")
    return key


def _create_run(instance: dg.DagsterInstance, job: dg.JobDefinition, key: str, run_config: dict) -> dg.DagsterRun:
    """A run of `job` for partition `key` with the code location's origin, owned by this process."""
    working_directory = os.getcwd()
    location = location_origin_from_module_name(CODE_LOCATION_MODULE, None, working_directory)
    remote_origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME), job.name)
    python_origin = (
        ReconstructableRepository.for_module(CODE_LOCATION_MODULE, "defs", working_directory)
        .get_reconstructable_job(job.name)
        .get_python_origin()
    )
    run_id = make_new_run_id()
    tags = {**merge_run_tags(job, key, process_tags(run_id), None, instance, run_config), "seg/started_by": "cli"}
    plan = create_execution_plan(InMemoryJob(job), run_config=run_config, tags=tags, instance_ref=instance.get_ref())
    return instance.create_run_for_job(
        job_def=job,
        run_id=run_id,
        execution_plan=plan,
        run_config=run_config,
        tags=tags,
        remote_job_origin=remote_origin,
        job_code_origin=python_origin,
    )


def _log_dir(instance: dg.DagsterInstance) -> Path:
    return Path(instance.root_directory) / "logs"


def write_run_log(instance: dg.DagsterInstance, run_id: str, folder: Path) -> Path:
    """Write the run's whole event log, stack traces included, to `folder/<run id>.log`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.log"
    lines = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        kind = event.event_type_value if event else "LOG"
        lines.append(f"{entry.timestamp:.3f} {entry.level} {entry.step_key or '-'} {kind}: {entry.message}")
        error = getattr(event.event_specific_data, "error", None) if event else None
        if error is not None:
            lines.append(error.to_string())
    path.write_text("\n".join(lines) + "\n")
    return path


def failure_line(result: dg.ExecuteInProcessResult) -> str:
    """The first failure of a run as one line: a failed blocking check, else the first step error."""
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            check = f"{evaluation.asset_key.to_user_string()} check {evaluation.check_name}"
            return f"{check} failed: {evaluation.description}" if evaluation.description else f"{check} failed"
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error:
            if event.step_failure_data.error.cls_name == "DagsterExecutionInterruptedError":
                return f"{event.step_key}: interrupted (SIGTERM or Ctrl-C); the run is marked failed, re-run it"
            return f"{event.step_key}: {error_line(event.step_failure_data.error)}"
    return "the run failed without a step error; see the run in the Dagster UI"


def warning_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """One line per failed WARN-severity check of a run."""
    return [
        f"{e.asset_key.to_user_string()} check {e.check_name}: {e.description or 'failed'}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.WARN
    ]
