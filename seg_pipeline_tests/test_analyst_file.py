"""The analyst file opens in the `duckdb` CLI analysts install, survives their read-write connections, and is
published to exactly the path configured, whatever characters it holds."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from seg_pipeline.launch.runs import RunFailed, materialize_as_of
from seg_pipeline.storage import warehouse
from seg_pipeline.storage.store import WorkingStore
from seg_pipeline_tests.conftest import END, make_settings
from seg_pipeline_tests.versions import add_version, new_store

README = (Path(__file__).parents[1] / "README.md").read_text()
#: the CLI of the PyPI package duckdb-cli (dev extra), installed beside this interpreter
DUCKDB_CLI = Path(sys.executable).with_name("duckdb")
#: a file name that, pasted into an ATTACH statement, would run SQL of its own
CRAFTED_NAME = "segments.duckdb' as decoy; create table injected as select 1; attach 'elsewhere.duckdb"


def duckdb_cli(path: Path, sql: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DUCKDB_CLI), *options, str(path), sql], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory, small_landing: Path):
    """Version END published by a real run to a warehouse path holding quotes and semicolons."""
    tmp = tmp_path_factory.mktemp("crafted")
    landing = Path(shutil.copytree(small_landing, tmp / "landing"))
    settings = make_settings(tmp, landing, SEG_WAREHOUSE_PATH=str(tmp / "it's; here" / CRAFTED_NAME))
    (tmp / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp / "home")) as instance:
        summary = materialize_as_of(settings, END, instance).summary
    return settings, summary


def test_a_path_with_quotes_and_semicolons_is_published_to_exactly_that_path(crafted):
    settings, summary = crafted
    target = Path(settings.warehouse_path)
    assert f"to {target}:" in summary
    store = Path(settings.store_uri)
    assert store.parent == target.parent and "'" in store.name  # the store's path is crafted alike
    assert sorted(p.name for p in target.parent.glob("*.duckdb")) == [target.name]
    assert not (target.parent / "elsewhere.duckdb").exists()
    with duckdb.connect(str(target), read_only=True) as con:
        assert con.execute("select distinct as_of from customer_segments").fetchall() == [(END,)]
    assert "injected" not in WorkingStore(settings.store_uri).table_names()


def test_the_published_file_opens_read_only_in_the_duckdb_cli(crafted):
    settings, _ = crafted
    assert "duckdb-cli" in (Path(__file__).parents[1] / "pyproject.toml").read_text()
    opened = duckdb_cli(
        Path(settings.warehouse_path), "select count(distinct as_of) from current_segments", "-readonly", "-csv"
    )
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.splitlines()[-1] == "1"


def test_the_readme_queries_run_as_written_in_the_duckdb_cli(crafted):
    settings, _ = crafted
    section = README.split("## Querying the output")[1].split("\n## ")[0]
    [opening] = re.findall(r"```bash\n(.*?)\n```", section, re.S)
    [queries] = re.findall(r"```sql\n(.*?)\n```", section, re.S)
    [runbook] = re.findall(r"`(duckdb -readonly data/segments\.duckdb \"[^\"]+\")`", README)
    assert shlex.split(opening) == ["duckdb", "-readonly", "data/segments.duckdb"]
    path = settings.warehouse_path
    ran = subprocess.run(
        [str(DUCKDB_CLI), "-readonly", "-bail", "-csv", path],
        input=queries,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0 and not ran.stderr, ran.stderr
    lines = ran.stdout.splitlines()
    headers = ("rfm_segment,value_tier,customers,churn_risk",
               "as_of,segment_version,customers,churn_method,data_through,churn_auc")  # fmt: skip
    for header in headers:
        assert lines[lines.index(header) + 1], header  # each query's header and a row under it
    assert any(line.startswith("as_of,DATE") for line in lines)  # describe customer_segments
    command = shlex.split(runbook)
    ran = subprocess.run(
        [str(DUCKDB_CLI), *command[1:2], path, *command[3:]], capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0 and not ran.stderr, ran.stderr
    assert "reason" in ran.stdout and "orders/" in ran.stdout  # quarantined rows by source file and reason


def test_a_run_publishing_under_a_read_write_connection_fails_in_one_line(crafted, instance):
    settings, _ = crafted
    writer = start_writer(Path(settings.warehouse_path))
    try:
        with pytest.raises(RunFailed) as failed:
            materialize_as_of(settings, END, instance)
    finally:
        writer.communicate("close\n", timeout=60)
    [line] = str(failed.value).splitlines()
    assert "current_segments: " in line and f"PID {writer.pid}" in line and "duckdb -readonly" in line
    assert materialize_as_of(settings, END, instance).summary.startswith("published ")  # closed: the re-run publishes


# publishing beside analysts' connections, from a working store of small versions (as in test_warehouse.py)


@pytest.fixture
def store(tmp_path: Path) -> WorkingStore:
    return new_store(tmp_path)


def publish(store: WorkingStore, path: Path, day: date) -> None:
    add_version(store, day, customers=100)
    warehouse.publish(store, path, [day], {})


def latest(path: Path) -> str:
    """The newest version in the file, read by the duckdb CLI (it fails on a file or log it cannot read)."""
    ran = duckdb_cli(path, "select max(segment_version) from current_segments", "-readonly", "-csv")
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.splitlines()[-1]


def tables(path: Path) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return sorted(name for (name,) in con.execute("select table_name from duckdb_tables()").fetchall())


WRITER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("create table scratch as select range as x from range(1000)")
con.execute("insert into scratch select range from range(1000)")
print("written", flush=True)
sys.stdin.readline()
con.close()
"""


def start_writer(path: Path) -> subprocess.Popen:
    """An analyst's read-write connection in another process, its writes pending in the write-ahead log."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "written"
    assert path.with_name(f"{path.name}.wal").exists()
    return writer


def test_a_read_write_connection_held_during_a_publish_fails_it_in_one_line_and_breaks_no_file(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    publish(store, path, date(2026, 1, 1))
    writer = start_writer(path)
    try:
        with pytest.raises(warehouse.WarehouseBusy) as refused:
            publish(store, path, date(2026, 1, 2))
        message = str(refused.value)
        assert "\n" not in message and str(path) in message and f"PID {writer.pid}" in message
    finally:
        writer.communicate("close\n", timeout=60)
    assert latest(path) == "v2026-01-01"  # nothing was renamed under the writer
    assert not list(tmp_path.glob(".segments.duckdb.publishing*"))
    publish(store, path, date(2026, 1, 2))  # the connection closed: the same publish goes through
    assert latest(path) == "v2026-01-02"


def test_a_write_ahead_log_left_by_a_killed_connection_moves_with_its_file(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    publish(store, path, date(2026, 1, 1))
    writer = start_writer(path)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=60)
    publish(store, path, date(2026, 1, 2))
    assert latest(path) == "v2026-01-02"  # the log was not replayed into the new file...
    assert "scratch" not in tables(path)
    previous = warehouse.previous_path(path)
    assert "scratch" in tables(previous)  # ...but kept with the file it was written for
    warehouse.rollback(path)
    assert latest(path) == "v2026-01-01" and "scratch" in tables(path)
    assert "scratch" not in tables(previous)


def test_a_file_published_in_a_newer_storage_format_with_a_foreign_log_is_migrated(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    publish(store, path, date(2026, 1, 1))
    newest = tmp_path / "newest.duckdb"  # the file an earlier release wrote: the library's newest format
    con = duckdb.connect()
    con.execute("attach ? as newest", [str(newest)])
    con.execute("attach ? as published (read_only)", [str(path)])
    con.execute("copy from database published to newest")
    con.execute("detach published")
    con.execute("detach newest")
    newest.replace(path)
    assert duckdb_cli(path, "select 1", "-readonly").returncode != 0  # the CLI cannot read it
    writer = start_writer(path)  # ...then a killed read-write connection left its log, and that release
    writer.send_signal(signal.SIGKILL)  # published the next file beside it
    writer.wait(timeout=60)
    shutil.copyfile(path, tmp_path / "next.duckdb")
    con.execute("attach ? as next", [str(tmp_path / "next.duckdb")])
    con.execute("create table next.touched as select 1 as x")
    con.execute("detach next")
    con.close()
    (tmp_path / "next.duckdb").replace(path)
    with pytest.raises(duckdb.Error, match="WAL"):
        duckdb.connect(str(path), read_only=True)  # the broken state of issue 15.6: nobody can open it
    publish(store, path, date(2026, 1, 2))
    assert latest(path) == "v2026-01-02" and "scratch" not in tables(path)
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("select count(*) from customer_segments").fetchall() == [(200,)]


def test_a_rollback_under_a_read_write_connection_fails_in_one_line(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    publish(store, path, date(2026, 1, 1))
    publish(store, path, date(2026, 1, 2))
    writer = start_writer(path)
    try:
        env = {**os.environ, "SEG_WAREHOUSE_PATH": str(path)}
        run = subprocess.run(
            [sys.executable, "-m", "seg_pipeline.cli", "rollback"], env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 1
        [line] = run.stderr.strip().splitlines()
        assert (
            line.startswith(f"seg-pipeline: {path}: open read-write in another process") and f"PID {writer.pid}" in line
        )
    finally:
        writer.communicate("close\n", timeout=60)
    assert latest(path) == "v2026-01-02"
