"""Runs the CLI starts are ordinary Dagster runs: one line when they fail, re-executable from a real
webserver, seen by the run-failure sensor, and never blocked by a run whose process was killed."""

import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

import seg_pipeline
from seg_pipeline.devtools.demo_data import generate_landing
from seg_pipeline.storage.sql_models import SQL_DIR
from seg_pipeline.storage.store import WorkingStore
from seg_pipeline_tests.conftest import END, make_settings
from seg_pipeline_tests.test_pipeline import analyst, cli, cli_env

REPO = Path(seg_pipeline.__file__).resolve().parent.parent


def test_a_failing_step_is_one_line_naming_its_log_file(tmp_path, landing):
    env = cli_env(make_settings(tmp_path, landing), tmp_path / "home")
    sql = Path(shutil.copytree(SQL_DIR, tmp_path / "sql"))  # a mart failing at run time: an injected failing step
    (sql / "broken_mart.sql").write_text("select cast(rfm_segment as integer) as n from customer_segments\n")
    run = cli({**env, "SEG_SQL_DIR": str(sql)}, "materialize", "--as-of", str(END))
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(f"seg-pipeline: version {END} failed (run ") and "broken_mart: " in line
    assert "Conversion Error" in line
    log = Path(re.search(r"\[log: (.+)\]$", line).group(1))
    text = log.read_text()  # the whole event log, with the failing step's stack trace
    assert "STEP_FAILURE" in text and 'seg_pipeline/defs/marts.py", line ' in text and "Conversion Error" in text

    verbose = cli({**env, "SEG_SQL_DIR": str(sql)}, "--verbose", "materialize", "--as-of", str(END))
    lines = verbose.stderr.strip().splitlines()
    assert verbose.returncode == 1 and len(lines) > 20 and "broken_mart: " in lines[-1]


def test_fast_file_failures_always_name_their_file(tmp_path):
    """great-expectations is imported in the background while the file fails: the file's error still wins."""
    landing = tmp_path / "landing"
    generate_landing(landing, customers=40, days=5, end_date=END)
    broken = landing / "orders" / f"{END}-late.csv"
    broken.write_bytes("order_id,customer_id,order_ts,amount\nA,B,2026-06-30T01:00:00,1\n".encode("utf-16"))
    env = cli_env(make_settings(tmp_path, landing, SEG_PARTITION_START=str(END - timedelta(days=4))), tmp_path / "h")
    for _ in range(2):
        pair = [
            subprocess.Popen([sys.executable, "-m", "seg_pipeline.cli", "materialize", "--as-of", str(END)],
                             env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]  # fmt: skip
        for run in pair:
            _, err = run.communicate(timeout=300)
            assert run.returncode == 1 and f"orders/{broken.name}: " in err.strip().splitlines()[-1], err


@pytest.mark.parametrize(
    "args",
    [
        ["materialize", "--as-of", "2024-13-01"],
        ["materialize", "--as-of", "yesterday"],
        ["generate", "--out", "x", "--customers", "0"],
        ["generate", "--out", "x", "--days", "-3"],
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args):
    run = cli({"DAGSTER_HOME": str(tmp_path / "home")}, *args)
    assert run.returncode == 2
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("seg-pipeline") and args[-1] in line


def test_materialize_before_the_first_landed_day_says_so(tmp_path, landing):
    first = min(p.name[:10] for p in (landing / "orders").iterdir())
    env = cli_env(make_settings(tmp_path, landing, SEG_PARTITION_START="2024-01-01"), tmp_path / "home")
    run = cli(env, "materialize", "--as-of", "2024-06-01")
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert f"the first landed order day is {first}" in line


def _instance_when_ready(home: Path) -> dg.DagsterInstance:
    """The instance in `home` once the CLI has set it up (under the lock it sets it up with)."""
    deadline = time.monotonic() + 120
    while not (home / "dagster.yaml").exists():
        assert time.monotonic() < deadline, "the CLI never set up its Dagster home"
        time.sleep(0.2)
    with (home / ".setup.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return dg.DagsterInstance.from_config(str(home))


def test_a_run_killed_with_sigkill_never_blocks_the_next(tmp_path, landing):
    settings = make_settings(tmp_path, landing)
    home = tmp_path / "home"
    env = {**os.environ, **cli_env(settings, home)}
    victim = subprocess.Popen(
        [sys.executable, "-m", "seg_pipeline.cli", "materialize", "--as-of", str(END)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    instance = _instance_when_ready(home)
    deadline = time.monotonic() + 300
    while not instance.event_log_storage.get_concurrency_info("seg_store").active_run_ids:
        assert victim.poll() is None and time.monotonic() < deadline, "the run never took the seg_store slot"
        time.sleep(0.1)
    time.sleep(1.0)  # in the middle of a step
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    [dead] = instance.get_runs()
    assert dead.status == dg.DagsterRunStatus.STARTED  # what a kill -9 leaves behind

    started = time.monotonic()
    run = cli(cli_env(settings, home), "materialize", "--as-of", str(END))
    assert run.returncode == 0, run.stderr
    assert time.monotonic() - started < 240
    assert f"run {dead.run_id[:8]} ({END}) was left STARTED by process {victim.pid}" in run.stderr
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_info("seg_store").active_run_ids
    assert analyst(settings.warehouse_path, "select distinct as_of from current_segments") == [(END,)]
    # the killed run left no half day (a file it wrote uncommitted is in no snapshot) and no publishing copy
    store = WorkingStore(settings.store_uri)
    landed = store.ingested_files("orders").group_by("day").agg(pl.col("raw_rows").sum()).sort("day")
    assert store.day_rows("raw_orders").rows() == landed.rows()
    assert sorted(p.name for p in Path(settings.warehouse_path).parent.glob(".*publishing*")) == []


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


def _wait(what: str, seconds: float, probe):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if value := probe():
                return value
        except OSError:
            pass  # the webserver is not listening yet
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
SENSOR_TICKS = """
query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) { ... on Sensor {
  sensorState { ticks(limit: 20) { status originRunIds logEvents { events { message } } } } } } }
"""
REEXECUTE = """
mutation($parent: String!) {
  launchPipelineReexecution(reexecutionParams: {parentRunId: $parent, strategy: FROM_FAILURE}) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }
"""
RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


@pytest.fixture
def webserver(tmp_path, landing):
    """`dagster dev` (webserver and daemon) on the workspace.yaml of the repository, on a free loopback port, with
    versions made in two customer shards."""
    settings = make_settings(tmp_path, landing, SEG_CUSTOMER_SHARDS="2")
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "seg_pipeline" / "dagster.yaml", home / "dagster.yaml")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = cli_env(settings, home)
    dev = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "dev", "-w", str(REPO / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait("the code location to load", 180, lambda: [
            e for e in _graphql(port, LOCATIONS)["workspaceOrError"]["locationEntries"] if e["loadStatus"] == "LOADED"
        ])  # fmt: skip
        yield settings, env, port
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)


def _steps(instance: dg.DagsterInstance, run_id: str, *events: dg.DagsterEventType) -> Counter:
    """How many times each step of a run logged one of `events`."""
    return Counter(e.dagster_event.step_key for e in instance.all_logs(run_id, of_type=set(events)))


#: a step's first start and each of its retries' starts
STARTS = (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_RESTARTED)


def _taken(settings, as_of) -> Path:
    """Shard 1 of 2's staging path of `as_of`, taken by a folder: the shard's rename onto it fails, as on a full or
    broken disk, until the folder is removed."""
    taken = Path(settings.store_uri) / "_staging" / str(as_of) / "shard_1_of_2.pkl"
    (taken / "in_the_way").mkdir(parents=True)
    return taken


def test_a_failing_shard_is_retried_alone_and_the_ui_reexecutes_only_it_once_it_failed(webserver, landing):
    """Day one: shard 1 of 2 fails once, is retried alone, the run succeeds. Day two: it fails on every try, the
    run fails, the failure sensor says where; once its path is free, the UI re-executes from the failure: that
    shard and the steps after it, nothing before."""
    settings, env, port = webserver
    selector = {"repositoryName": "__repository__", "repositoryLocationName": "seg_pipeline.definitions",
                "sensorName": "run_failure_summary"}  # fmt: skip

    def ticks() -> list[dict]:
        return _graphql(port, SENSOR_TICKS, {"selector": selector})["sensorOrError"]["sensorState"]["ticks"]

    _wait("the daemon's first run_failure_summary tick", 120, ticks)  # its cursor starts at that tick
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    day_one, taken = END - timedelta(days=1), _taken(settings, END - timedelta(days=1))
    first = subprocess.Popen([sys.executable, "-m", "seg_pipeline.cli", "materialize", "--as-of", str(day_one)],
                             env={**os.environ, **env}, stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait("shard 1's first failure", 300, lambda: [
        r for r in instance.get_runs() if _steps(instance, r.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    ])  # fmt: skip
    shutil.rmtree(taken)  # before its retry (TRANSIENT_RETRY waits 5 s)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    [one] = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": str(day_one)}))
    # TRANSIENT_RETRY's jitter may start the first retry before the path is freed: then a second retry succeeds
    [(retried, retries)] = _steps(instance, one.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY).items()
    assert retried == "segments_shard_1" and retries in (1, 2)
    started = _steps(instance, one.run_id, *STARTS)
    assert {step: n for step, n in started.items() if n > 1} == {"segments_shard_1": retries + 1}  # the others once

    taken = _taken(settings, END)
    failed = cli(env, "materialize", "--as-of", str(END))
    assert failed.returncode == 1 and "shard_1_of_2.pkl" in failed.stderr.strip().splitlines()[-1], failed.stderr
    parent = re.search(r"\(run ([0-9a-f]{8})\)", failed.stderr).group(1)
    [parent_run] = [r for r in instance.get_runs() if r.run_id.startswith(parent)]
    started = _steps(instance, parent_run.run_id, *STARTS)
    assert _steps(instance, parent_run.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY) == {"segments_shard_1": 2}
    assert started["segments_shard_1"] == 3 and started["segments_shard_0"] == started["segments_population"] == 1
    assert "customer_segments" not in started

    reported = _wait("the failure sensor to report the CLI run", 180, lambda: [
        t for t in ticks() if parent_run.run_id in t["originRunIds"]
    ])  # fmt: skip
    messages = [e["message"] for t in reported for e in t["logEvents"]["events"]]
    assert any(f"Run {parent} of segments_job for partition {END} failed in segments_shard_1" in m for m in messages)

    shutil.rmtree(taken)  # on-call frees the path, then re-executes from the failure in the UI
    launched = _graphql(port, REEXECUTE, {"parent": parent_run.run_id})["launchPipelineReexecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    child = launched["run"]["runId"]

    def finished() -> str | None:
        status = _graphql(port, RUN_STATUS, {"id": child})["runOrError"]["status"]
        return status if status in ("SUCCESS", "FAILURE") else None

    status = _wait("the re-executed run to finish", 400, finished)
    failures = [e.message for e in instance.all_logs(child) if e.level >= 40]  # logging.ERROR
    assert status == "SUCCESS", failures
    assert instance.get_run_by_id(child).parent_run_id == parent_run.run_id
    rerun = _steps(instance, child, dg.DagsterEventType.STEP_SUCCESS)
    assert rerun["segments_shard_1"] == rerun["customer_segments"] == 1
    assert not {"ingest_orders", "customer_features", "segments_population", "segments_shard_0"} & set(rerun)
    customers = WorkingStore(settings.store_uri).read_parts("customer_features", ["customer_id"], day=END).height
    assert analyst(settings.warehouse_path, "select distinct as_of, count(*) from current_segments group by 1") == [
        (END, customers)
    ]
    assert not taken.parent.parent.exists()  # the published versions' staging is dropped


def test_a_young_shop_whose_files_stopped_arriving_publishes_with_warning_lines(tmp_path):
    """A month of orders, the last nine days ago: the version publishes, and the CLI says what to watch."""
    landing = tmp_path / "landing"
    generate_landing(landing, customers=80, days=30, end_date=END - timedelta(days=9))
    env = cli_env(make_settings(tmp_path, landing, SEG_PARTITION_START=str(END - timedelta(days=38))), tmp_path / "h")
    run = cli(env, "materialize", "--as-of", str(END))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1].startswith(f"published {END}+")
    warnings = run.stderr.strip().splitlines()
    assert any(w.startswith("seg-pipeline: warning: customer_segments check data_through: ") for w in warnings)
    assert any(w.startswith("seg-pipeline: warning: churn_model check churn_method: ") for w in warnings)
    buyers = analyst(
        str(tmp_path / "out" / "segments.duckdb"),
        "select count(*), count(churn_risk) from current_segments where lifecycle_stage <> 'prospect'",
    )
    assert buyers[0][0] > 0 and buyers[0][0] == buyers[0][1]
