"""Recommended action per customer: value_tier x lifecycle_stage x churn band, and the expected value of contact.

The mapping is the readable table `recommended_actions.csv` next to this module
(tiered CRM service: account-manager outreach for platinum/gold at risk,
onboarding for new customers, loyalty rewards for stable ones, win-back for lapsed
ones, a first-purchase offer for prospects). It must be total over `action_domain()`:
one row per combination, no others. Each row holds two actions: `recommended_action`
when the customer's expected value of contact reaches the contact cost
(`SEG_CONTACT_COST`), `below_cost_action` when it does not. "No action" may only be
a `below_cost_action`: nobody whose contact is worth its cost is left alone.

Expected value of contact = ASSUMED_SAVE_RATE x churn_risk x clv: the 12-month CLV the
churn model expects to lose, times the share of it a contact is assumed to win back.
It is null (never below the cost) without a churn risk or a CLV.
"""

from pathlib import Path

import polars as pl

from seg_pipeline.core.lifecycle import LIFECYCLE_STAGES
from seg_pipeline.core.value_tiers import VALUE_TIERS

ACTION_TABLE_PATH = Path(__file__).with_name("recommended_actions.csv")
KEY_COLUMNS = ["value_tier", "lifecycle_stage", "churn_band"]
ACTION_COLUMNS = ["recommended_action", "below_cost_action"]
NO_ACTION = "No action"
#: share of the CLV at risk that one contact is assumed to win back
ASSUMED_SAVE_RATE = 0.10
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


def contact_value(churn_risk: pl.Expr, clv: pl.Expr) -> pl.Expr:
    """Expected value of contacting a customer, in currency units: ASSUMED_SAVE_RATE x churn_risk x clv."""
    return ASSUMED_SAVE_RATE * churn_risk * clv


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
    """The action table, validated: expected columns, total over `action_domain()`, no duplicates, no blanks,
    "No action" only below the contact cost."""
    table = pl.read_csv(path, infer_schema=False)
    if table.columns != [*KEY_COLUMNS, *ACTION_COLUMNS]:
        raise ValueError(f"{path}: columns must be {[*KEY_COLUMNS, *ACTION_COLUMNS]}, got {table.columns}")
    dupes = table.filter(pl.struct(KEY_COLUMNS).is_duplicated())
    if dupes.height:
        raise ValueError(f"{path}: duplicate key rows {dupes.select(KEY_COLUMNS).unique().rows()[:3]}")
    domain = action_domain()
    missing = domain.join(table, on=KEY_COLUMNS, how="anti")
    extra = table.join(domain, on=KEY_COLUMNS, how="anti")
    if missing.height or extra.height:
        unexpected = extra.select(KEY_COLUMNS).rows()[:3]
        raise ValueError(f"{path}: not total; missing {missing.rows()[:3]}, unexpected {unexpected}")
    for column in ACTION_COLUMNS:
        blank = table.filter(pl.col(column).str.strip_chars().fill_null("") == "")
        if blank.height:
            raise ValueError(f"{path}: empty {column} for {blank.select(KEY_COLUMNS).rows()[:3]}")
    idle = table.filter(pl.col("recommended_action") == NO_ACTION)
    if idle.height:
        raise ValueError(
            f"{path}: recommended_action is '{NO_ACTION}' for {idle.select(KEY_COLUMNS).rows()[:3]}; "
            "it may only be a below_cost_action"
        )
    return table


def recommend_actions(df: pl.DataFrame, contact_cost: float, table: pl.DataFrame | None = None) -> pl.Series:
    """`recommended_action` per row of `df` (value_tier, lifecycle_stage, churn_risk, clv), in row order, never null.

    The row's `below_cost_action` applies when its expected value of contact is below `contact_cost`.
    """
    table = load_action_table() if table is None else table
    by_cost = pl.concat(  # one row per key and side of the cost: a single join picks the action
        [
            table.select(*KEY_COLUMNS, pl.lit(below).alias("below_cost"), pl.col(column).alias("recommended_action"))
            for below, column in ((False, "recommended_action"), (True, "below_cost_action"))
        ]
    )
    keys = df.select(
        pl.col("value_tier").fill_null(NONE),
        pl.col("lifecycle_stage"),
        churn_band(pl.col("churn_risk")).alias("churn_band"),
        (contact_value(pl.col("churn_risk"), pl.col("clv")) < contact_cost).fill_null(False).alias("below_cost"),
    )
    joined = keys.join(by_cost, on=[*KEY_COLUMNS, "below_cost"], how="left", maintain_order="left")
    unmatched = joined.filter(pl.col("recommended_action").is_null())
    if unmatched.height:
        unknown = unmatched.select(KEY_COLUMNS).unique().rows()[:3]
        raise ValueError(f"no recommended action (key outside action_domain) for {unknown}")
    return joined["recommended_action"]


def action_shares(segments: pl.DataFrame) -> dict[str, dict[str, float]]:
    """Per action: its customers, their share of all customers and their share of the total CLV (expected
    12-month revenue; prospects count as 0)."""
    total_clv = segments["clv"].fill_nan(None).sum() or 0.0
    per_action = (
        segments.group_by("recommended_action")
        .agg(pl.len().alias("customers"), pl.col("clv").fill_nan(None).sum().alias("clv"))
        .sort("recommended_action")
    )
    return {
        row["recommended_action"]: {
            "customers": row["customers"],
            "customer_share": row["customers"] / segments.height,
            "clv_share": row["clv"] / total_clv if total_clv > 0 else 0.0,
        }
        for row in per_action.iter_rows(named=True)
    }
