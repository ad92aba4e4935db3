import itertools
import random

import polars as pl
import pytest

from seg_pipeline.core.rfm import PROSPECT_SEGMENT, RFM_SEGMENT_GRID, RFM_SEGMENTS, rfm_segment_of, score_rfm


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


def test_quintiles_equal_sized_despite_ties():
    out = score_rfm(_features(1003))
    for col in ("r_score", "f_score", "m_score"):
        sizes = out[col].value_counts()["count"].to_list()
        assert out[col].dtype == pl.Int8
        assert sorted(out[col].unique().to_list()) == [1, 2, 3, 4, 5]
        assert max(sizes) - min(sizes) <= 1


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
    assert out["r_score"].to_list() == [1, 2, 3, 4, 5]
    assert out["f_score"].to_list() == [1, 2, 3, 4, 5]
    assert out["rfm_score"].to_list() == ["111", "222", "333", "444", "555"]
    assert out["rfm_segment"].to_list()[-1] == "Champions"


def test_tie_break_by_customer_id_and_shuffle_invariant():
    df = _features(500, prospects=20)
    expected = score_rfm(df).sort("customer_id")
    for seed in range(3):
        shuffled = df.sample(fraction=1.0, shuffle=True, seed=seed)
        out = score_rfm(shuffled)
        assert out["customer_id"].to_list() == shuffled["customer_id"].to_list()  # input row order kept
        assert out.sort("customer_id").equals(expected)
    # all-equal values: ranks follow customer_id
    same = pl.DataFrame(
        {"customer_id": ["e", "d", "c", "b", "a"], "frequency": [0] * 5, "days_since_last_order": [3] * 5,
         "order_count": [1] * 5, "total_spend": [9.0] * 5}
    )
    assert score_rfm(same)["m_score"].to_list() == [5, 4, 3, 2, 1]


def test_prospects_get_null_scores():
    out = score_rfm(_features(10, prospects=3)).filter(pl.col("customer_id").str.starts_with("p"))
    assert out.height == 3
    assert out.select("r_score", "f_score", "m_score", "rfm_score").null_count().row(0) == (3, 3, 3, 3)
    assert out["rfm_segment"].to_list() == [PROSPECT_SEGMENT] * 3


def test_prospects_do_not_shift_buyer_quintiles():
    buyers = _features(100)
    with_prospects = _features(100, prospects=37)
    assert score_rfm(with_prospects).head(100).equals(score_rfm(buyers))
