"""RFM scores and the classic R x F segment grid.

Scores are over customers with at least one completed order (``frequency`` not null);
prospects get null scores and segment 'Prospect'.

- R: ``days_since_last_order`` against the churn horizon H (``SEG_CHURN_HORIZON_DAYS``), so that a
  lapsed customer is never called recent: customers active within H (not lapsed, the rule of
  ``core/lifecycle.py``) score 3..5 by thirds of their recency among the active; lapsed customers
  score 2 when silent for fewer than 2H days and 1 from 2H days on.
- F: ``order_count`` (completed orders, first order included) -- the classic RFM
  count; BTYD ``frequency`` would put every one-time buyer at 0 repeat days.
- M: ``total_spend`` (lifetime completed spend) -- the classic RFM monetary value;
  BTYD ``monetary_value`` is 0 for one-time buyers.

Ties: equal values always share a score. A score is ``1 + floor(q x share of the scored customers with a
strictly worse value)`` over q quantiles (q = 5 for F and M, q = 3 among the active for R, offset to 3..5),
so a group of tied customers that straddles a quantile edge takes the score of its lowest member. Quantiles
are therefore only equal-sized when values are distinct; on heavy ties (55% one-time buyers) some scores
are empty.
"""

import polars as pl

from seg_pipeline.core.lifecycle import lapsed

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
#: the segments of the R 3..5 rows: only customers active within the churn horizon carry them
ACTIVE_SEGMENTS: tuple[str, ...] = tuple(name for rs, _, name in RFM_SEGMENT_GRID if min(rs) >= 3)

_GRID_LOOKUP: dict[int, str] = {
    10 * r + f: name for rs, fs, name in RFM_SEGMENT_GRID for r in rs for f in fs
}
_SCORED = pl.col("frequency").is_not_null()
#: 'rfm' at (r * 6 + f) * 6 + m and the segment at r * 6 + f, for scores 1..5 (0: never a score)
_SCORE_TEXTS = pl.Series([f"{r}{f}{m}" for r in range(6) for f in range(6) for m in range(6)], dtype=pl.String)
_SEGMENT_TEXTS = pl.Series([_GRID_LOOKUP.get(10 * r + f) for r in range(6) for f in range(6)], dtype=pl.String)


def rfm_segment_of(r: int, f: int) -> str:
    """Segment name of an (R, F) score pair, each in 1..5."""
    if r not in range(1, 6) or f not in range(1, 6):
        raise ValueError(f"RFM scores must be in 1..5, got r={r} f={f}")
    return _GRID_LOOKUP[10 * r + f]


def _tied_score(value: pl.Expr, among: pl.Expr, quantiles: int, *, higher_is_better: bool) -> pl.Expr:
    """1..`quantiles` for rows where `among` holds: 1 + floor(quantiles x share of those rows strictly worse)."""
    kept = pl.when(among).then(value)
    worse = kept.rank("min", descending=not higher_is_better) - 1  # rows strictly worse than this one
    return (1 + quantiles * worse // pl.max_horizontal(among.sum(), 1)).cast(pl.Int8)


def score_rfm(features: pl.DataFrame, churn_horizon_days: int = 90) -> pl.DataFrame:
    """customer_id, r/f/m_score (Int8), rfm_score ('545') and rfm_segment, in input row order."""
    days = pl.col("days_since_last_order")
    gone = lapsed(churn_horizon_days)
    active = _SCORED & ~gone
    recency = (
        pl.when(active).then(2 + _tied_score(days, active, 3, higher_is_better=False))
        .when(_SCORED).then(pl.when(days < 2 * churn_horizon_days).then(2).otherwise(1))
        .cast(pl.Int8)
    )  # fmt: skip
    scores = features.select(
        "customer_id",
        recency.alias("r_score"),
        _tied_score(pl.col("order_count"), _SCORED, 5, higher_is_better=True).alias("f_score"),
        _tied_score(pl.col("total_spend"), _SCORED, 5, higher_is_better=True).alias("m_score"),
    )
    # both texts are looked up by the scores' digits (a null score: a null digit, a null text)
    r, f, m = (pl.col(c).cast(pl.Int32) for c in ("r_score", "f_score", "m_score"))
    return scores.with_columns(
        pl.lit(_SCORE_TEXTS).gather((r * 6 + f) * 6 + m).alias("rfm_score"),
        pl.lit(_SEGMENT_TEXTS).gather(r * 6 + f).fill_null(PROSPECT_SEGMENT).alias("rfm_segment"),
    )
