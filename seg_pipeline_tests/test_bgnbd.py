import numpy as np
import pytest
from scipy.special import hyp2f1

from seg_pipeline.core.bgnbd import (
    BgNbdParams,
    expected_purchases,
    fit_bgnbd,
    probability_alive,
    probability_no_purchase,
)
from seg_pipeline_tests.ml_synth import simulate_bgnbd

# Fader, Hardie & Lee (2005) CDNOW estimates (time unit: weeks).
CDNOW = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)


def _direct_expected(p: BgNbdParams, t: float, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """FHL (2005) eq. 10 as printed (lifetimes' closed form), without the Euler transform."""
    first = (p.a + p.b + x - 1) / (p.a - 1)
    second = 1 - hyp2f1(p.r + x, p.b + x, p.a + p.b + x - 1, t / (p.alpha + T + t)) * (
        (p.alpha + T) / (p.alpha + T + t)
    ) ** (p.r + x)
    alive = 1 + (x > 0) * p.a / (p.b + x - 1) * ((p.alpha + T) / (p.alpha + tx)) ** (p.r + x)
    return first * second / alive


def test_recovers_simulated_parameters() -> None:
    true = BgNbdParams(r=0.25, alpha=20.0, a=0.8, b=2.5)
    x, tx, T = simulate_bgnbd(20_000, true.r, true.alpha, true.a, true.b, T_max=365.0, seed=1)
    fit = fit_bgnbd(x, tx, T)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit, name) == pytest.approx(getattr(true, name), rel=0.15), name


def test_fit_is_deterministic_and_invariant_to_row_order() -> None:
    x, tx, T = simulate_bgnbd(3_000, 0.5, 10.0, 0.6, 3.0, T_max=200.0, seed=2)
    perm = np.random.default_rng(0).permutation(x.size)
    assert fit_bgnbd(x, tx, T) == fit_bgnbd(x, tx, T)
    assert fit_bgnbd(x[perm], tx[perm], T[perm]).r == pytest.approx(fit_bgnbd(x, tx, T).r, rel=1e-9)


def test_penalizer_shrinks_towards_one() -> None:
    x, tx, T = simulate_bgnbd(2_000, 0.25, 20.0, 0.8, 2.5, T_max=365.0, seed=3)
    plain, shrunk = fit_bgnbd(x, tx, T), fit_bgnbd(x, tx, T, penalizer=1.0)
    assert abs(np.log(shrunk.r)) < abs(np.log(plain.r))


def test_expected_purchases_matches_published_example() -> None:
    # FHL (2005): x=2, t_x=30.43, T=38.86 weeks -> 1.226 expected purchases in the next 39 weeks.
    assert float(expected_purchases(CDNOW, 39.0, 2, 30.43, 38.86)) == pytest.approx(1.226, abs=5e-4)


def test_expected_purchases_matches_closed_form() -> None:
    x = np.array([0.0, 1.0, 2.0, 7.0, 15.0])
    tx = np.array([0.0, 5.0, 30.43, 20.0, 36.0])
    T = np.array([38.86, 12.0, 38.86, 38.0, 38.0])
    for t in (1.0, 13.0, 52.0):
        direct = _direct_expected(CDNOW, t, x, tx, T)
        np.testing.assert_allclose(expected_purchases(CDNOW, t, x, tx, T), direct, rtol=1e-9)


def test_expected_purchases_shapes_and_monotonicity() -> None:
    x, tx, T = np.array([0.0, 3.0, 3.0]), np.array([0.0, 20.0, 5.0]), np.array([30.0, 30.0, 30.0])
    months = np.array([10.0, 20.0, 40.0])
    e = expected_purchases(CDNOW, months, x, tx, T)
    assert e.shape == (3, 3)
    np.testing.assert_allclose(e[1], expected_purchases(CDNOW, 20.0, x, tx, T))
    assert (np.diff(e, axis=0) > 0).all()  # more time, more purchases
    assert e[-1, 1] > e[-1, 2]  # same frequency, more recent last purchase -> more purchases
    heavy = expected_purchases(CDNOW, 52.0, np.array([400.0]), np.array([99.0]), np.array([100.0]))
    assert np.isfinite(heavy).all() and heavy[0] > 100


def test_weighted_expected_purchases_equal_the_weighted_horizons() -> None:
    x, tx, T = np.array([0.0, 3.0, 3.0, 3.0]), np.array([0.0, 20.0, 5.0, 20.0]), np.array([30.0, 30.0, 30.0, 30.0])
    months = np.array([10.0, 20.0, 40.0])
    weights = np.array([[0.0, 0.0, 1.0], [0.5, -0.25, 2.0]])
    each = expected_purchases(CDNOW, months, x, tx, T)
    np.testing.assert_allclose(expected_purchases(CDNOW, months, x, tx, T, weights=weights), weights @ each, rtol=1e-12)


def test_probability_alive_is_one_for_one_time_buyers() -> None:
    # Known BG/NBD flaw: no repeat purchase -> no drop-out opportunity -> P(alive) = 1 for any T.
    p = probability_alive(CDNOW, np.zeros(3), np.zeros(3), np.array([1.0, 50.0, 500.0]))
    np.testing.assert_array_equal(p, 1.0)
    # ... but a long-silent one-time buyer is still less likely to buy.
    silent = probability_no_purchase(CDNOW, 13.0, np.zeros(2), np.zeros(2), np.array([2.0, 100.0]))
    assert silent[1] > silent[0]


def test_probability_alive_falls_with_silence() -> None:
    p = probability_alive(CDNOW, np.full(3, 4.0), np.array([38.0, 25.0, 5.0]), np.full(3, 38.0))
    assert 1.0 > p[0] > p[1] > p[2] > 0.0


def test_probability_no_purchase_bounds() -> None:
    x, tx, T = np.array([0.0, 2.0, 10.0]), np.array([0.0, 10.0, 30.0]), np.array([20.0, 30.0, 31.0])
    np.testing.assert_allclose(probability_no_purchase(CDNOW, 0.0, x, tx, T), 1.0)
    p = probability_no_purchase(CDNOW, 26.0, x, tx, T)
    assert ((p > 0) & (p < 1)).all()


def test_rejects_invalid_inputs() -> None:
    with pytest.raises(ValueError):
        fit_bgnbd([1.0], [5.0], [3.0])  # recency > T
    with pytest.raises(ValueError):
        fit_bgnbd([np.nan], [0.0], [3.0])
