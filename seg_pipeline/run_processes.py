"""Which process runs a Dagster run, and failing the runs whose process died (kill -9, OOM, a crash).

A run killed without a chance to clean up stays STARTED in Dagster's storage and keeps its `seg_store`
pool slot, so every later run would wait for it forever. Every run records its process (host, pid and
the pid's start time, so a reused pid is not taken for the same process) in its tags; a run of this
host whose process is gone is marked failed and its slots are freed by the CLI before it starts a run
and by the `dead_runs` sensor in the daemon.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import dagster as dg

HOST_TAG, PID_TAG, START_TAG = "seg/host", "seg/pid", "seg/pid_start"
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


def process_tags() -> dict[str, str]:
    """Tags naming this process as the one running a run."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), START_TAG: _start_time(os.getpid()) or ""}


def is_dead(tags: Mapping[str, str]) -> bool:
    """True when the tags name a process of this host that no longer exists (unknown processes are alive)."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return False
    started = _start_time(int(tags[PID_TAG]))
    return started is None or started != tags.get(START_TAG, started)


def recover_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every active run whose process is gone and free its pool slots; one line per run."""
    lines = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=_ACTIVE)):
        run = record.dagster_run
        if not is_dead(run.tags):
            continue
        message = (
            f"run {run.run_id[:8]} ({run.tags.get('dagster/partition', run.job_name)}) was left {run.status.value} "
            f"by process {run.tags[PID_TAG]}, which is gone (killed or crashed): marked failed, its pool slot freed"
        )
        instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        lines.append(message)
    return lines


def slot_holders(instance: dg.DagsterInstance, pool: str) -> list[str]:
    """Ids of the runs holding a slot of `pool`."""
    return sorted(instance.event_log_storage.get_concurrency_info(pool).active_run_ids)
