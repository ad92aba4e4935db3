"""RFM quintile scores and the classic R x F segment grid.

Scores are quintiles over customers with at least one completed order
(``frequency`` not null); prospects get null scores and segment 'Prospect'.

- R: ``days_since_last_order``, reversed (most recent = 5).
- F: ``order_count`` (completed orders, first order included) -- the classic RFM
  count; BTYD ``frequency`` would put every one-time buyer at 0 repeat days.
- M: ``total_spend`` (lifetime completed spend) -- the classic RFM monetary value;
  BTYD ``monetary_value`` is 0 for one-time buyers.

Ties: customers are ranked 1..n by (value, customer_id), so equal values are split
deterministically by customer_id (ascending id gets the lower rank); the score is
``ceil(5 * rank / n)``, which makes quintile sizes equal to within one customer.
"""

import polars as pl

from seg_pipeline.core.ranking import rank_by

PROSPECT_SEGMENT = "Prospect"

# (R scores, F scores, segment); M plays no part. Covers each of the 25 (R, F)
# cells exactly once, so it is total over all 125 (R, F, M) scores.
RFM_SEGMENT_GRID: tuple[tuple[range, range, str], ...] = (
    (range(5, 6), range(4, 6), "Champions"),
    (range(3, 5), range(4, 6), "Loyal customers"),
    (range(4, 6), range(2, 4), "Potential loyalists"),
    (range(5, 6), range(1, 2), "New customers"),
    (range(4, 5), range(1, 2), "Promising"),
    (range(3, 4), range(3, 4), "Need attention"),
    (range(3, 4), range(1, 3), "About to sleep"),
    (range(1, 3), range(5, 6), "Can't lose them"),
    (range(1, 3), range(3, 5), "At risk"),
    (range(1, 3), range(1, 3), "Hibernating"),
)

RFM_SEGMENTS: tuple[str, ...] = tuple(name for _, _, name in RFM_SEGMENT_GRID)

_GRID_LOOKUP: dict[int, str] = {
    10 * r + f: name for rs, fs, name in RFM_SEGMENT_GRID for r in rs for f in fs
}
_SCORED = pl.col("frequency").is_not_null()


def rfm_segment_of(r: int, f: int) -> str:
    """Segment name of an (R, F) score pair, each in 1..5."""
    if r not in range(1, 6) or f not in range(1, 6):
        raise ValueError(f"RFM scores must be in 1..5, got r={r} f={f}")
    return _GRID_LOOKUP[10 * r + f]


def _quintile(features: pl.DataFrame, col: str, descending: bool, n: int) -> pl.Expr:
    """1..5 quintile of `col` over the `n` scored customers (rank by value, then customer_id)."""
    rank = rank_by(features, pl.when(_SCORED).then(pl.col(col)), descending=descending)
    return pl.when(_SCORED).then((5 * pl.lit(rank) + n - 1) // max(n, 1)).cast(pl.Int8)


def score_rfm(features: pl.DataFrame) -> pl.DataFrame:
    """customer_id, r/f/m_score (Int8), rfm_score ('545') and rfm_segment, in input row order."""
    n = features.select(_SCORED.sum()).item()
    scores = features.select(
        "customer_id",
        _quintile(features, "days_since_last_order", True, n).alias("r_score"),
        _quintile(features, "order_count", False, n).alias("f_score"),
        _quintile(features, "total_spend", False, n).alias("m_score"),
    )
    return scores.with_columns(
        pl.concat_str("r_score", "f_score", "m_score").alias("rfm_score"),
        (pl.col("r_score").cast(pl.Int64) * 10 + pl.col("f_score"))
        .replace_strict(_GRID_LOOKUP, return_dtype=pl.Utf8)
        .fill_null(PROSPECT_SEGMENT)
        .alias("rfm_segment"),
    )
