"""Publishing into the analyst file: versions replaced whole, the newest SEG_KEEP_VERSIONS kept, each version one
Parquet file written once, so a publish writes one version's bytes whatever the number of versions kept."""

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from seg_pipeline.storage import warehouse
from seg_pipeline.storage.store import WorkingStore
from seg_pipeline_tests.test_analyst_file import duckdb_cli
from seg_pipeline_tests.versions import MART, add_version, new_store

DAYS = [date(2026, 1, 1) + timedelta(days=n) for n in range(31)]


@pytest.fixture
def store(tmp_path: Path) -> WorkingStore:
    return new_store(tmp_path)


def publish(store: WorkingStore, path: Path, days: list[date], keep: int) -> warehouse.Published:
    return warehouse.publish(store, path, days, {MART: "sizes"}, keep_versions=keep)


def versions(path: Path, table: str) -> list[date]:
    with duckdb.connect(str(path), read_only=True) as con:
        return [d for (d,) in con.execute(f"select distinct as_of from {table} order by 1").fetchall()]


def version_files(path: Path) -> set[Path]:
    """Every file in the analyst file's versions folder."""
    return {p for p in warehouse.versions_dir(path).glob("*/*") if p.is_file()}


def files_written(folder: Path, publishing) -> int:
    """Bytes of the files (inodes) under `folder` that `publishing()` created: a hard link writes nothing."""

    def inodes() -> dict[int, int]:
        return {p.stat().st_ino: p.stat().st_size for p in folder.rglob("*") if p.is_file()}

    before = inodes()
    publishing()
    return sum(size for inode, size in inodes().items() if inode not in before)


def test_the_newest_versions_stay_and_the_small_tables_keep_every_one(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    for n, day in enumerate(DAYS[:5]):
        add_version(store, day)
        result = publish(store, path, [day], keep=3)
        assert result.dropped == ([DAYS[n - 3]] if n >= 3 else [])
    for table in warehouse.VERSIONED_TABLES:
        assert versions(path, table) == DAYS[2:5]
    assert versions(path, "segment_versions") == versions(path, MART) == DAYS[:5]
    assert result.counts["customer_segments"] == 3_000
    with duckdb.connect(str(path), read_only=True) as con:  # the view still shows the latest version
        assert con.execute("select min(as_of), count(*) from current_segments").fetchone() == (DAYS[4], 1_000)
    # the folder holds the files of the kept versions and of the one `.previous` still shows, nothing else
    assert len(version_files(path)) == 2 * 4


def test_an_old_version_rebuilt_is_not_copied_in_and_the_rest_is_untouched(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    for day in DAYS[:4]:
        add_version(store, day)
        publish(store, path, [day], keep=2)
    kept = version_files(path)
    result = publish(store, path, [DAYS[0]], keep=2)
    assert result.dropped == [DAYS[0]]
    assert versions(path, "customer_segments") == DAYS[2:4]
    assert result.counts["customer_segments"] == 2_000
    assert version_files(path) <= kept  # nothing written for it


def test_keep_zero_keeps_every_version(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    for day in DAYS[:4]:
        add_version(store, day)
    result = publish(store, path, DAYS[:4], keep=0)
    assert result.dropped == []
    assert versions(path, "customer_features") == DAYS[:4]


def test_the_30th_kept_version_is_published_with_as_many_bytes_as_the_first(store, tmp_path):
    path = tmp_path / "out" / "segments.duckdb"
    written = []
    for day in DAYS[:30]:
        add_version(store, day, customers=20_000)
        written.append(files_written(path.parent, lambda day=day: publish(store, path, [day], keep=30)))
    assert versions(path, "customer_segments") == DAYS[:30]
    kept = sum(p.stat().st_size for p in version_files(path))
    assert written[-1] <= 1.5 * written[0], written
    assert written[-1] < kept / 10  # copying the versions kept would write all of them
    assert written[0] > 1.5 * path.stat().st_size  # what is measured is mostly the version itself
    # and the file stays small: the versions are outside it, the file holds the small tables and the views
    assert path.stat().st_size < written[0]


def test_a_republished_version_gets_new_files_and_old_files_go_once_no_kept_file_names_them(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    add_version(store, DAYS[0])
    publish(store, path, [DAYS[0]], keep=30)
    first = version_files(path)
    publish(store, path, [DAYS[0]], keep=30)
    second = version_files(path) - first
    assert len(second) == 2 and first <= version_files(path)  # `.previous` still reads the first ones
    publish(store, path, [DAYS[0]], keep=30)
    assert not first & version_files(path) and second <= version_files(path)


READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
q = ("select (select count(*) from customer_features), (select count(*) from customer_segments), "
     "(select min(as_of) from customer_segments), (select min(segment_version) from current_segments)")
print(con.execute(q).fetchall()[0], flush=True)
sys.stdin.readline()
print(con.execute(q).fetchall()[0], flush=True)
"""


def held_reader(path: Path) -> tuple[subprocess.Popen, str]:
    """An analyst's read-only connection in another process, and what it read when it opened."""
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    return reader, reader.stdout.readline().strip()


def test_a_connection_held_during_publishes_reads_its_whole_file_until_retention_lets_go(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    for day in DAYS[:2]:
        add_version(store, day)
    publish(store, path, DAYS[:2], keep=2)
    reader, before = held_reader(path)
    assert before == f"(2000, 2000, datetime.date(2026, 1, 1), 'v{DAYS[1]}')"
    add_version(store, DAYS[2])
    publish(store, path, [DAYS[2]], keep=2)  # DAYS[0] leaves the kept versions, but `.previous` names its files
    assert versions(path, "customer_segments") == DAYS[1:3]
    assert reader.communicate("go\n", timeout=60)[0].strip() == before  # its old version and the newest it had
    oldest = {p for p in version_files(path) if p.name.startswith(str(DAYS[0]))}
    assert len(oldest) == 2
    add_version(store, DAYS[3])
    publish(store, path, [DAYS[3]], keep=2)  # no kept file names DAYS[0] any more: its files go
    assert not oldest & version_files(path)
    assert len(version_files(path)) == 2 * 3


def test_rollback_after_a_publish_brings_back_every_version_of_the_previous_file(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    for day in DAYS[:3]:
        add_version(store, day)
        publish(store, path, [day], keep=2)
    warehouse.rollback(path)
    assert versions(path, "customer_segments") == versions(path, "customer_features") == DAYS[:2]
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("select distinct as_of from current_segments").fetchall() == [(DAYS[1],)]
    warehouse.rollback(path)
    assert versions(path, "customer_segments") == DAYS[1:3]


def test_the_duckdb_cli_reads_every_view_and_comment_of_the_file(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    for day in DAYS[:2]:
        add_version(store, day)
    publish(store, path, DAYS[:2], keep=2)
    sql = (
        "select (select count(*) from customer_features), (select count(distinct as_of) from customer_segments), "
        "(select count(*) from current_segments), (select count(*) from duckdb_columns() where comment is not null "
        "and table_name = 'customer_segments'), (select count(*) from duckdb_views() where comment is not null)"
    )
    ran = duckdb_cli(path, sql, "-readonly", "-csv", "-noheader")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["2000,2,1000,25,3"]


def test_a_file_published_by_earlier_code_keeps_its_versions(store, tmp_path):
    """Its per-customer tables held the versions; the first publish writes the kept ones out as Parquet."""
    path = tmp_path / "segments.duckdb"
    add_version(store, DAYS[0])
    publish(store, path, [DAYS[0]], keep=2)
    with duckdb.connect(str(path)) as con:  # the shape earlier code published
        for table in warehouse.VERSIONED_TABLES:
            con.execute(f"create table _{table} as from {table}")
            con.execute(f"drop view {table}")
            con.execute(f"alter table _{table} rename to {table}")
        con.execute(f"drop table {warehouse.FILES_TABLE}")
    for file in version_files(path):
        file.unlink()
    add_version(store, DAYS[1])
    publish(store, path, [DAYS[1]], keep=2)
    assert versions(path, "customer_segments") == versions(path, "customer_features") == DAYS[:2]
    assert len(version_files(path)) == 4


def test_a_missing_versions_folder_fails_in_one_line_naming_it(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    add_version(store, DAYS[0])
    publish(store, path, [DAYS[0]], keep=2)
    for file in version_files(path):
        file.unlink()
    add_version(store, DAYS[1])
    with pytest.raises(FileNotFoundError) as missing:
        publish(store, path, [DAYS[1]], keep=2)
    assert "\n" not in str(missing.value) and "segments_versions folder must stay beside" in str(missing.value)


def test_personal_columns_are_looked_for_in_the_version_files_too(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    add_version(store, DAYS[0])
    publish(store, path, [DAYS[0]], keep=2)
    assert warehouse.personal_columns_in(path) == []
    planted = warehouse.versions_dir(path) / "customer_segments" / "planted.parquet"
    pl.DataFrame({"customer_id": ["c1"], "Email": ["x"]}).write_parquet(planted)
    assert warehouse.personal_columns_in(path) == ["customer_segments/planted.parquet.Email"]
