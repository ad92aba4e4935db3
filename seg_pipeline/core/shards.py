"""Customer shards: the stable shard of a customer_id, and exact mergeable summaries of the population.

Shard of a customer among N (``SEG_CUSTOMER_SHARDS``): Lamping & Veach's jump consistent hash (2014) of
``fmix64(FNV-1a 64(SHARD_PREFIX + customer_id))``, the control group's byte hash (``core.control_group``)
under its own prefix, so shards and control flags are independent. Both are fixed, public algorithms on the
id's UTF-8 bytes (never Python's or Polars' hash): a customer's shard depends on nothing but its id and N, on
every machine and library version, and going from N to N + 1 shards moves only 1 / (N + 1) of the customers.

Population cut points are computed exactly from per-shard summaries, so they equal the unsharded ones:

- ``value_counts`` of a shard (its distinct values, ascending, with their counts) merge by adding counts
  (``merge_counts``); the order statistics of the merged counts are those of the whole population.
- RFM scores: ``1 + floor(q x L / n)`` with L the number of scored customers strictly worse (``core.rfm``) is
  ``1 +`` the number of ``score_cuts`` the value is strictly better than, with the cuts order statistics.
- Value tiers rank by value (descending), ties by customer_id (ascending): each of the tier sizes k ends at
  a ``TierBoundary``: the k-th value v (from the merged counts) and, as v may be shared, the id of the last
  customer of value v inside the tier: the ``need``-th smallest id of value v, found from each shard's
  ``tie_ids`` (its ``need`` smallest ids of value v).
- BG/NBD fits read only the distinct (frequency, recency, T) rows with their counts (``core.bgnbd.btyd_counts``):
  the shards' counts, merged like value counts, fit bit for bit as all their buyers (``fit_bgnbd_counts``).
- A customer sample identical for every N: the k customers of smallest (``sample_key``, customer_id);
  each shard's ``bottom_k`` merges by taking the ``bottom_k`` of their concatenation. A sample of a share
  instead of a size (``in_key_share``) is decided by each customer's key alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from seg_pipeline.core.control_group import fmix64, fnv1a64

#: the hash scheme, to be recorded with the shard count wherever shards are stored
SCHEME = "jump(fmix64(fnv1a64('shard:' + customer_id)))"
SHARD_PREFIX = "shard:"
_JUMP_MULTIPLIER = np.uint64(2862933555777941757)
_SAMPLE_KEY = "_sample_key"


def shard_asset(shard: int) -> str:
    """The name of the Dagster asset (and step) that scores customer shard `shard`."""
    return f"segments_shard_{shard}"


def feature_shard_asset(shard: int) -> str:
    """The name of the Dagster asset (and step) that makes the features of customer shard `shard`."""
    return f"features_shard_{shard}"


def jump_hash(keys: np.ndarray, buckets: int) -> np.ndarray:
    """Lamping & Veach's jump consistent hash of each uint64 key into [0, buckets), as int64.

    The published loop, run on every key at once: about ln(buckets) + 1 passes over the keys still jumping.
    """
    if buckets < 1:
        raise ValueError(f"need at least one shard, got {buckets}")
    key = np.array(keys, dtype=np.uint64)
    bucket = np.full(key.size, -1, dtype=np.int64)
    jump = np.zeros(key.size, dtype=np.int64)
    live = np.arange(key.size)
    while live.size:
        bucket[live] = jump[live]
        key[live] = key[live] * _JUMP_MULTIPLIER + np.uint64(1)
        step = (2.0**31) / ((key[live] >> np.uint64(33)).astype(np.float64) + 1.0)
        jump[live] = ((bucket[live] + 1).astype(np.float64) * step).astype(np.int64)
        live = live[jump[live] < buckets]
    return bucket


def shard_of(customer_ids: pl.Series, shards: int) -> pl.Series:
    """The shard (0 .. shards - 1, UInt32) of each id, in order (see the module docstring)."""
    keys = fmix64(fnv1a64(customer_ids, SHARD_PREFIX))
    return pl.Series("shard", jump_hash(keys, shards), dtype=pl.UInt32)


def shard_expr(shards: int, column: str = "customer_id") -> pl.Expr:
    """``shard_of`` as an expression (e.g. in a lazy scan that buckets orders by shard)."""
    return pl.col(column).map_batches(lambda ids: shard_of(ids, shards), return_dtype=pl.UInt32).alias("shard")


@dataclass(frozen=True)
class CustomerShard:
    """Shard `index` of `count`: the customers whose ``shard_of`` among `count` shards is `index`."""

    index: int
    count: int

    def holds(self, column: str = "customer_id") -> pl.Expr:
        """Whether a row's customer is in this shard."""
        return shard_expr(self.count, column) == self.index


def split_by_shard(rows: pl.DataFrame, shards: int, column: str = "customer_id") -> list[pl.DataFrame]:
    """The rows of each shard 0 .. `shards` - 1 (in their order), each distinct id hashed once."""
    ids = rows.get_column(column).unique()
    if ids.null_count():
        raise ValueError(f"{column}: a row without a customer has no shard")
    of = ids.to_frame().with_columns(shard_of(ids, shards))
    parts = rows.join(of, on=column, how="left", maintain_order="left").partition_by("shard", as_dict=True)
    empty = rows.clear()
    return [parts[(k,)].drop("shard") if (k,) in parts else empty for k in range(shards)]


def value_counts(values: pl.Series) -> pl.DataFrame:
    """(value, count) of the non-null `values`, ascending by value: one shard's summary of a column."""
    known = values.drop_nulls()
    if known.dtype.is_float() and known.is_nan().any():
        raise ValueError(f"{values.name}: NaN has no place among ordered values")
    return known.alias("value").to_frame().group_by("value").agg(pl.len().cast(pl.Int64).alias("count")).sort("value")


def merge_counts(parts: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """The counts of the union of the shards whose counts are `parts`: ``value_counts``, or any frame of distinct
    rows with a ``count`` column (e.g. ``core.bgnbd.btyd_counts``), sorted by its other columns."""
    frame = pl.concat(list(parts))
    keys = [c for c in frame.columns if c != "count"]
    return frame.group_by(keys).agg(pl.col("count").sum()).sort(keys)


def _ends_at(counts: pl.DataFrame, positions: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(row of `counts` holding each 0-based position of the ascending order, cumulative counts per row)."""
    ends = np.cumsum(counts["count"].to_numpy())
    total = int(ends[-1]) if ends.size else 0
    if any(not 0 <= p < total for p in positions):
        raise ValueError(f"positions {list(positions)} outside 0..{total - 1}")
    return np.searchsorted(ends, np.asarray(positions, dtype=np.int64), side="right"), ends


def order_statistics(counts: pl.DataFrame, positions: Sequence[int]) -> list:
    """The values at 0-based `positions` of the ascending order of the customers `counts` summarises."""
    rows, _ = _ends_at(counts, positions)
    return counts["value"].gather(pl.Series(rows, dtype=pl.UInt32)).to_list()


def median(counts: pl.DataFrame) -> float | None:
    """The median (mean of the two middle values for an even count) as ``np.median`` computes it; None if empty."""
    n = int(counts["count"].sum())
    if n == 0:
        return None
    low, high = order_statistics(counts, [(n - 1) // 2, n // 2])
    return float(np.mean([low, high]))


def score_cuts(counts: pl.DataFrame, quantiles: int, *, higher_is_better: bool) -> tuple:
    """Cut points of ``1 + floor(quantiles x worse / n)`` scores over the n customers of `counts` (worse: the
    number with a strictly worse value): the score is 1 + the number of cuts the value is strictly better than.

    Score >= s + 1 exactly when worse >= k_s = ceil(s n / quantiles); the k_s-th worst value is the cut.
    """
    n = int(counts["count"].sum())
    if n == 0:
        return ()
    ranks = [(s * n + quantiles - 1) // quantiles for s in range(1, quantiles)]
    return tuple(order_statistics(counts, [k - 1 if higher_is_better else n - k for k in ranks]))


def score_from_cuts(value: pl.Expr, cuts: Sequence, *, higher_is_better: bool) -> pl.Expr:
    """The score (Int8) of ``score_cuts`` of each `value`; null where `value` is null."""
    passed = [(value > cut) if higher_is_better else (value < cut) for cut in cuts]
    score = pl.lit(1, dtype=pl.Int8) + pl.sum_horizontal(pl.lit(0, dtype=pl.Int8), *passed)
    return pl.when(value.is_not_null()).then(score).cast(pl.Int8)


@dataclass(frozen=True)
class TierBoundary:
    """Where the top `size` customers by (value descending, customer_id ascending) end: at value `value`, of
    which the `need` customers of smallest id are in (`better` customers have a larger value)."""

    size: int
    value: object = None
    better: int = 0
    need: int = 0


def tier_boundaries(counts: pl.DataFrame, sizes: Sequence[int]) -> list[TierBoundary]:
    """The ``TierBoundary`` of each top-`size` over the customers of `counts` (size 0: none is in)."""
    n = int(counts["count"].sum())
    kept = [size for size in sizes if size > 0]
    rows, ends = _ends_at(counts, [n - size for size in kept])
    found = {
        size: TierBoundary(size, value, n - int(ends[row]), size - (n - int(ends[row])))
        for size, row, value in zip(kept, rows, counts["value"].gather(pl.Series(rows, dtype=pl.UInt32)), strict=True)
    }
    return [found.get(size, TierBoundary(0)) for size in sizes]


def tie_ids(frame: pl.DataFrame, value_col: str, boundary: TierBoundary) -> pl.Series:
    """One shard's part of a boundary: its (up to ``need``) smallest customer_ids of value ``boundary.value``."""
    if boundary.size == 0:
        return pl.Series("customer_id", [], dtype=pl.String)
    tied = frame.filter(pl.col(value_col) == boundary.value)["customer_id"]
    return tied.bottom_k(boundary.need).sort()


def last_tied_id(parts: Iterable[pl.Series], boundary: TierBoundary) -> str | None:
    """The id of the last customer of value ``boundary.value`` inside the top, from every shard's ``tie_ids``."""
    if boundary.size == 0:
        return None
    return pl.concat(list(parts)).sort()[boundary.need - 1]


def in_top(value: pl.Expr, boundary: TierBoundary, last_id: str | None) -> pl.Expr:
    """Whether a customer is among the top ``boundary.size`` (false for a null value)."""
    if boundary.size == 0:
        return pl.lit(False)
    tied_in = (value == boundary.value) & (pl.col("customer_id") <= last_id)
    return ((value > boundary.value) | tied_in).fill_null(False)


def sample_key(customer_ids: pl.Series, salt: str) -> pl.Series:
    """A customer's stable, salted position in a sample order: fmix64(FNV-1a 64(salt + id)), UInt64."""
    return pl.Series(_SAMPLE_KEY, fmix64(fnv1a64(customer_ids, salt)), dtype=pl.UInt64)


def bottom_k(frame: pl.DataFrame, k: int, salt: str) -> pl.DataFrame:
    """The `k` rows of smallest (``sample_key``, customer_id), in that order: one shard's part of the sample,
    and, applied to the concatenation of every shard's part, the sample of the whole population."""
    keys = sample_key(frame["customer_id"], salt)
    if frame.height > k > 0:  # sort only the rows of key <= the k-th smallest (all of them on ties)
        keep = keys <= np.partition(keys.to_numpy(), k - 1)[k - 1]
        frame, keys = frame.filter(keep), keys.filter(keep)
    return frame.with_columns(keys).sort(_SAMPLE_KEY, "customer_id").head(k).drop(_SAMPLE_KEY)


def in_key_share(customer_ids: pl.Series, share: float, salt: str) -> np.ndarray:
    """Whether each customer's ``sample_key`` falls in the lowest `share` of the 64-bit range: a sample of about
    `share` of the customers, decided per customer (bool array in the order of `customer_ids`)."""
    if share >= 1.0:
        return np.ones(customer_ids.len(), dtype=bool)
    return sample_key(customer_ids, salt).to_numpy() < np.uint64(int(max(share, 0.0) * 2.0**64))
