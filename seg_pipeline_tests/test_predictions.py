"""core.predictions: each column's meaning on hand-made customers, sums and intervals against simulated truth."""

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from scipy.special import gammaincinv

from seg_pipeline.core import predictions
from seg_pipeline.core.bgnbd import BgNbdParams, fit_bgnbd, probability_no_purchase
from seg_pipeline.core.churn_fallback import prior_risk
from seg_pipeline.core.clv import compute_clv

PARAMS = BgNbdParams(r=0.8, alpha=40.0, a=0.7, b=3.0)
AS_OF = date(2024, 6, 30)
TRUE = dict(r=0.5, alpha=20.0, a=0.6, b=2.5)


def _buyers(rows: list[tuple[str, int, float, float]]) -> pl.DataFrame:
    """Buyers (id, frequency, recency, T) with the other columns predict / compute_clv read."""
    frame = pl.DataFrame(rows, schema=["customer_id", "frequency", "recency", "T"], orient="row")
    return frame.with_columns(
        pl.col("frequency").cast(pl.Int64),
        pl.col("recency", "T").cast(pl.Float64),
        pl.lit(40.0).alias("monetary_value"),
        (40.0 * (pl.col("frequency") + 1)).alias("total_spend"),
    )


def test_p_alive_is_consistent_with_churn_risk_and_falls_with_silence() -> None:
    # one-time buyers silent for ever longer, scored by the prior fallback (its risk rises with the silence)
    frame = _buyers([(f"S{d:03d}", 0, 0.0, float(d)) for d in (10, 60, 200, 400)])
    x, t_obs = frame["frequency"].to_numpy().astype(float), frame["T"].to_numpy()
    risk = prior_risk(x, t_obs, t_obs, 90)
    p_alive = predictions.predict(frame, PARAMS, risk, AS_OF, 90)["p_alive"].to_numpy()
    assert np.all(np.diff(p_alive) < 0) and p_alive[-1] < 0.5  # not 1 by construction, unlike BG/NBD's P(alive)
    # churn_risk = 1 - alive * (1 - P0(90)) and p_alive = alive * (1 - P0(365)), P0(t) = P(no purchase in t | alive)
    def p0(t: float) -> np.ndarray:
        return ((PARAMS.alpha + t_obs) / (PARAMS.alpha + t_obs + t)) ** (PARAMS.r + x)

    alive = predictions.implied_p_alive(PARAMS, risk, x, t_obs, 90)
    unclipped = alive < 1
    assert unclipped.sum() >= 2
    np.testing.assert_allclose((1 - alive * (1 - p0(90)))[unclipped], risk[unclipped], rtol=1e-9)
    np.testing.assert_allclose(p_alive, alive * (1 - p0(365)), rtol=1e-12)
    # repeat buyers of equal frequency and tenure, last purchase ever longer ago, scored by BG/NBD
    repeat = _buyers([(f"R{d:03d}", 5, 300.0 - d, 300.0) for d in (5, 60, 150, 250)])
    x, tx, t_obs = (repeat[c].to_numpy().astype(float) for c in ("frequency", "recency", "T"))
    p_alive = predictions.predict(repeat, PARAMS, probability_no_purchase(PARAMS, 90, x, tx, t_obs), AS_OF, 90)
    assert np.all(np.diff(p_alive["p_alive"].to_numpy()) < 0)


def test_regular_buyer_next_order_near_rhythm_and_long_silent_one_timer_gets_none() -> None:
    # 12 purchase days a month apart over a year, the last today; a one-time buyer silent for 500 days
    frame = _buyers([("REGULAR", 12, 360.0, 360.0), ("GONE", 0, 0.0, 500.0)])
    x, tx, t_obs = (frame[c].to_numpy().astype(float) for c in ("frequency", "recency", "T"))
    risk = probability_no_purchase(PARAMS, 90, x, tx, t_obs)
    risk[1] = prior_risk(x[1:], t_obs[1:], t_obs[1:], 90)[0]
    out = predictions.predict(frame, PARAMS, risk, AS_OF, 90)
    regular, gone = out["next_order_date"].to_list()
    assert AS_OF + timedelta(days=15) <= regular <= AS_OF + timedelta(days=45)
    assert gone is None
    baseline = predictions.rhythm_baseline_days(np.array([0.0, 500.0]), np.array([30.0, np.nan]))
    assert baseline.tolist() == [30.0, 1.0]  # one-time buyer: the buyers' median gap (30) is long past


def test_next_order_median_matches_its_definition() -> None:
    p_alive, x, t_obs = np.array([0.9, 0.6, 0.55]), np.array([3.0, 1.0, 8.0]), np.array([200.0, 100.0, 300.0])
    days = predictions.next_order_days(PARAMS, p_alive, x, t_obs, within_days=10_000)
    before = p_alive * (1 - ((PARAMS.alpha + t_obs) / (PARAMS.alpha + t_obs + days - 1)) ** (PARAMS.r + x))
    after = p_alive * (1 - ((PARAMS.alpha + t_obs) / (PARAMS.alpha + t_obs + days)) ** (PARAMS.r + x))
    assert np.all(before < 0.5) and np.all(after >= 0.5)
    assert np.isnan(predictions.next_order_days(PARAMS, np.array([0.5, 0.2]), x[:2], t_obs[:2])).all()


@pytest.fixture(scope="module")
def simulated() -> dict:
    """A known BG/NBD process (daily purchase days): calibration (frequency, recency, T) at day 400 and the
    purchase days in the 90 and 365 days after it."""
    n, t_cal, t_all = 6000, 400.0, 765.0
    rng = np.random.default_rng(11)
    lam, p = rng.gamma(TRUE["r"], 1 / TRUE["alpha"], n), rng.beta(TRUE["a"], TRUE["b"], n)
    start = rng.uniform(0, t_cal * 0.8, n)
    days: list[np.ndarray] = []
    for i in range(n):
        t, times = start[i], [start[i]]
        while True:
            t += rng.exponential(1 / lam[i])
            if t > t_all:
                break
            times.append(t)
            if rng.random() < p[i]:
                break
        days.append(np.unique(np.floor(np.array(times))))
    rows = [(f"C{i:05d}", d) for i, d in enumerate(days)]
    cal = [(cid, d[d <= t_cal]) for cid, d in rows]
    frame = pl.DataFrame({
        "customer_id": [c for c, _ in cal],
        "frequency": [len(d) - 1 for _, d in cal],
        "recency": [float(d[-1] - d[0]) for _, d in cal],
        "T": [float(t_cal - d[0]) for _, d in cal],
    })  # fmt: skip
    future = np.array([np.sum((d > t_cal) & (d <= t_cal + 365)) for _, d in rows])
    future_90 = np.array([np.sum((d > t_cal) & (d <= t_cal + 90)) for _, d in rows])
    return {"frame": frame, "future": future, "future_90": future_90}


def test_expected_purchase_sums_match_a_simulated_truth(simulated: dict) -> None:
    frame = simulated["frame"]
    x, tx, t_obs = (frame[c].to_numpy().astype(float) for c in ("frequency", "recency", "T"))
    params = fit_bgnbd(x, tx, t_obs)
    risk = probability_no_purchase(params, 90, x, tx, t_obs)  # a churn score consistent with BG/NBD
    out = predictions.predict(_buyers(frame.rows()), params, risk, AS_OF, 90)
    assert out["expected_purchases_365d"].sum() == pytest.approx(simulated["future"].sum(), rel=0.08)
    assert out["expected_purchases_90d"].sum() == pytest.approx(simulated["future_90"].sum(), rel=0.08)
    assert (out["expected_purchases_30d"] <= out["expected_purchases_90d"]).all()


def test_clv_interval_covers_about_80_percent_of_simulated_customers(simulated: dict) -> None:
    frame = _buyers(simulated["frame"].rows())
    x, tx, t_obs = (frame[c].to_numpy().astype(float) for c in ("frequency", "recency", "T"))
    params = fit_bgnbd(x, tx, t_obs)
    risk = probability_no_purchase(params, 90, x, tx, t_obs)
    draws = predictions.bootstrap_params(x, tx, t_obs, 0.0, draws=6, size=1500)
    value = compute_clv(frame, params, risk, 12, 0.0, param_draws=draws)
    realized = 40.0 * simulated["future"]  # constant spend per purchase day: the count carries the spread
    low, clv, high = (value[c].to_numpy() for c in ("clv_low", "clv", "clv_high"))
    assert np.all(low <= clv) and np.all(clv <= high)
    coverage = np.mean((realized >= low - 1e-9) & (realized <= high + 1e-9))
    assert 0.75 <= coverage <= 0.93  # 0.90 with this seed; 0.70 without the continuity correction


def test_whole_purchase_counts_equal_the_rounded_gamma_quantile() -> None:
    rng = np.random.default_rng(3)
    shape = np.concatenate([rng.uniform(0.2, 40.0, 60), [2.0, 3.0]])
    per_quantile = np.concatenate([rng.uniform(0.05, 30.0, 60), [0.0, 400.0]])  # no purchases; past _MAX_EDGES
    grid = rng.integers(0, shape.size, 5000)
    level = np.where(rng.random(grid.size) < 0.3, 0.0, rng.uniform(0.0, 0.999, grid.size))
    counts = predictions._whole_purchases(shape, per_quantile, grid, level)
    expected = np.where(level > 0, np.round(per_quantile[grid] * gammaincinv(shape[grid], level)), 0.0)
    assert (per_quantile[grid] * gammaincinv(shape[grid], level) > predictions._MAX_EDGES).any()
    np.testing.assert_array_equal(counts, expected)


def test_window_check_against_a_hand_made_outcome() -> None:
    cut = date(2024, 1, 1)
    orders = pl.DataFrame({
        "customer_id": ["A", "A", "A", "B"],
        "order_day": [cut + timedelta(days=d) for d in (5, 5, 20, 100)],
        "amount": [10.0, 5.0, 20.0, 30.0],
        "status": ["completed", "completed", "completed", "completed"],
    })  # fmt: skip
    realized = predictions.outcomes(orders, cut, 30, 0.0)
    assert realized.sort("customer_id").rows() == [("A", 2, 5.0, 35.0)]  # B's order is after the window
    scored = pl.DataFrame({
        "customer_id": ["A", "B"], "expected_purchases_30d": [1.5, 0.5],
        "next_order_days": [10.0, None], "baseline_days": [4.0, 1.0],
        "clv": [30.0, 5.0], "clv_low": [20.0, 0.0], "clv_high": [40.0, 10.0],
    })  # fmt: skip
    check = predictions.window_check(scored, realized, 30)
    assert check["predicted_purchase_days"] == 2.0 and check["actual_purchase_days"] == 2.0
    assert check["next_order_mae_days"] == pytest.approx((5 + 0) / 2)  # B: no prediction, no order: both capped
    assert check["rhythm_baseline_mae_days"] == pytest.approx((1 + 29) / 2)
    assert check["next_order_mae_days_ordering"] == 5 and check["rhythm_baseline_mae_days_ordering"] == 1
    assert check["clv_interval_coverage"] == 1.0


def test_window_checks_are_carried_between_retrains_and_remade_on_a_new_model(tmp_path) -> None:
    import json

    from seg_pipeline.core.predictions import carried_checks
    from seg_pipeline.core.schemas import CUSTOMER_SEGMENTS, SEGMENT_VERSIONS
    from seg_pipeline.storage.store import WorkingStore

    stored = {"predictions": {"windows": [{"window_days": 30}], "checked_as_of": "2024-03-01"}}
    previous, day = date(2024, 3, 2), date(2024, 3, 3)
    store = WorkingStore(tmp_path / "store.duckdb")
    row = {c: None for c in SEGMENT_VERSIONS.names} | {
        "as_of": previous, "churn_model_version": "m1", "metrics": json.dumps(stored)
    }
    version_row = pl.DataFrame([row], schema=SEGMENT_VERSIONS.polars)
    store.replace_segment_version(previous, CUSTOMER_SEGMENTS.empty(), version_row)
    # the previous version's metrics only when the same churn model made it
    assert store.version_metrics(previous, "m1") == stored and store.version_metrics(previous, "m2") is None
    # first purchase 20 days ago: no window complete yet, so the single carried window is enough
    assert carried_checks(stored, day, 20, 7) == {"windows": [{"window_days": 30}], "checked_as_of": "2024-03-01"}
    assert carried_checks(None, day, 20, 7) is None  # a new model: checked again
    assert carried_checks(stored, date(2024, 3, 9), 20, 7) is None  # older than the retrain interval
    assert carried_checks(stored, day, 400, 7) is None  # every window complete now: one carried window is not enough


def test_a_degenerate_bootstrap_fit_leaves_the_parameter_spread_finite() -> None:
    good = [BgNbdParams(0.5, 30.0, 0.8, 2.0), BgNbdParams(0.6, 28.0, 0.7, 2.2), BgNbdParams(0.55, 32.0, 0.9, 1.9)]
    x, t = np.array([0.0, 2.0, 5.0]), np.array([100.0, 200.0, 300.0])
    clean = predictions.parameter_log_sd(predictions.ParamDraws(tuple(good), 100, 400), x, t, 365, 90)
    spoilt = predictions.ParamDraws((*good, BgNbdParams(float("nan"), 30.0, 0.8, 2.0)), 100, 400)
    assert np.isfinite(clean).all() and (clean > 0).all()
    assert np.array_equal(predictions.parameter_log_sd(spoilt, x, t, 365, 90), clean)  # the NaN fit is left out
    lone = predictions.ParamDraws((good[0], BgNbdParams(0.5, float("inf"), 0.8, 2.0)), 100, 400)
    assert (predictions.parameter_log_sd(lone, x, t, 365, 90) == 0).all()  # fewer than two usable fits: no spread
