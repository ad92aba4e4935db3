"""The working store's Delta tables: a day or a version replaced in one commit, never seen half-written."""

import subprocess
import sys
import textwrap
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from deltalake import write_deltalake

from seg_pipeline.core.shards import CustomerShard, shard_of, split_by_shard
from seg_pipeline.storage.store import PART_TABLES, WorkingStore

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


def data_files(store: WorkingStore, table: str) -> set[str]:
    """Every Parquet file on disk under `table`, committed or not."""
    folder = Path(store.table_uri(table))
    return {p.name for p in folder.glob("*.parquet")}


@pytest.fixture
def store(tmp_path) -> WorkingStore:
    return WorkingStore(tmp_path / "store")


def test_tables_never_written_read_empty_with_their_schema(store: WorkingStore) -> None:
    for table, (_, schema) in PART_TABLES.items():
        assert store.frame(f"select * from {table}").schema == pl.Schema(schema)
        assert store.read_parts(table, list(schema)).schema == pl.Schema(schema)


def test_replacing_a_day_is_one_commit_and_leaves_the_other_days_alone(store: WorkingStore) -> None:
    store.replace_days("orders", [D1, D2], orders(D1, D2))
    d1 = store.frame("select * from orders where order_day = ? order by order_id", [D1])
    version = store.delta("orders").version()
    store.replace_days("orders", [D2], orders(D2, n=5, tag="b"))
    assert store.delta("orders").version() == version + 1
    counts = dict(store.frame("select order_day, count(*) from orders group by 1").iter_rows())
    assert counts == {D1: 3, D2: 5}
    assert store.frame("select * from orders where order_day = ? order by order_id", [D1]).equals(d1)
    assert dict(store.day_rows("orders").iter_rows()) == counts
    assert store.read_parts("orders", ["order_id"], until=D1)["order_id"].to_list() == [
        f"a-{D1}-{i}" for i in (1, 2, 3)
    ]
    assert store.read_parts("orders", ["*"], day=D2).columns == list(PART_TABLES["orders"][1])


def test_a_batch_of_days_is_one_file_that_a_new_day_leaves_alone(store: WorkingStore) -> None:
    days = [date(2026, 1, d) for d in range(1, 31)]
    store.replace_days("orders", days, orders(*days))
    [batch] = store.delta("orders").file_uris()
    store.replace_days("orders", [date(2026, 1, 31)], orders(date(2026, 1, 31), n=4))
    assert batch in store.delta("orders").file_uris() and len(store.delta("orders").file_uris()) == 2
    # the new day's file counts from the log, the batch's days from its day column
    assert store.day_rows("orders")["rows"].to_list() == [3] * 30 + [4]
    assert store.read_parts("orders", ["order_id"], day=date(2026, 1, 31)).height == 4


def test_keep_newest_drops_the_older_days_and_vacuum_deletes_their_files(store: WorkingStore) -> None:
    days = [date(2026, 1, d) for d in range(1, 6)]
    for day in days:  # one commit per day, as versions are written
        store.replace_days("orders", [day], orders(day))
    assert store.keep_newest("orders", 2) == days[:3]
    assert store.day_rows("orders")["day"].to_list() == days[3:]
    assert store.frame("select distinct order_day from orders order by 1")["order_day"].to_list() == days[3:]
    assert store.keep_newest("orders", 0) == []  # 0 keeps every day
    assert len(data_files(store, "orders")) == 5
    assert store.vacuum() == 0  # removed a moment ago: a reader on an older snapshot may still read them
    assert store.vacuum(retention_hours=0) == 3
    assert len(data_files(store, "orders")) == 2
    assert store.read_parts("orders", ["order_day"])["order_day"].unique().sort().to_list() == days[3:]


def test_rows_outside_the_replaced_days_are_refused(store: WorkingStore) -> None:
    with pytest.raises(ValueError, match="outside the days being replaced"):
        store.replace_days("orders", [D1], orders(D1, D2))
    assert store.delta("orders") is None


def test_read_parts_keeps_only_the_semi_join_keys(store: WorkingStore) -> None:
    store.replace_days("orders", [D1, D2], orders(D1, D2))
    only = store.read_parts(
        "orders", ["customer_id", "order_day"], until=D2, semi=pl.DataFrame({"customer_id": ["c2"]})
    )
    assert sorted(only.rows()) == [("c2", D1), ("c2", D2)]
    assert store.read_parts("orders", ["order_id"], until=date(2025, 1, 1)).is_empty()


def _shard_files(store: WorkingStore, table: str) -> dict[str, pl.Series]:
    """Each committed file of `table` (by name) and the customer ids it holds."""
    folder = Path(store.table_uri(table))
    return {
        Path(uri).name: pl.read_parquet(folder / Path(uri).name)["customer_id"]
        for uri in store.delta(table).file_uris()
    }


def test_rows_stored_in_customer_shards_are_a_tagged_file_per_shard_that_a_shard_read_alone_opens(store) -> None:
    days = [date(2026, 1, d) for d in range(1, 6)]
    rows = orders(*days, n=40)
    store.replace_days_in_parts("orders", days, split_by_shard(rows, 3), shards=3)
    files = _shard_files(store, "orders")
    assert len(files) == 3
    for name, ids in files.items():  # each file holds one shard's customers and says which
        [k] = shard_of(ids, 3).unique().to_list()
        assert f"-shard{k}of3-" in name
    whole = store.read_parts("orders", ["*"]).sort("order_id")
    for name in list(files):  # a shard's read opens only its own file: the others may be gone
        k = int(name.split("-shard")[1][0])
        others = [other for other in files if other != name]
        hidden = {other: Path(store.table_uri("orders"), other).rename(Path(store.uri, other)) for other in others}
        mine = store.read_parts("orders", ["*"], shard=CustomerShard(k, 3)).sort("order_id")
        assert mine.equals(whole.filter(shard_of(whole["customer_id"], 3) == k))
        for other, moved in hidden.items():
            moved.rename(Path(store.table_uri("orders"), other))


def test_a_day_replaced_in_a_sharded_batch_keeps_every_other_day_in_its_shard_file(store) -> None:
    days = [date(2026, 1, d) for d in range(1, 6)]
    store.replace_days_in_parts("orders", days, split_by_shard(orders(*days, n=40), 3), shards=3)
    store.replace_days("orders", [days[2]], orders(days[2], n=7, tag="b"))  # untagged: any customer's rows
    files = _shard_files(store, "orders")
    tagged = {name: ids for name, ids in files.items() if "-shard" in name}
    assert len(files) == 4 and len(tagged) == 3  # the batch's other days carried over, one file per shard
    for name, ids in tagged.items():
        assert shard_of(ids, 3).unique().to_list() == [int(name.split("-shard")[1][0])]
    whole = store.read_parts("orders", ["*"])
    assert whole.group_by("order_day").len().sort("order_day")["len"].to_list() == [40, 40, 7, 40, 40]
    for shards in (3, 4):  # tagged for another count or untagged: hashed, never lost or doubled
        parts = [store.read_parts("orders", ["*"], shard=CustomerShard(k, shards)) for k in range(shards)]
        assert pl.concat(parts).sort("order_id").equals(whole.sort("order_id"))
        for k, part in enumerate(parts):
            assert (shard_of(part["customer_id"], shards) == k).all()


def test_a_moved_store_still_reads_its_tables(store: WorkingStore, tmp_path) -> None:
    store.replace_days("orders", [D1], orders(D1))
    before = store.frame("select * from orders order by order_id")
    moved = tmp_path / "moved"
    Path(store.uri).rename(moved)
    assert WorkingStore(moved).frame("select * from orders order by order_id").equals(before)


def test_a_profile_snapshot_just_written_reads_back_from_memory_as_from_disk(store: WorkingStore, monkeypatch) -> None:
    schema = PART_TABLES["profiles"][1]
    given = {"snapshot_date": [D2] * 3, "customer_id": ["c2", "c1", "c3"], "signup_date": [D1, None, D1],
             "birth_year": [1980, None, 1990], "is_member": [True, None, False]}  # fmt: skip
    rows = pl.DataFrame({c: given.get(c, [None] * 3) for c in schema}, schema=schema)
    store.replace_days("profiles", [D2], rows)
    columns = ["customer_id", "birth_year", "is_member", "snapshot_date"]
    semi = pl.DataFrame({"customer_id": ["c3", "c2"]})
    from_memory = [store.read_parts("profiles", columns, day=D2), store.read_parts("profiles", columns, semi=semi)]
    assert store._kept("profiles", store.delta("profiles"), None, D2) is not None
    monkeypatch.setattr("seg_pipeline.storage.store._last_written", {})
    from_disk = [store.read_parts("profiles", columns, day=D2), store.read_parts("profiles", columns, semi=semi)]
    for memory, disk in zip(from_memory, from_disk, strict=True):
        assert memory.schema == disk.schema
        assert memory.sort("customer_id").equals(disk.sort("customer_id"))
    assert sorted(from_disk[1]["customer_id"].to_list()) == ["c2", "c3"]


def test_a_frame_kept_in_memory_is_not_used_once_another_writer_committed(store: WorkingStore) -> None:
    schema = PART_TABLES["profiles"][1]
    one = pl.DataFrame({"snapshot_date": [D1], "customer_id": ["c1"]}).select(
        pl.col(c).cast(t) if c in ("snapshot_date", "customer_id") else pl.lit(None, t).alias(c)
        for c, t in schema.items()
    )
    store.replace_days("profiles", [D1], one)
    # another machine's commit: this process's frame is keyed by the Delta version it wrote, now stale
    write_deltalake(store.table_uri("profiles"), one.with_columns(customer_id=pl.lit("c9")).to_arrow(),
                    mode="overwrite", predicate="snapshot_date = '2026-01-01'")  # fmt: skip
    assert store.read_parts("profiles", ["customer_id"], day=D1)["customer_id"].to_list() == ["c9"]


_WRITER = """
import sys
from datetime import date
import polars as pl
sys.path.insert(0, sys.argv[3])
from test_store import orders
from seg_pipeline.storage.store import WorkingStore
store, day = WorkingStore(sys.argv[1]), date.fromisoformat(sys.argv[2])
for n in range(1, 13):
    store.replace_days("orders", [day], orders(day, n=n * 50, tag=f"w{n}"))
    files = pl.DataFrame({"kind": ["orders"], "day": [day], "source_file": [f"orders/{day}.csv"], "size": [n]})
    store.write("landing_files", files, {"kind": "orders", "day": [day]})
"""


def _writer(store: WorkingStore, day: date) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, store.uri, day.isoformat(), str(Path(__file__).parent)],
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_reader_process_never_sees_half_a_day_while_it_is_replaced(store: WorkingStore) -> None:
    store.replace_days("orders", [D1], orders(D1, n=50, tag="w1"))
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            import polars as pl
            from seg_pipeline.storage.store import WorkingStore
            store = WorkingStore(sys.argv[1], create=False)
            end = time.time() + 60
            while time.time() < end and sys.stdin.readable():
                rows = store.read_parts("orders", ["order_id"])
                tags = rows["order_id"].str.split("-").list.first().unique().to_list()
                print(rows.height, ",".join(tags), flush=True)
                if tags == ["w12"]:
                    break
        """), store.uri],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    first = reader.stdout.readline()  # the reader is up and reading before the writer starts
    writer = _writer(store, D1)
    assert writer.wait(timeout=120) == 0, writer.stderr.read()
    seen = [line.split() for line in [first, *reader.communicate(timeout=120)[0].splitlines()]]
    assert len(seen) > 3
    for rows, tags in seen:  # one writer's batch whole: n * 50 rows of tag w<n>, never a mix or a part
        assert "," not in tags and int(rows) == int(tags.removeprefix("w")) * 50, (rows, tags)
    assert seen[-1] == ["600", "w12"]


def test_two_processes_writing_different_days_at_once_both_land(store: WorkingStore) -> None:
    writers = [_writer(store, day) for day in (D1, D2)]
    for writer in writers:
        assert writer.wait(timeout=180) == 0, writer.stderr.read()
    assert dict(store.day_rows("orders").iter_rows()) == {D1: 600, D2: 600}
    files = store.read("landing_files").sort("day")
    assert files.select("day", "size").rows() == [(D1, 12), (D2, 12)]  # the small shared table: every write kept
