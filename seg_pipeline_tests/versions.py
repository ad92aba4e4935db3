"""A real working store holding small synthetic versions, for the publishing tests."""

from datetime import date
from pathlib import Path

import polars as pl

from seg_pipeline.core.schemas import CUSTOMER_FEATURES, CUSTOMER_SEGMENTS, Table
from seg_pipeline.storage.store import WorkingStore

MART = "segment_summary"


def new_store(folder: Path) -> WorkingStore:
    """An empty working store (its mart table is made by the first version)."""
    return WorkingStore(folder / "store")


def rows(table: Table, day: date, customers: int, **values: object) -> pl.DataFrame:
    """`customers` rows of `table` for version `day`: `values` as given, seeded numbers in the other numeric
    columns (so a version's file has a size to measure), the rest null."""
    given = {
        "as_of": pl.lit(day),
        "customer_id": "c" + pl.int_range(customers).cast(pl.String),
        **{name: pl.lit(value) for name, value in values.items()},
    }

    def column(n: int, name: str, dtype: pl.DataType) -> pl.Expr:
        if name in given:
            return given[name].cast(dtype)
        if dtype.is_numeric():
            return (pl.int_range(customers).hash(seed=day.toordinal() * 100 + n) % 100).cast(dtype)
        return pl.lit(None, dtype)

    return pl.select(column(n, c.name, c.dtype).alias(c.name) for n, c in enumerate(table.columns))


def add_version(store: WorkingStore, day: date, customers: int = 1_000) -> None:
    """Version `day` of the per-customer tables, its segment_versions row and its mart row."""
    store.replace_feature_version(day, rows(CUSTOMER_FEATURES, day, customers), f"orders-{day}")
    store.replace_segment_version(
        day,
        rows(CUSTOMER_SEGMENTS, day, customers, segment_version=f"v{day}", rfm_segment="Champions"),
        pl.DataFrame({"as_of": [day], "segment_version": [f"v{day}"], "run_id": [f"run-{day}"]}),
    )
    mart = pl.DataFrame({"as_of": [day], "rfm_segment": ["Champions"], "customers": [customers]})
    store.replace_mart_versions(MART, mart, [day])
