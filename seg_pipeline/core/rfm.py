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

The scores are computed from cut points (``RfmCuts``: order statistics of the scored values, see
``core.shards.score_cuts``), which per-shard summaries (``rfm_summary``) merge into exactly (``rfm_cuts``):
customers scored shard by shard with the merged cuts get the scores of the whole population.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from seg_pipeline.core.lifecycle import lapsed
from seg_pipeline.core.shards import merge_counts, score_cuts, score_from_cuts, value_counts

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

_GRID_LOOKUP: dict[int, str] = {10 * r + f: name for rs, fs, name in RFM_SEGMENT_GRID for r in rs for f in fs}
_SCORED = pl.col("frequency").is_not_null()
#: 'rfm' at (r * 6 + f) * 6 + m and the segment at r * 6 + f, for scores 1..5 (0: never a score)
_SCORE_TEXTS = pl.Series([f"{r}{f}{m}" for r in range(6) for f in range(6) for m in range(6)], dtype=pl.String)
_SEGMENT_TEXTS = pl.Series([_GRID_LOOKUP.get(10 * r + f) for r in range(6) for f in range(6)], dtype=pl.String)


def rfm_segment_of(r: int, f: int) -> str:
    """Segment name of an (R, F) score pair, each in 1..5."""
    if r not in range(1, 6) or f not in range(1, 6):
        raise ValueError(f"RFM scores must be in 1..5, got r={r} f={f}")
    return _GRID_LOOKUP[10 * r + f]


@dataclass(frozen=True)
class RfmCuts:
    """Cut points of the scores: R among the active (lower is better, 2 cuts), F and M (4 cuts each)."""

    r: tuple
    f: tuple
    m: tuple


def rfm_summary(features: pl.DataFrame, churn_horizon_days: int = 90) -> dict[str, pl.DataFrame]:
    """What the cuts need of `features` (one shard, or all): the value counts of the active customers'
    days_since_last_order ("r") and of the scored customers' order_count ("f") and total_spend ("m")."""
    scored = features.filter(_SCORED)
    active = scored.filter(~lapsed(churn_horizon_days))
    return {
        "r": value_counts(active["days_since_last_order"]),
        "f": value_counts(scored["order_count"]),
        "m": value_counts(scored["total_spend"]),
    }


def rfm_cuts(summaries: Iterable[dict[str, pl.DataFrame]]) -> RfmCuts:
    """The cuts of the population whose shards' ``rfm_summary`` are `summaries`."""
    summaries = list(summaries)
    merged = {k: merge_counts(s[k] for s in summaries) for k in ("r", "f", "m")}
    return RfmCuts(
        r=score_cuts(merged["r"], 3, higher_is_better=False),
        f=score_cuts(merged["f"], 5, higher_is_better=True),
        m=score_cuts(merged["m"], 5, higher_is_better=True),
    )


def score_rfm(features: pl.DataFrame, churn_horizon_days: int = 90, cuts: RfmCuts | None = None) -> pl.DataFrame:
    """customer_id, r/f/m_score (Int8), rfm_score ('545') and rfm_segment, in input row order.

    `cuts`: the population's (``rfm_cuts``) when `features` is one shard of it; by default those of `features`.
    """
    cuts = cuts or rfm_cuts([rfm_summary(features, churn_horizon_days)])
    days = pl.col("days_since_last_order")
    gone = lapsed(churn_horizon_days)
    active = _SCORED & ~gone
    recency = (
        pl.when(active).then(2 + score_from_cuts(days, cuts.r, higher_is_better=False))
        .when(_SCORED).then(pl.when(days < 2 * churn_horizon_days).then(2).otherwise(1))
        .cast(pl.Int8)
    )  # fmt: skip
    scores = features.select(
        "customer_id",
        recency.alias("r_score"),
        pl.when(_SCORED).then(score_from_cuts(pl.col("order_count"), cuts.f, higher_is_better=True)).alias("f_score"),
        pl.when(_SCORED).then(score_from_cuts(pl.col("total_spend"), cuts.m, higher_is_better=True)).alias("m_score"),
    )
    # both texts are looked up by the scores' digits (a null score: a null digit, a null text)
    r, f, m = (pl.col(c).cast(pl.Int32) for c in ("r_score", "f_score", "m_score"))
    return scores.with_columns(
        pl.lit(_SCORE_TEXTS).gather((r * 6 + f) * 6 + m).alias("rfm_score"),
        pl.lit(_SEGMENT_TEXTS).gather(r * 6 + f).fill_null(PROSPECT_SEGMENT).alias("rfm_segment"),
    )
