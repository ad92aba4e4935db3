"""Which process runs a Dagster run, and failing the runs whose process died (kill -9, OOM, a crash).

A run killed without a chance to clean up stays STARTED in Dagster's storage and keeps its `seg_store`
pool slot, so every later run would wait for it forever. Every run records the process executing it in
its `seg/process` tag (its own run id, the host, the pid and the pid's start time, so neither a reused
pid nor a tag a re-execution inherits from its parent run is taken for it); a run of this host whose
process is gone is marked failed and its slots are freed by the CLI before it starts a run and by the
`dead_runs` sensor in the daemon.
"""

from __future__ import annotations

import os
import socket

import dagster as dg

PROCESS_TAG = "seg/process"
#: statuses of a run that may still hold a pool slot
_ACTIVE = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def _start_time(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot, from /proc), or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            # the command name (field 2) may hold spaces: fields after its closing parenthesis
            return handle.read().rsplit(b")", 1)[1].split()[19].decode()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def process_tags(run_id: str) -> dict[str, str]:
    """The tag naming this process as the one executing run `run_id`."""
    pid = os.getpid()
    return {PROCESS_TAG: f"{run_id} {socket.gethostname()} {pid} {_start_time(pid) or '-'}"}


def owner_pid(run: dg.DagsterRun) -> int | None:
    """The pid of the process of this host recorded as executing `run`, if any."""
    run_id, host, pid, _ = (run.tags.get(PROCESS_TAG) or "- - - -").split(" ")
    return int(pid) if run_id == run.run_id and host == socket.gethostname() else None


def is_dead(run: dg.DagsterRun) -> bool:
    """True when `run` was executed by a process of this host that no longer exists (unknown owners are alive)."""
    pid = owner_pid(run)
    if pid is None:
        return False
    recorded, now = run.tags[PROCESS_TAG].rsplit(" ", 1)[1], _start_time(pid)
    return now is None or (recorded != "-" and now != recorded)  # gone, or the pid is another process's now


def recover_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every active run whose process is gone and free its pool slots; one line per run."""
    lines = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=_ACTIVE)):
        run = record.dagster_run
        if not is_dead(run):
            continue
        message = (
            f"run {run.run_id[:8]} ({run.tags.get('dagster/partition', run.job_name)}) was left {run.status.value} "
            f"by process {owner_pid(run)}, which is gone (killed or crashed): marked failed, its pool slot freed"
        )
        instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        lines.append(message)
    return lines


def slot_holders(instance: dg.DagsterInstance, pool: str) -> list[str]:
    """Ids of the runs holding a slot of `pool`."""
    return sorted(instance.event_log_storage.get_concurrency_info(pool).active_run_ids)
