import itertools

import polars as pl
import pytest

from seg_pipeline.core.actions import (
    ACTION_TABLE_PATH,
    CHURN_BANDS,
    action_domain,
    churn_band,
    load_action_table,
    recommend_actions,
)
from seg_pipeline.core.lifecycle import LIFECYCLE_STAGES
from seg_pipeline.core.value_tiers import VALUE_TIERS


def _customers(rows: list[tuple[str | None, str, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"value_tier": pl.Utf8, "lifecycle_stage": pl.Utf8, "churn_risk": pl.Float64}, orient="row"
    )


def test_table_is_total_every_combination_exactly_once():
    table = load_action_table()
    keys = table.select("value_tier", "lifecycle_stage", "churn_band").rows()
    buyers = set(itertools.product(VALUE_TIERS, [s for s in LIFECYCLE_STAGES if s != "prospect"], CHURN_BANDS))
    assert len(keys) == len(set(keys)) == 4 * 5 * 4 + 1
    assert set(keys) == buyers | {("none", "prospect", "none")}
    assert table["recommended_action"].null_count() == 0


def test_churn_band_thresholds():
    risks = pl.DataFrame({"r": [None, 0.0, 0.29, 0.3, 0.59, 0.6, 1.0]}, schema={"r": pl.Float64})
    assert risks.select(churn_band(pl.col("r"))).to_series().to_list() == [
        "none",
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]


@pytest.mark.parametrize(
    ("tier", "stage", "risk", "action"),
    [
        (None, "prospect", None, "Welcome series with first-purchase offer"),
        ("platinum", "declining", 0.7, "Personal outreach by account manager"),
        ("gold", "stable", 0.65, "Personal outreach by account manager"),
        ("platinum", "stable", 0.1, "VIP loyalty rewards"),
        ("silver", "stable", 0.1, "Loyalty rewards"),
        ("bronze", "new", 0.2, "Onboarding email series"),
        ("gold", "new", None, "VIP onboarding by account manager"),
        ("bronze", "lapsed", 0.9, "No action"),
        ("bronze", "lapsed", 0.4, "Low-cost reactivation email"),
        ("platinum", "lapsed", 0.9, "Win-back call by account manager"),
    ],
)
def test_example_mappings(tier, stage, risk, action):
    assert recommend_actions(_customers([(tier, stage, risk)])).item() == action


def test_vectorized_join_keeps_row_order_and_never_null():
    domain = action_domain()
    risk_of = {"none": None, "low": 0.1, "medium": 0.45, "high": 0.8}
    rows = [(None if t == "none" else t, s, risk_of[b]) for t, s, b in domain.rows()] * 3
    df = _customers(rows).sample(fraction=1.0, shuffle=True, seed=7)
    actions = recommend_actions(df)
    assert actions.len() == df.height and actions.null_count() == 0
    lookup = {(t, s, b): action for t, s, b, action in load_action_table().rows()}
    band_of = {r: b for b, r in risk_of.items()}
    expected = [lookup[(t or "none", s, band_of[r])] for t, s, r in df.rows()]
    assert actions.to_list() == expected


def test_unknown_combination_raises_instead_of_null():
    with pytest.raises(ValueError, match="no recommended action"):
        recommend_actions(_customers([("platinum", "prospect", None)]))


def _write(tmp_path, table: pl.DataFrame):
    path = tmp_path / "actions.csv"
    table.write_csv(path)
    return path


def test_load_rejects_missing_and_duplicate_rows(tmp_path):
    table = pl.read_csv(ACTION_TABLE_PATH, infer_schema=False)
    with pytest.raises(ValueError, match="actions.csv: not total"):
        load_action_table(_write(tmp_path, table.head(-1)))
    with pytest.raises(ValueError, match="actions.csv: duplicate"):
        load_action_table(_write(tmp_path, pl.concat([table, table.tail(1)])))
    with pytest.raises(ValueError, match="actions.csv: not total"):
        extra = pl.DataFrame([("diamond", "new", "low", "x")], schema=table.columns, orient="row")
        load_action_table(_write(tmp_path, pl.concat([table, extra])))
    with pytest.raises(ValueError, match="actions.csv: empty"):
        load_action_table(
            _write(tmp_path, table.with_columns(pl.col("recommended_action").str.replace(r"^No action$", " ")))
        )
