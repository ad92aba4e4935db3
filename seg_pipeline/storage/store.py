"""The pipeline's working store: Delta Lake tables under SEG_STORE_URI (a local folder, or s3://, gs://, az://).

Every table is a Delta table `<uri>/<table>` that any Delta reader can read:
- the day-keyed tables (`raw_*`, `orders`, `profiles`, `quarantine_*`, and `customer_features` and
  `customer_segments` keyed by as_of) hold one Parquet file per write of some days (an ingest batch, a
  version), written by Polars and committed to the table's log by delta-rs with the day range in its
  statistics. Replacing days is ONE Delta commit, which readers see whole or not at all: it adds the new file
  and removes the files holding those days (their other days are carried over into the new file). They are
  not partitioned: a day of orders is ~14k rows, and a partition per day made 730 small files per table;
- the small bookkeeping tables (landing_files, feature_sources, model_registry, model_files with the model
  pickles, segment_versions, the SQL marts) are Delta tables written by delta-rs (a predicate overwrite), so
  nothing lives on a local disk and several machines can share one store.

Writers are serialised by Delta's commit protocol (an atomic put-if-absent of the next log entry: a hard
link on a local disk, `If-None-Match` on S3). A day-keyed commit is made against the snapshot its days were
read from; if another writer committed first, it is planned again on the newer snapshot (the file written is
reused when the files it replaces are the same), so two writers of different days both land. delta-rs
retries a small table's commit that lost the race itself, and a conflict it reports retries the whole write.
There is no lock: a reader never waits. A write that spans tables (a day's ingest, a version and its
bookkeeping row) commits the bulk rows first and the bookkeeping row LAST, so a crash in between leaves the
day stale (its `landing_files` row is missing or names the old file) and the next run redoes it.

Within a `session()` (one asset step) each table's snapshot is loaded once and advanced by the step's own
commits. Reads pick the files whose day range can hold the days asked. SQL over the store (the marts, tests)
runs in an in-memory DuckDB connection over the current snapshots (`connect()`). Files removed by a commit
stay `VACUUM_RETENTION_HOURS`, so a reader still on an older snapshot keeps its files. Analysts never open
this store: `seg_pipeline.storage.warehouse` publishes a separate analyst file. The store holds personal
data, so on a local disk its files are owner-only (0600 files, 0700 folders), whatever the umask.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import duckdb
import polars as pl
from deltalake import DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.fs import DeltaStorageHandler
from deltalake.transaction import AddAction, CommitProperties, RemoveAction
from pyarrow.fs import FileSelector, FileType, PyFileSystem

from seg_pipeline.core import schemas
from seg_pipeline.core.schemas import Column, Kind, Table
from seg_pipeline.core.shards import CustomerShard, split_by_shard

#: rows per Parquet row group: several per day of a large table, so both cores read at once
PART_ROW_GROUP = 131_072
#: the day-keyed tables steps read back in bulk: table -> (day column, schema)
PART_TABLES: dict[str, tuple[str, dict[str, pl.DataType]]] = {
    t.name: (t.day, t.polars) for t in schemas.TABLES.values() if t.storage == "part"
}
#: every table of the store's own shape; the marts take their shape from the frames that fill them
STORE_TABLES: dict[str, Table] = {t.name: t for t in schemas.TABLES.values() if t.storage != "landing"}
#: the tables replaced by day: one Parquet file per write, written by Polars, committed by delta-rs
DAY_TABLES: dict[str, Table] = {name: t for name, t in STORE_TABLES.items() if t.day}

#: part tables the next step of a run reads back whole (a profile snapshot, a feature version): the
#: process keeps the frame it last wrote of each, so that step takes it from memory, not from storage
KEPT_IN_MEMORY = frozenset({"profiles", "customer_features"})

#: VACUUM deletes files a commit removed this long ago: a reader still on an older snapshot (a publish,
#: a sensor tick, a long query) is far shorter, so none loses its files
VACUUM_RETENTION_HOURS = 1
#: a write that lost the race for its commit to another writer is redone this many times
COMMIT_ATTEMPTS = 6

#: how the day-keyed tables' files are written (Polars): zstd level 1 (a fifth smaller than lz4, as fast)
PARQUET = {"compression": "zstd", "compression_level": 1, "row_group_size": PART_ROW_GROUP}
_WRITER = WriterProperties(compression="ZSTD", compression_level=1, max_row_group_size=PART_ROW_GROUP)
#: a day-keyed table's data files: path (relative to the table), first and last day (null: no statistics), rows,
#: and the customer shard (index of count) whose rows alone it holds (null: any customer's), from its name
_FILES = {"path": pl.String, "first": pl.Date, "last": pl.Date, "rows": pl.Int64, "shard": pl.Int64, "shards": pl.Int64}
#: a file of one customer shard's rows is named `<first day>-shard<index>of<count>-<uuid>.parquet`
_SHARD_TAG = r"-shard(\d+)of(\d+)-"

_DUCKDB_TYPES = {
    pl.String: "varchar", pl.Date: "date", pl.Int64: "bigint", pl.Int32: "integer", pl.Int8: "tinyint",
    pl.Float64: "double", pl.Boolean: "boolean", pl.Datetime: "timestamp", pl.Binary: "blob",
}  # fmt: skip


def duckdb_type(column: Column) -> str:
    """The DuckDB type of a registry column."""
    return column.sql or _DUCKDB_TYPES[type(column.dtype)]


_umask_guard = threading.Lock()
_umask_state = [0, 0]  # sections open, the umask they replaced


@contextmanager
def _owner_only() -> Iterator[None]:
    """Files and folders created meanwhile (by any thread of the process) are owner-only."""
    with _umask_guard:
        if _umask_state[0] == 0:
            _umask_state[1] = os.umask(0o077)
        _umask_state[0] += 1
    try:
        yield
    finally:
        with _umask_guard:
            _umask_state[0] -= 1
            if _umask_state[0] == 0:
                os.umask(_umask_state[1])


def shared_file_mode() -> int:
    """The mode the process umask gives a new file outside the store's owner-only sections (for analysts)."""
    with _umask_guard:
        if _umask_state[0]:
            return 0o666 & ~_umask_state[1]
        umask = os.umask(0o077)
        os.umask(umask)
        return 0o666 & ~umask


class StoreError(RuntimeError):
    """The store cannot be used as it is; `str()` is one line saying why and what to do."""


def sql_literal(value: object) -> str:
    """`value` (text, a date, a number) as an SQL literal, for statements that take no parameters."""
    if isinstance(value, str | date):
        return "'" + str(value).replace("'", "''") + "'"
    return str(value)


def predicate(match: dict[str, object]) -> str:
    """The SQL predicate `column = value and ...` (a list value: `column in (...)`; an empty list: false)."""
    terms = []
    for column, value in match.items():
        if isinstance(value, list | tuple | set):
            terms.append(f"{column} in ({', '.join(map(sql_literal, value))})" if value else "false")
        else:
            terms.append(f"{column} = {sql_literal(value)}")
    return " and ".join(terms) or "true"


class WorkingStore:
    """The Delta tables under `uri`; every read and write of the pipeline goes through these named methods.

    Cheap to build: nothing is opened until a method runs. `open_existing` creates nothing (for sensors).
    """

    def __init__(self, uri: str | Path, *, create: bool = True) -> None:
        self.uri = str(uri).rstrip("/")
        self.local = "://" not in self.uri
        self._snapshots: dict[str, DeltaTable] | None = None  # within a session(): each table's snapshot
        if self.local and create:
            with _owner_only():
                Path(self.uri).mkdir(parents=True, exist_ok=True)
            Path(self.uri).chmod(0o700)  # made before files were owner-only

    @classmethod
    def open_existing(cls, uri: str | Path) -> WorkingStore:
        """The store at `uri` for reading only; one that does not exist yet reads as one where nothing was ingested."""
        return cls(uri, create=False)

    @contextmanager
    def session(self) -> Iterator[WorkingStore]:
        """Load each table's snapshot once until the block ends (one asset step; nested blocks share it).

        Calls inside reuse it, and the block's own commits advance it; other writers' commits meanwhile are
        seen by the next session (a commit of the block's own is still made against the newest snapshot).
        """
        if self._snapshots is not None:
            yield self
            return
        self._snapshots = {}
        try:
            yield self
        finally:
            self._snapshots = None

    # --- the Delta layer --------------------------------------------------------------------------------------------

    def table_uri(self, table: str) -> str:
        return f"{self.uri}/{table}"

    def delta(self, table: str) -> DeltaTable | None:
        """The current snapshot of `table` (within a session: the session's), or None while it was never written."""
        if self._snapshots is not None and table in self._snapshots:
            return self._snapshots[table]
        try:
            snapshot = DeltaTable(self.table_uri(table))
        except TableNotFoundError:
            return None
        if self._snapshots is not None:
            self._snapshots[table] = snapshot
        return snapshot

    def owner_only(self) -> AbstractContextManager[None]:
        """Files made meanwhile on a local disk are owner-only (the store holds personal data)."""
        return _owner_only() if self.local else nullcontext()

    def _refresh(self, table: str) -> None:
        """Bring the session's snapshot of `table` to the table's newest version."""
        if self._snapshots is not None and table in self._snapshots:
            self._snapshots[table].update_incremental()

    def write(self, table: str, rows: pl.DataFrame, match: dict[str, object]) -> None:
        """Replace the rows of `table` matching `match` (see `predicate`) with `rows`: one Delta commit.

        Every row must match. A day-keyed table takes `{day column: days}` only (as `replace_days`, unchecked).
        A store table is cast to its registry schema; other tables (the marts) take the frame's columns, adding
        new ones.
        """
        shape = STORE_TABLES.get(table)
        if shape is not None:
            rows = _shaped(table, rows)
        if table in DAY_TABLES:
            if set(match) != {shape.day}:
                raise ValueError(f"{table}: days are replaced by its column {shape.day}, not by {', '.join(match)}")
            days = match[shape.day]
            self._replace_files(table, sorted(set(days if isinstance(days, list | tuple | set) else [days])), [rows])
            return
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                with self.owner_only():
                    write_deltalake(
                        self.delta(table) or self.table_uri(table), rows.to_arrow(), mode="overwrite",
                        predicate=predicate(match), schema_mode=None if shape is not None else "merge",
                        writer_properties=_WRITER,
                    )  # fmt: skip
                return
            except CommitFailedError:
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise
                self._refresh(table)
                time.sleep(0.05 * 2**attempt)

    def _replace_files(
        self, table: str, days: list[date], parts: Iterable[pl.DataFrame], shards: int = 1
    ) -> None:
        """One commit adding a file of each of `parts` (each written once, as it comes: one in memory at a time;
        with `shards` above 1, part k tagged as shard k's) in place of the files that hold any of `days`."""
        added, only = [], None  # the new files; the one part's rows (kept in memory below)
        for n, rows in enumerate(parts):
            only = rows if n == 0 else None
            if (action := self.put_file(table, rows, CustomerShard(n, shards) if shards > 1 else None)) is not None:
                added.append(action)
        self.replace_days_with_files(table, days, added, only)

    def put_file(self, table: str, rows: pl.DataFrame, shard: CustomerShard | None = None) -> AddAction | None:
        """Write `rows` of the day-keyed `table` (of customer `shard` only, when given) as a new Parquet file of it
        that no commit names yet (`replace_days_with_files` does; VACUUM deletes it if none ever does)."""
        if not rows.is_empty() and self.delta(table) is None:  # once there are rows (made and checked)
            self._create(table)
        return self._put(table, rows, shard)

    def replace_days_with_files(
        self, table: str, days: Sequence[date], added: Sequence[AddAction], only: pl.DataFrame | None = None
    ) -> None:
        """One commit adding the files `added` (`put_file`, of no other day) and removing the files that hold any of
        `days`; their other days go to files of their own (one per shard tag). Lost to another writer's commit, the
        removals (and those files) are planned again on the newer snapshot. `only`: the rows of the one file added,
        kept in memory for the next read of a table in KEPT_IN_MEMORY."""
        days = sorted(set(days))
        added = list(added)
        carried: tuple[frozenset[str], list[AddAction]] | None = None  # (the files it replaces, their other days)
        for attempt in range(COMMIT_ATTEMPTS):
            snapshot = self.delta(table) or self._create(table)
            touched = _touching(self._data_files(table, snapshot), days)
            plan = frozenset(touched["path"])
            if carried is None or carried[0] != plan:
                for action in carried[1] if carried is not None else []:
                    self._delete_file(table, action.path)
                carried = (plan, self._carry(table, _partly(touched, days), days))
            now = int(time.time() * 1000)
            removed = [RemoveAction(path, True, now) for path in sorted(plan)]
            actions = removed + added + carried[1]
            if not actions:
                return
            base = snapshot.version()
            try:
                with self.owner_only():
                    snapshot.create_write_transaction(
                        actions, "append", snapshot.schema(), commit_properties=CommitProperties(max_commit_retries=0)
                    )
            except CommitFailedError:
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise
                self._refresh(table)
                time.sleep(0.05 * 2**attempt)
                continue
            self._refresh(table)
            if table in KEPT_IN_MEMORY:
                if only is not None and self.delta(table).version() == base + 1:  # only our commit came between
                    _last_written[self.table_uri(table)] = (base + 1, frozenset(days), only)
                else:
                    _last_written.pop(self.table_uri(table), None)
            return

    def _carry(self, table: str, files: pl.DataFrame, days: list[date]) -> list[AddAction]:
        """New files of the rows of `files` (see `_FILES`) of days other than `days`, one per shard tag."""
        day = DAY_TABLES[table].day
        carried = []
        for (shard, shards), group in files.group_by("shard", "shards", maintain_order=True):
            others = self._scan_paths(table, group["path"].to_list()).filter(~pl.col(day).is_in(days))
            kept = others.collect().sort(day, maintain_order=True)
            if (action := self._put(table, kept, CustomerShard(shard, shards) if shards else None)) is not None:
                carried.append(action)
        return carried

    def _create(self, table: str) -> DeltaTable:
        """Create the day-keyed `table`, empty, with its registry schema (unless another writer just did)."""
        try:
            with self.owner_only():
                write_deltalake(self.table_uri(table), DAY_TABLES[table].empty().to_arrow(), mode="append")
        except CommitFailedError:
            pass
        return self.delta(table)

    def _put(self, table: str, rows: pl.DataFrame, shard: CustomerShard | None = None) -> AddAction | None:
        """Write `rows` of the day-keyed `table` (of customer `shard` only, when given: its name says so) as a new
        Parquet file in its folder; the file's add action."""
        if rows.is_empty():
            return None
        day = DAY_TABLES[table].day
        first, last = rows[day].min(), rows[day].max()
        tag = f"-shard{shard.index}of{shard.count}" if shard else ""
        name = f"{first.isoformat()}{tag}-{uuid.uuid4().hex}.parquet"
        if self.local:
            path = Path(self.table_uri(table)) / name
            with self.owner_only():
                rows.write_parquet(path, **PARQUET)
            size = path.stat().st_size
        else:  # Polars reaches object storage with the same credentials from the environment
            rows.write_parquet(f"{self.table_uri(table)}/{name}", **PARQUET)
            size = self.filesystem().get_file_info(f"{table}/{name}").size
        stats = {"numRecords": rows.height, "minValues": {day: str(first)}, "maxValues": {day: str(last)},
                 "nullCount": {day: rows[day].null_count()}}  # fmt: skip
        return AddAction(name, size, {}, int(time.time() * 1000), True, json.dumps(stats))

    def has_file(self, table: str, path: str) -> bool:
        """Whether the data file `path` (relative to `table`, as its log names it) is there."""
        if self.local:
            return (Path(self.table_uri(table)) / unquote(path)).is_file()
        return self.filesystem().get_file_info(f"{table}/{unquote(path)}").type == FileType.File

    def _delete_file(self, table: str, path: str) -> None:
        """Delete a file written for a commit that was then planned again (no commit names it)."""
        if self.local:
            (Path(self.table_uri(table)) / unquote(path)).unlink(missing_ok=True)
        else:
            self.filesystem().delete_file(f"{table}/{unquote(path)}")

    def put_object(self, path: str, data: bytes) -> None:
        """Write `data` as the object `path` (relative to the store) of an object store, whole or not at all."""
        # delta-rs' own stream (the handler's `_handler`): pyarrow's wrapper of it hands its `write` a pyarrow
        # Buffer, which it refuses (deltalake 1.x; test_s3_store covers it)
        stream = DeltaStorageHandler(self.uri)._handler.open_output_stream(path, None)
        stream.write(data)
        stream.close()

    def filesystem(self) -> PyFileSystem:
        """The store's object storage, as delta-rs reaches it (its credentials from the environment)."""
        return PyFileSystem(DeltaStorageHandler(self.uri))

    def _data_files(self, table: str, snapshot: DeltaTable) -> pl.DataFrame:
        """(path, first, last, rows) of the day-keyed `table`'s files in `snapshot`, from its log (no data read)."""
        actions = pl.DataFrame(snapshot.get_add_actions(flatten=True))
        if actions.is_empty():
            return pl.DataFrame(schema=_FILES)
        day = DAY_TABLES[table].day
        ends = {"first": f"min.{day}", "last": f"max.{day}"}
        return actions.select(
            "path",
            *(pl.col(c).alias(e) if c in actions.columns else pl.lit(None, pl.Date).alias(e) for e, c in ends.items()),
            pl.col("num_records").alias("rows"),
            *(pl.col("path").str.extract(_SHARD_TAG, n).alias(name) for n, name in ((1, "shard"), (2, "shards"))),
        ).cast(_FILES)

    def _scan_paths(self, table: str, paths: Sequence[str]) -> pl.LazyFrame:
        """The rows of data files `paths` (relative to the day-keyed `table`, as its log names them)."""
        shape = DAY_TABLES[table]
        if not paths:
            return shape.empty().lazy()
        root = Path(self.table_uri(table)) if self.local else None
        uris = [str(root / unquote(p)) if root else f"{self.table_uri(table)}/{unquote(p)}" for p in paths]
        return pl.scan_parquet(uris).select(shape.names)  # each file has the registry's columns

    def _scan_days(
        self,
        table: str,
        snapshot: DeltaTable,
        within: Sequence[tuple[date | None, date | None]] = (),
        shard: CustomerShard | None = None,
    ) -> pl.LazyFrame:
        """The rows of the files of `snapshot` whose days can fall within one of the (first, last) ranges (None:
        open), or of every file; rows of other days in those files are not filtered out.

        `shard`: only that customer shard's rows. Files tagged as another shard of the same count are skipped;
        files tagged as this shard are read whole; the rows of untagged files (or of another count) are hashed.
        """
        files = self._data_files(table, snapshot)
        if within:
            files = files.filter(pl.any_horizontal(_overlaps_range(first, last) for first, last in within))
        if shard is None:
            return self._scan_paths(table, files["path"].to_list())
        tagged = (pl.col("shards") == shard.count).fill_null(False)
        mine = files.filter(tagged & (pl.col("shard") == shard.index))["path"].to_list()
        mixed = files.filter(~tagged)["path"].to_list()
        if not mixed:
            return self._scan_paths(table, mine)
        return pl.concat([self._scan_paths(table, mine), self._scan_paths(table, mixed).filter(shard.holds())])

    def scan(self, table: str) -> pl.LazyFrame:
        """`table` as of its current snapshot; a store table never written is empty with its registry schema."""
        snapshot = self.delta(table)
        if snapshot is None:
            return STORE_TABLES[table].empty().lazy()
        if table in DAY_TABLES:
            return self._scan_days(table, snapshot)
        files = self._files(snapshot)
        if not self.local or not files:
            return pl.scan_delta(snapshot)
        shape = STORE_TABLES.get(table)
        # a mart's files written before a column was added lack it
        schema = shape.polars if shape else dict(pl.scan_delta(snapshot).collect_schema())
        return pl.scan_parquet(files, schema=schema, missing_columns="insert")

    def _files(self, snapshot: DeltaTable) -> list[str]:
        """The snapshot's data files; on a local disk their real paths (delta-rs percent-encodes them)."""
        return [unquote(uri) for uri in snapshot.file_uris()] if self.local else snapshot.file_uris()

    def read(self, table: str, where: pl.Expr | None = None) -> pl.DataFrame:
        rows = self.scan(table)
        return (rows if where is None else rows.filter(where)).collect()

    def table_names(self) -> list[str]:
        """Every Delta table under the store's URI (the store's own and the marts; not its `_staging` folder)."""
        if self.local:
            root = Path(self.uri)
            return sorted(log.parent.name for log in root.glob("*/_delta_log"))
        listed = self.filesystem().get_file_info(FileSelector("", allow_not_found=True))
        return sorted(
            info.base_name for info in listed if info.type == FileType.Directory and not info.base_name.startswith("_")
        )

    @contextmanager
    def connect(self, tables: Sequence[str] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB connection where every table of the store (or only `tables`) is readable by its name.

        Each is the snapshot current when the connection opened (in a session: the session's); a store table
        never written is an empty relation of its registry schema.
        """
        con = duckdb.connect()
        try:
            known = {*STORE_TABLES, *self.table_names()}
            for name in sorted(known if tables is None else known.intersection(tables)):
                self._register(con, name)
            yield con
        finally:
            con.close()

    def _register(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        """Make `name` readable in `con`: on a local disk a view over its snapshot's Parquet files (DuckDB's own
        reader), elsewhere the snapshot's Arrow dataset (DuckDB reads no object store offline)."""
        shape, snapshot = STORE_TABLES.get(name), self.delta(name)
        typed = {c.name: f"{c.name}::{c.sql} as {c.name}" for c in (shape.columns if shape else ()) if c.sql}
        files = self._files(snapshot) if snapshot is not None and self.local else []
        if files:
            source = f"read_parquet([{', '.join(map(sql_literal, files))}], union_by_name = true)"
        else:
            rows = STORE_TABLES[name].empty().to_arrow() if snapshot is None else snapshot.to_pyarrow_dataset()
            if not typed:
                con.register(name, rows)
                return
            con.register(f"_delta_{name}", rows)
            source = f"_delta_{name}"
        columns = ", ".join(typed.get(c, c) for c in (shape.names if shape else ["*"]))
        con.execute(f"create temp view {name} as select {columns} from {source}")

    def vacuum(self, retention_hours: int = VACUUM_RETENTION_HOURS) -> int:
        """Delete the files of every table that commits removed more than `retention_hours` ago, and those no
        commit names (a crashed writer's) as old; returns how many."""
        deleted = 0
        for name in self.table_names():
            snapshot = self.delta(name)
            if snapshot is not None:
                with self.owner_only():
                    removed = snapshot.vacuum(
                        retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False, full=True
                    )
                deleted += len(removed)
                self._refresh(name)
        return deleted

    # TODO issue 16: `frame` and `scalar` take SQL text; only tests still call them
    def frame(self, sql: str, params: Sequence[object] | None = None) -> pl.DataFrame:
        """Run a query over the store's tables and return a Polars frame."""
        with self.connect() as con:
            return con.sql(sql, params=list(params or [])).pl()

    def scalar(self, sql: str, params: Sequence[object] | None = None) -> object:
        with self.connect() as con:
            rows = con.execute(sql, params or []).fetchall()
            return rows[0][0] if rows else None

    # --- day-keyed tables -------------------------------------------------------------------------------------------

    def replace_days(self, table: str, days: Sequence[date], rows: pl.DataFrame) -> None:
        """Replace `days` of the day-keyed `table` with `rows` (which hold no other day): one Delta commit."""
        self.replace_days_in_parts(table, days, [rows])

    def replace_days_in_parts(
        self, table: str, days: Sequence[date], parts: Iterable[pl.DataFrame], shards: int = 1
    ) -> None:
        """`replace_days` with the rows in `parts`, each its own file, written as it comes (one in memory at a
        time when `parts` is a generator): one Delta commit. With `shards` above 1, part k holds the rows of customer
        shard k of `shards` only (`core.shards.split_by_shard`), and its file is tagged so: reads of one shard
        (`read_parts(shard=)`) skip the other shards' files."""
        days = sorted(set(days))
        if days:
            self._replace_files(table, days, (_within(table, days, rows) for rows in parts), shards)

    def keep_newest(self, table: str, keep: int, within_days: int = 0) -> list[date]:
        """Drop every day of the day-keyed `table` but the newest `keep` (0 keeps all) and those less than
        `within_days` before the newest (one commit). Returns the days dropped, oldest first."""
        days = sorted(self.day_rows(table)["day"].to_list(), reverse=True)
        dropped = sorted(day for day in days[keep:] if (days[0] - day).days >= within_days) if keep else []
        if dropped:
            self.replace_days(table, dropped, STORE_TABLES[table].empty())
        return dropped

    def keep_versions(self, keep: int, unmeasured_days: int) -> list[date]:
        """Keep the newest `keep` versions (0: all) of customer_features (and their sources) and of
        customer_segments, whose versions of the last `unmeasured_days` days also stay (action_lift has yet to
        measure them); then VACUUM. Returns the feature versions dropped."""
        self.keep_newest("customer_segments", keep, unmeasured_days)
        gone = self.keep_newest("customer_features", keep)
        if gone:
            self.write("feature_sources", schemas.FEATURE_SOURCES.empty(), {"as_of": gone})
        self.vacuum()
        return gone

    def read_parts(
        self,
        table: str,
        columns: Sequence[str],
        *,
        until: date | None = None,
        day: date | None = None,
        semi: pl.DataFrame | None = None,
        shard: CustomerShard | None = None,
    ) -> pl.DataFrame:
        """`columns` of part table `table` (every day, the days <= `until`, or the one `day`).

        `semi`: a one-column frame (e.g. a customer sample); keep only rows whose value in that column occurs in it.
        `shard`: only that customer shard's rows, read from its own files where the table has them (`_scan_days`).
        """
        day_column, schema = PART_TABLES[table]
        snapshot = self.delta(table)
        if snapshot is None:
            return pl.DataFrame(schema=schema if list(columns) == ["*"] else {c: schema[c] for c in columns})
        rows = self._kept(table, snapshot, until, day)
        if rows is not None and shard is not None:
            rows = rows.filter(shard.holds())
        if rows is None:
            rows = self._scan_days(table, snapshot, [(day, day or until)], shard)
        if until is not None:
            rows = rows.filter(pl.col(day_column) <= until)
        if day is not None:
            rows = rows.filter(pl.col(day_column) == day)
        rows = rows.select(list(schema) if list(columns) == ["*"] else columns)
        if semi is not None:
            [key] = semi.columns
            # a filter runs inside the Parquet scan (other columns are decoded for matching rows only); a join does not
            rows = rows.filter(pl.col(key).is_in(semi.get_column(key).implode()))
        return rows.collect()

    def _kept(self, table: str, snapshot: DeltaTable, until: date | None, day: date | None) -> pl.LazyFrame | None:
        """The frame this process last wrote of `table`, when it is still the snapshot and holds every day asked."""
        version, days, rows = _last_written.get(self.table_uri(table), (-1, frozenset(), None))
        if rows is None or version != snapshot.version():
            return None
        asked = {day} if day is not None else set(self.day_rows(table, until=until)["day"].to_list())
        return rows.lazy() if asked <= days else None

    def day_rows(self, table: str, *, until: date | None = None, days: Sequence[date] | None = None) -> pl.DataFrame:
        """(day, rows) of the day-keyed `table`, every stored day (<= `until`, or in `days`), by day.

        A file of one day is counted from the log; of the files of several days only the day column is read.
        """
        counted = pl.DataFrame(schema={"day": pl.Date, "rows": pl.Int64})
        snapshot = self.delta(table)
        if snapshot is not None:
            files = self._data_files(table, snapshot).filter(_overlaps_range(None, until))
            if days is not None:
                files = _touching(files, sorted(days))
            single = files.filter(pl.col("first") == pl.col("last"))
            several = files.filter(~pl.col("path").is_in(single["path"].implode()))["path"].to_list()
            read = self._scan_paths(table, several).group_by(pl.col(DAY_TABLES[table].day).alias("day")).len("rows")
            counted = pl.concat(
                [single.select(pl.col("first").alias("day"), "rows"), read.collect()], how="vertical_relaxed"
            )
        if until is not None:
            counted = counted.filter(pl.col("day") <= until)
        if days is not None:
            counted = counted.filter(pl.col("day").is_in(list(days)))
        return counted.group_by("day").agg(pl.col("rows").sum().cast(pl.Int64)).sort("day")

    def fingerprint(self, table: str, until: date) -> str:
        """A hash of the data files that can hold days <= `until` of `table`: it changes when one is replaced."""
        snapshot = self.delta(table)
        files = self._data_files(table, snapshot) if snapshot is not None else pl.DataFrame(schema=_FILES)
        files = files.filter(_overlaps_range(None, until)).sort("path")
        return _md5(",".join(f"{path}@{first}" for path, first in files.select("path", "first").iter_rows()))

    def landed_fingerprint(self, until: date) -> str:
        """A hash of the content of every landed file ingested for the days <= `until` (orders and profiles).

        It changes when a file of such a day is re-delivered with other content, and is the same in any
        store that ingested the same files.
        """
        files = self.read("landing_files", pl.col("day") <= until).sort("kind", "day", "source_file")
        return _md5(
            ",".join(
                f"{kind}/{day}/{name}={fp}"
                for kind, day, name, fp in files.select("kind", "day", "source_file", "fingerprint").iter_rows()
            )
        )

    # --- ingestion --------------------------------------------------------------------------------------------------

    def ingested_files(self, kind: Kind) -> pl.DataFrame:
        """The `landing_files` rows of `kind` (every ingested landed file); none for a store not made yet."""
        return self.read("landing_files", pl.col("kind") == kind).sort("day", "source_file")

    @contextmanager
    def replace_day_batch(
        self,
        kind: Kind,
        days: Sequence[date],
        *,
        raw: pl.DataFrame,
        accepted: pl.DataFrame,
        quarantined: pl.DataFrame,
        files: pl.DataFrame,
        shards: int = 1,
    ) -> Iterator[None]:
        """Replace `days` of `kind` in its raw, accepted and quarantine tables, then in `landing_files`; with
        `shards` above 1 the accepted rows go in a file per customer shard (`replace_days_in_parts`).

        The rows are written on entering the block (a commit per table), the `landing_files` rows when it ends
        without an error. Until then the days are stale: a crash or an error in between makes the next run
        ingest them again.
        """
        raw_table, accepted_table, quarantine_table = schemas.INGESTED[kind]
        self.replace_days(raw_table.name, days, raw)
        parts = split_by_shard(accepted, shards) if shards > 1 else [accepted]
        self.replace_days_in_parts(accepted_table.name, days, parts, shards)
        self.replace_days(quarantine_table.name, days, quarantined)
        yield
        self.write("landing_files", files, {"kind": kind, "day": list(days)})

    def quarantined_per_day(
        self, kind: Kind, *, until: date | None = None, days: Sequence[date] | None = None
    ) -> pl.DataFrame:
        """(day, quarantined_rows) of the quarantine table of `kind`, days chosen as in `day_rows`."""
        table = schemas.INGESTED[kind][2].name
        return self.day_rows(table, until=until, days=days).rename({"rows": "quarantined_rows"})

    def latest_day_rows(self, table: str, limit: int = 5) -> pl.DataFrame:
        """Up to `limit` rows of the latest day stored in the day-keyed table `table` (raw, accepted, quarantine)."""
        snapshot = self.delta(table)
        latest = None if snapshot is None else self.day_rows(table)["day"].max()
        if latest is None:
            return STORE_TABLES[table].empty()
        rows = self._scan_days(table, snapshot, [(latest, latest)])
        return rows.filter(pl.col(STORE_TABLES[table].day) == latest).head(limit).collect()

    # --- features ---------------------------------------------------------------------------------------------------

    def feature_sources(self, since: date, before: date) -> list[tuple[date, str]]:
        """(as_of, orders_state) of the feature versions made for `since` <= as_of < `before`, newest first."""
        rows = self.read("feature_sources", pl.col("as_of").is_between(since, before, closed="left"))
        return list(rows.sort("as_of", descending=True).iter_rows())

    def customers_ordering(
        self, ranges: Sequence[tuple[date | None, date]], shard: CustomerShard | None = None
    ) -> pl.DataFrame:
        """The distinct customer_id of the accepted orders whose order_day is in any of the (first, last) `ranges`
        (first None: every day up to last), of customer `shard` only when given; streamed, so only the distinct
        ids are held."""
        snapshot = self.delta("orders")
        if snapshot is None or not ranges:
            return pl.DataFrame(schema={"customer_id": pl.String})
        day = pl.col("order_day")
        within = pl.any_horizontal(day.is_between(first, last) if first else day <= last for first, last in ranges)
        ids = self._scan_days("orders", snapshot, ranges, shard).filter(within).select("customer_id").unique()
        return ids.collect(engine="streaming")

    def replace_feature_version(self, as_of: date, rows: pl.DataFrame, orders_state: str) -> None:
        """Write the feature version `as_of`, then (last: it marks the version made) the state of its orders."""
        self.replace_days("customer_features", [as_of], rows)
        self._made_features(as_of, orders_state)

    def put_feature_shard(self, as_of: date, rows: pl.DataFrame, shard: CustomerShard) -> AddAction | None:
        """Write customer `shard`'s rows of the feature version `as_of` as a file no commit names yet."""
        table = "customer_features"
        return self.put_file(table, _within(table, [as_of], rows), shard)

    def commit_feature_shards(self, as_of: date, files: Sequence[AddAction], orders_state: str) -> None:
        """Make the files of every shard (`put_feature_shard`) the feature version `as_of` in one commit, then (last)
        record the state of its orders."""
        self.replace_days_with_files("customer_features", [as_of], files)
        self._made_features(as_of, orders_state)

    def _made_features(self, as_of: date, orders_state: str) -> None:
        source = pl.DataFrame({"as_of": [as_of], "orders_state": [orders_state]})
        self.write("feature_sources", source, {"as_of": as_of})

    # --- models and versions ----------------------------------------------------------------------------------------

    def save_model(self, kind: str, version: str, model: bytes) -> str:
        """Store the pickle of model `version` of `kind` (once); returns where it is (the registry's `path`)."""
        where = {"kind": kind, "version": version}
        if self.read("model_files", (pl.col("kind") == kind) & (pl.col("version") == version)).is_empty():
            self.write("model_files", pl.DataFrame({"kind": [kind], "version": [version], "model": [model]}), where)
        return f"model_files/{kind}-{version}"

    def model_bytes(self, kind: str, version: str) -> bytes:
        rows = self.read("model_files", (pl.col("kind") == kind) & (pl.col("version") == version))
        if rows.is_empty():
            raise StoreError(f"{self.uri}: model_files has no {kind} model {version}; re-run to retrain it")
        return rows["model"][0]

    def register_model(
        self, kind: str, version: str, trained_as_of: date, path: str, metrics: dict, inputs: str
    ) -> None:
        """(Re)register model `version` of `kind` as the one trained for `trained_as_of`."""
        row = pl.DataFrame(
            {"kind": [kind], "version": [version], "trained_as_of": [trained_as_of], "path": [path],
             "metrics": [json.dumps(metrics)], "created_at": [datetime.now(UTC).replace(tzinfo=None)],
             "inputs": [inputs]},
            schema=schemas.MODEL_REGISTRY.polars,
        )  # fmt: skip
        self.write("model_registry", row, {"kind": kind, "trained_as_of": trained_as_of})

    def model_in_force(self, kind: str, as_of: date, *, before: bool = False) -> dict | None:
        """The latest registered model of `kind` trained on or before `as_of` (strictly before if asked):
        version, trained_as_of, path, metrics (parsed) and inputs."""
        trained = pl.col("trained_as_of") < as_of if before else pl.col("trained_as_of") <= as_of
        rows = self.read("model_registry", (pl.col("kind") == kind) & trained)
        if rows.is_empty():
            return None
        row = (
            rows.sort("trained_as_of", descending=True)
            .select("version", "trained_as_of", "path", "metrics", "inputs")
            .row(0, named=True)
        )
        return {**row, "metrics": json.loads(row["metrics"])}

    def completed_buyers(self, until: date) -> pl.Series:
        """The distinct customer_id with a completed accepted order on or before `until`."""
        done = (pl.col("order_day") <= until) & (pl.col("status") == "completed")
        snapshot = self.delta("orders")
        rows = (
            schemas.ORDERS.empty().lazy() if snapshot is None else self._scan_days("orders", snapshot, [(None, until)])
        )
        return rows.filter(done).select("customer_id").unique().collect().to_series()

    def landed_through(self, kind: Kind, until: date) -> date | None:
        """The last day <= `until` with a landed `kind` file, or None."""
        return self.read("landing_files", (pl.col("kind") == kind) & (pl.col("day") <= until))["day"].max()

    def quarantined_rows(self, kind: Kind, until: date) -> int:
        """Quarantined `kind` rows of the landed days <= `until`."""
        return int(self.quarantined_per_day(kind, until=until)["quarantined_rows"].sum())

    def previous_version(self, before: date) -> date | None:
        """The as-of date of the newest segment version before `before`, or None."""
        return self.read("segment_versions", pl.col("as_of") < before)["as_of"].max()

    def version_metrics(self, as_of: date, churn_model_version: str) -> dict | None:
        """The metrics of version `as_of` if the churn model `churn_model_version` made it, else None."""
        made = (pl.col("as_of") == as_of) & (pl.col("churn_model_version") == churn_model_version)
        rows = self.read("segment_versions", made)
        return json.loads(rows["metrics"][0]) if rows.height and rows["metrics"][0] else None

    def replace_segment_version(self, as_of: date, segments: pl.DataFrame, version_row: pl.DataFrame) -> None:
        """Write version `as_of`: its customer_segments rows, then (last) its segment_versions row."""
        self.replace_days("customer_segments", [as_of], segments)
        self.write("segment_versions", version_row, {"as_of": as_of})

    def version_summary(self, as_of: date) -> dict | None:
        """segment_version, customers, prospects, orders_accepted and orders_quarantined of version `as_of`."""
        rows = self.read("segment_versions", pl.col("as_of") == as_of).select(
            "segment_version", "customers", "prospects", "orders_accepted", "orders_quarantined"
        )
        return rows.row(0, named=True) if rows.height else None

    # --- marts ------------------------------------------------------------------------------------------------------

    def replace_mart_versions(self, table: str, rows: pl.DataFrame, as_ofs: Sequence[date]) -> None:
        """Replace the versions `as_ofs` of the mart `table` with `rows` (columns new to it are added)."""
        self.write(table, rows, {"as_of": sorted(set(as_ofs))})

    def mart_latest(self, table: str, as_of: date) -> pl.DataFrame:
        """The newest version on or before `as_of` of the mart `table`."""
        rows = self.read(table, pl.col("as_of") <= as_of)
        return rows.filter(pl.col("as_of") == rows["as_of"].max()) if rows.height else rows


#: table URI -> (Delta version, days, frame) of the rows this process wrote last, for the tables in KEPT_IN_MEMORY
_last_written: dict[str, tuple[int, frozenset[date], pl.DataFrame]] = {}


def _shaped(table: str, rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` with the columns of store table `table`, cast to its registry types (missing ones null)."""
    shape = STORE_TABLES[table].polars
    return rows.select(pl.col(c).cast(t) if c in rows.columns else pl.lit(None, t).alias(c) for c, t in shape.items())


def _within(table: str, days: list[date], rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` of the day-keyed `table` in its registry shape (`_shaped`), refused when one is of a day outside
    `days`."""
    day_column = STORE_TABLES[table].day
    outside = rows.filter(~pl.col(day_column).is_in(days))
    if not outside.is_empty():
        raise ValueError(f"{table}: rows of {outside[day_column][0]} are outside the days being replaced")
    return _shaped(table, rows)


def _touching(files: pl.DataFrame, days: list[date]) -> pl.DataFrame:
    """The `files` (see `_FILES`) that can hold one of the sorted `days` (a file without statistics: any day)."""

    def holds(first: date | None, last: date | None) -> bool:
        at = bisect_left(days, first) if first is not None else 0
        return first is None or last is None or (at < len(days) and days[at] <= last)

    return files.filter(
        pl.Series([holds(*ends) for ends in files.select("first", "last").iter_rows()], dtype=pl.Boolean)
    )


def _partly(files: pl.DataFrame, days: list[date]) -> pl.DataFrame:
    """The `files` that can hold a day other than `days` (their other days are carried over)."""
    wanted = set(days)

    def covered(first: date | None, last: date | None) -> bool:
        return (
            first is not None
            and last is not None
            and all(first + timedelta(days=n) in wanted for n in range((last - first).days + 1))
        )

    partly = [not covered(first, last) for first, last in files.select("first", "last").iter_rows()]
    return files.filter(pl.Series(partly, dtype=pl.Boolean))


def _overlaps_range(first: date | None, last: date | None) -> pl.Expr:
    """A file (see `_FILES`) can hold a day from `first` to `last` (None: open; no statistics: any day)."""
    after = pl.lit(True) if first is None else pl.col("last") >= first
    before = pl.lit(True) if last is None else pl.col("first") <= last
    return (after & before).fill_null(True)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()
