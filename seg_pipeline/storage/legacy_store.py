"""Migration of a working store of the layout before Delta Lake into the Delta store, in place, on first run.

That layout: a DuckDB file (SEG_STORE_PATH) holding the small tables and a `parts` manifest naming the
Parquet files under `<stem>_parts/` that hold each day of the bulk tables, and model pickles under
`<stem>_models/`. Every table is copied (the day-keyed ones day by day through the manifest, the marts
as they are, the model pickles into `model_files`), `landing_files` last, so an interrupted migration leaves
every landed day stale and is simply redone on the next run; then the file is renamed `*.migrated` (its
folders can be deleted once the new store is trusted). Nothing is ingested again: the landed files'
fingerprints come along.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from seg_pipeline.core import schemas
from seg_pipeline.storage.store import DAY_TABLES, PART_TABLES, STORE_TABLES, StoreError, WorkingStore


def migrate_legacy_store(path: str | Path, store: WorkingStore) -> str | None:
    """Migrate the old-layout store at `path` (if there is one) into `store`; returns a line saying so, or None."""
    path = Path(path)
    if not path.is_file():
        return None
    parts_dir = path.with_name(f"{path.stem}_parts")
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [name for (name,) in con.execute("select table_name from duckdb_tables()").fetchall()]
        if "parts" not in tables:
            raise StoreError(
                f"{path}: a working store older than the Parquet-parts layout cannot be migrated; move it aside "
                "(rename it) and re-run: the landed files are ingested again"
            )
        for table in PART_TABLES:
            _copy_parts(con, parts_dir, table, store)
        for table in tables:
            if table in ("parts", "landing_files", "model_registry", *PART_TABLES):
                continue
            rows = _frame(con, table)
            if table in DAY_TABLES:  # the quarantine tables, DuckDB tables in that layout
                store.replace_days(table, rows[DAY_TABLES[table].day].unique().to_list(), rows)
            else:
                store.write(table, rows, {})
        registry = _frame(con, "model_registry")
        paths = [
            store.save_model(k, v, Path(p).read_bytes())
            for k, v, p in registry.select("kind", "version", "path").iter_rows()
        ]
        store.write("model_registry", registry.with_columns(path=pl.Series(paths, dtype=pl.String)), {})
        store.write("landing_files", _frame(con, "landing_files"), {})
    path.rename(path.with_name(f"{path.name}.migrated"))
    return f"{path}: the working store was migrated into {store.uri} (the old file is now {path.name}.migrated)"


def _frame(con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
    frame = con.sql(f"from {table}").pl()
    shape = STORE_TABLES.get(table)
    return frame if shape is None else frame.select(c for c in shape.names if c in frame.columns)


def _copy_parts(con: duckdb.DuckDBPyConnection, parts_dir: Path, table: str, store: WorkingStore) -> None:
    """Every day of the part table `table`, from the Parquet files its manifest names."""
    files = [parts_dir / file for (file,) in con.execute(
        "select distinct file from parts where table_name = ? order by file", [table]
    ).fetchall()]  # fmt: skip
    day = schemas.TABLES[table].day
    for file in files:  # each day is in exactly one file: a commit per file bounds the memory used
        rows = pl.read_parquet(file)
        store.replace_days(table, rows[day].unique().to_list(), rows)
