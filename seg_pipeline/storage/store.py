"""The pipeline's working DuckDB store: raw and validated data, features, segments, marts.

Why we own this small store instead of dagster-duckdb's IO managers:
- `DuckDBPolarsIOManager` calls connection methods that duckdb 2.0 removed, and pinning duckdb
  below 2 would hold every user back for one convenience;
- its delete-then-insert of a partition is not one transaction, while a day's ingest must
  replace the raw, accepted and quarantined rows together or not at all;
- DuckDB admits one writing process per file. Every connection here is opened under an
  inter-process file lock and closed straight after (or at the end of a `session()`, one per
  asset step), so concurrent runs queue instead of failing on DuckDB's lock.

The bulk, day-keyed tables (`raw_orders`, `orders`, `raw_profiles`, `profiles`, and
`customer_features` and `customer_segments` keyed by as_of) are Parquet parts under
`<store>_parts/` (one file per ingest batch of days, one per version); the `parts` table is their
manifest (which file holds which day) and each of them is a view over its committed files.
Writing rows with polars costs a fifth of inserting them into DuckDB, and readers load them
faster too. A file is written under a fresh name and switched in by the same transaction
that updates the quarantine and the manifest, so a day is still replaced whole or not at
all; superseded files are deleted after the commit, files of a rolled-back one straight away.

Analysts never open this file: `seg_pipeline.storage.warehouse` publishes a separate analyst file. The store
holds personal data, so while it is held the process creates files owner-only (0600 files, 0700
folders), whatever the umask: DuckDB creates its file and write-ahead log with the process umask.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl

from seg_pipeline.core import schemas
from seg_pipeline.core.schemas import Column, Kind, Table

#: rows per Parquet row group: several per day of a large table, so both cores read and write at once
PART_ROW_GROUP = 131_072
#: the tables kept as Parquet parts: table -> (day column, schema)
PART_TABLES: dict[str, tuple[str, dict[str, pl.DataType]]] = {
    t.name: (t.day, t.polars) for t in schemas.TABLES.values() if t.storage == "part"
}

#: part tables the next step of a run reads back whole (a profile snapshot, a feature version): the
#: process keeps the frame it last wrote of each, so that step takes it from memory, not from disk
KEPT_IN_MEMORY = frozenset({"profiles", "customer_features"})

_DUCKDB_TYPES = {
    pl.String: "varchar", pl.Date: "date", pl.Int64: "bigint", pl.Int32: "integer", pl.Int8: "tinyint",
    pl.Float64: "double", pl.Boolean: "boolean", pl.Datetime: "timestamp",
}  # fmt: skip


def duckdb_type(column: Column) -> str:
    """The DuckDB type of a registry column."""
    return column.sql or _DUCKDB_TYPES[type(column.dtype)]


def table_ddl(table: Table) -> str:
    """`create table if not exists` for a registry table, then an `add column if not exists` per column that
    stores made by older code lack (so opening such a store migrates it)."""
    created = [c for c in table.columns if not c.added_later]
    columns = ", ".join(f"{c.name} {duckdb_type(c)}" for c in created)
    added = "".join(
        f"alter table {table.name} add column if not exists {c.name} {duckdb_type(c)};\n"
        for c in table.columns
        if c.added_later
    )
    return f"create table if not exists {table.name} ({columns});\n{added}"


#: DDL of the other tables whose shape the store owns; the marts take their shape from the
#: frames that first fill them (their columns are documented in dbt_like_sql/).
SCHEMA = "".join(table_ddl(t) for t in schemas.TABLES.values() if t.storage == "table")


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


class StoreBusy(RuntimeError):
    """Another process holds the store and the caller chose not to wait."""


class StoreError(RuntimeError):
    """The store file cannot be used as it is; `str()` is one line saying why and what to do."""


class _ProcessLock:
    """An exclusive lock across processes (flock) that one process may take re-entrantly."""

    _guard = threading.Lock()
    _held: dict[str, tuple[threading.RLock, list[int]]] = {}

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        with self._guard:
            self._held.setdefault(self.path, (threading.RLock(), [0, -1]))

    @contextmanager
    def __call__(self, wait: bool = True) -> Iterator[None]:
        rlock, state = self._held[self.path]
        with rlock:
            if state[0] == 0:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise StoreBusy(f"{self.path}: held by another process") from None
                state[1] = fd
            state[0] += 1
            try:
                yield
            finally:
                state[0] -= 1
                if state[0] == 0:
                    fcntl.flock(state[1], fcntl.LOCK_UN)
                    os.close(state[1])


class WorkingStore:
    """Short-lived, locked connections to the pipeline's DuckDB file and its Parquet parts.

    With `wait=False` every connection raises `StoreBusy` instead of queueing (for sensors). Built once per
    run (`defs.resources.StoreResource`), which creates or migrates the schema; `open_existing` reads a
    store as it is.
    """

    def __init__(self, path: str | Path, *, wait: bool = True, migrate: bool = True) -> None:
        self.path = Path(path)
        self.parts_dir = self.path.with_name(f"{self.path.stem}_parts")
        self.wait = wait
        self.read_only = not migrate
        self._lock = _ProcessLock(self.path.with_name(self.path.name + ".lock"))
        self._written: list[Path] = []
        self._superseded: list[Path] = []
        self._session: duckdb.DuckDBPyConnection | None = None
        if migrate:
            self._create_or_migrate()

    @classmethod
    def open_existing(cls, path: str | Path, *, wait: bool = True) -> WorkingStore:
        """The store at `path` for reading only: nothing is created or migrated, no DDL runs.

        A store that does not exist yet reads as one where nothing was ingested.
        """
        return cls(path, wait=wait, migrate=False)

    def _create_or_migrate(self) -> None:
        """Create the schema (or add what an older store lacks) and point the part views at their files."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for private, mode in ((self.path, 0o600), (self.parts_dir, 0o700)):  # made before files were owner-only
            if private.exists():
                private.chmod(mode)
        with self.connect() as con:
            tables = [name for (name,) in con.execute("select table_name from duckdb_tables()").fetchall()]
            if old := [name for name in tables if name in PART_TABLES]:
                raise StoreError(
                    f"{self.path}: written by an older seg_pipeline ({old[0]} is a table, not Parquet parts); "
                    "delete it and re-run: the landed files are ingested again"
                )
            con.execute(SCHEMA)
            views = dict(con.execute("select view_name, sql from duckdb_views() where not internal").fetchall())
            folder = sql_literal(f"{self.parts_dir}/")[:-1]  # how each file's literal in a view's SQL starts
            for table in PART_TABLES:
                if table not in views or ("read_parquet" in views[table] and folder not in views[table]):
                    self._create_view(con, table)  # new store, or one moved since its views were made

    @contextmanager
    def session(self) -> Iterator[WorkingStore]:
        """Hold the lock and the database open until the block ends, so each `connect()` in it is cheap.

        One asset step is one session: the file is opened (and checkpointed on close) once, not per query.
        """
        with self._lock(self.wait), _owner_only():
            if self._session is not None:
                yield self
                return
            self._session = duckdb.connect(str(self.path), read_only=self.read_only)
            try:
                yield self
            finally:
                self._session.close()
                self._session = None

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection held under the store lock; other processes wait for it."""
        with self._lock(self.wait), _owner_only():
            if self._session is not None:
                con = self._session.cursor()
            else:
                con = duckdb.connect(str(self.path), read_only=self.read_only)
            try:
                yield con
            finally:
                con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One atomic unit of work, Parquet parts included: committed whole or rolled back whole."""
        with self.connect() as con:
            self._written, self._superseded = [], []
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                _unlink(self._written)
                raise
            con.commit()
            _unlink(self._superseded)

    # TODO issue 16: `frame` and `scalar` take SQL text; only defs/models.py (and tests) still call them
    def frame(self, sql: str, params: Sequence[object] | None = None) -> pl.DataFrame:
        """Run a query and return a Polars frame."""
        with self.connect() as con:
            return con.sql(sql, params=list(params or [])).pl()

    def scalar(self, sql: str, params: Sequence[object] | None = None) -> object:
        with self.connect() as con:
            row = con.execute(sql, params or []).fetchone()
            return None if row is None else row[0]

    def replace_parts(
        self, con: duckdb.DuckDBPyConnection, table: str, days: Sequence[date], rows: pl.DataFrame
    ) -> None:
        """Replace `days` of the part table `table` with `rows`; call inside `transaction()`.

        The rows go into one new Parquet file. A file also holding days that are not replaced is
        superseded too: its other days are carried over into the new file.
        """
        day_column, schema = PART_TABLES[table]
        days = list(days)
        outside = rows.filter(~pl.col(day_column).is_in(days))
        if not outside.is_empty():
            raise ValueError(f"{table}: rows of {outside[day_column][0]} are outside the days being replaced")
        old = [
            file
            for (file,) in con.execute(
                "select distinct file from parts where table_name = ? and day in (select unnest(?::date[]))",
                [table, days],
            ).fetchall()
        ]
        kept = [
            pl.scan_parquet(self.parts_dir / file).filter(~pl.col(day_column).is_in(days)).collect() for file in old
        ]
        rows = rows.select(pl.col(c).cast(t) for c, t in schema.items())
        if kept:
            rows = pl.concat([rows, *kept]).sort(day_column, maintain_order=True)
        con.execute("delete from parts where table_name = ? and file in (select unnest(?::varchar[]))", [table, old])
        if not rows.is_empty():
            name = f"{table}/{rows[day_column][0].isoformat()}/{uuid.uuid4().hex}.parquet"
            path = self.parts_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            self._written.append(path)
            rows.write_parquet(path, compression="lz4", row_group_size=PART_ROW_GROUP)
            if table in KEPT_IN_MEMORY:
                _last_written[table] = (str(path), rows)  # files never change once written
            con.executemany(
                "insert into parts values (?, ?, ?, ?)",
                [(table, day, name, n) for day, n in rows.group_by(day_column).len().sort(day_column).iter_rows()],
            )
        self._superseded.extend(self.parts_dir / file for file in old)
        self._create_view(con, table)

    def keep_newest(self, con: duckdb.DuckDBPyConnection, table: str, keep: int, within_days: int = 0) -> list[date]:
        """Drop every day of the part table `table` but the newest `keep` (0 keeps all) and those less than
        `within_days` before the newest; call inside `transaction()`.

        Returns the days dropped, oldest first.
        """
        days = [day for (day,) in con.execute(
            "select distinct day from parts where table_name = ? order by day desc", [table]
        ).fetchall()]  # fmt: skip
        dropped = sorted(day for day in days[keep:] if (days[0] - day).days >= within_days) if keep else []
        if dropped:
            self.replace_parts(con, table, dropped, pl.DataFrame(schema=PART_TABLES[table][1]))
        return dropped

    def keep_versions(self, keep: int, unmeasured_days: int) -> list[date]:
        """Keep the newest `keep` versions (0: all) of customer_features (and their sources) and of
        customer_segments, whose versions of the last `unmeasured_days` days also stay (action_lift has yet to
        measure them); returns the feature versions dropped."""
        with self.transaction() as con:
            self.keep_newest(con, "customer_segments", keep, unmeasured_days)
            gone = self.keep_newest(con, "customer_features", keep)
            _replace_matching(con, schemas.FEATURE_SOURCES, schemas.FEATURE_SOURCES.empty(), {"as_of": list(gone)})
        return gone

    def read_parts(
        self,
        table: str,
        columns: Sequence[str],
        *,
        until: date | None = None,
        day: date | None = None,
        semi: pl.DataFrame | None = None,
    ) -> pl.DataFrame:
        """`columns` of part table `table` (every day, the days <= `until`, or the one `day`), straight from Parquet.

        `semi`: a one-column frame (e.g. a customer sample); keep only rows whose value in that column occurs in it.
        """
        with self.connect() as con:
            files = self._files(con, table, until, day)
            if not files:
                schema = PART_TABLES[table][1]
                return pl.DataFrame(schema={c: schema[c] for c in columns})
            day_column = PART_TABLES[table][0]
            kept_file, kept = _last_written.get(table, ("", None))
            rows = kept.lazy() if files == [kept_file] else pl.scan_parquet(files)
            if until is not None:
                rows = rows.filter(pl.col(day_column) <= until)
            if day is not None:
                rows = rows.filter(pl.col(day_column) == day)
            rows = rows.select(columns)
            if semi is not None:
                [key] = semi.columns
                # a filter runs inside the Parquet scan (other columns are decoded for matching rows only);
                # a join does not
                rows = rows.filter(pl.col(key).is_in(semi.get_column(key).implode()))
            return rows.collect()

    def day_rows(self, table: str, *, until: date | None = None, days: Sequence[date] | None = None) -> pl.DataFrame:
        """(day, rows) of part table `table` from its manifest, every stored day (<= `until`, or in `days`), by day."""
        return self.frame(
            "select day, sum(rows)::bigint as rows from parts where table_name = ? and (?::date is null or day <= ?) "
            "and (?::date[] is null or day in (select unnest(?::date[]))) group by day order by day",
            [table, until, until, days, days],
        )

    def fingerprint(self, table: str, until: date) -> str:
        """A hash of the Parquet files holding the days <= `until` of `table`: it changes when one is replaced."""
        return str(
            self.scalar(
                "select md5(coalesce(string_agg(file || '@' || day, ',' order by day, file), '')) "
                "from parts where table_name = ? and day <= ?",
                [table, until],
            )
        )

    def landed_fingerprint(self, until: date) -> str:
        """A hash of the content of every landed file ingested for the days <= `until` (orders and profiles).

        It changes when a file of such a day is re-delivered with other content, and is the same in any
        store that ingested the same files.
        """
        return str(
            self.scalar(
                "select md5(coalesce(string_agg(kind || '/' || day || '/' || source_file || '=' || fingerprint, ',' "
                "order by kind, day, source_file), '')) from landing_files where day <= ?",
                [until],
            )
        )

    def sweep_parts(self) -> None:
        """Delete part files no committed manifest row names (left by a crash between write and commit)."""
        with self.connect() as con:
            kept = {self.parts_dir / file for (file,) in con.execute("select file from parts").fetchall()}
            _unlink([path for path in self.parts_dir.glob("*/*/*.parquet") if path not in kept])

    # --- ingestion ------------------------------------------------------------------------------------------------

    def ingested_files(self, kind: Kind) -> pl.DataFrame:
        """The `landing_files` rows of `kind` (every ingested landed file); none for a store not made yet."""
        if self.read_only and not self.path.exists():
            return schemas.LANDING_FILES.empty()
        return self.frame("select * from landing_files where kind = ? order by day, source_file", [kind])

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
    ) -> Iterator[None]:
        """Replace `days` of `kind` in its raw, accepted and quarantine tables and in `landing_files`, atomically.

        The rows are written on entering the block and committed when it ends; an error in the block (or
        in writing) rolls all of it back.
        """
        raw_table, accepted_table, quarantine_table = schemas.INGESTED[kind]
        with self.transaction() as con:
            self.replace_parts(con, raw_table.name, days, raw)
            self.replace_parts(con, accepted_table.name, days, accepted)
            _replace_matching(con, quarantine_table, quarantined, {schemas.DAY_COLUMN[kind]: list(days)})
            _replace_matching(con, schemas.LANDING_FILES, files, {"kind": kind, "day": list(days)})
            yield

    def quarantined_per_day(
        self, kind: Kind, *, until: date | None = None, days: Sequence[date] | None = None
    ) -> pl.DataFrame:
        """(day, quarantined_rows) of the quarantine table of `kind`, days chosen as in `day_rows`."""
        quarantine = schemas.INGESTED[kind][2]
        day = quarantine.day
        return self.frame(
            f"select {day} as day, count(*) as quarantined_rows from {quarantine.name} "
            f"where (?::date is null or {day} <= ?) and (?::date[] is null or {day} in (select unnest(?::date[]))) "
            "group by 1",
            [until, until, days, days],
        )

    def latest_day_rows(self, table: str, limit: int = 5) -> pl.DataFrame:
        """Up to `limit` rows of the latest day stored in the day-keyed table `table` (raw, accepted, quarantine)."""
        day = schemas.TABLES[table].day
        return self.frame(f"select * from {table} where {day} = (select max({day}) from {table}) limit ?", [limit])

    # --- features -------------------------------------------------------------------------------------------------

    def feature_sources(self, since: date, before: date) -> list[tuple[date, str]]:
        """(as_of, orders_state) of the feature versions made for `since` <= as_of < `before`, newest first."""
        rows = self.frame(
            "select as_of, orders_state from feature_sources where as_of < ? and as_of >= ? order by as_of desc",
            [before, since],
        )
        return list(rows.iter_rows())

    def customers_ordering(self, ranges: Sequence[tuple[date, date]]) -> pl.DataFrame:
        """The distinct customer_id of the accepted orders whose order_day is in any of the (first, last) `ranges`."""
        return self.frame(
            "select distinct customer_id from orders where " + " or ".join(["order_day between ? and ?"] * len(ranges)),
            [day for day_range in ranges for day in day_range],
        )

    def replace_feature_version(self, as_of: date, features: pl.DataFrame, orders_state: str) -> None:
        """Write the feature version `as_of` and the state of the orders it was made from, atomically."""
        source = pl.DataFrame({"as_of": [as_of], "orders_state": [orders_state]})
        with self.transaction() as con:
            self.replace_parts(con, "customer_features", [as_of], features)
            _replace_matching(con, schemas.FEATURE_SOURCES, source, {"as_of": as_of})

    # --- models and versions --------------------------------------------------------------------------------------

    def register_model(
        self, kind: str, version: str, trained_as_of: date, path: Path, metrics: dict, inputs: str
    ) -> None:
        """(Re)register model `version` of `kind` as the one trained for `trained_as_of`."""
        row = pl.DataFrame(
            {"kind": [kind], "version": [version], "trained_as_of": [trained_as_of], "path": [str(path)],
             "metrics": [json.dumps(metrics)], "created_at": [datetime.now(UTC).replace(tzinfo=None)],
             "inputs": [inputs]},
            schema=schemas.MODEL_REGISTRY.polars,
        )  # fmt: skip
        with self.transaction() as con:
            _replace_matching(con, schemas.MODEL_REGISTRY, row, {"kind": kind, "trained_as_of": trained_as_of})

    def model_in_force(self, kind: str, as_of: date, *, before: bool = False) -> dict | None:
        """The latest registered model of `kind` trained on or before `as_of` (strictly before if asked):
        version, trained_as_of, path, metrics (parsed) and inputs."""
        rows = self.frame(
            "select version, trained_as_of, path, metrics, inputs from model_registry "
            f"where kind = ? and trained_as_of {'<' if before else '<='} ? order by trained_as_of desc limit 1",
            [kind, as_of],
        )
        if rows.is_empty():
            return None
        row = rows.row(0, named=True)
        return {**row, "metrics": json.loads(row["metrics"])}

    def completed_buyers(self, until: date) -> pl.Series:
        """The distinct customer_id with a completed accepted order on or before `until`."""
        return self.frame(
            "select distinct customer_id from orders where order_day <= ? and status = 'completed'", [until]
        ).to_series()

    def landed_through(self, kind: Kind, until: date) -> date | None:
        """The last day <= `until` with a landed `kind` file, or None."""
        return self.scalar("select max(day) from landing_files where kind = ? and day <= ?", [kind, until])

    def quarantined_rows(self, kind: Kind, until: date) -> int:
        """Quarantined `kind` rows of the landed days <= `until`."""
        day = schemas.DAY_COLUMN[kind]
        return int(self.scalar(f"select count(*) from quarantine_{kind} where {day} <= ?", [until]))

    def previous_version(self, before: date) -> date | None:
        """The as-of date of the newest segment version before `before`, or None."""
        return self.scalar("select max(as_of) from segment_versions where as_of < ?", [before])

    def version_metrics(self, as_of: date, churn_model_version: str) -> dict | None:
        """The metrics of version `as_of` if the churn model `churn_model_version` made it, else None."""
        stored = self.scalar(
            "select metrics from segment_versions where as_of = ? and churn_model_version = ?",
            [as_of, churn_model_version],
        )
        return json.loads(stored) if stored else None

    def replace_segment_version(self, as_of: date, segments: pl.DataFrame, version_row: pl.DataFrame) -> None:
        """Write version `as_of`: its customer_segments rows and its segment_versions row, atomically."""
        with self.transaction() as con:
            self.replace_parts(con, "customer_segments", [as_of], segments)
            _replace_matching(con, schemas.SEGMENT_VERSIONS, version_row, {"as_of": as_of})

    def version_summary(self, as_of: date) -> dict | None:
        """segment_version, customers, prospects, orders_accepted and orders_quarantined of version `as_of`."""
        rows = self.frame(
            "select segment_version, customers, prospects, orders_accepted, orders_quarantined "
            "from segment_versions where as_of = ?",
            [as_of],
        )
        return rows.row(0, named=True) if rows.height else None

    def _files(
        self, con: duckdb.DuckDBPyConnection, table: str, until: date | None = None, day: date | None = None
    ) -> list[str]:
        """The files holding days <= `until` (or the one `day`) of `table`, in day order."""
        rows = con.execute(
            "select file from parts where table_name = ? and (?::date is null or day <= ?) "
            "and (?::date is null or day = ?) group by file order by min(day), file",
            [table, until, until, day, day],
        ).fetchall()
        return [str(self.parts_dir / file) for (file,) in rows]

    def _create_view(self, con: duckdb.DuckDBPyConnection, table: str) -> None:
        """(Re)define the view `table` over its committed parts (an empty typed relation when none)."""
        files = self._files(con, table)
        if files:
            source = "read_parquet([" + ", ".join(sql_literal(f) for f in files) + "])"
        else:
            columns = ", ".join(f"null::{_DUCKDB_TYPES[type(t)]} as {c}" for c, t in PART_TABLES[table][1].items())
            source = f"(select {columns} limit 0)"
        con.execute(f"create or replace view {table} as select * from {source}")


#: table -> (file, frame) of the part this process wrote last, for the tables in KEPT_IN_MEMORY
_last_written: dict[str, tuple[str, pl.DataFrame]] = {}


def sql_literal(text: str) -> str:
    """`text` as an SQL string literal, for statements that take no parameters (views, comments)."""
    return "'" + text.replace("'", "''") + "'"


def _unlink(paths: Sequence[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _replace_matching(
    con: duckdb.DuckDBPyConnection, table: Table, rows: pl.DataFrame, match: dict[str, object]
) -> None:
    """Delete the rows of the registry table `table` whose columns equal `match`'s values (a list: any of them),
    then insert `rows` by column name; call inside `WorkingStore.transaction()`."""
    types = {c.name: duckdb_type(c) for c in table.columns}
    where = " and ".join(
        f"{c} in (select unnest(?::{types[c]}[]))" if isinstance(v, list) else f"{c} = ?" for c, v in match.items()
    )
    con.register("_incoming", rows)
    try:
        con.execute(f"delete from {table.name} where {where}", list(match.values()))
        con.execute(f"insert into {table.name} by name select * from _incoming")
    finally:
        con.unregister("_incoming")
