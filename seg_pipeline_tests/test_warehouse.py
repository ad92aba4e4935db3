"""Publishing into the analyst file: versions replaced whole, the newest SEG_KEEP_VERSIONS kept, a bounded file."""

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from seg_pipeline.storage import warehouse

DAYS = [date(2026, 1, 1) + timedelta(days=n) for n in range(8)]
MART = "segment_summary"


@pytest.fixture
def store(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """A working store with every table publish reads, empty: `add_version` fills one as_of."""
    con = duckdb.connect(str(tmp_path / "store.duckdb"))
    con.execute("create table customer_features (as_of date, customer_id varchar, spend double)")
    con.execute("create table customer_segments (as_of date, customer_id varchar, rfm_segment varchar)")
    con.execute("create table segment_versions (as_of date, run_id varchar)")
    con.execute(f"create table {MART} (as_of date, rfm_segment varchar, customers bigint)")
    con.execute("create table quarantine_orders (order_day date, reason varchar)")
    con.execute("create table quarantine_profiles (snapshot_date date, email varchar, reason varchar)")
    yield con
    con.close()


def add_version(con: duckdb.DuckDBPyConnection, day: date, customers: int = 1_000) -> None:
    con.execute(
        "insert into customer_features select ?, 'c' || i, random() from range(?) t(i)", [day, customers]
    )
    con.execute(
        "insert into customer_segments select ?, 'c' || i, 'Champions' from range(?) t(i)", [day, customers]
    )
    con.execute("insert into segment_versions values (?, ?)", [day, f"run-{day}"])
    con.execute(f"insert into {MART} values (?, 'Champions', ?)", [day, customers])


def publish(con: duckdb.DuckDBPyConnection, path: Path, days: list[date], keep: int) -> warehouse.Published:
    return warehouse.publish(con, path, days, [MART], {}, {}, keep_versions=keep)


def versions(path: Path, table: str) -> list[date]:
    with duckdb.connect(str(path), read_only=True) as con:
        return [d for (d,) in con.execute(f"select distinct as_of from {table} order by 1").fetchall()]


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


def test_an_old_version_rebuilt_is_not_copied_in_and_the_rest_is_untouched(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    for day in DAYS[:4]:
        add_version(store, day)
        publish(store, path, [day], keep=2)
    result = publish(store, path, [DAYS[0]], keep=2)
    assert result.dropped == [DAYS[0]]
    assert versions(path, "customer_segments") == DAYS[2:4]
    assert result.counts["customer_segments"] == 2_000


def test_keep_zero_keeps_every_version(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    for day in DAYS[:4]:
        add_version(store, day)
    result = publish(store, path, DAYS[:4], keep=0)
    assert result.dropped == []
    assert versions(path, "customer_features") == DAYS[:4]


def test_the_file_stops_growing_once_old_versions_leave(store, tmp_path):
    path = tmp_path / "segments.duckdb"
    sizes = []
    for day in DAYS:
        add_version(store, day, customers=200_000)
        publish(store, path, [day], keep=2)
        sizes.append(path.stat().st_size)
    # DuckDB reuses the blocks of deleted versions: the file holds about keep + 1 versions, not all eight
    assert sizes[-1] <= 1.5 * sizes[2], sizes
