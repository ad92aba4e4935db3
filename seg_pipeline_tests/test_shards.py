"""Customer shards: the stable shard hash, and per-shard summaries merged into exactly the unsharded cut points."""

import numpy as np
import polars as pl
import pytest

from seg_pipeline.core import bgnbd, rfm, shards, value_tiers
from seg_pipeline.core.lifecycle import lapsed
from seg_pipeline_tests.ml_synth import simulate_bgnbd

HORIZON = 90
IDS = ["C0000001", "C0000002", "C0000003", "C0000006", "customer-42", "", "é-ü 7", "0", "X" * 40, "ab"]
#: the published shards of IDS for N = 1, 3 and 4: they must never change (stored orders are bucketed by them)
GOLDEN = {
    1: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    3: [1, 1, 2, 0, 2, 1, 1, 1, 2, 0],
    4: [3, 3, 2, 0, 2, 1, 1, 1, 2, 0],
}
_MASK = 2**64 - 1


def _reference_shard(customer_id: str, buckets: int) -> int:
    """The scheme of ``core.shards`` one id at a time, written from the published algorithms."""
    h = 0xCBF29CE484222325
    for byte in (shards.SHARD_PREFIX + customer_id).encode():
        h = ((h ^ byte) * 0x100000001B3) & _MASK
    for shift, multiplier in ((33, 0xFF51AFD7ED558CCD), (33, 0xC4CEB9FE1A85EC53)):
        h = ((h ^ (h >> shift)) * multiplier) & _MASK
    key, b, j = h ^ (h >> 33), -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & _MASK
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


@pytest.mark.parametrize("n", sorted(GOLDEN))
def test_shard_golden_values(n):
    ids = pl.Series("customer_id", IDS)
    assert shards.shard_of(ids, n).to_list() == GOLDEN[n] == [_reference_shard(i, n) for i in IDS]


def test_shards_vectorised_balanced_and_consistent():
    ids = pl.Series("customer_id", [f"C{i:07d}" for i in range(200_000)] + [f"web-{i}" for i in range(1_000)])
    by_n = {n: shards.shard_of(ids, n).to_numpy() for n in (1, 3, 4, 5)}
    picked = np.random.default_rng(0).choice(ids.len(), 300, replace=False)
    assert [int(by_n[4][i]) for i in picked] == [_reference_shard(ids[int(i)], 4) for i in picked]
    assert (by_n[1] == 0).all()
    for n in (3, 4):
        sizes = np.bincount(by_n[n], minlength=n)
        assert sizes.size == n and np.abs(sizes / ids.len() - 1 / n).max() < 0.01
        # jump consistency: going to n + 1 shards moves customers only into the new shard
        moved = by_n[n + 1] != by_n[n]
        assert (by_n[n + 1][moved] == n).all() and 0.15 < moved.mean() < 0.3
    # a slice of a chunked series (Arrow offsets) and the lazy expression give the same shards
    chunked = pl.concat([ids[:1000], ids[1000:]], rechunk=False)[500:5000]
    assert (shards.shard_of(chunked, 4).to_numpy() == by_n[4][500:5000]).all()
    lazy = ids.to_frame().lazy().with_columns(shards.shard_expr(4)).collect()["shard"]
    assert (lazy.to_numpy() == by_n[4]).all()
    with pytest.raises(ValueError):
        shards.shard_of(ids, 0)


def _features(n: int, seed: int) -> pl.DataFrame:
    """Random customer features, sorted by customer_id, with heavy ties and prospects (null behaviour)."""
    rng = np.random.default_rng(seed)
    buyer = rng.random(n) < 0.8
    spend = np.where(rng.random(n) < 0.5, rng.choice([0.0, 9.99, 25.0, 100.0], n), np.round(rng.gamma(2, 40, n), 2))

    def behaviour(values: np.ndarray) -> pl.Series:
        return pl.Series(values).scatter(np.flatnonzero(~buyer), None)

    ids = rng.permutation([f"C{i:06d}" for i in range(n)])
    return pl.DataFrame({
        "customer_id": ids,
        "frequency": behaviour(rng.integers(0, 4, n)),
        "days_since_last_order": behaviour(rng.choice([0, 3, 30, 89, 90, 150, 179, 180, 400], n)),
        "order_count": behaviour(rng.geometric(0.5, n)),
        "total_spend": behaviour(spend),
        # tier boundaries (top 1%, 5%, 20%) inside groups of tied values: 400 (2%), 120 (8%), 50 (15%)
        "spend_365d": behaviour(rng.choice([0.0, 5.0, 20.0, 50.0, 120.0, 400.0], n, p=[.3, .25, .2, .15, .08, .02])),
    }).sort("customer_id")  # fmt: skip


def _split(features: pl.DataFrame, n: int) -> list[pl.DataFrame]:
    shard = shards.shard_of(features["customer_id"], n)
    return [features.filter(shard == s) for s in range(n)]


SIZES = [0, 1, 2, 7, 60, 3_000]


def _rank_score(value: pl.Expr, among: pl.Expr, quantiles: int, *, higher_is_better: bool) -> pl.Expr:
    """The RFM rule by ranks, as ``core.rfm`` scored before its cut points: 1 + floor(q x worse / n)."""
    worse = pl.when(among).then(value).rank("min", descending=not higher_is_better) - 1
    return (1 + quantiles * worse // pl.max_horizontal(among.sum(), 1)).cast(pl.Int8)


def _ranked_rfm(features: pl.DataFrame) -> pl.DataFrame:
    scored = pl.col("frequency").is_not_null()
    days, active = pl.col("days_since_last_order"), scored & ~lapsed(HORIZON)
    recency = (
        pl.when(active).then(2 + _rank_score(days, active, 3, higher_is_better=False))
        .when(scored).then(pl.when(days < 2 * HORIZON).then(2).otherwise(1))
    )  # fmt: skip
    return features.select(
        "customer_id",
        recency.cast(pl.Int8).alias("r_score"),
        _rank_score(pl.col("order_count"), scored, 5, higher_is_better=True).alias("f_score"),
        _rank_score(pl.col("total_spend"), scored, 5, higher_is_better=True).alias("m_score"),
    )


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("n", [1, 3, 4])
def test_merged_rfm_cuts_give_the_unsharded_scores(n, size):
    features = _features(size, seed=size)
    expected = rfm.score_rfm(features, HORIZON)
    assert expected.select("customer_id", "r_score", "f_score", "m_score").equals(_ranked_rfm(features))
    parts = _split(features, n)
    cuts = rfm.rfm_cuts(rfm.rfm_summary(part, HORIZON) for part in parts)
    got = pl.concat([rfm.score_rfm(part, HORIZON, cuts) for part in parts]).sort("customer_id")
    assert got.equals(expected)
    if size >= 60:  # the data reach every F score, so the test covers every cut
        assert got["f_score"].drop_nulls().n_unique() >= 4


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("n", [1, 3, 4])
def test_merged_tier_boundaries_give_the_unsharded_tiers(n, size):
    features = _features(size, seed=100 + size)
    expected = value_tiers.assign_value_tiers(features, "spend_365d").sort("customer_id")
    # shards in a shuffled row order: the boundaries must not depend on how rows arrive
    parts = [part.sample(fraction=1.0, shuffle=True, seed=s) for s, part in enumerate(_split(features, n))]
    merged = shards.merge_counts(shards.value_counts(part["spend_365d"]) for part in parts)
    bounds = value_tiers.boundaries(merged)
    cuts = value_tiers.tier_cuts(bounds, [[shards.tie_ids(part, "spend_365d", b) for b in bounds] for part in parts])
    got = pl.concat([value_tiers.assign_value_tiers(part, "spend_365d", tiers=cuts) for part in parts])
    assert got.sort("customer_id").equals(expected)
    if size == 3_000:  # the boundaries fall inside groups of tied values, shared by several shards
        assert all(b.need < merged.filter(pl.col("value") == b.value)["count"][0] for b in bounds)
    # the unsharded tiers are still today's rule: rank by value (descending), ties by customer_id
    ranked = features.with_row_index("_row").sort(["spend_365d", "customer_id"], descending=[True, False],
                                                  nulls_last=True).with_row_index("rank", offset=1)  # fmt: skip
    valued = int(merged["count"].sum())
    k1, k2, k3 = (value_tiers._top_count(c, valued) for c in value_tiers.DEFAULT_CUTS)
    rank = pl.col("rank")
    by_rank = ranked.select(
        "customer_id",
        pl.when(pl.col("spend_365d").is_null()).then(None).when(rank <= k1).then(pl.lit("platinum"))
        .when(rank <= k2).then(pl.lit("gold")).when(rank <= k3).then(pl.lit("silver")).otherwise(pl.lit("bronze"))
        .alias("value_tier"),
    ).sort("customer_id")  # fmt: skip
    assert by_rank.equals(expected)


def test_order_statistics_and_median_match_numpy():
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.integers(0, 20, 501).astype(np.float64), rng.normal(size=300)])
    parts = np.array_split(rng.permutation(values), 4)
    merged = shards.merge_counts(shards.value_counts(pl.Series(p)) for p in parts)
    positions = [0, 17, 400, values.size - 1]
    assert shards.order_statistics(merged, positions) == np.sort(values)[positions].tolist()
    for n in (1, 2, 801):  # odd, even and a single value
        subset = shards.value_counts(pl.Series(values[:n]))
        assert shards.median(subset) == np.median(values[:n])
    assert shards.median(shards.value_counts(pl.Series([], dtype=pl.Float64))) is None
    with pytest.raises(ValueError):
        shards.order_statistics(merged, [values.size])
    with pytest.raises(ValueError):
        shards.value_counts(pl.Series([1.0, float("nan")]))


@pytest.mark.parametrize("n", [1, 3, 4])
def test_merged_bottom_k_is_the_unsharded_sample(n):
    features = _features(3_000, seed=5)
    expected = shards.bottom_k(features, 500, salt="clusters")
    merged = shards.bottom_k(pl.concat([shards.bottom_k(p, 500, "clusters") for p in _split(features, n)]), 500,
                             "clusters")  # fmt: skip
    assert merged.equals(expected)
    assert not expected.equals(shards.bottom_k(features, 500, salt="checks"))  # the salt picks another sample


@pytest.mark.parametrize("n", [1, 3, 4])
@pytest.mark.parametrize("days", ["whole", "continuous", "short"])
def test_merged_btyd_counts_fit_exactly_as_all_buyers(n, days):
    t_max = 5.0 if days == "short" else 400.0
    x, tx, t = simulate_bgnbd(5_000, 0.5, 10.0, 0.6, 3.0, T_max=t_max, seed=3)
    if days != "continuous":  # whole days, as the features have them ("short": the dense counting path)
        tx, t = np.floor(tx), np.floor(t)
    ids = pl.Series("customer_id", [f"C{i:06d}" for i in range(x.size)])
    shard = shards.shard_of(ids, n).to_numpy()
    merged = shards.merge_counts(bgnbd.btyd_counts(x[shard == s], tx[shard == s], t[shard == s]) for s in range(n))
    assert merged.equals(bgnbd.btyd_counts(x, tx, t))
    for penalizer in (0.0, 1e-3):
        whole = bgnbd.fit_bgnbd(x, tx, t, penalizer)
        assert bgnbd.fit_bgnbd_counts(merged, penalizer) == whole  # bit for bit
        assert bgnbd.fit_bgnbd_counts(merged, penalizer, start=whole) == bgnbd.fit_bgnbd(
            x, tx, t, penalizer, start=whole
        )


def test_key_share_sample_is_decided_per_customer():
    ids = pl.Series([f"cust-{i}" for i in range(20_000)])
    some = shards.in_key_share(ids, 0.3, "churn_sample:0:")
    assert 0.28 < some.mean() < 0.32
    assert not (shards.in_key_share(ids, 0.2, "churn_sample:0:") & ~some).any()  # a smaller share is a subset
    assert (shards.in_key_share(ids.reverse(), 0.3, "churn_sample:0:") == some[::-1]).all()  # not positional
    assert (shards.in_key_share(ids, 0.3, "other:") != some).any()  # the salt draws another sample
    assert shards.in_key_share(ids, 1.0, "churn_sample:0:").all() and not shards.in_key_share(ids, 0.0, "x").any()


@pytest.mark.parametrize("k", [0, 1, 7, 999, 1_000, 5_000])
def test_bottom_k_is_the_head_of_the_full_key_order(k):
    frame = _features(1_000, seed=2)
    frame = pl.concat([frame, frame.with_columns(pl.col("frequency") + 1)])  # every key twice: ties at the k-th
    keyed = frame.with_columns(shards.sample_key(frame["customer_id"], "s"))
    expected = keyed.sort("_sample_key", "customer_id", maintain_order=True).head(k).drop("_sample_key")
    assert shards.bottom_k(frame, k, "s").sort("customer_id", "frequency").equals(
        expected.sort("customer_id", "frequency")
    )
    assert shards.bottom_k(frame, k, "s")["customer_id"].to_list() == expected["customer_id"].to_list()
