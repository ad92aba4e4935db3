"""The features service: make and store the feature version of an as-of date, whole or in customer shard steps.

Features are per customer, so the feature table of a set of customers is those customers' rows of the whole table.
With `SEG_CUSTOMER_SHARDS` above 1 each shard step (`stage_feature_shard`) reads only its customers' orders and
profiles (the files ingestion stored of that shard) and writes its rows as a file of the version that no commit
names yet; `commit_feature_shards` makes every shard's file the version in one commit, refused when a shard was
made from other orders than are stored now (README "Customer shards").
"""

from dataclasses import dataclass, replace
from datetime import date, timedelta

import polars as pl
from deltalake.transaction import AddAction

from seg_pipeline import __version__
from seg_pipeline.core.features import changed_day_ranges, compute_customer_features, roll_forward
from seg_pipeline.core.shards import CustomerShard, feature_shard_asset
from seg_pipeline.services.inputs import features_at, orders_until, profiles_at
from seg_pipeline.storage.staging import Staging
from seg_pipeline.storage.store import WorkingStore

#: a version at most this many days old is rolled forward; an older one would touch most customers anyway
ROLL_FORWARD_MAX_DAYS = 31


class StaleFeatures(RuntimeError):
    """A shard of a feature version was made from other orders than are stored now, or its file is gone."""


@dataclass(frozen=True)
class FeatureVersion:
    """What a stored feature version (or one shard of it) reports: its customers, its first rows (their columns:
    the schema), and how it was made."""

    customers: int
    head: pl.DataFrame
    how: str


@dataclass(frozen=True)
class _Made:
    """How a shard's rows were made (from the orders in `orders_state`; rolled forward from `previous_as_of`,
    recomputing `recomputed` customers, or from all orders) and the file holding them (None: no customer)."""

    orders_state: str
    previous_as_of: date | None
    recomputed: int
    customers: int
    head: pl.DataFrame
    file: AddAction | None = None


def orders_state(store: WorkingStore, as_of: date) -> str:
    """Which Parquet files hold the accepted orders of the days <= `as_of` now, and the code version."""
    return f"{__version__}:{store.fingerprint('orders', as_of)}"


def store_features(store: WorkingStore, as_of: date) -> FeatureVersion:
    """Make and store the feature table at `as_of` in this step.

    The latest earlier version (at most ROLL_FORWARD_MAX_DAYS old) made by this code version from exactly the
    orders stored now is rolled forward: only customers with orders on the new days or on days leaving a window
    are recomputed (`core.features.roll_forward`, equal to computing from all orders). Without one, every order
    <= `as_of` is read.
    """
    rows, made = _make(store, as_of, None)
    store.replace_feature_version(as_of, rows, made.orders_state)
    return _described([made])


def stage_feature_shard(store: WorkingStore, as_of: date, shard: CustomerShard) -> FeatureVersion:
    """Make the rows of customer `shard` of the feature version `as_of` (as `store_features`, from that shard's
    orders and profiles only), write them as a file no commit names yet and stage how they were made."""
    rows, made = _make(store, as_of, shard)
    made = replace(made, file=store.put_feature_shard(as_of, rows, shard))
    Staging(store).put(_staged(as_of, shard), made)
    return _described([made])


def commit_feature_shards(store: WorkingStore, as_of: date, shards: int) -> FeatureVersion:
    """Make the staged files of the `shards` shard steps the feature version `as_of` (one commit)."""
    staging = Staging(store)
    made = [
        staging.get(_staged(as_of, CustomerShard(k, shards)),
                    f"shard {k} of {shards} of the features of {as_of} is not staged: materialize "
                    f"{feature_shard_asset(k)} for it first")
        for k in range(shards)
    ]  # fmt: skip
    state = orders_state(store, as_of)
    for k, part in enumerate(made):
        gone = part.file is not None and not store.has_file("customer_features", part.file.path)
        if part.orders_state != state or gone:
            why = "its file is gone" if part.orders_state == state else "it was made from other orders than stored now"
            raise StaleFeatures(f"{feature_shard_asset(k)} of {as_of} cannot be committed ({why}): materialize the "
                                f"feature shards of {as_of} again")  # fmt: skip
    store.commit_feature_shards(as_of, [part.file for part in made if part.file is not None], state)
    staging.drop(f"features-{as_of}")
    return _described(made, shards)


def _staged(as_of: date, shard: CustomerShard) -> str:
    return f"features-{as_of}/shard_{shard.index}_of_{shard.count}"


def _make(store: WorkingStore, as_of: date, shard: CustomerShard | None) -> tuple[pl.DataFrame, _Made]:
    """The feature rows at `as_of` of customer `shard` (None: all), rolled forward from the latest earlier version
    made from the orders stored now (see `store_features`), and how they were made."""
    state = orders_state(store, as_of)
    earlier = store.feature_sources(since=as_of - timedelta(days=ROLL_FORWARD_MAX_DAYS), before=as_of)
    previous_as_of = next((day for day, made_from in earlier if made_from == orders_state(store, day)), None)
    profiles = profiles_at(store, as_of, shard=shard)
    if previous_as_of is None:
        rows = compute_customer_features(orders_until(store, as_of, shard=shard), profiles, as_of)
        return rows, _Made(state, None, rows.height, rows.height, rows.head(5))
    changed = store.customers_ordering(changed_day_ranges(previous_as_of, as_of), shard)
    previous = features_at(store, previous_as_of, shard=shard)
    rows = roll_forward(previous, previous_as_of, orders_until(store, as_of, changed, shard), profiles, as_of)
    return rows, _Made(state, previous_as_of, changed.height, rows.height, rows.head(5))


def _described(made: list[_Made], shards: int = 1) -> FeatureVersion:
    """The `FeatureVersion` of the shards (or the one table) `made`."""
    head = pl.concat([part.head for part in made]).sort("customer_id").head(5)
    sources = {part.previous_as_of for part in made}
    if sources == {None}:
        how = "from all orders"
    elif len(sources) == 1:
        how = f"rolled forward from {made[0].previous_as_of}, {sum(p.recomputed for p in made):,} customers recomputed"
    else:
        how = "; ".join(_described([part]).how for part in made)
    how += f", in {shards} customer shards" if shards > 1 else ""
    return FeatureVersion(sum(part.customers for part in made), head, how)
