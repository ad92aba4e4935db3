"""The working store's Parquet parts: replaced per day inside transactions, never half-switched."""

import subprocess
import sys
from datetime import date, datetime

import duckdb
import polars as pl
import pytest

from seg_pipeline.storage.store import PART_TABLES, StoreError, WorkingStore

D1, D2 = date(2026, 1, 1), date(2026, 1, 2)


def orders(*days: date, n: int = 3, tag: str = "a") -> pl.DataFrame:
    """`n` accepted orders on each of `days`, in the part table's schema."""
    rows = [
        {"order_id": f"{tag}-{day}-{i}", "customer_id": f"c{i}",
         "order_ts": datetime(day.year, day.month, day.day, 10), "order_day": day, "amount": float(i),
         "status": "completed", "source_file": f"orders/{day}.csv", "source_row": i}
        for day in days for i in range(1, n + 1)
    ]  # fmt: skip
    return pl.DataFrame(rows).select(
        pl.col(c).cast(dtype) if c in rows[0] else pl.lit(None, dtype).alias(c)
        for c, dtype in PART_TABLES["orders"][1].items()
    )


def part_files(store: WorkingStore) -> set[str]:
    return {str(p.relative_to(store.parts_dir)) for p in store.parts_dir.glob("*/*/*.parquet")}


@pytest.fixture
def store(tmp_path) -> WorkingStore:
    return WorkingStore(tmp_path / "store.duckdb")


def test_empty_part_tables_are_typed_views(store: WorkingStore) -> None:
    for table, (_, schema) in PART_TABLES.items():
        assert store.frame(f"select * from {table}").schema == pl.Schema(schema)


def test_replacing_a_day_carries_the_other_days_of_its_file_over(store: WorkingStore) -> None:
    with store.transaction() as con:
        store.replace_parts(con, "orders", [D1, D2], orders(D1, D2))
    first = part_files(store)
    d1 = store.frame("select * from orders where order_day = ? order by order_id", [D1])
    with store.transaction() as con:
        store.replace_parts(con, "orders", [D2], orders(D2, n=5, tag="b"))
    counts = dict(store.frame("select order_day, count(*) from orders group by 1").iter_rows())
    assert counts == {D1: 3, D2: 5}
    assert store.frame("select * from orders where order_day = ? order by order_id", [D1]).equals(d1)
    assert len(part_files(store)) == 1 and not part_files(store) & first  # the superseded file is gone
    assert dict(store.frame("select day, rows from parts").iter_rows()) == counts
    assert store.read_parts("orders", ["order_id"], until=D1)["order_id"].to_list() == [
        f"a-{D1}-{i}" for i in (1, 2, 3)
    ]


def test_keep_newest_drops_the_older_days_and_their_files(store: WorkingStore) -> None:
    days = [date(2026, 1, d) for d in range(1, 6)]
    for day in days:  # one file per day, as versions are written
        with store.transaction() as con:
            store.replace_parts(con, "orders", [day], orders(day))
    with store.transaction() as con:
        assert store.keep_newest(con, "orders", 2) == days[:3]
    assert store.day_rows("orders")["day"].to_list() == days[3:]
    assert len(part_files(store)) == 2
    assert store.frame("select distinct order_day from orders order by 1")["order_day"].to_list() == days[3:]
    with store.transaction() as con:
        assert store.keep_newest(con, "orders", 0) == []  # 0 keeps every day
    assert len(part_files(store)) == 2


def test_a_failed_transaction_keeps_the_old_parts_and_deletes_the_new_files(store: WorkingStore) -> None:
    with store.transaction() as con:
        store.replace_parts(con, "orders", [D1], orders(D1))
    before, files = store.frame("select * from orders"), part_files(store)
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as con:
        store.replace_parts(con, "orders", [D1], orders(D1, n=9, tag="b"))
        raise RuntimeError("boom")
    assert store.frame("select * from orders").equals(before)
    assert part_files(store) == files
    assert WorkingStore(store.path).frame("select * from orders").equals(before)  # the view, as committed


def test_rows_outside_the_replaced_days_are_refused(store: WorkingStore) -> None:
    with pytest.raises(ValueError, match="outside the days being replaced"), store.transaction() as con:
        store.replace_parts(con, "orders", [D1], orders(D1, D2))
    assert part_files(store) == set()


def test_sweep_deletes_files_no_commit_names(store: WorkingStore) -> None:
    with store.transaction() as con:
        store.replace_parts(con, "orders", [D1], orders(D1))
    orphan = store.parts_dir / "orders" / D2.isoformat() / "left-by-a-crash.parquet"
    orphan.parent.mkdir(parents=True)
    orders(D2).write_parquet(orphan)
    store.sweep_parts()
    assert not orphan.exists() and len(part_files(store)) == 1


def test_read_parts_keeps_only_the_semi_join_keys(store: WorkingStore) -> None:
    with store.transaction() as con:
        store.replace_parts(con, "orders", [D1, D2], orders(D1, D2))
    only = store.read_parts(
        "orders", ["customer_id", "order_day"], until=D2, semi=pl.DataFrame({"customer_id": ["c2"]})
    )
    assert only.rows() == [("c2", D1), ("c2", D2)]
    assert store.read_parts("orders", ["order_id"], until=date(2025, 1, 1)).is_empty()


def test_a_store_of_the_old_table_layout_is_refused_in_one_line(tmp_path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create table raw_orders (order_day date)")
    with pytest.raises(StoreError, match=r"old\.duckdb: written by an older seg_pipeline \(raw_orders is a table"):
        WorkingStore(path)


def test_a_moved_store_still_reads_its_parts(store: WorkingStore, tmp_path) -> None:
    with store.transaction() as con:
        store.replace_parts(con, "orders", [D1], orders(D1))
    before = store.frame("select * from orders order by order_id")
    moved = tmp_path / "moved"
    moved.mkdir()
    store.path.rename(moved / store.path.name)
    store.parts_dir.rename(moved / store.parts_dir.name)
    assert WorkingStore(moved / store.path.name).frame("select * from orders order by order_id").equals(before)


def test_a_session_holds_the_store_for_its_whole_block(store: WorkingStore) -> None:
    probe = (
        "import sys\nfrom seg_pipeline.storage.store import StoreBusy, WorkingStore\n"
        "try:\n    WorkingStore(sys.argv[1], wait=False)\n    print('open')\nexcept StoreBusy:\n    print('busy')"
    )

    def other_process() -> str:
        run = subprocess.run([sys.executable, "-c", probe, str(store.path)], capture_output=True, text=True, check=True)
        return run.stdout.strip()

    with store.session():
        with store.transaction() as con:
            store.replace_parts(con, "orders", [D1], orders(D1))
        with store.connect() as con:
            assert con.execute("select count(*) from orders").fetchone()[0] == 3
        assert other_process() == "busy"  # between queries too, not only inside one
    assert other_process() == "open"
    assert store.read_parts("orders", ["order_id"]).height == 3


def test_a_profile_snapshot_just_written_reads_back_from_memory_as_from_disk(store: WorkingStore, monkeypatch) -> None:
    schema = PART_TABLES["profiles"][1]
    given = {"snapshot_date": [D2] * 3, "customer_id": ["c2", "c1", "c3"], "signup_date": [D1, None, D1],
             "birth_year": [1980, None, 1990], "is_member": [True, None, False]}  # fmt: skip
    rows = pl.DataFrame({c: given.get(c, [None] * 3) for c in schema}, schema=schema)
    with store.transaction() as con:
        store.replace_parts(con, "profiles", [D2], rows)
    columns = ["customer_id", "birth_year", "is_member", "snapshot_date"]
    semi = pl.DataFrame({"customer_id": ["c3", "c2"]})
    from_memory = [store.read_parts("profiles", columns, day=D2), store.read_parts("profiles", columns, semi=semi)]
    monkeypatch.setattr("seg_pipeline.storage.store._last_written", {})
    from_disk = [store.read_parts("profiles", columns, day=D2), store.read_parts("profiles", columns, semi=semi)]
    for memory, disk in zip(from_memory, from_disk, strict=True):
        assert memory.schema == disk.schema
        assert memory.equals(disk)
    assert from_disk[1]["customer_id"].to_list() == ["c2", "c3"]
