"""Customer value pyramid: platinum / gold / silver / bronze.

Value = trailing 12-month completed spend (``spend_365d``): it reflects what a
customer is worth now, unlike lifetime ``total_spend`` which keeps rewarding
customers who left long ago. Customers are ranked by value (descending), ties
by customer_id (ascending); with n valued customers and cuts (c1, c2, c3) the
top round(c1*n) are platinum, the next up to round(c2*n) gold, up to round(c3*n)
silver, the rest bronze (rounding half up). Null value (prospects) -> null tier.

Each tier ends at a boundary (``TierCuts``, see ``core.shards.TierBoundary``), which per-shard summaries
give exactly: ``tier_boundaries`` from the merged value counts of every shard, then ``tier_cuts`` from every
shard's ``core.shards.tie_ids`` of each boundary; customers tiered shard by shard with those cuts get the tiers
of the whole population.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from seg_pipeline.core.shards import TierBoundary, in_top, last_tied_id, tie_ids, tier_boundaries, value_counts

VALUE_TIERS: tuple[str, ...] = ("platinum", "gold", "silver", "bronze")
DEFAULT_CUTS: tuple[float, float, float] = (0.01, 0.05, 0.20)
TOP_SHARE = 0.20  # the "top 20% of customers" of the 80/20 check


def _validate_cuts(cuts: tuple[float, ...]) -> None:
    ok = len(cuts) == 3 and 0 < cuts[0] < cuts[1] < cuts[2] < 1
    if not ok:
        raise ValueError(f"SEG_VALUE_TIER_CUTS must be 3 strictly increasing fractions in (0, 1), got {cuts!r}")


def _top_count(share: float, n: int) -> int:
    return int(share * n + 0.5)


@dataclass(frozen=True)
class TierCuts:
    """Where platinum, gold and silver end: each one's boundary and the id of its last customer of that value."""

    boundaries: tuple[TierBoundary, ...]
    last_ids: tuple[str | None, ...]


def boundaries(counts: pl.DataFrame, cuts: tuple[float, float, float] = DEFAULT_CUTS) -> list[TierBoundary]:
    """The boundaries of the three top tiers over the valued customers summarised by `counts`
    (``core.shards.merge_counts`` of every shard's ``value_counts`` of the value column)."""
    _validate_cuts(tuple(cuts))
    n = int(counts["count"].sum())
    return tier_boundaries(counts, [_top_count(c, n) for c in cuts])


def tier_cuts(bounds: Sequence[TierBoundary], tied: Sequence[Sequence[pl.Series]]) -> TierCuts:
    """The cuts of `bounds` from every shard's ``tie_ids`` (`tied`: per shard, one Series per boundary)."""
    last_ids = [last_tied_id((part[k] for part in tied), b) for k, b in enumerate(bounds)]
    return TierCuts(tuple(bounds), tuple(last_ids))


def own_cuts(values: pl.DataFrame, value_col: str, cuts: tuple[float, float, float] = DEFAULT_CUTS) -> TierCuts:
    """The ``TierCuts`` of the customers of `values` (all of them: one frame, one shard)."""
    bounds = boundaries(value_counts(values[value_col]), cuts)
    return tier_cuts(bounds, [[tie_ids(values, value_col, b) for b in bounds]])


def assign_value_tiers(
    values: pl.DataFrame, value_col: str, cuts: tuple[float, float, float] = DEFAULT_CUTS, *,
    tiers: TierCuts | None = None,
) -> pl.DataFrame:  # fmt: skip
    """customer_id, value_tier (null where `value_col` is null), in input row order.

    `tiers`: the population's cuts when `values` is one shard of it; by default those of `values` (by `cuts`).
    """
    tiers = tiers or own_cuts(values, value_col, cuts)
    value = pl.col(value_col)
    tier = pl.when(value.is_null()).then(None)
    for name, bound, last_id in zip(VALUE_TIERS, tiers.boundaries, tiers.last_ids, strict=False):
        tier = tier.when(in_top(value, bound, last_id)).then(pl.lit(name))
    return values.select("customer_id", tier.otherwise(pl.lit("bronze")).cast(pl.Utf8).alias("value_tier"))


def tier_revenue_shares(tiers_with_values: pl.DataFrame, value_col: str = "spend_365d") -> dict:
    """Per tier {customers, revenue_share} plus `top20_revenue_share` (the 80/20 check).

    Expects customer_id, value_tier and `value_col`; rows with null tier are ignored.
    Shares are None when total revenue is 0.
    """
    valued = tiers_with_values.filter(pl.col("value_tier").is_not_null())
    total = valued[value_col].sum()
    by_tier = valued.group_by("value_tier").agg(pl.len().alias("customers"), pl.col(value_col).sum().alias("revenue"))
    counts = dict(zip(by_tier["value_tier"], by_tier["customers"], strict=True))
    revenue = dict(zip(by_tier["value_tier"], by_tier["revenue"], strict=True))
    tiers = {
        tier: {"customers": counts.get(tier, 0), "revenue_share": revenue.get(tier, 0.0) / total if total else None}
        for tier in VALUE_TIERS
    }
    top = valued[value_col].top_k(_top_count(TOP_SHARE, valued.height)).sum()  # ties are equal: no order needed
    return {"tiers": tiers, "top20_revenue_share": top / total if total else None}
