"""Customer life-cycle stage from rules (CRM life cycle: acquisition, formation, stability, decline).

The ordered rule list `LIFECYCLE_RULES` is the single definition: rules are evaluated
top to bottom, the first match wins, and the last rule always matches, so every
customer gets exactly one stage. `LIFECYCLE_RULES_MARKDOWN` renders the same list.
"last N days" follows the feature windows: day offsets 0..N-1 before as_of.
"""

from collections.abc import Callable

import polars as pl

LIFECYCLE_STAGES: tuple[str, ...] = ("prospect", "new", "growing", "stable", "declining", "lapsed")
NEW_WINDOW_DAYS = 90
TREND_THRESHOLD = 0.3
DECLINING_CHURN_RISK = 0.6


def lapsed(churn_horizon_days: int) -> pl.Expr:
    """No completed order in the last H days; the one definition RFM's recency score also follows."""
    return pl.col("days_since_last_order") >= churn_horizon_days


# (stage, rule text, condition given the churn horizon H in days); order matters.
LIFECYCLE_RULES: tuple[tuple[str, str, Callable[[int], pl.Expr]], ...] = (
    ("prospect", "no completed order (`frequency` is null)", lambda h: pl.col("frequency").is_null()),
    (
        "lapsed",
        "no completed order in the last H days: `days_since_last_order >= H` "
        "(H = `SEG_CHURN_HORIZON_DAYS`, default 90)",
        lapsed,
    ),
    (
        "new",
        f"first completed order in the last {NEW_WINDOW_DAYS} days: `days_since_first_order < {NEW_WINDOW_DAYS}`",
        lambda h: pl.col("days_since_first_order") < NEW_WINDOW_DAYS,
    ),
    (
        "declining",
        f"`spend_trend_90d <= -{TREND_THRESHOLD}` or `churn_risk >= {DECLINING_CHURN_RISK}`",
        lambda h: (pl.col("spend_trend_90d") <= -TREND_THRESHOLD) | (pl.col("churn_risk") >= DECLINING_CHURN_RISK),
    ),
    (
        "growing",
        f"`spend_trend_90d >= +{TREND_THRESHOLD}` and `frequency >= 1` (a repeat purchase day)",
        lambda h: (pl.col("spend_trend_90d") >= TREND_THRESHOLD) & (pl.col("frequency") >= 1),
    ),
    ("stable", "otherwise", lambda h: pl.lit(True)),
)

LIFECYCLE_RULES_MARKDOWN: str = "\n".join(
    ["| # | stage | rule (first match wins) |", "|---|---|---|"]
    + [f"| {i} | {stage} | {text} |" for i, (stage, text, _) in enumerate(LIFECYCLE_RULES, start=1)]
)


def lifecycle_expr(churn_horizon_days: int = 90) -> pl.Expr:
    """Expression for `lifecycle_stage`; a null condition (e.g. null churn_risk) counts as not matched.

    The rules pick the number of the stage, which is then looked up (string branches would copy text per rule).
    """
    (_, _, first_cond), *rest = LIFECYCLE_RULES
    number = pl.when(first_cond(churn_horizon_days)).then(pl.lit(0, dtype=pl.UInt8))
    for k, (_, _, cond) in enumerate(rest, start=1):
        number = number.when(cond(churn_horizon_days)).then(pl.lit(k, dtype=pl.UInt8))
    stages = pl.Series([stage for stage, _, _ in LIFECYCLE_RULES], dtype=pl.String)
    return pl.lit(stages).gather(number).alias("lifecycle_stage")


def assign_lifecycle(df: pl.DataFrame, churn_horizon_days: int = 90) -> pl.Series:
    """`lifecycle_stage` per row of `df` (features columns plus churn_risk)."""
    return df.select(lifecycle_expr(churn_horizon_days)).to_series()
