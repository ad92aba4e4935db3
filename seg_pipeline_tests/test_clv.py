import numpy as np
import polars as pl
import pytest

from seg_pipeline.core import shards
from seg_pipeline.core.bgnbd import BgNbdParams, expected_purchases
from seg_pipeline.core.clv import DAYS_PER_MONTH, _fit_gamma_gamma, compute_clv, expected_spend

PARAMS = BgNbdParams(r=0.8, alpha=40.0, a=0.7, b=3.0)


Row = tuple[str, int | None, float | None, float | None, float | None, float | None]


def _features(extra: list[Row]) -> pl.DataFrame:
    """A seeded population of 400 buyers plus the given rows (id, frequency, recency, T, monetary, total)."""
    rng = np.random.default_rng(0)
    n = 400
    x = rng.poisson(3.0, n)
    T = rng.uniform(30, 700, n).round()
    tx = np.where(x > 0, (T * rng.uniform(0.2, 1.0, n)).round(), 0.0)
    m = np.where(x > 0, rng.gamma(4.0, 12.0, n), 0.0)
    first = rng.gamma(4.0, 12.0, n)
    base = [(f"P{i:04d}", int(x[i]), tx[i], T[i], m[i], first[i] + x[i] * m[i]) for i in range(n)]
    rows = base + extra
    return pl.DataFrame(
        rows,
        schema={
            "customer_id": pl.Utf8,
            "frequency": pl.Int64,
            "recency": pl.Float64,
            "T": pl.Float64,
            "monetary_value": pl.Float64,
            "total_spend": pl.Float64,
        },
        orient="row",
    )


def test_shape_order_and_prospects() -> None:
    feats = _features([("ZPROSPECT", None, None, None, None, None), ("ZONE", 0, 0.0, 10.0, 0.0, 80.0)])
    out = compute_clv(feats, PARAMS, None)
    assert out.columns == ["customer_id", "expected_purchases_12m", "clv", "clv_low", "clv_high"]
    assert out["customer_id"].to_list() == feats["customer_id"].to_list()
    last = out.tail(2)
    assert last["clv"].to_list()[0] is None and last["expected_purchases_12m"].to_list()[0] is None
    assert last["clv"].to_list()[1] > 0
    assert out["clv"].null_count() == 1


def test_expected_purchases_match_bgnbd_without_churn_model() -> None:
    feats = _features([])
    out = compute_clv(feats, PARAMS, None)
    x, tx, T = (feats[c].to_numpy() for c in ("frequency", "recency", "T"))
    direct = expected_purchases(PARAMS, 12 * DAYS_PER_MONTH, x, tx, T)
    np.testing.assert_allclose(out["expected_purchases_12m"].to_numpy(), direct, rtol=1e-9)


def test_discounting_reduces_value() -> None:
    feats = _features([])
    plain = compute_clv(feats, PARAMS, None, monthly_discount=0.0)["clv"].to_numpy()
    discounted = compute_clv(feats, PARAMS, None, monthly_discount=0.01)["clv"].to_numpy()
    assert (discounted < plain).all()
    assert (discounted > plain / 1.01**12).all()
    spend = expected_spend(
        *(feats[c].to_numpy() for c in ("frequency", "monetary_value", "total_spend")), feats["customer_id"]
    )
    purchases = compute_clv(feats, PARAMS, None)["expected_purchases_12m"].to_numpy()
    np.testing.assert_allclose(plain, purchases * spend, rtol=1e-9)


def test_value_is_the_discounted_sum_of_each_months_purchases() -> None:
    feats = _features([])
    x, tx, T = (feats[c].cast(pl.Float64).to_numpy() for c in ("frequency", "recency", "T"))
    months = DAYS_PER_MONTH * np.arange(1, 13)
    monthly = np.diff(expected_purchases(PARAMS, months, x, tx, T), axis=0, prepend=0.0)
    spend = expected_spend(
        *(feats[c].to_numpy() for c in ("frequency", "monetary_value", "total_spend")), feats["customer_id"]
    )
    direct = (1.01 ** -np.arange(1, 13)) @ monthly * spend
    np.testing.assert_allclose(compute_clv(feats, PARAMS, None)["clv"].to_numpy(), direct, rtol=1e-9)


def test_zero_for_customers_expected_not_to_buy() -> None:
    # 30 repeat days in the first 60 days, then silent for 640 days: BG/NBD says almost surely dead.
    feats = _features([("ZDEAD", 30, 60.0, 700.0, 50.0, 1550.0), ("ZALIVE", 30, 695.0, 700.0, 50.0, 1550.0)])
    out = compute_clv(feats, PARAMS, None).tail(2)
    dead, alive = out["clv"].to_list()
    assert dead < 1e-6 and alive > 100
    certain_churn = np.full(feats.height, 1.0)
    assert compute_clv(feats, PARAMS, certain_churn).tail(1)["clv"].item() == pytest.approx(0.0, abs=1e-12)
    # BG/NBD's P(alive) underflows to 0 for this one; a churn model's P(alive) replaces it (no NaN, no 0 * inf).
    extreme = _features([("ZGONE", 300, 10.0, 700.0, 50.0, 15050.0)])
    out = compute_clv(extreme, PARAMS, np.full(extreme.height, 0.5))
    assert compute_clv(extreme, PARAMS, None).tail(1)["clv"].item() == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(out.tail(1)["clv"].item()) and out.tail(1)["clv"].item() > 0
    assert out["clv"].null_count() == 0


def test_monotone_in_monetary_value() -> None:
    spends = [10.0, 20.0, 40.0, 80.0, 160.0]
    feats = _features([(f"ZM{i}", 4, 200.0, 300.0, s, 5 * s) for i, s in enumerate(spends)])
    values = compute_clv(feats, PARAMS, None).tail(len(spends))["clv"].to_numpy()
    assert (np.diff(values) > 0).all()


def test_spend_shrinks_towards_population_mean_less_with_more_purchases() -> None:
    feats = _features([("ZFEW", 1, 100.0, 300.0, 1000.0, 1040.0), ("ZMANY", 20, 290.0, 300.0, 1000.0, 20040.0)])
    spend = expected_spend(
        *(feats[c].to_numpy() for c in ("frequency", "monetary_value", "total_spend")), feats["customer_id"]
    )
    few, many = spend[-2:]
    population = feats.filter(pl.col("frequency") > 0)["monetary_value"].mean()
    assert population < few < many < 1000.0


def test_one_time_buyers_use_first_day_spend() -> None:
    feats = _features([("ZLOW", 0, 0.0, 30.0, 0.0, 10.0), ("ZHIGH", 0, 0.0, 30.0, 0.0, 500.0)])
    low, high = compute_clv(feats, PARAMS, None).tail(2)["clv"].to_list()
    assert 0 < low < high


def test_churn_risk_rescales_activity() -> None:
    feats = _features([("ZONE", 0, 0.0, 200.0, 0.0, 80.0)])
    base = compute_clv(feats, PARAMS, None).tail(1)["clv"].item()
    risks = [compute_clv(feats, PARAMS, np.full(feats.height, q)).tail(1)["clv"].item() for q in (0.5, 0.8, 0.95)]
    assert risks[0] > risks[1] > risks[2] > 0
    assert risks[-1] < base  # BG/NBD alone calls every one-time buyer alive
    nan_risk = np.full(feats.height, np.nan)
    np.testing.assert_allclose(
        compute_clv(feats, PARAMS, nan_risk)["clv"].to_numpy(), compute_clv(feats, PARAMS, None)["clv"].to_numpy()
    )


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        compute_clv(_features([]), PARAMS, None, horizon_months=0)


def test_gamma_gamma_fit_on_a_sample_recovers_the_population_mean_spend() -> None:
    p, q, v = 6.25, 3.74, 15.44  # the CDNOW fit of Fader, Hardie & Lee (2005)
    rng = np.random.default_rng(3)
    n = 300_000  # more than the fit's sample
    x = rng.integers(1, 12, n).astype(np.float64)
    nu = rng.gamma(q, 1.0 / v, n)
    m = rng.gamma(p * x, 1.0 / (nu * x))
    ids = pl.Series([f"c{i:06d}" for i in range(n)])
    fitted = _fit_gamma_gamma(x, m, ids)
    assert fitted is not None
    fp, fq, fv = fitted
    assert fv * fp / (fq - 1) == pytest.approx(v * p / (q - 1), rel=0.03)
    assert _fit_gamma_gamma(x, m, ids) == fitted  # seeded
    # the sample is the customers of smallest stable key (what shards' bottom-k samples merge into), not positions
    frame = pl.DataFrame({"customer_id": ids, "x": x, "m": m})
    sample = shards.bottom_k(frame, 100_000, "gamma_gamma_sample:").sort("customer_id")
    assert _fit_gamma_gamma(sample["x"].to_numpy(), sample["m"].to_numpy(), sample["customer_id"]) == fitted
