"""Recommended action per customer: value_tier x lifecycle_stage x churn band.

The mapping is the readable table `recommended_actions.csv` next to this module
(tiered CRM service: account-manager outreach for platinum/gold at risk,
onboarding for new customers, loyalty rewards for stable ones, cheap reactivation
or no action for low-value lapsed ones, a first-purchase offer for prospects).
It must be total over `action_domain()`: one row per combination, no others.
"""

from pathlib import Path

import polars as pl

from seg_pipeline.core.lifecycle import LIFECYCLE_STAGES
from seg_pipeline.core.value_tiers import VALUE_TIERS

ACTION_TABLE_PATH = Path(__file__).with_name("recommended_actions.csv")
KEY_COLUMNS = ["value_tier", "lifecycle_stage", "churn_band"]
# Churn bands: low < MEDIUM_FROM <= medium < HIGH_FROM <= high; null risk -> 'none'.
CHURN_MEDIUM_FROM = 0.3
CHURN_HIGH_FROM = 0.6
CHURN_BANDS: tuple[str, ...] = ("low", "medium", "high", "none")
NONE = "none"  # key value for a null tier (prospects) or a null churn risk


def churn_band(risk: pl.Expr) -> pl.Expr:
    """Churn band of a churn-risk expression: low / medium / high, 'none' when null."""
    return (
        pl.when(risk.is_null()).then(pl.lit(NONE))
        .when(risk < CHURN_MEDIUM_FROM).then(pl.lit("low"))
        .when(risk < CHURN_HIGH_FROM).then(pl.lit("medium"))
        .otherwise(pl.lit("high"))
    )


def action_domain() -> pl.DataFrame:
    """Every key the table must cover: each real tier x non-prospect stage x band, plus (none, prospect, none)."""
    buyers = (
        pl.DataFrame({"value_tier": list(VALUE_TIERS)})
        .join(pl.DataFrame({"lifecycle_stage": [s for s in LIFECYCLE_STAGES if s != "prospect"]}), how="cross")
        .join(pl.DataFrame({"churn_band": list(CHURN_BANDS)}), how="cross")
    )
    prospects = pl.DataFrame({"value_tier": [NONE], "lifecycle_stage": ["prospect"], "churn_band": [NONE]})
    return pl.concat([prospects, buyers])


def load_action_table(path: Path = ACTION_TABLE_PATH) -> pl.DataFrame:
    """The action table, validated: expected columns, total over `action_domain()`, no duplicates, no blanks."""
    table = pl.read_csv(path, infer_schema=False)
    if table.columns != [*KEY_COLUMNS, "recommended_action"]:
        raise ValueError(f"{path}: columns must be {[*KEY_COLUMNS, 'recommended_action']}, got {table.columns}")
    dupes = table.filter(pl.struct(KEY_COLUMNS).is_duplicated())
    if dupes.height:
        raise ValueError(f"{path}: duplicate key rows {dupes.select(KEY_COLUMNS).unique().rows()[:3]}")
    domain = action_domain()
    missing = domain.join(table, on=KEY_COLUMNS, how="anti")
    extra = table.join(domain, on=KEY_COLUMNS, how="anti")
    if missing.height or extra.height:
        unexpected = extra.select(KEY_COLUMNS).rows()[:3]
        raise ValueError(f"{path}: not total; missing {missing.rows()[:3]}, unexpected {unexpected}")
    blank = table.filter(pl.col("recommended_action").str.strip_chars().fill_null("") == "")
    if blank.height:
        raise ValueError(f"{path}: empty recommended_action for {blank.select(KEY_COLUMNS).rows()[:3]}")
    return table


def recommend_actions(df: pl.DataFrame, table: pl.DataFrame | None = None) -> pl.Series:
    """`recommended_action` per row of `df` (value_tier, lifecycle_stage, churn_risk), in row order, never null."""
    table = load_action_table() if table is None else table
    keys = df.select(
        pl.col("value_tier").fill_null(NONE),
        pl.col("lifecycle_stage"),
        churn_band(pl.col("churn_risk")).alias("churn_band"),
    )
    joined = keys.join(table, on=KEY_COLUMNS, how="left", maintain_order="left")
    unmatched = joined.filter(pl.col("recommended_action").is_null())
    if unmatched.height:
        unknown = unmatched.select(KEY_COLUMNS).unique().rows()[:3]
        raise ValueError(f"no recommended action (key outside action_domain) for {unknown}")
    return joined["recommended_action"]
