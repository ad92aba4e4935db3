"""The features service: make and store the feature version of an as-of date, whole or one customer shard at a time.

Features are per customer, so the feature table of a set of customers is those customers' rows of the whole table.
With `SEG_CUSTOMER_SHARDS` above 1 the step makes them shard by shard (`core.shards.shard_of`): each shard reads
only its customers' orders and profiles (from the files ingestion stored of that shard), and its rows are stored as
a file of the version, tagged as that shard's, as soon as they are made, so the step holds one shard's orders and
features at a time, not the whole base's (README "Customer shards").
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from seg_pipeline import __version__
from seg_pipeline.core.features import changed_day_ranges, compute_customer_features, roll_forward
from seg_pipeline.core.shards import CustomerShard
from seg_pipeline.services.inputs import features_at, orders_until, profiles_at
from seg_pipeline.storage.store import WorkingStore

#: a version at most this many days old is rolled forward; an older one would touch most customers anyway
ROLL_FORWARD_MAX_DAYS = 31


@dataclass(frozen=True)
class FeatureVersion:
    """What a stored feature version reports: its customers, its first rows (their columns: the schema), and how
    it was made."""

    customers: int
    head: pl.DataFrame
    how: str


def orders_state(store: WorkingStore, as_of: date) -> str:
    """Which Parquet files hold the accepted orders of the days <= `as_of` now, and the code version."""
    return f"{__version__}:{store.fingerprint('orders', as_of)}"


def store_features(store: WorkingStore, as_of: date, shards: int = 1) -> FeatureVersion:
    """Make and store the feature table at `as_of`, in `shards` customer shards (one file each).

    The latest earlier version (at most ROLL_FORWARD_MAX_DAYS old) made by this code version from exactly the
    orders stored now is rolled forward: only customers with orders on the new days or on days leaving a window
    are recomputed (`core.features.roll_forward`, equal to computing from all orders). Without one, every order
    <= `as_of` is read.
    """
    state = orders_state(store, as_of)
    earlier = store.feature_sources(since=as_of - timedelta(days=ROLL_FORWARD_MAX_DAYS), before=as_of)
    previous_as_of = next((day for day, made_from in earlier if made_from == orders_state(store, day)), None)
    touched = None if previous_as_of is None else store.customers_ordering(changed_day_ranges(previous_as_of, as_of))
    heads: list[pl.DataFrame] = []  # each shard's first rows (the rows themselves go to the store)
    customers = 0

    def parts() -> Iterator[pl.DataFrame]:
        nonlocal customers
        for shard in [CustomerShard(k, shards) for k in range(shards)] if shards > 1 else [None]:
            part = _features(store, as_of, shard, previous_as_of, touched)
            customers += part.height
            heads.append(part.head(5))
            yield part

    store.replace_feature_version(as_of, parts(), state, shards)
    how = "from all orders" if touched is None else (
        f"rolled forward from {previous_as_of}, {touched.height:,} customers recomputed"
    )  # fmt: skip
    head = pl.concat(heads).sort("customer_id").head(5)
    return FeatureVersion(customers, head, how + (f", in {shards} customer shards" if shards > 1 else ""))


def _features(
    store: WorkingStore,
    as_of: date,
    shard: CustomerShard | None,
    previous_as_of: date | None,
    touched: pl.DataFrame | None,
) -> pl.DataFrame:
    """The feature rows at `as_of` of customer `shard` (None: all), rolled forward from `previous_as_of` when given."""
    profiles = profiles_at(store, as_of, shard=shard)
    if previous_as_of is None:
        return compute_customer_features(orders_until(store, as_of, shard=shard), profiles, as_of)
    changed = touched if shard is None else touched.filter(shard.holds())
    previous = features_at(store, previous_as_of, shard=shard)
    return roll_forward(previous, previous_as_of, orders_until(store, as_of, changed, shard), profiles, as_of)
