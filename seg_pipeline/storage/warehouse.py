"""The analyst DuckDB file: published whole, swapped in atomically, never locked by the pipeline.

DuckDB admits one writing process or many readers, never both, and analysts hold read-only
connections for hours. So the pipeline never writes the analyst file in place: it copies the
published file to a temporary sibling, replaces the versions it (re)built there, rebuilds
the small tables, checkpoints, and renames the result over the analyst file. A reader that
had the old file open keeps seeing that whole old version; the next one opens the new file.

The file is written in DuckDB's STORAGE_VERSION format, which every DuckDB from 1.2 on reads (the
`duckdb` CLI analysts install may be older than the library writing it); a file published in a newer
format is migrated on the next publish. A write-ahead log left beside the file by a read-write
connection belongs to the file it was written for, so it moves with that file (to `.previous`);
a publish or rollback refuses to run while such a connection is open (its next log would land beside
the new file). Paths reach DuckDB as parameters, never as SQL text.

The per-customer tables keep only the newest `keep_versions` versions (SEG_KEEP_VERSIONS), so the
file, and with it the copy each publish makes, stops growing with the history (the publishing asset
trims the working store alike). segment_versions and the marts (a few rows per version, copied whole: a build of
`action_lift` measures earlier versions) keep every version.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import NamedTuple

import duckdb

from seg_pipeline.core.personal_data import publishable
from seg_pipeline.core.schemas import CUSTOMER_FEATURES, CUSTOMER_SEGMENTS, SEGMENT_VERSIONS
from seg_pipeline.storage.landing import PERSONAL_COLUMNS, Kind
from seg_pipeline.storage.store import WorkingStore, shared_file_mode, sql_literal

#: the analyst file's storage format: DuckDB 1.2 and later read it (the library's newest format only itself)
STORAGE_VERSION = "v1.2.0"
#: tables copied from the working store as whole versions (as_of) on each publish
VERSIONED_TABLES = ("customer_features", "customer_segments")
#: small tables copied whole on each publish
WHOLE_TABLES = ("segment_versions", "quarantine_orders", "quarantine_profiles")
#: ...of which these as `publishable`: no personal columns, no `extra`, landed text scrubbed of emails and phones
QUARANTINE_TABLES: dict[str, Kind] = {"quarantine_orders": "orders", "quarantine_profiles": "profiles"}

TABLE_COMMENTS = {
    "customer_features": "Point-in-time customer features, one row per (as_of, customer_id); "
    "the newest SEG_KEEP_VERSIONS versions.",
    "customer_segments": "Versioned customer segments, exactly one row per known customer per as_of; "
    "the newest SEG_KEEP_VERSIONS versions.",
    "current_segments": "The latest version (max as_of) of customer_segments.",
    "segment_versions": "One row per version ever published: run id, model versions, quality metrics, row counts, "
    "churn method, last landed order day.",
    "quarantine_orders": "Rejected raw order rows with the raw values, source_file and reason; "
    "emails and phone numbers in them are replaced by '[removed: email]' / '[removed: phone]'.",
    "quarantine_profiles": "Rejected raw profile rows with source_file and reason; name, email and phone left out, "
    "emails and phone numbers elsewhere replaced by '[removed: email]' / '[removed: phone]'.",
}


class WarehouseBusy(RuntimeError):
    """The analyst file is open read-write in another process; `str()` is one line naming it and the holder."""


class Published(NamedTuple):
    """What a publish left in the analyst file."""

    counts: dict[str, int]  # rows per table
    dropped: list[date]  # versions not (or no longer) in the per-customer tables: older than the newest kept


def publish_from(
    store: WorkingStore,
    warehouse_path: str | Path,
    as_of_dates: Sequence[date],
    marts: Mapping[str, str],
    *,
    keep_versions: int = 0,
) -> Published:
    """`publish` from the working store: `marts` maps each mart table to its description; the column comments
    are the schema registry's docs."""
    comments = {t.name: t.docs for t in (CUSTOMER_FEATURES, CUSTOMER_SEGMENTS, SEGMENT_VERSIONS)}
    with store.connect() as con:
        return publish(con, warehouse_path, as_of_dates, list(marts), comments, marts, keep_versions=keep_versions)


def publish(
    store: duckdb.DuckDBPyConnection,
    warehouse_path: str | Path,
    as_of_dates: Sequence[date],
    marts: Sequence[str],
    column_comments: Mapping[str, Mapping[str, str]],
    table_comments: Mapping[str, str],
    *,
    keep_versions: int = 0,
) -> Published:
    """Publish versions `as_of_dates` from the working store into the analyst file.

    The per-customer tables then hold the newest `keep_versions` of their versions and `as_of_dates`
    (0: all of them); a version older than those is not copied in, and older ones are deleted.
    """
    target = Path(warehouse_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.publishing")
    _unlink_with_wal(staging)
    _refuse_writer(target)
    _attach_copy(store, target, staging)
    # rows of a version need no particular order; without one DuckDB writes them in parallel and the
    # checkpoint has nothing left to rewrite (a second or two less per publish, a smaller file)
    store.execute("set preserve_insertion_order = false")
    try:
        days = list(as_of_dates)
        for table in (*VERSIONED_TABLES, *marts):
            store.execute(f"create table if not exists analyst.{table} as select * from main.{table} limit 0")
        kept, dropped = _retained(store, days, keep_versions)
        for table in VERSIONED_TABLES:
            _replace_versions(store, table, kept, dropped)
        for table in marts:  # a few rows per version, and a build may (re)measure earlier ones: copied whole
            store.execute(f"create or replace table analyst.{table} as from main.{table}")
        for table in WHOLE_TABLES:
            if table in QUARANTINE_TABLES:
                rows = publishable(store.sql(f"from main.{table}").pl(), QUARANTINE_TABLES[table])
                store.register("_publishable", rows)
                store.execute(f"create or replace table analyst.{table} as from _publishable")
                store.unregister("_publishable")
            else:
                store.execute(f"create or replace table analyst.{table} as from main.{table}")
        store.execute(
            "create or replace view analyst.current_segments as select * from analyst.customer_segments "
            "where as_of = (select max(as_of) from analyst.customer_segments)"
        )
        comments = {**TABLE_COMMENTS, **table_comments}
        for table, text in comments.items():
            kind = "view" if table == "current_segments" else "table"
            store.execute(f"comment on {kind} analyst.{table} is {sql_literal(text)}")
        for table, columns in column_comments.items():
            for column, text in columns.items():
                store.execute(f"comment on column analyst.{table}.{column} is {sql_literal(text)}")
        tables = (*VERSIONED_TABLES, *marts, *WHOLE_TABLES)
        counts = {t: store.execute(f"select count(*) from analyst.{t}").fetchone()[0] for t in tables}
        store.execute("checkpoint analyst")
    finally:
        store.execute("reset preserve_insertion_order")
        store.execute("detach analyst")
    # made while the store was held, so owner-only: analysts read it
    staging.chmod(target.stat().st_mode & 0o777 if target.exists() else shared_file_mode())
    _fsync(staging)
    try:
        _refuse_writer(target)  # one may have connected while the version was built
    except WarehouseBusy:
        _unlink_with_wal(staging)
        raise
    if target.exists():  # keep the file being replaced for `rollback`; a hard link copies nothing
        _atomic_link(target, previous_path(target))
        _move_wal(target, previous_path(target))
    os.replace(staging, target)
    return Published(counts, dropped)


def previous_path(warehouse_path: str | Path) -> Path:
    """Where the analyst file published before the current one is kept."""
    path = Path(warehouse_path)
    return path.with_name(f"{path.name}.previous")


def rollback(warehouse_path: str | Path) -> None:
    """Put the previously published analyst file back, atomically; the current one becomes `.previous`."""
    target, previous = Path(warehouse_path), previous_path(warehouse_path)
    if not previous.exists():
        raise FileNotFoundError(f"{previous}: no previously published analyst file to roll back to")
    swap = target.with_name(f".{target.name}.rollback")
    _refuse_writer(target)
    _refuse_writer(previous)
    _atomic_link(previous, swap)
    _move_wal(previous, swap)
    _atomic_link(target, previous)
    _move_wal(target, previous)
    os.replace(swap, target)
    _move_wal(swap, target)


def personal_columns_in(path: str | Path) -> list[str]:
    """`table.column` of every personal-data column found in an analyst file (should be none)."""
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "select table_name, column_name from information_schema.columns where lower(column_name) in ?",
            [list(PERSONAL_COLUMNS)],
        ).fetchall()
    return [f"{t}.{c}" for t, c in rows]


def _attach_copy(store: duckdb.DuckDBPyConnection, target: Path, staging: Path) -> None:
    """Attach a copy of the published file (or a new file) at `staging` as `analyst`, in STORAGE_VERSION.

    A file keeps the format it was made in, so one published in another format is migrated: its contents
    are copied into a new file.
    """
    attach_new = f"attach ? as analyst (storage_version '{STORAGE_VERSION}')"
    if not target.exists():
        store.execute(attach_new, [str(staging)])
        return
    shutil.copyfile(target, staging)
    store.execute("attach ? as analyst", [str(staging)])
    [(tag,)] = store.execute(
        "select tags['storage_version'] from duckdb_databases() where database_name = 'analyst'"
    ).fetchall()
    if tag == f"{STORAGE_VERSION}+":
        return
    store.execute("detach analyst")
    published = staging.with_name(f"{staging.name}.migrating")
    os.replace(staging, published)
    store.execute("attach ? as published (read_only)", [str(published)])
    try:
        store.execute(attach_new, [str(staging)])
        store.execute("copy from database published to analyst")
    finally:
        store.execute("detach published")
        published.unlink()


def _refuse_writer(path: Path) -> None:
    """Raise WarehouseBusy when another process holds `path` open read-write (DuckDB's lock on the file)."""
    if not path.exists():
        return
    try:
        duckdb.connect(str(path), read_only=True).close()
    except duckdb.Error as error:
        if "Conflicting lock" not in str(error):
            return  # unreadable with the log beside it (one of another file's): publishing replaces it
        holder = re.search(r"held in (.*?\(PID \d+\))", str(error))
        raise WarehouseBusy(
            f"{path}: open read-write in another process ({holder.group(1) if holder else 'unknown'}); "
            "close that connection (analysts open the file with `duckdb -readonly`) and re-run"
        ) from None


def _move_wal(source: Path, name: Path) -> None:
    """Move the write-ahead log of the file `source` (if any) to go with that file under its new `name`."""
    wal = source.with_name(f"{source.name}.wal")
    if wal.exists():
        os.replace(wal, name.with_name(f"{name.name}.wal"))


def _unlink_with_wal(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_name(f"{path.name}.wal").unlink(missing_ok=True)


def _retained(store: duckdb.DuckDBPyConnection, days: list[date], keep: int) -> tuple[list[date], list[date]]:
    """(days to copy in, versions to leave out) of the per-customer tables: the newest `keep` stay."""
    published = [d for (d,) in store.execute("select distinct as_of from analyst.customer_segments").fetchall()]
    newest_first = sorted({*published, *days}, reverse=True)
    kept = set(newest_first[:keep] if keep else newest_first)
    return [d for d in days if d in kept], [d for d in newest_first if d not in kept]


def _replace_versions(store: duckdb.DuckDBPyConnection, table: str, days: list[date], dropped: list[date]) -> None:
    """Versions `days` of `table` copied from the working store; `dropped` ones deleted."""
    store.execute(f"delete from analyst.{table} where as_of in (select unnest(?::date[]))", [[*days, *dropped]])
    store.execute(
        f"insert into analyst.{table} by name select * from main.{table} where as_of in (select unnest(?::date[]))",
        [days],
    )




def _atomic_link(source: Path, name: Path) -> None:
    """Make `name` another name of `source`'s file, replacing whatever `name` was."""
    staging = name.with_name(f".{name.name}.link")
    staging.unlink(missing_ok=True)
    os.link(source, staging)
    os.replace(staging, name)


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
