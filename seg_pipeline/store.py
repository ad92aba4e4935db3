"""The pipeline's working DuckDB store: raw and validated data, features, segments, marts.

Why we own this small store instead of dagster-duckdb's IO managers:
- `DuckDBPolarsIOManager` calls connection methods that duckdb 2.0 removed, and pinning duckdb
  below 2 would hold every user back for one convenience;
- its delete-then-insert of a partition is not one transaction, while a day's ingest must
  replace the raw, accepted and quarantined rows together or not at all;
- DuckDB admits one writing process per file. Every connection here is opened under an
  inter-process file lock and closed straight after, so concurrent runs queue instead of
  failing on DuckDB's lock.

Analysts never open this file: `seg_pipeline.warehouse` publishes a separate analyst file.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

_RAW_ORDER_COLUMNS = "order_id, customer_id, order_ts, amount, currency, status, channel, category, quantity"
_RAW_PROFILE_COLUMNS = "customer_id, signup_date, birth_year, gender, region, customer_type, is_member, name, email, phone"

#: DDL of the tables whose shape the store owns. `customer_features` and the marts take
#: their shape from the frames that first fill them (their columns are documented in core/).
SCHEMA = f"""
create table if not exists landing_files (
    kind varchar, day date, source_file varchar, size bigint, mtime_ns bigint,
    fingerprint varchar, raw_rows bigint, ingested_at timestamp, run_id varchar
);
create table if not exists raw_orders (
    order_day date, source_file varchar, source_row bigint,
    {", ".join(f"{c.strip()} varchar" for c in _RAW_ORDER_COLUMNS.split(","))},
    extra varchar, file_fingerprint varchar, ingested_at timestamp, run_id varchar
);
create table if not exists raw_profiles (
    snapshot_date date, source_file varchar, source_row bigint,
    {", ".join(f"{c.strip()} varchar" for c in _RAW_PROFILE_COLUMNS.split(","))},
    extra varchar, file_fingerprint varchar, ingested_at timestamp, run_id varchar
);
create table if not exists orders (
    order_id varchar, customer_id varchar, order_ts timestamp, order_day date, amount double,
    currency varchar, status varchar, channel varchar, category varchar, quantity integer,
    source_file varchar, source_row bigint
);
create table if not exists profiles (
    snapshot_date date, customer_id varchar, signup_date date, birth_year integer, gender varchar,
    region varchar, customer_type varchar, is_member boolean, name varchar, email varchar, phone varchar,
    source_file varchar, source_row bigint
);
create table if not exists quarantine_orders (
    order_day date, source_file varchar, source_row bigint,
    {", ".join(f"{c.strip()} varchar" for c in _RAW_ORDER_COLUMNS.split(","))},
    extra varchar, reason varchar, as_of date, run_id varchar, quarantined_at timestamp
);
create table if not exists quarantine_profiles (
    snapshot_date date, source_file varchar, source_row bigint,
    {", ".join(f"{c.strip()} varchar" for c in _RAW_PROFILE_COLUMNS.split(","))},
    extra varchar, reason varchar, as_of date, run_id varchar, quarantined_at timestamp
);
create table if not exists model_registry (
    kind varchar, version varchar, trained_as_of date, path varchar, metrics json, created_at timestamp
);
create table if not exists customer_segments (
    as_of date, customer_id varchar, segment_version varchar, r_score tinyint, f_score tinyint, m_score tinyint,
    rfm_score varchar, rfm_segment varchar, cluster_label varchar, value_tier varchar, lifecycle_stage varchar,
    churn_risk double, expected_purchases_12m double, clv double, recommended_action varchar
);
create table if not exists segment_versions (
    as_of date, segment_version varchar, run_id varchar, code_version varchar,
    churn_model_version varchar, cluster_model_version varchar, metrics json,
    customers bigint, prospects bigint, orders_accepted bigint, orders_quarantined bigint,
    created_at timestamp
);
"""


class StoreBusy(RuntimeError):
    """Another process holds the store and the caller chose not to wait."""


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
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
    """Short-lived, locked connections to the pipeline's DuckDB file.

    With `wait=False` every connection raises `StoreBusy` instead of queueing (for sensors).
    """

    def __init__(self, path: str | Path, *, wait: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.wait = wait
        self._lock = _ProcessLock(self.path.with_name(self.path.name + ".lock"))
        with self.connect() as con:
            con.execute(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection held under the store lock; other processes wait for it."""
        with self._lock(self.wait):
            con = duckdb.connect(str(self.path))
            try:
                yield con
            finally:
                con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One atomic unit of work: committed whole or rolled back whole."""
        with self.connect() as con:
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    def frame(self, sql: str, params: Sequence[object] | None = None) -> pl.DataFrame:
        """Run a query and return a Polars frame."""
        with self.connect() as con:
            return con.sql(sql, params=list(params or [])).pl()

    def scalar(self, sql: str, params: Sequence[object] | None = None) -> object:
        with self.connect() as con:
            row = con.execute(sql, params or []).fetchone()
            return None if row is None else row[0]


def replace_rows(
    con: duckdb.DuckDBPyConnection, table: str, where: str, params: Sequence[object], rows: pl.DataFrame
) -> None:
    """Delete the rows of `table` matching `where` and insert `rows` by column name.

    Creates `table` from the frame's schema when it does not exist yet. Call inside
    `WorkingStore.transaction()` so the delete and the insert commit together.
    """
    con.register("_incoming", rows)
    try:
        con.execute(f"create table if not exists {table} as select * from _incoming limit 0")
        con.execute(f"delete from {table} where {where}", list(params))
        con.execute(f"insert into {table} by name select * from _incoming")
    finally:
        con.unregister("_incoming")
