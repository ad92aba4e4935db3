import polars as pl
import pytest

from seg_pipeline.core.value_tiers import assign_value_tiers, tier_revenue_shares


def _values(values: list[float | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {"customer_id": [f"c{i:05d}" for i in range(len(values))], "spend_365d": values},
        schema_overrides={"spend_365d": pl.Float64},
    )


def test_tier_sizes_for_1000_customers_with_prospects_and_ties():
    values = [float(i % 7) for i in range(1000)] + [None] * 25  # heavy ties, 25 prospects
    out = assign_value_tiers(_values(values), "spend_365d")
    counts = dict(out["value_tier"].value_counts().iter_rows())
    assert counts == {"platinum": 10, "gold": 40, "silver": 150, "bronze": 800, None: 25}


def test_ranking_by_value_desc_then_customer_id_and_row_order():
    df = _values([5.0, 100.0, 100.0, None] + [1.0] * 96).reverse()
    out = assign_value_tiers(df, "spend_365d")
    assert out["customer_id"].to_list() == df["customer_id"].to_list()
    tiers = dict(out.iter_rows())
    assert tiers["c00001"] == "platinum"  # tie at 100 broken by customer_id
    assert tiers["c00002"] == "gold"
    assert tiers["c00003"] is None


def test_shuffle_invariant():
    df = _values([float(i % 13) for i in range(400)])
    expected = assign_value_tiers(df, "spend_365d").sort("customer_id")
    assert (
        assign_value_tiers(df.sample(fraction=1.0, shuffle=True, seed=1), "spend_365d")
        .sort("customer_id")
        .equals(expected)
    )


@pytest.mark.parametrize("cuts", [(0.05, 0.01, 0.2), (0.0, 0.05, 0.2), (0.01, 0.05, 1.0), (0.01, 0.05)])
def test_invalid_cuts(cuts):
    with pytest.raises(ValueError, match="SEG_VALUE_TIER_CUTS"):
        assign_value_tiers(_values([1.0]), "spend_365d", cuts)


def test_revenue_shares_and_80_20():
    # 100 customers: top 20 spend 40 each (800), the other 80 spend 2.5 each (200) -> exactly 80/20
    df = _values([40.0] * 20 + [2.5] * 80 + [None] * 5)
    tiered = df.join(assign_value_tiers(df, "spend_365d"), on="customer_id")
    shares = tier_revenue_shares(tiered, "spend_365d")
    assert shares["top20_revenue_share"] == pytest.approx(0.8)
    assert {t: s["customers"] for t, s in shares["tiers"].items()} == {
        "platinum": 1,
        "gold": 4,
        "silver": 15,
        "bronze": 80,
    }
    assert sum(s["revenue_share"] for s in shares["tiers"].values()) == pytest.approx(1.0)
    assert shares["tiers"]["bronze"]["revenue_share"] == pytest.approx(0.2)
    assert shares["tiers"]["platinum"]["revenue_share"] == pytest.approx(0.04)


def test_revenue_shares_with_uneven_top20():
    values = [float(v) for v in range(1, 11)]  # top 2 of 10: 10 + 9 of 55
    df = _values(values)
    shares = tier_revenue_shares(df.join(assign_value_tiers(df, "spend_365d"), on="customer_id"), "spend_365d")
    assert shares["top20_revenue_share"] == pytest.approx(19 / 55)


def test_zero_revenue_gives_none_shares():
    df = _values([0.0, 0.0])
    shares = tier_revenue_shares(df.join(assign_value_tiers(df, "spend_365d"), on="customer_id"), "spend_365d")
    assert shares["top20_revenue_share"] is None
    assert shares["tiers"]["bronze"] == {"customers": 2, "revenue_share": None}
