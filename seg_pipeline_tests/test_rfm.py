import itertools
import random
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from seg_pipeline.core.features import compute_customer_features
from seg_pipeline.core.lifecycle import assign_lifecycle
from seg_pipeline.core.rfm import (
    ACTIVE_SEGMENTS,
    PROSPECT_SEGMENT,
    RFM_SEGMENT_GRID,
    RFM_SEGMENTS,
    rfm_segment_of,
    score_rfm,
)


def _features(n: int, seed: int = 0, prospects: int = 0) -> pl.DataFrame:
    """n buyers with heavily tied values plus `prospects` customers without orders."""
    rng = random.Random(seed)
    buyers = pl.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "frequency": [rng.randint(0, 5) for _ in range(n)],
            "days_since_last_order": [rng.choice([0, 7, 30]) for _ in range(n)],
            "order_count": [rng.randint(1, 3) for _ in range(n)],
            "total_spend": [float(rng.choice([10, 20])) for _ in range(n)],
        },
        schema_overrides={"frequency": pl.Int64, "days_since_last_order": pl.Int64, "order_count": pl.Int64},
    )
    none = pl.DataFrame(
        {"customer_id": [f"p{i:05d}" for i in range(prospects)]}, schema_overrides={"customer_id": pl.Utf8}
    )
    return pl.concat([buyers, none], how="diagonal")


def test_grid_is_total_and_non_overlapping():
    for r, f in itertools.product(range(1, 6), repeat=2):
        segment = rfm_segment_of(r, f)
        assert segment in RFM_SEGMENTS
    assert len(RFM_SEGMENTS) == 10 == len(set(RFM_SEGMENTS))
    cells = [(r, f) for rs, fs, _ in RFM_SEGMENT_GRID for r in rs for f in fs]
    assert sorted(cells) == list(itertools.product(range(1, 6), repeat=2))  # each cell exactly once


@pytest.mark.parametrize(
    ("r", "f", "segment"),
    [(5, 5, "Champions"), (4, 4, "Loyal customers"), (5, 1, "New customers"), (1, 5, "Can't lose them"),
     (1, 1, "Hibernating"), (3, 3, "Need attention"), (2, 3, "At risk"), (4, 1, "Promising")],
)
def test_grid_examples(r, f, segment):
    assert rfm_segment_of(r, f) == segment


def test_grid_rejects_out_of_range():
    with pytest.raises(ValueError):
        rfm_segment_of(0, 3)


def test_equal_inputs_share_one_score_in_every_column():
    df = _features(1003).sample(fraction=1.0, shuffle=True, seed=4)  # ids no longer follow the values
    out = pl.concat([df, score_rfm(df).drop("customer_id")], how="horizontal")
    for value, score in [("days_since_last_order", "r_score"), ("order_count", "f_score"), ("total_spend", "m_score")]:
        assert out[score].dtype == pl.Int8
        per_value = out.group_by(value).agg(pl.col(score).n_unique().alias("scores"))
        assert per_value["scores"].max() == 1, f"{score}: equal {value} split across scores"
    triples = out.group_by("days_since_last_order", "order_count", "total_spend").agg(pl.col("rfm_score").n_unique())
    assert triples["rfm_score"].max() == 1


def test_a_tie_straddling_an_edge_takes_the_score_of_its_lowest_member():
    # score = 1 + floor(5 x share of buyers with a strictly lower value): six tied 1s start at 0 -> all score 1
    df = pl.DataFrame(
        {"customer_id": [f"c{i}" for i in range(10)], "frequency": [0] * 10, "days_since_last_order": [5] * 10,
         "order_count": [1, 1, 1, 1, 1, 1, 2, 3, 4, 5], "total_spend": [9.0] * 10}
    )
    out = score_rfm(df)
    assert out["f_score"].to_list() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    assert out["m_score"].to_list() == [1] * 10  # everyone tied: one score, the lowest
    assert out["r_score"].to_list() == [3] * 10  # active, all equally recent


def test_direction_recent_frequent_rich_score_high():
    df = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "frequency": [0, 1, 2, 3, 4],
            "days_since_last_order": [50, 40, 30, 20, 10],
            "order_count": [1, 2, 3, 4, 5],
            "total_spend": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    out = score_rfm(df)
    assert out["r_score"].to_list() == [3, 3, 4, 4, 5]  # all active within 90 days: R 3..5
    assert out["f_score"].to_list() == [1, 2, 3, 4, 5]
    assert out["rfm_score"].to_list() == ["311", "322", "433", "444", "555"]
    assert out["rfm_segment"].to_list()[-1] == "Champions"


def test_recency_is_scored_against_the_churn_horizon():
    days = [0, 10, 29, 30, 59, 60, 119, 120, 500]
    df = pl.DataFrame(
        {"customer_id": [f"c{i}" for i in range(9)], "frequency": [1] * 9, "days_since_last_order": days,
         "order_count": [2] * 9, "total_spend": [5.0] * 9}
    )
    # horizon 60: the five active customers get R 3..5 by thirds; lapsed 60..119 days R 2, 120 days and more R 1
    assert score_rfm(df, churn_horizon_days=60)["r_score"].to_list() == [5, 4, 4, 3, 3, 2, 2, 1, 1]
    # nobody active: every buyer is lapsed, none is called recent
    assert score_rfm(df.with_columns(pl.col("days_since_last_order") + 1000))["r_score"].to_list() == [1] * 9


def test_shuffle_invariant_and_row_order_kept():
    df = _features(500, prospects=20)
    expected = score_rfm(df).sort("customer_id")
    for seed in range(3):
        shuffled = df.sample(fraction=1.0, shuffle=True, seed=seed)
        out = score_rfm(shuffled)
        assert out["customer_id"].to_list() == shuffled["customer_id"].to_list()  # input row order kept
        assert out.sort("customer_id").equals(expected)


def _decaying_cohort(customers: int = 1500, seed: int = 17) -> tuple[pl.DataFrame, date]:
    """Orders of one cohort like CDNOW: everyone buys first in the first 3 months, then most go silent.

    Each customer repeats at a personal rate that dies out (a purchase is followed by another with
    probability 0.6, at an exponential gap of mean 60 days), so by the as-of date most are long silent.
    """
    rng = np.random.default_rng(seed)
    start, as_of = date(2020, 1, 1), date(2021, 3, 31)
    rows = []
    for i in range(customers):
        day = int(rng.integers(0, 90))
        while day <= (as_of - start).days:
            rows.append((f"c{i:05d}", start + timedelta(days=day), float(rng.choice([12.0, 15.0, 30.0]))))
            if rng.random() > 0.6:
                break
            day += 1 + int(rng.exponential(60))
    orders = pl.DataFrame(rows, schema=["customer_id", "order_day", "amount"], orient="row")
    orders = orders.with_row_index("n").select(
        pl.format("o{}", "n").alias("order_id"), "customer_id",
        pl.col("order_day").cast(pl.Datetime("us")).alias("order_ts"), "order_day", "amount",
        pl.lit("USD").alias("currency"), pl.lit("completed").alias("status"),
        pl.lit(None, dtype=pl.Utf8).alias("channel"), pl.lit(None, dtype=pl.Utf8).alias("category"),
        pl.lit(1, dtype=pl.Int32).alias("quantity"),
    )  # fmt: skip
    return orders, as_of


@pytest.mark.parametrize("horizon", [90, 30])
def test_no_lapsed_customer_carries_an_active_segment_on_a_decaying_cohort(horizon):
    orders, as_of = _decaying_cohort()
    features = compute_customer_features(orders, None, as_of)
    stages = assign_lifecycle(features.with_columns(pl.lit(None, dtype=pl.Float64).alias("churn_risk")), horizon)
    out = score_rfm(features, churn_horizon_days=horizon).with_columns(stages)
    lapsed = out.filter(pl.col("lifecycle_stage") == "lapsed")
    assert lapsed.height > 0.7 * out.height  # the base is mostly silent, as CDNOW is
    assert lapsed.filter(pl.col("rfm_segment").is_in(ACTIVE_SEGMENTS)).height == 0
    assert set(lapsed["r_score"].unique()) <= {1, 2}
    assert set(out.filter(pl.col("lifecycle_stage") != "lapsed")["r_score"].unique()) <= {3, 4, 5}


def test_prospects_get_null_scores():
    out = score_rfm(_features(10, prospects=3)).filter(pl.col("customer_id").str.starts_with("p"))
    assert out.height == 3
    assert out.select("r_score", "f_score", "m_score", "rfm_score").null_count().row(0) == (3, 3, 3, 3)
    assert out["rfm_segment"].to_list() == [PROSPECT_SEGMENT] * 3


def test_prospects_do_not_shift_buyer_quintiles():
    buyers = _features(100)
    with_prospects = _features(100, prospects=37)
    assert score_rfm(with_prospects).head(100).equals(score_rfm(buyers))
