import itertools

import polars as pl
import pytest

from seg_pipeline.core.actions import (
    ACTION_TABLE_PATH,
    ASSUMED_SAVE_RATE,
    CHURN_BANDS,
    NO_ACTION,
    action_domain,
    action_shares,
    churn_band,
    contact_value,
    load_action_table,
    recommend_actions,
)
from seg_pipeline.core.lifecycle import LIFECYCLE_STAGES
from seg_pipeline.core.value_tiers import VALUE_TIERS

COST = 0.5
SCHEMA = {"value_tier": pl.Utf8, "lifecycle_stage": pl.Utf8, "churn_risk": pl.Float64, "clv": pl.Float64}


def _customers(rows: list[tuple]) -> pl.DataFrame:
    """Rows of (tier, stage, churn_risk[, clv]); clv defaults to 100 (a contact well worth its cost)."""
    return pl.DataFrame([(*r, 100.0) if len(r) == 3 else r for r in rows], schema=SCHEMA, orient="row")


def test_table_is_total_every_combination_exactly_once():
    table = load_action_table()
    keys = table.select("value_tier", "lifecycle_stage", "churn_band").rows()
    buyers = set(itertools.product(VALUE_TIERS, [s for s in LIFECYCLE_STAGES if s != "prospect"], CHURN_BANDS))
    assert len(keys) == len(set(keys)) == 4 * 5 * 4 + 1
    assert set(keys) == buyers | {("none", "prospect", "none")}
    assert table["recommended_action"].null_count() == table["below_cost_action"].null_count() == 0
    assert NO_ACTION not in table["recommended_action"].to_list()  # only below the contact cost


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
        ("bronze", "lapsed", 0.9, "Win-back email"),
        ("bronze", "lapsed", 0.4, "Win-back email"),
        ("platinum", "lapsed", 0.9, "Win-back call by account manager"),
    ],
)
def test_example_mappings(tier, stage, risk, action):
    assert recommend_actions(_customers([(tier, stage, risk)]), COST).item() == action


def test_no_action_only_when_contact_is_worth_less_than_its_cost():
    # every tier x stage x band, each at CLVs putting the expected value of contact below, at and above the cost
    rows = []
    for tier, stage, band in action_domain().rows():
        risk = {"none": None, "low": 0.1, "medium": 0.45, "high": 0.8}[band]
        for clv in (0.0, 1.0, 5.0, 12.5, 50.0, 1000.0, None):
            rows.append((None if tier == "none" else tier, stage, risk, clv))
    df = _customers(rows)
    out = df.with_columns(
        recommend_actions(df, COST),
        contact_value(pl.col("churn_risk"), pl.col("clv")).alias("ev"),
    )
    idle = out.filter(pl.col("recommended_action") == NO_ACTION)
    assert idle.height and (idle["ev"] < COST).all()  # "No action" only below the cost
    worth = out.filter(pl.col("ev") >= COST)
    assert worth.filter(pl.col("recommended_action") == NO_ACTION).height == 0
    # lapsed customers whose contact is worth its cost are won back, the others are left alone
    lapsed = out.filter(pl.col("lifecycle_stage") == "lapsed")
    assert lapsed.filter(pl.col("ev") >= COST)["recommended_action"].str.starts_with("Win-back").all()
    assert (lapsed.filter(pl.col("ev") < COST)["recommended_action"] == NO_ACTION).all()
    # the cost is a setting: free contact means nobody is left alone, a high one leaves every lapsed customer
    assert NO_ACTION not in recommend_actions(df, 0.0).to_list()
    valued = lapsed.filter(pl.col("ev").is_not_null())
    assert (recommend_actions(valued, 1e9) == NO_ACTION).all()
    # without a churn risk or a CLV the value is unknown, never below the cost: the table's action stands
    assert NO_ACTION not in out.filter(pl.col("ev").is_null())["recommended_action"].to_list()


def test_contact_value_is_the_saved_share_of_the_clv_at_risk():
    df = pl.DataFrame({"churn_risk": [0.8, None, 0.5], "clv": [50.0, 10.0, None]})
    ev = df.select(contact_value(pl.col("churn_risk"), pl.col("clv"))).to_series().to_list()
    assert ev == [pytest.approx(ASSUMED_SAVE_RATE * 0.8 * 50.0), None, None]


def test_action_shares_of_customers_and_clv():
    df = _customers([("bronze", "lapsed", 0.9, 1.0), ("bronze", "lapsed", 0.9, 3.0), ("gold", "stable", 0.1, 96.0),
                     (None, "prospect", None, None)])  # fmt: skip
    shares = action_shares(df.with_columns(recommend_actions(df, COST)))
    assert shares == {
        NO_ACTION: {"customers": 2, "customer_share": 0.5, "clv_share": pytest.approx(0.04)},
        "VIP loyalty rewards": {"customers": 1, "customer_share": 0.25, "clv_share": pytest.approx(0.96)},
        "Welcome series with first-purchase offer": {"customers": 1, "customer_share": 0.25, "clv_share": 0.0},
    }


def test_vectorized_join_keeps_row_order_and_never_null():
    domain = action_domain()
    risk_of = {"none": None, "low": 0.1, "medium": 0.45, "high": 0.8}
    rows = [(None if t == "none" else t, s, risk_of[b]) for t, s, b in domain.rows()] * 3
    df = _customers(rows).sample(fraction=1.0, shuffle=True, seed=7)
    actions = recommend_actions(df, COST)
    assert actions.len() == df.height and actions.null_count() == 0
    lookup = {(t, s, b): action for t, s, b, action, _ in load_action_table().rows()}
    band_of = {r: b for b, r in risk_of.items()}
    expected = [lookup[(t or "none", s, band_of[r])] for t, s, r, _ in df.rows()]
    assert actions.to_list() == expected


def test_unknown_combination_raises_instead_of_null():
    with pytest.raises(ValueError, match="no recommended action"):
        recommend_actions(_customers([("platinum", "prospect", None)]), COST)


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
        extra = pl.DataFrame([("diamond", "new", "low", "x", "x")], schema=table.columns, orient="row")
        load_action_table(_write(tmp_path, pl.concat([table, extra])))
    with pytest.raises(ValueError, match="actions.csv: empty below_cost_action"):
        load_action_table(
            _write(tmp_path, table.with_columns(pl.col("below_cost_action").str.replace(r"^No action$", " ")))
        )
    with pytest.raises(ValueError, match="recommended_action is 'No action'.*only be a below_cost_action"):
        load_action_table(_write(tmp_path, table.with_columns(pl.col("recommended_action").str.replace(
            r"^Win-back email$", NO_ACTION))))  # fmt: skip
