import polars as pl
import pytest

from seg_pipeline.core.lifecycle import (
    LIFECYCLE_RULES,
    LIFECYCLE_RULES_MARKDOWN,
    LIFECYCLE_STAGES,
    assign_lifecycle,
)

BASE = {  # a stable repeat buyer
    "frequency": 4,
    "days_since_first_order": 400,
    "days_since_last_order": 20,
    "spend_trend_90d": 0.0,
    "orders_90d": 2,
    "churn_risk": 0.2,
}
SCHEMA = {
    "customer_id": pl.Utf8,
    "frequency": pl.Int64,
    "days_since_first_order": pl.Int64,
    "days_since_last_order": pl.Int64,
    "spend_trend_90d": pl.Float64,
    "orders_90d": pl.Int64,
    "churn_risk": pl.Float64,
}


def _stage(horizon: int = 90, **overrides) -> str:
    row = {"customer_id": "c1", **BASE, **overrides}
    return assign_lifecycle(pl.DataFrame([row], schema=SCHEMA), horizon).item()


@pytest.mark.parametrize(
    ("overrides", "stage"),
    [
        ({"frequency": None, "days_since_first_order": None, "days_since_last_order": None,
          "spend_trend_90d": None, "orders_90d": None, "churn_risk": None}, "prospect"),
        ({"days_since_last_order": 120, "churn_risk": 0.9}, "lapsed"),
        ({"frequency": 0, "days_since_first_order": 10, "days_since_last_order": 10}, "new"),
        ({"spend_trend_90d": 0.5}, "growing"),
        ({}, "stable"),
        ({"spend_trend_90d": -0.5}, "declining"),
    ],
)
def test_one_customer_per_stage(overrides, stage):
    assert _stage(**overrides) == stage


def test_lapsed_threshold_is_churn_horizon():
    assert _stage(days_since_last_order=89) == "stable"
    assert _stage(days_since_last_order=90) == "lapsed"
    assert _stage(horizon=30, days_since_last_order=30) == "lapsed"
    assert _stage(horizon=30, days_since_last_order=29) == "stable"


def test_new_window_and_precedence():
    assert _stage(days_since_first_order=89) == "new"
    assert _stage(days_since_first_order=90) == "stable"
    assert _stage(days_since_first_order=89, spend_trend_90d=-1.0, churn_risk=0.9) == "new"  # new before declining
    assert _stage(horizon=30, days_since_first_order=60, days_since_last_order=45) == "lapsed"  # lapsed before new


def test_trend_and_churn_thresholds():
    assert _stage(spend_trend_90d=-0.3) == "declining"
    assert _stage(spend_trend_90d=-0.29) == "stable"
    assert _stage(spend_trend_90d=0.3) == "growing"
    assert _stage(spend_trend_90d=0.29) == "stable"
    assert _stage(churn_risk=0.6) == "declining"
    assert _stage(churn_risk=0.59) == "stable"
    assert _stage(spend_trend_90d=0.5, churn_risk=0.7) == "declining"  # declining before growing
    assert _stage(spend_trend_90d=0.5, frequency=0) == "stable"  # growing needs a repeat purchase day


def test_null_churn_risk_does_not_match():
    assert _stage(churn_risk=None) == "stable"
    assert _stage(churn_risk=None, spend_trend_90d=-0.4) == "declining"


def test_rules_are_total_and_documented():
    assert [stage for stage, _, _ in LIFECYCLE_RULES] == ["prospect", "lapsed", "new", "declining", "growing", "stable"]
    assert set(LIFECYCLE_STAGES) == {stage for stage, _, _ in LIFECYCLE_RULES}
    for stage in LIFECYCLE_STAGES:
        assert f"| {stage} |" in LIFECYCLE_RULES_MARKDOWN
    # a grid of customers: never null, always a known stage
    grid = pl.DataFrame(
        [
            {"customer_id": f"c{i}", **BASE, "days_since_last_order": d, "spend_trend_90d": t, "churn_risk": r}
            for i, (d, t, r) in enumerate(
                (d, t, r) for d in (0, 89, 90, 500) for t in (-1.0, 0.0, 1.0) for r in (None, 0.1, 0.9)
            )
        ],
        schema=SCHEMA,
    )
    stages = assign_lifecycle(grid)
    assert stages.name == "lifecycle_stage"
    assert stages.len() == grid.height and stages.null_count() == 0
    assert set(stages) <= set(LIFECYCLE_STAGES)
