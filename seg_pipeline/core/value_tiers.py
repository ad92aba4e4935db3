"""Customer value pyramid: platinum / gold / silver / bronze.

Value = trailing 12-month completed spend (``spend_365d``): it reflects what a
customer is worth now, unlike lifetime ``total_spend`` which keeps rewarding
customers who left long ago. Customers are ranked by value (descending), ties
by customer_id (ascending); with n valued customers and cuts (c1, c2, c3) the
top round(c1*n) are platinum, the next up to round(c2*n) gold, up to round(c3*n)
silver, the rest bronze (rounding half up). Null value (prospects) -> null tier.
"""

import polars as pl

from seg_pipeline.core.ranking import rank_by

VALUE_TIERS: tuple[str, ...] = ("platinum", "gold", "silver", "bronze")
DEFAULT_CUTS: tuple[float, float, float] = (0.01, 0.05, 0.20)
TOP_SHARE = 0.20  # the "top 20% of customers" of the 80/20 check


def _validate_cuts(cuts: tuple[float, ...]) -> None:
    ok = len(cuts) == 3 and 0 < cuts[0] < cuts[1] < cuts[2] < 1
    if not ok:
        raise ValueError(f"SEG_VALUE_TIER_CUTS must be 3 strictly increasing fractions in (0, 1), got {cuts!r}")


def _top_count(share: float, n: int) -> int:
    return int(share * n + 0.5)


def assign_value_tiers(
    values: pl.DataFrame, value_col: str, cuts: tuple[float, float, float] = DEFAULT_CUTS
) -> pl.DataFrame:
    """customer_id, value_tier (null where `value_col` is null), in input row order."""
    _validate_cuts(tuple(cuts))
    n = values.height - values[value_col].null_count()
    k1, k2, k3 = (_top_count(c, n) for c in cuts)
    rank = pl.lit(rank_by(values, pl.col(value_col), descending=True))
    tier = (
        pl.when(pl.col(value_col).is_null()).then(None)
        .when(rank <= k1).then(pl.lit("platinum"))
        .when(rank <= k2).then(pl.lit("gold"))
        .when(rank <= k3).then(pl.lit("silver"))
        .otherwise(pl.lit("bronze"))
    )
    return values.select("customer_id", tier.cast(pl.Utf8).alias("value_tier"))


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
