"""Benchmark: a cold and a next-day `seg-pipeline materialize` on generated data, per stage, against a floor.

Landing data is generated once per set of parameters (generation is not timed). Each materialize runs
as its own process, exactly as an operator would start it, in a fresh store, warehouse and
`DAGSTER_HOME` under the work dir: first the second-to-last landed day (cold: everything is ingested),
then the last day (incremental). Stage times come from the run's STEP_START/STEP_SUCCESS events;
memory from the child's peak RSS (`wait4`) and from sampling the `/proc/<pid>/status` VmRSS of it and of every
process under it: a sample of the run's own process is attributed to the step running at that moment, one of a
step's own process (the multiprocess executor's) to that step. The ingest steps read, validate and write batch after
batch; the spans they spend validating (reported in their materialization metadata) are the "validate"
stage, the rest of them "ingest".

The floor is the least any implementation must do: one bare DuckDB query computing the BTYD summary
(frequency, recency, T, monetary_value; CONTRACT §3) from the landed order files of every day <= D.
Stages are also shown as multiples of it.
"""

from __future__ import annotations

import bisect
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from seg_pipeline.core.segments import PREDICTIONS
from seg_pipeline.core.shards import feature_shard_asset, shard_asset
from seg_pipeline.settings import RETRAIN_EVERY_DAYS, PipelineSettings  # RETRAIN_EVERY_DAYS: the runs' default
from seg_pipeline.storage.landing import COLUMNS
from seg_pipeline.storage.sql_models import load_sql_models

FULL_SIZE = {"orders": 10_000_000, "customers": 1_000_000}
QUICK_SIZE = {"orders": 300_000, "customers": 20_000}
PROFILE_SNAPSHOT_EVERY_DAYS = 28  # fewer snapshots to write; only the one in force at D is ingested
LATEST_END_DATE = date(2026, 11, 21)  # the generator's default last day, unless that is not a partition yet

#: the stages reported, in pipeline order; "overhead" = process start, imports, Dagster bookkeeping outside steps.
#: The ingest steps read, validate and write each batch in turn: "validate" is the time they report judging
#: rows and waiting for great-expectations, "ingest" the rest of them.
STAGES = ("ingest", "validate", "features", "models", "segments", "marts", "publish", "report", "exports", "overhead")
STEP_STAGES = {
    "ingest_orders": "ingest",
    "ingest_profiles": "ingest",
    "customer_features": "features",
    "churn_model": "models",
    "cluster_model": "models",
    "customer_segments": "segments",
    "segments_population": "segments",
    "current_segments": "publish",
    "segment_report": "report",
    "audiences": "exports",
}  # and the marts' steps, named after the SQL models of the run's SEG_SQL_DIR (_step_stages)
#: (what, limit, unit) of issue 7's targets on a 2-core box at full size
TARGETS = {
    "cold total": (60.0, "s"),
    "cold peak memory": (6144.0, "MB"),
    "next-day total": (20.0, "s"),
    "cold features vs floor": (2.0, "x"),
}

_SAMPLE_SECONDS = 0.02


class BenchmarkError(RuntimeError):
    """A benchmark run failed; `str()` says which and where its log is."""


def run_benchmark(
    work_dir: Path,
    *,
    orders: int = FULL_SIZE["orders"],
    customers: int = FULL_SIZE["customers"],
    days: int = 730,
    quick: bool = False,
    seed: int = 42,
    retrain_every_days: int = RETRAIN_EVERY_DAYS,
    shards: int = 1,
    executor: str = "in_process",
    progress: Callable[[str], None] = print,
) -> dict:
    """Generate (or reuse) landing data in `work_dir`, time a cold and a next-day run, and the floor.

    `quick` swaps the full-size defaults for QUICK_SIZE (explicitly given other sizes are kept); the runs make
    their versions in `shards` customer shards (SEG_CUSTOMER_SHARDS) under `executor` (SEG_EXECUTOR).
    Returns a JSON-serialisable dict (see `format_report`); raises `BenchmarkError` when a run fails.
    """
    if quick:
        orders = QUICK_SIZE["orders"] if orders == FULL_SIZE["orders"] else orders
        customers = QUICK_SIZE["customers"] if customers == FULL_SIZE["customers"] else customers
    if days < 3:
        raise ValueError("days must be >= 3 (a cold day, a next day and history before them)")
    work_dir = Path(work_dir).resolve()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    params = {
        "orders": orders, "customers": customers, "days": days, "seed": seed,
        "end_date": min(LATEST_END_DATE, yesterday).isoformat(),
        "profile_snapshot_every_days": PROFILE_SNAPSHOT_EVERY_DAYS,
    }  # fmt: skip
    landing = _landing(work_dir, params, progress)
    end = date.fromisoformat(params["end_date"])
    cold_day, next_day = end - timedelta(days=1), end

    run_dir = work_dir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    env = {
        **os.environ,
        "SEG_LANDING_DIR": str(work_dir / "landing"),
        "SEG_WAREHOUSE_PATH": str(run_dir / "segments.duckdb"),
        "SEG_STORE_PATH": str(run_dir / "segments_store.duckdb"),
        "SEG_PARTITION_START": (end - timedelta(days=days - 1)).isoformat(),
        "DAGSTER_HOME": str(run_dir / "dagster_home"),
        "SEG_RETRAIN_EVERY_DAYS": str(retrain_every_days),
        "SEG_CUSTOMER_SHARDS": str(shards),
        "SEG_EXECUTOR": executor,
        "GX_ANALYTICS_ENABLED": "false",
    }
    load_before = os.getloadavg()
    progress(f"floor: bare DuckDB BTYD query over the landed orders <= {cold_day}")
    floor = _floor(work_dir / "landing", cold_day, run_dir)
    progress(f"floor: {floor['seconds']:.2f} s, peak {floor['peak_rss_mb']:,.0f} MB")
    runs = {}
    for name, day in (("cold", cold_day), ("next_day", next_day)):
        progress(f"{name}: seg-pipeline materialize --as-of {day}")
        runs[name] = _materialize(run_dir, env, day, floor["seconds"])
        progress(f"{name}: {runs[name]['wall_seconds']:.1f} s, peak {runs[name]['peak_rss_mb']:,.0f} MB")
    result = {
        "params": {**params, "retrain_every_days": retrain_every_days, "shards": shards, "executor": executor},
        "landing": landing,
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(_meminfo_kb("MemTotal") / 2**20, 1),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "floor": floor,
        "runs": runs,
    }
    result["targets"] = _targets(result)
    return result


def format_report(result: dict) -> str:
    """The benchmark result as a terminal table: per stage, cold and next day, seconds, x floor, peak MB."""
    p, land, machine, floor = result["params"], result["landing"], result["machine"], result["floor"]
    load = {when: "/".join(map(str, machine[f"load_average_{when}"])) for when in ("before", "after")}
    cold, nxt = result["runs"]["cold"], result["runs"]["next_day"]
    lines = [
        f"seg_pipeline benchmark: {land['orders']:,} order rows, {p['customers']:,} customers, {p['days']} days "
        f"(target {p['orders']:,} orders, seed {p['seed']})",
        f"machine: {machine['cpus']} CPUs, {machine['memory_gb']} GB; "
        f"load average (1/5/15 min) before {load['before']}, after {load['after']}",
        f"models retrained every {p['retrain_every_days']} day(s) (SEG_RETRAIN_EVERY_DAYS)"
        + ("; the next day reuses the cold run's models" if p["retrain_every_days"] > 1 else ""),
        f"versions in {p['shards']} customer shard(s) (SEG_CUSTOMER_SHARDS), {p['executor']} executor",
        f"floor: bare DuckDB BTYD summary over the landed order files <= {floor['as_of']}: "
        f"{floor['seconds']:.2f} s ({floor['cpu_seconds']:.2f} CPU s), peak {floor['peak_rss_mb']:,.0f} MB "
        f"({floor['customers']:,} buyers)",
        "",
        f"{'':17}{'cold ' + cold['as_of']:>30}   {'next day ' + nxt['as_of']:>30}",
        f"{'stage':17}" + f"{'seconds':>10}{'x floor':>10}{'peak MB':>10}   " * 2,
    ]

    def cells(stage: dict) -> str:
        return f"{stage['seconds']:>10.2f}{stage['x_floor']:>10.2f}{_mb(stage['peak_rss_mb']):>10}   "

    for stage in STAGES:
        lines.append(f"{stage:17}" + cells(cold["stages"][stage]) + cells(nxt["stages"][stage]))
    total = {run: {"seconds": r["wall_seconds"], "x_floor": r["wall_seconds"] / floor["seconds"],
                   "peak_rss_mb": r["peak_rss_mb"]} for run, r in (("cold", cold), ("next", nxt))}  # fmt: skip
    lines.append(f"{'total':17}" + cells(total["cold"]) + cells(total["next"]))
    lines += [f"{'CPU seconds':17}{cold['cpu_seconds']:>10.2f}{'':23}{nxt['cpu_seconds']:>10.2f}", ""]
    lines.append("largest step process (peak RSS of one step's own process, or of the run's while it ran the step): "
                 + "; ".join(f"{run} {_mb(r['largest_step']['peak_rss_mb'])} MB ({r['largest_step']['step']})"
                             for run, r in (("cold", cold), ("next day", nxt))))  # fmt: skip
    parts = {run: r["stages"]["segments"]["parts"] for run, r in (("cold", cold), ("next day", nxt))}
    lines.append("segments step: issue 18's predictions (p_alive, windows, next order, CLV interval, churn reasons, "
                 "their checks) against the rest: " + "; ".join(
        f"{run} {p['predictions']:.2f} s on {p['rest']:.2f} s (+{100 * (p['predictions_share_of_rest'] or 0):.0f}%)"
        for run, p in parts.items()
    ))  # fmt: skip
    lines.append("validate: the ingest steps' time judging rows and waiting for great-expectations; ingest: the rest")
    lines.append("targets (full size, 2 cores): " + "; ".join(
        f"{name} {t['value']:,.1f} <= {t['limit']:,.0f} {t['unit']} {'ok' if t['ok'] else 'MISSED'}"
        for name, t in result["targets"].items()
    ))  # fmt: skip
    return "\n".join(line.rstrip() for line in lines)


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _landing(work_dir: Path, params: dict, progress: Callable[[str], None]) -> dict:
    """Generate the landing data unless `work_dir` already holds it for exactly `params`."""
    marker = work_dir / "landing.json"
    if marker.exists():
        stored = json.loads(marker.read_text())
        if stored["params"] == params and (work_dir / "landing" / "orders").is_dir():
            progress(f"reusing landing data in {work_dir / 'landing'} ({stored['landing']['orders']:,} order rows)")
            return stored["landing"]
    from seg_pipeline.devtools.demo_data import generate_landing

    marker.unlink(missing_ok=True)
    shutil.rmtree(work_dir / "landing", ignore_errors=True)
    started = time.perf_counter()
    summary = generate_landing(
        work_dir / "landing",
        customers=params["customers"],
        days=params["days"],
        orders=params["orders"],
        seed=params["seed"],
        end_date=date.fromisoformat(params["end_date"]),
        profile_snapshot_every_days=params["profile_snapshot_every_days"],
        progress=progress,
    )
    landing = {
        "orders": summary.orders,
        "dirty_orders": summary.dirty_orders,
        "order_files": summary.order_files,
        "profile_files": summary.profile_files,
        "generate_seconds": round(time.perf_counter() - started, 2),
    }
    marker.write_text(json.dumps({"params": params, "landing": landing}, indent=2))
    return landing


def floor_query(order_files: list[str], as_of: date) -> str:
    """The bare BTYD summary per buyer (daily granularity, completed orders only) over raw order files.

    The files are read as text with the contract's columns declared (they are what the generator writes),
    so DuckDB does not sniff each of the ~730 files, which would cost more than the query itself.
    """
    files = ", ".join("'" + f.replace("'", "''") + "'" for f in order_files)
    columns = ", ".join(f"'{c}': 'VARCHAR'" for c in COLUMNS["orders"])
    day = f"date '{as_of.isoformat()}'"
    return f"""
        with purchase_days as (
            select customer_id, day, sum(amount) as spend
            from (
                select customer_id, try_cast(left(order_ts, 10) as date) as day, try_cast(amount as double) as amount
                from read_csv([{files}], header = true, auto_detect = false, columns = {{{columns}}})
                where status = 'completed' and customer_id is not null
            )
            where day <= {day} and amount >= 0
            group by customer_id, day
        )
        select customer_id,
            count(*) - 1 as frequency,
            date_diff('day', min(day), max(day))::double as recency,
            date_diff('day', min(day), {day})::double as T,
            coalesce((sum(spend) - arg_min(spend, day)) / nullif(count(*) - 1, 0), 0.0) as monetary_value
        from purchase_days
        group by customer_id
    """


def _floor(landing: Path, as_of: date, run_dir: Path) -> dict:
    """Run the floor query in its own process: its query seconds and the process's peak memory."""
    files = sorted(str(p) for p in (landing / "orders").glob("*.csv") if p.name[:10] <= as_of.isoformat())
    args = json.dumps({"files": files, "as_of": as_of.isoformat()})
    out = run_dir / "floor.json"
    code = "import sys; from seg_pipeline.devtools.bench import floor_process; floor_process(sys.argv[1], sys.argv[2])"
    child = _run([sys.executable, "-c", code, args, str(out)], run_dir / "floor.log", run_dir, None)
    if child.returncode:
        raise BenchmarkError(f"the floor query failed (exit {child.returncode}); see {run_dir / 'floor.log'}")
    return {**json.loads(out.read_text()), "as_of": as_of.isoformat(), "files": len(files),
            "peak_rss_mb": child.usage.ru_maxrss / 1024}  # fmt: skip


def floor_process(args: str, out: str) -> None:
    """Body of the floor's own process: time the query to a Polars frame, write seconds and row count."""
    import duckdb

    spec = json.loads(args)
    sql = floor_query(spec["files"], date.fromisoformat(spec["as_of"]))
    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")
    started, cpu = time.perf_counter(), time.process_time()
    frame = con.sql(sql).pl()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    Path(out).write_text(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "customers": frame.height}))


@dataclass
class _Finished:
    """A finished child process: pid, exit code, resource usage, epoch start and end, and (epoch, pid, RSS MB)
    samples of it and of the processes under it."""

    pid: int
    returncode: int
    usage: resource.struct_rusage
    started: float
    ended: float
    samples: list[tuple[float, int, float]]

    def own(self) -> list[tuple[float, float]]:
        """The (epoch, RSS MB) samples of the child itself."""
        return [(t, rss) for t, pid, rss in self.samples if pid == self.pid]


def _run(command: list[str], log: Path, cwd: Path, env: dict | None) -> _Finished:
    """Run `command` to completion with its output to `log`, sampling its RSS meanwhile."""
    samples: list[tuple[float, int, float]] = []
    started = time.time()
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(proc.pid, samples, done), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return _Finished(proc.pid, proc.returncode, usage, started, time.time(), samples)


def _sample_rss(root: int, samples: list[tuple[float, int, float]], done: threading.Event) -> None:
    """Until `done`, every _SAMPLE_SECONDS: (epoch, pid, RSS MB) of `root` and of each process under it."""
    while not done.is_set():
        now, pending = time.time(), [root]
        while pending:
            pid = pending.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                pending += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            except (OSError, ValueError):
                continue  # the process ended meanwhile
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    samples.append((now, pid, int(line.split()[1]) / 1024))
                    break
        done.wait(_SAMPLE_SECONDS)


def _meminfo_kb(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _step_stages(env: dict) -> dict[str, str]:
    """STEP_STAGES and, for the settings in `env` (the materialize process's): as "features" and "segments", the
    shard steps of a sharded version; as "marts", the SQL models."""
    settings = PipelineSettings.from_env(env)
    shards = {name(k): stage for k in range(settings.customer_shards)
              for name, stage in ((feature_shard_asset, "features"), (shard_asset, "segments"))}  # fmt: skip
    marts = {model.name: "marts" for model in load_sql_models(Path(settings.sql_dir))}
    return {**STEP_STAGES, **shards, **marts}


def _materialize(run_dir: Path, env: dict, as_of: date, floor_seconds: float) -> dict:
    """One `seg-pipeline materialize --as-of` process: wall time, peak memory, per-stage seconds and peak."""
    log = run_dir / f"materialize-{as_of}.log"
    command = [sys.executable, "-m", "seg_pipeline.cli", "materialize", "--as-of", as_of.isoformat()]
    child = _run(command, log, run_dir, env)
    wall, samples = child.ended - child.started, child.own()
    lines = log.read_text(errors="replace").strip().splitlines()
    if child.returncode:
        raise BenchmarkError(
            f"materialize --as-of {as_of} failed (exit {child.returncode}): {lines[-1] if lines else ''}; see {log}"
        )
    events = _run_events(Path(env["DAGSTER_HOME"]), as_of)
    run_id, spans, validating, composing = events.run_id, events.spans, events.validating, events.composing
    step_stages = _step_stages(env)
    stage_spans: dict[str, list[tuple[float, float]]] = {stage: [] for stage in STAGES}
    steps: dict[str, dict[str, float]] = {stage: {} for stage in STAGES}
    for step, (start, end) in spans.items():
        if (stage := step_stages.get(step)) is None:
            raise BenchmarkError(f"step {step} of run {run_id[:8]} belongs to no stage: add it to STEP_STAGES")
        stage_spans[stage].append((start, end))
        steps[stage][step] = round(end - start, 3)
    for step, step_spans in validating.items():  # carved out of the ingest steps
        seconds = sum(end - start for start, end in step_spans)
        steps["validate"][step] = round(seconds, 3)
        steps["ingest"][step] = round(steps["ingest"][step] - seconds, 3)
        stage_spans["validate"] += step_spans
    in_steps = sum(end - start for start, end in spans.values())
    first_start, last_end = min(start for start, _ in spans.values()), max(end for _, end in spans.values())
    steps["overhead"] = {
        "startup (before the first step)": round(first_start - child.started, 3),
        "between steps": round(last_end - first_start - in_steps, 3),
        "shutdown (after the last step)": round(child.ended - last_end, 3),
    }
    step_peaks = _step_peaks(child, events, samples)
    separate = {step: peak for step, peak in step_peaks.items() if events.pids[step] != child.pid}
    largest = max(step_peaks, key=lambda step: step_peaks[step] or 0)
    stages = {}
    for stage in STAGES:
        if stage == "overhead":
            seconds, peak = wall - in_steps, _peak_outside(samples, list(spans.values()))
        elif stage == "ingest":
            seconds = sum(steps[stage].values())
            peak = _peak_outside(_within(samples, stage_spans[stage]), stage_spans["validate"]) or _peak(
                samples, stage_spans[stage]
            )
        else:
            seconds, peak = sum(steps[stage].values()), _peak(samples, stage_spans[stage])
        peak = max([p for p in (peak, *(separate.get(step) for step in steps[stage])) if p is not None], default=None)
        stages[stage] = {"seconds": seconds, "x_floor": seconds / floor_seconds, "peak_rss_mb": peak,
                         "steps": steps[stage]}  # fmt: skip
    stages["segments"]["parts"] = _segments_parts(stages["segments"]["seconds"], composing)
    return {
        "as_of": as_of.isoformat(),
        "run_id": run_id,
        "wall_seconds": wall,
        "x_floor": wall / floor_seconds,
        "cpu_seconds": child.usage.ru_utime + child.usage.ru_stime,
        "peak_rss_mb": child.usage.ru_maxrss / 1024,
        "stages": stages,
        "step_peak_rss_mb": step_peaks,
        "largest_step": {"step": largest, "peak_rss_mb": step_peaks[largest]},
        "summary": lines[-1] if lines else "",
        "log": str(log),
    }


def _step_peaks(child: _Finished, events: _RunEvents, own: list[tuple[float, float]]) -> dict[str, float | None]:
    """Per step, the peak RSS (MB) of the process that ran it: its own (the multiprocess executor's), or the run's
    (`own`: `child.own()`) while it ran the step."""
    by_process: dict[int, float] = {}
    for _, pid, rss in child.samples:
        by_process[pid] = max(rss, by_process.get(pid, rss))
    return {step: _peak(own, [events.spans[step]]) if pid == child.pid else by_process.get(pid)
            for step, pid in events.pids.items()}  # fmt: skip


def _segments_parts(step_seconds: float, composing: dict[str, float]) -> dict[str, float]:
    """The segments step split into issue 18's predictions (the seconds the step reports for their own work) and
    the rest of the step, with the predictions' share of that rest (issue 18's budget: at most 0.2)."""
    predicted = composing.get(PREDICTIONS, 0.0)
    rest = step_seconds - predicted
    return {"predictions": round(predicted, 3), "rest": round(rest, 3),
            "predictions_share_of_rest": round(predicted / rest, 3) if rest > 0 else None}  # fmt: skip


@dataclass
class _RunEvents:
    """What the latest run's events say: its id; per step, (first STEP_START, last STEP_SUCCESS/FAILURE) epoch
    seconds and the pid of the process that ran it; per ingest step, the (start, end) spans its materializations
    report as "validation spans"; the seconds per part the customer_segments step reports composing its versions
    (`defs.models.PART_SECONDS`)."""

    run_id: str
    spans: dict[str, tuple[float, float]]
    pids: dict[str, int]
    validating: dict[str, list[tuple[float, float]]]
    composing: dict[str, float]


def _run_events(dagster_home: Path, as_of: date) -> _RunEvents:
    """The events of the latest run in `dagster_home`, which must be the one for `as_of`."""
    import dagster as dg

    from seg_pipeline.defs.models import PART_SECONDS

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_runs(limit=1)[0]
        if run.tags.get("dagster/partition") != as_of.isoformat():
            raise BenchmarkError(f"the latest run in {dagster_home} is not the one for {as_of}")
        entries = instance.all_logs(run.run_id)
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    pids: dict[str, int] = {}
    validating: dict[str, list[tuple[float, float]]] = {}
    composing: dict[str, float] = {}
    for entry in entries:
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts.setdefault(entry.step_key, entry.timestamp)
            pids[entry.step_key] = event.pid
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            ends[entry.step_key] = entry.timestamp
        elif event.is_step_materialization:
            metadata = event.step_materialization_data.materialization.metadata
            if (reported := metadata.get("validation spans")) is not None:
                validating.setdefault(entry.step_key, []).extend((start, end) for start, end in reported.value)
            if (parts := metadata.get(PART_SECONDS)) is not None:
                composing.update(parts.value)
    spans = {step: (starts[step], ends[step]) for step in starts if step in ends}
    return _RunEvents(run.run_id, spans, {step: pids[step] for step in spans}, validating, composing)


def _peak(samples: list[tuple[float, float]], spans: list[tuple[float, float]]) -> float | None:
    """Peak RSS (MB) of the samples within `spans`, plus the nearest sample on either side of each span
    so that steps shorter than the sampling interval get a value too."""
    times = [t for t, _ in samples]
    values = []
    for start, end in spans:
        first, last = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
        values += [rss for _, rss in samples[max(first - 1, 0) : last + 1]]
    return max(values, default=None)


def _within(samples: list[tuple[float, float]], spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The samples taken during `spans`."""
    return [(t, rss) for t, rss in samples if any(start <= t <= end for start, end in spans)]


def _peak_outside(samples: list[tuple[float, float]], spans: list[tuple[float, float]]) -> float | None:
    """Peak RSS (MB) of the samples taken while no step ran."""
    return max((rss for t, rss in samples if not any(start <= t <= end for start, end in spans)), default=None)


def _targets(result: dict) -> dict[str, dict]:
    cold, nxt = result["runs"]["cold"], result["runs"]["next_day"]
    values = {
        "cold total": cold["wall_seconds"],
        "cold peak memory": cold["peak_rss_mb"],
        "next-day total": nxt["wall_seconds"],
        "cold features vs floor": cold["stages"]["features"]["x_floor"],
    }
    return {
        name: {"value": values[name], "limit": limit, "unit": unit, "ok": values[name] <= limit}
        for name, (limit, unit) in TARGETS.items()
    }
