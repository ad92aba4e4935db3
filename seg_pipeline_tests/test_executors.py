"""SEG_EXECUTOR: every job runs on the executor named in configuration, with no code change. A version made by
spawned step processes (multiprocess) or by two real dagster-celery workers behind a real redis-server equals the
in-process one; the deployment examples in deploy/ are valid config of their executors and of the instance."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
import yaml
from dagster._config import validate_config
from polars.testing import assert_frame_equal

import seg_pipeline
from seg_pipeline.defs import build_definitions
from seg_pipeline.defs.executors import executor_config
from seg_pipeline.launch.processes import PROCESS_TAG
from seg_pipeline.settings import SettingsError
from seg_pipeline_tests.conftest import END, make_settings
from seg_pipeline_tests.test_pipeline import cli, cli_env

REPO = Path(seg_pipeline.__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
#: the version compared: the first one of the session's `published` fixture, made in-process
DAY = END - timedelta(days=1)


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_every_job_runs_on_the_configured_executor(tmp_path, landing):
    config = _write(tmp_path / "mp.yaml", "execution:\n  config:\n    max_concurrent: 3\n")
    defs = build_definitions(make_settings(tmp_path, landing, SEG_EXECUTOR="multiprocess", SEG_EXECUTOR_CONFIG=config))
    for job in (defs.resolve_job_def("segments_job"), defs.resolve_implicit_global_asset_job_def()):
        assert job.executor_def.name == "multiprocess"
        assert job.executor_def.config_schema.resolve_config({}).value["config"]["max_concurrent"] == 3
    default = build_definitions(make_settings(tmp_path, landing)).resolve_job_def("segments_job")
    assert default.executor_def is dg.in_process_executor


@pytest.mark.parametrize(
    ("executor", "config", "expected"),
    [
        ("spark", None, "^SEG_EXECUTOR: expected one of in_process, multiprocess, celery, k8s, got 'spark'$"),
        ("multiprocess", "missing.yaml", "^SEG_EXECUTOR_CONFIG: .*missing.yaml is not a file$"),
        ("multiprocess", "execution: [", "^SEG_EXECUTOR_CONFIG: .*bad.yaml: not readable YAML"),
        ("multiprocess", "max_concurrent: 2\n", r"^SEG_EXECUTOR_CONFIG: .*bad.yaml: expected a mapping under"),
        ("multiprocess", "execution:\n  config:\n    max_concurent: 2\n",
         '^SEG_EXECUTOR_CONFIG: .*bad.yaml: not a valid config of the multiprocess executor: .*"max_concurent"'),
    ],
)  # fmt: skip
def test_a_bad_executor_setting_is_one_line_naming_it(tmp_path, landing, executor, config, expected):
    env = {"SEG_EXECUTOR": executor}
    if config:
        env["SEG_EXECUTOR_CONFIG"] = str(tmp_path / config) if config.endswith(".yaml") else _write(
            tmp_path / "bad.yaml", config
        )  # fmt: skip
    with pytest.raises(SettingsError, match=expected) as error:
        build_definitions(make_settings(tmp_path, landing, **env))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("executor", "package"), [("celery", "dagster_celery"), ("k8s", "dagster_k8s")])
def test_an_executor_whose_extra_is_missing_says_which_to_install(tmp_path, landing, monkeypatch, executor, package):
    monkeypatch.setitem(sys.modules, package, None)  # what `import` sees when the package is not installed
    install = rf"pip install 'seg_pipeline\[{executor}\]'"
    with pytest.raises(SettingsError, match=rf"^SEG_EXECUTOR: {executor} needs .*{install}"):
        build_definitions(make_settings(tmp_path, landing, SEG_EXECUTOR=executor))


def test_the_cli_says_a_bad_executor_in_one_line(tmp_path, landing):
    env = {**cli_env(make_settings(tmp_path, landing), tmp_path / "home"), "SEG_EXECUTOR": "threads"}
    run = cli(env, "materialize", "--as-of", str(END))
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("seg-pipeline: SEG_EXECUTOR: expected one of")


@pytest.mark.parametrize(
    ("executor", "package"), [("multiprocess", "dagster"), ("celery", "dagster_celery"), ("k8s", "dagster_k8s")]
)
def test_the_deploy_examples_are_valid_executor_config(executor, package):
    pytest.importorskip(package, reason=f"{package} is not installed (extra [{executor}])")
    assert executor_config(executor, str(DEPLOY / f"{executor}.yaml"))


def test_the_kubernetes_instance_example_is_valid_instance_config():
    """dagster.yaml's schema, and each class it names (run launcher, run coordinator) validates its own config."""
    from dagster._core.instance.config import dagster_instance_config
    from dagster._serdes.config_class import class_from_code_pointer

    pytest.importorskip("dagster_k8s", reason="dagster_k8s is not installed (extra [k8s])")
    config, _ = dagster_instance_config(str(DEPLOY), "dagster-k8s.yaml")
    assert set(config["storage"]) == {"postgres"}
    for key in ("run_launcher", "run_coordinator"):
        block = config[key]
        schema = class_from_code_pointer(block["module"], block["class"]).config_type()
        result = validate_config(schema, block.get("config", {}))
        assert result.success, (key, [e.message for e in result.errors])


def _version(warehouse: str, day) -> dict[str, pl.DataFrame]:
    with duckdb.connect(warehouse, read_only=True) as con:
        return {
            table: con.sql(f"select * from {table} where as_of = ? order by customer_id", params=[day]).pl()
            for table in ("customer_features", "customer_segments")
        }


def _assert_same_version(warehouse: str, reference: str) -> None:
    """The same customers, strings and integers, floats within 1e-9 relative, in both analyst files."""
    got, want = _version(warehouse, DAY), _version(reference, DAY)
    for table in want:
        assert want[table].height > 0
        assert_frame_equal(got[table], want[table], check_exact=False, rel_tol=1e-9, abs_tol=0.0)


def _step_pids(home: Path) -> tuple[dg.DagsterRun, dict[str, int]]:
    """The run recorded in `home` and the process id each of its steps started in."""
    instance = dg.DagsterInstance.from_config(str(home))
    [run] = instance.get_runs()
    starts = [e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.is_step_start]
    return run, {e.step_key: e.dagster_event.pid for e in starts}


def _env(published, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The CLI's settings of the `published` fixture (same landing data and cadence) on fresh output paths."""
    settings = make_settings(tmp_path, Path(published[0].landing_dir), SEG_RETRAIN_EVERY_DAYS="1")
    return {**cli_env(settings, tmp_path / "home"), **extra}


def test_a_multiprocess_run_in_three_customer_shards_equals_the_in_process_one(published, tmp_path):
    env = _env(published, tmp_path, SEG_EXECUTOR="multiprocess", SEG_EXECUTOR_CONFIG=str(DEPLOY / "multiprocess.yaml"),
               SEG_CUSTOMER_SHARDS="3")  # fmt: skip
    run = cli(env, "materialize", "--as-of", str(DAY))
    assert run.returncode == 0, run.stderr
    _assert_same_version(env["SEG_WAREHOUSE_PATH"], published[0].warehouse_path)
    dagster_run, pids = _step_pids(tmp_path / "home")
    assert {"segments_population", "segments_shard_0", "segments_shard_1", "segments_shard_2"} <= set(pids)
    assert not (Path(env["SEG_WAREHOUSE_PATH"]).parent / "segments_store" / "_staging" / str(DAY)).exists()
    owner = int(dagster_run.tags[PROCESS_TAG].split()[2])  # the CLI's process, not overwritten by a step's
    assert len(pids) >= 15 and len(set(pids.values())) == len(pids) and owner not in pids.values()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`args` in a process group of its own, output to `log`."""
    with log.open("w") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    """Stop `process` and everything in its process group: SIGTERM, then SIGKILL for what is left after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # a worker's prefork children, had they outlived it
    process.wait()


def _wait_ready(workers: dict[str, subprocess.Popen], logs: Path) -> None:
    deadline = time.monotonic() + 240
    while not all(f"{name}@" in (text := (logs / f"{name}.log").read_text()) and " ready." in text for name in workers):
        for name, worker in workers.items():
            assert worker.poll() is None, f"celery worker {name} exited:\n{(logs / f'{name}.log').read_text()[-3000:]}"
        assert time.monotonic() < deadline, "the celery workers never became ready"
        time.sleep(0.5)


@pytest.fixture
def celery_workers(published, tmp_path):
    """redis-server on a free loopback port and two dagster-celery workers (one process per step), all stopped
    at the end however the test went: the CLI's environment for a run through them."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (.ci/run installs Debian's redis-server)")
    pytest.importorskip("dagster_celery", reason="dagster-celery is not installed: pip install -e '.[celery]'")
    port = _free_port()
    config = yaml.safe_load((DEPLOY / "celery.yaml").read_text())
    config["execution"]["config"].update(broker=f"redis://127.0.0.1:{port}/0", backend=f"redis://127.0.0.1:{port}/1")
    config_path = _write(tmp_path / "celery.yaml", yaml.safe_dump(config))
    env = {**os.environ, **_env(published, tmp_path, SEG_EXECUTOR="celery", SEG_EXECUTOR_CONFIG=config_path,
                                SEG_CUSTOMER_SHARDS="4")}  # fmt: skip
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"  # dagster-celery starts `celery` from the PATH
    home = Path(env["DAGSTER_HOME"])
    home.mkdir()
    shutil.copyfile(REPO / "seg_pipeline" / "dagster.yaml", home / "dagster.yaml")
    started: list[subprocess.Popen] = []
    try:
        redis = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        started.append(_start(redis, env, tmp_path / "redis.log"))
        # the schema before the workers: two workers creating it at once leave alembic with two heads
        subprocess.run([str(BIN / "dagster"), "instance", "migrate"], env=env, check=True, capture_output=True)
        # as README "Running on a cluster" starts them: the pipeline imported once per worker, a process per step
        start = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", config_path]
        includes = ["-i", "seg_pipeline.definitions", "-i", "seg_pipeline.defs", "--", "--concurrency=1"]
        workers = {
            name: _start([*start, "-n", name, *includes], env, tmp_path / f"{name}.log") for name in ("w1", "w2")
        }
        started.extend(workers.values())
        _wait_ready(workers, tmp_path)
        yield env
    finally:
        for process in reversed(started):  # workers first, then the broker
            _stop(process)


def test_a_run_in_four_shards_through_two_celery_workers_equals_the_in_process_one(celery_workers, published, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "seg_pipeline.cli", "materialize", "--as-of", str(DAY)],
        env=celery_workers, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"published {DAY}+")
    _assert_same_version(celery_workers["SEG_WAREHOUSE_PATH"], published[0].warehouse_path)
    dagster_run, pids = _step_pids(tmp_path / "home")
    owner = int(dagster_run.tags[PROCESS_TAG].split()[2])
    assert len(pids) >= 15 and owner not in pids.values()  # no step ran in the CLI's process
    instance = dg.DagsterInstance.from_config(str(tmp_path / "home"))
    workers = [
        e.dagster_event.engine_event_data.metadata["Celery worker"].value
        for e in instance.all_logs(dagster_run.run_id)
        if e.dagster_event and e.dagster_event.is_engine_event and "in celery worker" in (e.message or "")
    ]
    assert len(workers) == len(pids)  # every step was a task of a worker
    assert {w.split("@")[0] for w in workers} == {"w1", "w2"}  # both workers took steps
