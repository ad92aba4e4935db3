"""A working store of the layout before Delta Lake (DuckDB file + `parts` manifest + Parquet parts) is migrated."""

import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from seg_pipeline.launch.runs import materialize_as_of
from seg_pipeline.storage.legacy_store import migrate_legacy_store
from seg_pipeline.storage.store import PART_TABLES, StoreError, WorkingStore
from seg_pipeline_tests.conftest import END, make_settings


def to_old_layout(store: WorkingStore, path: Path) -> dict[str, pl.DataFrame]:
    """Rewrite `store` as the old layout at `path` (what seg_pipeline wrote before Delta Lake), delete it and
    return its tables as they were."""
    parts, models = path.with_name(f"{path.stem}_parts"), path.with_name(f"{path.stem}_models")
    tables = {name: store.read(name) for name in store.table_names()}
    with duckdb.connect(str(path)) as con:
        con.execute("create table parts (table_name varchar, day date, file varchar, rows bigint)")
        for name, rows in tables.items():
            if name in PART_TABLES:
                day = PART_TABLES[name][0]
                for (first,), group in rows.group_by(pl.col(day).dt.year()):  # several days per file, as batches were
                    file = f"{name}/{first}/part.parquet"
                    (parts / file).parent.mkdir(parents=True)
                    group.write_parquet(parts / file)
                    counts = group.group_by(day).len().rows()
                    con.executemany("insert into parts values (?, ?, ?, ?)", [(name, d, file, n) for d, n in counts])
            elif name == "model_files":
                models.mkdir()
                for kind, version, blob in rows.iter_rows():
                    (models / f"{kind}-{version}.pkl").write_bytes(blob)
            else:
                if name == "model_registry":
                    rows = rows.with_columns(path=pl.format(f"{models}/{{}}-{{}}.pkl", "kind", "version"))
                con.register("old_rows", rows)
                con.execute(f"create table {name} as from old_rows")
                con.unregister("old_rows")
    shutil.rmtree(store.uri)
    return tables


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns)


def test_an_old_layout_store_is_migrated_whole_and_nothing_is_ingested_again(tmp_path, landing, instance):
    settings = make_settings(tmp_path, landing)
    materialize_as_of(settings, END - timedelta(days=1), instance)
    before = to_old_layout(WorkingStore(settings.store_uri), Path(settings.store_path))
    assert {"raw_orders", "orders", "profiles", "customer_features", "customer_segments", "landing_files",
            "model_registry", "model_files", "segment_versions", "segment_summary"} <= set(before)  # fmt: skip

    line = migrate_legacy_store(settings.store_path, WorkingStore(settings.store_uri))
    assert line.endswith(f"(the old file is now {Path(settings.store_path).name}.migrated)")
    assert not Path(settings.store_path).exists() and Path(settings.store_path + ".migrated").is_file()
    migrated = WorkingStore(settings.store_uri)
    assert set(migrated.table_names()) == set(before)
    for name, rows in before.items():
        after = migrated.read(name).select(rows.columns)
        if name == "model_registry":  # the pickles moved into model_files
            assert after["path"].to_list() == [f"model_files/{k}-{v}" for k, v in rows.select("kind", "version").rows()]
            after, rows = after.drop("path"), rows.drop("path")
        assert _sorted(after).equals(_sorted(rows)), name

    # the next run ingests only the new day and reuses the migrated models (weekly retraining)
    materialize_as_of(settings, END, instance)
    [first_run] = set(before["landing_files"]["run_id"])
    files = migrated.read("landing_files")
    assert set(files.filter(pl.col("day") < END)["run_id"]) == {first_run}
    assert first_run not in set(files.filter(pl.col("day") == END)["run_id"])
    registry = migrated.read("model_registry")
    assert registry.height == before["model_registry"].height  # reused, not retrained
    assert migrated.version_summary(END)["customers"] > 0


def test_the_first_run_migrates_an_old_store_and_a_store_older_still_is_refused_in_one_line(tmp_path, landing):
    settings = make_settings(tmp_path, landing)
    old = Path(settings.store_path)
    old.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(old)) as con:
        con.execute("create table raw_orders (order_day date)")  # tables instead of Parquet parts: too old
    with pytest.raises(StoreError, match=r"segments_store\.duckdb: a working store older than the Parquet-parts"):
        migrate_legacy_store(old, WorkingStore(settings.store_uri))
    assert old.exists()  # left as it was
