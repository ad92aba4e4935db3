"""The schema registry is what the store writes and reads back and what the landing reader returns."""

from datetime import date

import polars as pl
import pytest

from seg_pipeline.core import schemas
from seg_pipeline.storage import landing
from seg_pipeline.storage.store import PART_TABLES, WorkingStore

STORED = [t for t in schemas.TABLES.values() if t.storage != "landing"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> WorkingStore:
    return WorkingStore(tmp_path_factory.mktemp("store") / "store")


@pytest.mark.parametrize("table", STORED, ids=lambda t: t.name)
def test_each_registry_table_reads_back_with_its_columns_and_types(store: WorkingStore, table) -> None:
    assert store.frame(f"select * from {table.name} limit 0").schema == pl.Schema(table.polars)  # never written
    match = {table.day: []} if table.day else {}
    store.write(table.name, table.empty(), match)
    assert store.read(table.name).schema == pl.Schema(table.polars)  # written: the Delta table's own schema
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


def test_open_existing_creates_nothing_and_reads_a_missing_store_as_empty(tmp_path) -> None:
    missing = WorkingStore.open_existing(tmp_path / "none" / "store")
    assert missing.ingested_files("orders").is_empty()
    assert missing.model_in_force("churn", date(2026, 1, 3)) is None
    assert not (tmp_path / "none").exists()

    path = tmp_path / "store"
    WorkingStore(path).register_model("churn", "v1", date(2026, 1, 2), "model_files/churn-v1", {"auc": 0.7}, "in")
    existing = WorkingStore.open_existing(path)
    assert existing.model_in_force("churn", date(2026, 1, 3))["metrics"] == {"auc": 0.7}
    assert existing.table_names() == ["model_registry"]
