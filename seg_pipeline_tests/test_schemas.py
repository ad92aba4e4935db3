"""The schema registry is what the store creates and the landing reader returns; old stores are migrated to it."""

from datetime import date

import duckdb
import polars as pl
import pytest

from seg_pipeline.core import schemas
from seg_pipeline.storage import landing
from seg_pipeline.storage.store import PART_TABLES, WorkingStore, duckdb_type

STORED = [t for t in schemas.TABLES.values() if t.storage != "landing"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> WorkingStore:
    return WorkingStore(tmp_path_factory.mktemp("store") / "store.duckdb")


@pytest.mark.parametrize("table", STORED, ids=lambda t: t.name)
def test_the_store_creates_each_registry_table_with_its_columns_and_types(store: WorkingStore, table) -> None:
    with store.connect() as con:
        described = con.execute(f"select column_name, column_type from (describe {table.name})").fetchall()
    assert described == [(c.name, duckdb_type(c).upper()) for c in table.columns]
    assert store.frame(f"select * from {table.name} limit 0").schema == pl.Schema(table.polars)


def test_every_part_table_comes_from_the_registry() -> None:
    assert PART_TABLES == {t.name: (t.day, t.polars) for t in STORED if t.storage == "part"}


def test_the_landing_reader_returns_the_registry_columns(tmp_path) -> None:
    for kind, table in schemas.LANDING.items():
        path = tmp_path / kind / "2026-01-02.csv"
        path.parent.mkdir()
        path.write_text(",".join(reversed(table.names)) + ",surplus\n" + ",".join(["1"] * (len(table.names) + 1)))
        [file] = landing.scan(tmp_path, kind)[date(2026, 1, 2)]
        raw = landing.read_raw(file)
        day = schemas.DAY_COLUMN[kind]
        assert raw.columns == [day, "source_file", "source_row", *table.names, "extra", "row_error"]
        raw_table = schemas.INGESTED[kind][0]
        assert {c: raw_table.polars[c] for c in raw.columns if c in raw_table.polars} == {
            c: raw.schema[c] for c in raw.columns if c in raw_table.polars
        }


def test_an_older_store_gets_the_columns_added_since(tmp_path) -> None:
    path = tmp_path / "old.duckdb"
    old = [c for c in schemas.MODEL_REGISTRY.columns if not c.added_later]
    assert len(old) < len(schemas.MODEL_REGISTRY.columns)
    with duckdb.connect(str(path)) as con:
        con.execute(f"create table model_registry ({', '.join(f'{c.name} {duckdb_type(c)}' for c in old)})")
    store = WorkingStore(path)
    assert store.frame("select * from model_registry").schema == pl.Schema(schemas.MODEL_REGISTRY.polars)


def test_open_existing_runs_no_ddl_and_reads_a_missing_store_as_empty(tmp_path) -> None:
    missing = WorkingStore.open_existing(tmp_path / "none" / "store.duckdb", wait=False)
    assert missing.ingested_files("orders").is_empty()
    assert not (tmp_path / "none").exists()

    path = tmp_path / "store.duckdb"
    WorkingStore(path).register_model("churn", "v1", date(2026, 1, 2), tmp_path / "m.pkl", {"auc": 0.7}, "in")
    with duckdb.connect(str(path)) as con:
        con.execute("drop table feature_sources")
    existing = WorkingStore.open_existing(path)
    assert existing.model_in_force("churn", date(2026, 1, 3))["metrics"] == {"auc": 0.7}
    with existing.connect() as con:
        tables = {name for (name,) in con.execute("select table_name from duckdb_tables()").fetchall()}
        with pytest.raises(duckdb.InvalidInputException):  # read-only
            con.execute("create table t (x int)")
    assert "feature_sources" not in tables
