"""What a version of as-of date D may read from the working store: orders and profiles up to D, features of D."""

from collections.abc import Sequence
from datetime import date

import polars as pl

from seg_pipeline.core.features import FEATURE_COLUMNS
from seg_pipeline.core.schemas import ORDERS, PERSONAL_COLUMNS, PROFILES
from seg_pipeline.core.shards import CustomerShard
from seg_pipeline.storage.store import WorkingStore

#: what a version reads of the accepted orders: everything but the currency and where each came from
ORDER_COLUMNS = tuple(c for c in ORDERS.names if c not in ("currency", "source_file", "source_row"))


def orders_until(
    store: WorkingStore, as_of: date, customers: pl.DataFrame | None = None, shard: CustomerShard | None = None
) -> pl.DataFrame:
    """Accepted orders of every day <= `as_of` (the only orders a version may see), optionally of `customers` and
    of customer `shard` only."""
    return store.read_parts("orders", ORDER_COLUMNS, until=as_of, semi=customers, shard=shard)


def profiles_at(
    store: WorkingStore, as_of: date, customers: pl.DataFrame | None = None, shard: CustomerShard | None = None
) -> pl.DataFrame | None:
    """The accepted profiles of the latest snapshot <= `as_of` (optionally of `customers` and of customer `shard`
    only), or None if none."""
    snapshot = _snapshot_day(store, as_of)
    if snapshot is None:
        return None
    # where each row came from, so a duplicate customer_id can be named; personal data is not needed here
    columns = [c for c in PROFILES.names if c not in ("snapshot_date", *PERSONAL_COLUMNS)]
    return store.read_parts("profiles", columns, day=snapshot, semi=customers, shard=shard)


def features_at(
    store: WorkingStore,
    as_of: date,
    customers: pl.DataFrame | None = None,
    columns: Sequence[str] = FEATURE_COLUMNS,
    shard: CustomerShard | None = None,
) -> pl.DataFrame:
    """`columns` of the stored feature table of `as_of` (optionally of `customers` and of customer `shard` only),
    sorted by customer_id (as written: checked, re-sorted only if not)."""
    features = store.read_parts("customer_features", list(columns), day=as_of, semi=customers, shard=shard)
    return features if features.get_column("customer_id").is_sorted() else features.sort("customer_id")


def _snapshot_day(store: WorkingStore, as_of: date) -> date | None:
    """The day of the latest profile snapshot <= `as_of` (None: none yet)."""
    return store.day_rows("profiles", until=as_of)["day"].max()
