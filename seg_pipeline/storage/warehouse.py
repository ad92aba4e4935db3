"""The analyst DuckDB file: small, made new on each publish, swapped in atomically, never locked by the pipeline.

Layout. Beside the analyst file `<dir>/<name>.duckdb`, the folder `<dir>/<name>_versions/` holds one Parquet
file per kept version of each per-customer table (`customer_features/<as_of>-<token>.parquet`, likewise
`customer_segments/`), written once, when that version is published, and never changed. The analyst file holds
the small tables (segment_versions, quarantine_*, the marts), `version_files` (which file holds each kept
version) and views: `customer_features` and `customer_segments` over the kept versions' files,
`current_segments` over the newest version's file. DuckDB reads Parquet without an extension. The views name
the files by absolute path (DuckDB resolves a relative one against the reader's working directory), so the
folder travels with the file and keeps its path; after a move, the next publish points the views at the new
place (`version_files` names files relative to the folder).

Publishing. DuckDB admits one writing process or many readers, never both, and analysts hold read-only
connections for hours. Publishing version D writes D's Parquet files (a re-published D gets new files under
new names), then a new analyst file at a temporary sibling, and renames it over the analyst file; the file it
replaces stays as `.previous` (for `rollback`). So a publish writes one version, however many versions are
kept (SEG_KEEP_VERSIONS). A reader that had the old file open keeps seeing that whole old file: no Parquet
file that the current or the previous analyst file names is deleted. A file no longer named by either (a
version beyond SEG_KEEP_VERSIONS, one replaced by a re-publish, a crashed publish's) is deleted by the next
publish, so a connection held across two publishes may find one gone (its query names the file: reconnect).
An analyst file published by earlier code (per-customer tables inside) has its kept versions written out as
Parquet by the first publish. Publishes and rollbacks of one file take turns (a lock in the folder).

The file is written in DuckDB's STORAGE_VERSION format, which every DuckDB from 1.2 on reads (the `duckdb` CLI
analysts install may be older than the library writing it). A write-ahead log left beside the file by a
read-write connection belongs to the file it was written for, so it moves with that file (to `.previous`);
a publish or rollback refuses to run while such a connection is open (its next log would land beside the
new file). The published file is read through a second name, so no log is replayed. Paths reach DuckDB as
parameters, never as SQL text, except in the views' SQL, as quoted literals.

segment_versions and the marts (a few rows per version; a build of `action_lift` measures earlier versions)
keep every version and are copied whole.
"""

from __future__ import annotations

import fcntl
import os
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import NamedTuple

import duckdb
import polars as pl

from seg_pipeline.core import schemas
from seg_pipeline.core.personal_data import publishable
from seg_pipeline.core.schemas import CUSTOMER_FEATURES, CUSTOMER_SEGMENTS, SEGMENT_VERSIONS
from seg_pipeline.storage.landing import PERSONAL_COLUMNS, Kind
from seg_pipeline.storage.store import WorkingStore, duckdb_type, shared_file_mode, sql_literal

#: the analyst file's storage format: DuckDB 1.2 and later read it (the library's newest format only itself)
STORAGE_VERSION = "v1.2.0"
#: the per-customer tables, one Parquet file per version, reached through views of the same name
VERSIONED = {"customer_features": CUSTOMER_FEATURES, "customer_segments": CUSTOMER_SEGMENTS}
VERSIONED_TABLES = tuple(VERSIONED)
#: small tables copied whole on each publish
WHOLE_TABLES = ("segment_versions", "quarantine_orders", "quarantine_profiles")
#: ...of which these as `publishable`: no personal columns, no `extra`, landed text scrubbed of emails and phones
QUARANTINE_TABLES: dict[str, Kind] = {"quarantine_orders": "orders", "quarantine_profiles": "profiles"}
#: the table naming each kept version's file: (table_name, as_of, file relative to the versions folder)
FILES_TABLE = "version_files"
VIEWS = (*VERSIONED_TABLES, "current_segments")
#: how version files are written: zstd level 1 (a fifth smaller than snappy, nearly as fast), row groups that
#: both cores read at once
PARQUET = {"compression": "zstd", "compression_level": 1, "row_group_size": 131_072}

TABLE_COMMENTS = {
    "customer_features": "Point-in-time customer features, one row per (as_of, customer_id); the newest "
    "SEG_KEEP_VERSIONS versions (a view over their Parquet files in the <file name>_versions folder).",
    "customer_segments": "Versioned customer segments, exactly one row per known customer per as_of; the newest "
    "SEG_KEEP_VERSIONS versions (a view over their Parquet files in the <file name>_versions folder).",
    "current_segments": "The latest version (max as_of) of customer_segments.",
    FILES_TABLE: "The Parquet file holding each kept version of customer_features and customer_segments, "
    "relative to the <file name>_versions folder beside this file (the views read them by absolute path).",
    "segment_versions": "One row per version ever published: run id, model versions, quality metrics, row counts, "
    "churn method, last landed order day.",
    "quarantine_orders": "Rejected raw order rows with the raw values, source_file and reason; "
    "emails and phone numbers in them are replaced by '[removed: email]' / '[removed: phone]'.",
    "quarantine_profiles": "Rejected raw profile rows with source_file and reason; name, email and phone left out, "
    "emails and phone numbers elsewhere replaced by '[removed: email]' / '[removed: phone]'.",
}
#: column comments: the schema registry's docs
COLUMN_COMMENTS = {
    **{t.name: t.docs for t in (CUSTOMER_FEATURES, CUSTOMER_SEGMENTS, SEGMENT_VERSIONS)},
    "current_segments": CUSTOMER_SEGMENTS.docs,
}

#: (table, as_of) -> file relative to the versions folder (None: a table inside a file published by earlier code)
Files = dict[tuple[str, date], str | None]


class WarehouseBusy(RuntimeError):
    """The analyst file is open read-write in another process; `str()` is one line naming it and the holder."""


class Published(NamedTuple):
    """What a publish left in the analyst file."""

    counts: dict[str, int]  # rows per table
    dropped: list[date]  # versions not (or no longer) in the per-customer tables: older than the newest kept
    written: int  # bytes of the files the publish wrote (version files and the new analyst file)


def versions_dir(warehouse_path: str | Path) -> Path:
    """The folder of the analyst file's version files: `<dir>/<file stem>_versions`."""
    path = Path(warehouse_path)
    return path.with_name(f"{path.stem}_versions")


def previous_path(warehouse_path: str | Path) -> Path:
    """Where the analyst file published before the current one is kept."""
    path = Path(warehouse_path)
    return path.with_name(f"{path.name}.previous")


def publish(
    store: WorkingStore,
    warehouse_path: str | Path,
    as_of_dates: Sequence[date],
    marts: Mapping[str, str],
    *,
    keep_versions: int = 0,
) -> Published:
    """Publish versions `as_of_dates` of the working store into the analyst file; `marts` maps each mart table to
    its description.

    The per-customer tables then hold the newest `keep_versions` of their versions and `as_of_dates`
    (0: all of them); a version older than those is not written, and older ones leave the file.
    """
    target = Path(warehouse_path)
    folder = versions_dir(target)
    with _turn(folder):
        staging = target.with_name(f".{target.name}.publishing")
        _unlink_with_wal(staging)
        _refuse_writer(target)
        with _opened(target) as old:
            files = _version_files(old)
            kept, dropped = _retained({day for _, day in files}, list(as_of_dates), keep_versions)
            files = {key: name for key, name in files.items() if key[1] in kept and key[1] not in as_of_dates}
            fresh = _exported(old, folder, files)
        fresh.update(_written(store, folder, [day for day in as_of_dates if day in kept]))
        files.update(fresh)
        counts = _build(staging, folder, files, _small_tables(store, marts), {**TABLE_COMMENTS, **marts})
        written = staging.stat().st_size + sum((folder / name).stat().st_size for name in fresh.values())
        _swap_in(staging, target)
        _sweep(target)
    return Published(counts, dropped, written)


def rollback(warehouse_path: str | Path) -> None:
    """Put the previously published analyst file back, atomically; the current one becomes `.previous`."""
    target, previous = Path(warehouse_path), previous_path(warehouse_path)
    if not previous.exists():
        raise FileNotFoundError(f"{previous}: no previously published analyst file to roll back to")
    with _turn(versions_dir(target)):
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
    """`table.column` of every personal-data column found in an analyst file and in the Parquet files of its
    versions folder (`<file>.column`); should be none."""
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "select table_name, column_name from information_schema.columns where lower(column_name) in ?",
            [list(PERSONAL_COLUMNS)],
        ).fetchall()
    folder = versions_dir(path)
    in_files = [
        (str(file.relative_to(folder)), column)
        for file in sorted(folder.glob("*/*.parquet"))
        for column in pl.read_parquet_schema(file)
        if column.lower() in PERSONAL_COLUMNS
    ]
    return [f"{t}.{c}" for t, c in [*rows, *in_files]]


def _small_tables(store: WorkingStore, marts: Mapping[str, str]) -> dict[str, pl.DataFrame]:
    """The tables copied whole, read from the working store (quarantine rows as `publishable`)."""
    tables = {table: store.read(table) for table in (*marts, *WHOLE_TABLES)}
    return {
        t: publishable(rows, QUARANTINE_TABLES[t]) if t in QUARANTINE_TABLES else rows for t, rows in tables.items()
    }


def _version_files(old: duckdb.DuckDBPyConnection | None) -> Files:
    """The versions the published file holds: from its `version_files`, or (a file published by earlier code)
    its per-customer tables' as_of dates."""
    if old is None:
        return {}
    tables = {name for (name,) in old.execute("select table_name from duckdb_tables()").fetchall()}
    if FILES_TABLE in tables:
        rows = old.execute(f"select table_name, as_of, file from {FILES_TABLE}").fetchall()
        return {(table, day): file for table, day, file in rows}
    return {
        (table, day): None
        for table in sorted(tables & set(VERSIONED_TABLES))
        for (day,) in old.execute(f"select distinct as_of from {table}").fetchall()
    }


def _retained(published: set[date], days: list[date], keep: int) -> tuple[set[date], list[date]]:
    """(versions the file keeps, versions left out, newest first): the newest `keep` of `published` and `days`."""
    newest_first = sorted({*published, *days}, reverse=True)
    kept = set(newest_first[:keep] if keep else newest_first)
    return kept, [day for day in newest_first if day not in kept]


def _exported(old: duckdb.DuckDBPyConnection | None, folder: Path, files: Files) -> Files:
    """Version files written for the kept versions that a file published by earlier code holds as tables."""
    return {
        (table, day): _write_version(folder, table, day, old.sql(f"from {table} where as_of = ?", params=[day]).pl())
        for (table, day), name in files.items()
        if name is None
    }


def _written(store: WorkingStore, folder: Path, days: list[date]) -> Files:
    """Version files written for versions `days` of the per-customer tables, from the working store."""
    files: Files = {}
    for day in days:
        for table, schema in VERSIONED.items():
            rows = store.read_parts(table, schema.names, day=day)
            if not rows.is_empty():
                files[(table, day)] = _write_version(folder, table, day, rows)
    return files


def _write_version(folder: Path, table: str, day: date, rows: pl.DataFrame) -> str:
    """Write one version of `table` under a new name, readable by analysts; returns the name (in `folder`)."""
    name = f"{table}/{day.isoformat()}-{uuid.uuid4().hex[:12]}.parquet"
    path = folder / name
    _shared_dir(path.parent)
    partial = path.with_name(f".{path.name}.partial")
    rows.write_parquet(partial, **PARQUET)
    partial.chmod(shared_file_mode())
    _fsync(partial)
    os.replace(partial, path)
    return name


def _build(
    staging: Path, folder: Path, files: Files, small: Mapping[str, pl.DataFrame], comments: Mapping[str, str]
) -> dict[str, int]:
    """Make the analyst file at `staging`: the `small` tables, `version_files` and the views over `files`, with
    comments; returns the rows per table (but version_files)."""
    for (table, day), name in sorted(files.items()):
        if not (folder / name).exists():
            raise FileNotFoundError(
                f"{folder / name}: version {day} of {table} is missing; the {folder.name} folder must stay beside "
                "the analyst file (restore it, or delete the analyst file and re-publish the versions wanted)"
            )
    listed = pl.DataFrame(
        [(table, day, name) for (table, day), name in sorted(files.items())],
        schema={"table_name": pl.String, "as_of": pl.Date, "file": pl.String},
        orient="row",
    )
    with duckdb.connect() as con:
        con.execute(f"attach ? as analyst (storage_version '{STORAGE_VERSION}')", [str(staging)])
        try:
            for table, rows in {**small, FILES_TABLE: listed}.items():
                con.register("_rows", rows)
                con.execute(f"create table analyst.{table} as select {_typed(table, rows)} from _rows")
                con.unregister("_rows")
            paths = {t: [folder / files[key] for key in sorted(files) if key[0] == t] for t in VERSIONED_TABLES}
            for table, schema in VERSIONED.items():
                con.execute(f"create view analyst.{table} as {_over(schema, paths[table])}")
            newest = paths["customer_segments"][-1:]
            con.execute(f"create view analyst.current_segments as {_over(CUSTOMER_SEGMENTS, newest)}")
            _comment(con, comments)
            counts = {
                t: con.execute(f"select count(*) from analyst.{t}").fetchall()[0][0]
                for t in (*VERSIONED_TABLES, *small)
            }
            con.execute("checkpoint analyst")
        finally:
            con.execute("detach analyst")
    return counts


def _typed(table: str, rows: pl.DataFrame) -> str:
    """The select list giving a small table's columns their registry type where Polars has none (json)."""
    registry = schemas.TABLES.get(table)
    special = {c.name: c.sql for c in registry.columns if c.sql} if registry else {}
    replaced = [f"{c}::{special[c]} as {c}" for c in rows.columns if c in special]
    return f"* replace ({', '.join(replaced)})" if replaced else "*"


def _over(schema: schemas.Table, paths: Sequence[Path]) -> str:
    """A SELECT over the Parquet files `paths` of a per-customer table (an empty typed relation when none)."""
    if not paths:
        return "select " + ", ".join(f"null::{duckdb_type(c)} as {c.name}" for c in schema.columns) + " limit 0"
    listed = ", ".join(sql_literal(str(path)) for path in paths)
    return f"select * from read_parquet([{listed}], union_by_name = true)"


def _comment(con: duckdb.DuckDBPyConnection, comments: Mapping[str, str]) -> None:
    """Table and view comments, and the registry's column comments."""
    for table, text in comments.items():
        con.execute(f"comment on {'view' if table in VIEWS else 'table'} analyst.{table} is {sql_literal(text)}")
    for table, columns in COLUMN_COMMENTS.items():
        for column, text in columns.items():
            con.execute(f"comment on column analyst.{table}.{column} is {sql_literal(text)}")


def _swap_in(staging: Path, target: Path) -> None:
    """Rename the made file over the analyst file; the file replaced (and its log) becomes `.previous`."""
    # made beside the store's owner-only files, so given the mode analysts read
    staging.chmod(target.stat().st_mode & 0o777 if target.exists() else shared_file_mode())
    _fsync(staging)
    try:
        _refuse_writer(target)  # one may have connected while the version was built
    except WarehouseBusy:
        _unlink_with_wal(staging)
        raise
    if target.exists():  # a hard link copies nothing
        _atomic_link(target, previous_path(target))
        _move_wal(target, previous_path(target))
    os.replace(staging, target)


def _sweep(target: Path) -> None:
    """Delete the version files neither the analyst file nor `.previous` names (nothing when one is unreadable)."""
    folder, named = versions_dir(target), set()
    for path in (target, previous_path(target)):
        try:
            with _opened(path) as con:
                named.update(name for name in _version_files(con).values() if name)
        except duckdb.Error:
            return
    for path in folder.glob("*/*"):
        if path.is_file() and str(path.relative_to(folder)) not in named:
            path.unlink()


@contextmanager
def _opened(path: Path) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """The DuckDB file at `path` (None if there is none) open read-only under a temporary second name: a
    write-ahead log beside it (an analyst's, or another file's) is not read."""
    if not path.exists():
        yield None
        return
    link = path.with_name(f".{path.name}.reading")
    _unlink_with_wal(link)
    _atomic_link(path, link)
    try:
        with duckdb.connect(str(link), read_only=True) as con:
            yield con
    finally:
        _unlink_with_wal(link)


@contextmanager
def _turn(folder: Path) -> Iterator[None]:
    """Hold the analyst file's publishing lock (a file in its versions folder) across processes."""
    _shared_dir(folder)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        os.fchmod(fd, shared_file_mode())
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _shared_dir(folder: Path) -> None:
    """Make `folder` (and its parents) if missing, listable by whoever may read the analyst file."""
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    mode = shared_file_mode()
    folder.chmod(mode | (mode & 0o444) >> 2)


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


def _atomic_link(source: Path, name: Path) -> None:
    """Make `name` another name of `source`'s file, replacing whatever `name` was."""
    staging = name.with_name(f".{name.name}.link")
    staging.unlink(missing_ok=True)
    os.link(source, staging)
    os.replace(staging, name)


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
