"""Customer lifetime value: expected discounted spend over the next ``horizon_months`` (12) months.

    clv = sum_{m=1..12} (E[purchases in month m]) * E[spend per purchase] / (1 + d)^m,   d = 1% a month

- Purchases (purchase days, as in the BTYD features): E[purchases in month m] = E(m) - E(m - 1), E(t) the BG/NBD
  conditional expected number of purchases in the next t days (months of 365.25/12 days). When a churn risk q
  (P(no purchase in the churn horizon h)) is given, BG/NBD's P(alive) is replaced by the one the churn model
  implies: q = (1 - P(alive)) + P(alive) * P0, P0 = P(no purchase in h | alive) from the BG/NBD rate posterior,
  so P(alive) = (1 - q) / (1 - P0), clipped to [0, 1]. E(t) = P(alive) * E(t | alive), so the expected purchases
  are rescaled by that ratio. This fixes BG/NBD's P(alive) = 1 for one-time buyers.
- Spend per purchase: Gamma-Gamma (Fader, Hardie & Lee 2005) fitted by maximum likelihood on repeat customers'
  (frequency, monetary_value), when there are more than 100,000 of them the 100,000 of smallest
  ``shards.sample_key`` (the same sample for any number of shards); the posterior mean
  (v*p + p*x*m) / (p*x + q - 1) shrinks a customer's mean repeat spend m towards the population mean
  v*p/(q-1), less so the more repeat purchases x they have. One-time buyers (frequency 0, monetary_value 0 by
  convention) count their first-day spend as one observation (x = 1, m = total_spend). Should the fit be
  impossible (fewer than 10 repeat customers, or q <= 1 so the population mean is undefined), the fallback
  shrinkage is (x * m + m_pop) / (x + 1) with m_pop the mean spend per purchase day of all buyers.
- Interval: ``clv_low`` / ``clv_high``, the 80% interval of ``core.predictions`` (purchase-count and spend
  spread given alive, P(alive), bootstrap parameter uncertainty).
- Prospects (no completed order): null.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from seg_pipeline.core.bgnbd import (
    BgNbdParams,
    _unique_rows,
    expected_purchases_if_alive,
    one_blas_thread,
    probability_alive,
)
from seg_pipeline.core.predictions import ParamDraws, clv_interval, implied_p_alive, parameter_log_sd
from seg_pipeline.core.shards import sample_key

DAYS_PER_MONTH = 365.25 / 12
_MIN_REPEAT_CUSTOMERS = 10
_FIT_SAMPLE = 100_000  # three parameters: a larger sample moves them by less than their standard error
_FIT_SALT = "gamma_gamma_sample:"


def _gamma_gamma_nll(
    log_params: np.ndarray, ux: np.ndarray, counts: np.ndarray, x: np.ndarray, m: np.ndarray, log_xm: np.ndarray
) -> tuple[float, np.ndarray]:
    """Mean negative Gamma-Gamma log-likelihood (up to a constant) and its gradient in log-params.

    Terms that depend on x only are evaluated once per distinct x (``ux`` with ``counts``).
    """
    p, q, v = np.exp(log_params)
    n = x.size
    pu = p * ux
    log_xm_v = np.log(x * m + v)
    ll = (
        (counts * (gammaln(pu + q) - gammaln(pu))).sum()
        + n * (q * np.log(v) - gammaln(q))
        + (p * x * log_xm).sum()
        - ((p * x + q) * log_xm_v).sum()
    )
    d_p = (counts * ux * (digamma(pu + q) - digamma(pu))).sum() + (x * (log_xm - log_xm_v)).sum()
    d_q = (counts * digamma(pu + q)).sum() + n * (np.log(v) - digamma(q)) - log_xm_v.sum()
    d_v = n * q / v - ((p * x + q) / (x * m + v)).sum()
    grad = -np.array([d_p, d_q, d_v]) * np.array([p, q, v]) / n
    return float(-ll / n), grad


def _fit_gamma_gamma(x: np.ndarray, m: np.ndarray, customer_ids: pl.Series) -> tuple[float, float, float] | None:
    """MLE (p, q, v) on repeat customers (rows in customer_id order); None when unusable (too few customers or
    q <= 1)."""
    if x.size < _MIN_REPEAT_CUSTOMERS:
        return None
    if x.size > _FIT_SAMPLE:
        keys = sample_key(customer_ids, _FIT_SALT).to_numpy()
        chosen = np.sort(np.argsort(keys, kind="stable")[:_FIT_SAMPLE])
        x, m = x[chosen], m[chosen]
    scale = float(m.mean())
    ux, counts = np.unique(x, return_counts=True)
    with one_blas_thread():
        res = minimize(
            _gamma_gamma_nll,
            x0=np.zeros(3),
            args=(ux, counts.astype(np.float64), x, m / scale, np.log(x * m / scale)),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-10.0, 10.0)] * 3,
        )
    p, q, v = np.exp(res.x)
    if not np.isfinite(res.fun) or q <= 1.0 + 1e-6:
        return None
    return float(p), float(q), float(v * scale)


@dataclass(frozen=True)
class SpendFit:
    """The population's spend model: Gamma-Gamma's (p, q, v), or None, and the fallback's population mean spend
    per purchase day and CV^2 (see ``spend_model``)."""

    gamma_gamma: tuple[float, float, float] | None
    m_pop: float
    cv2: float


def _observed(frequency: np.ndarray, monetary_value: np.ndarray, total_spend: np.ndarray) -> tuple[np.ndarray, ...]:
    """(x, m, number of observations) of buyers: a one-time buyer's first-day spend counts as one observation."""
    x = np.asarray(frequency, dtype=np.float64)
    m = np.where(x > 0, np.asarray(monetary_value, dtype=np.float64), np.asarray(total_spend, dtype=np.float64))
    return x, m, np.maximum(x, 1.0)


def fit_spend(
    frequency: np.ndarray, monetary_value: np.ndarray, total_spend: np.ndarray, customer_ids: pl.Series
) -> SpendFit:
    """The ``SpendFit`` of all buyers (rows in customer_id order): the same for any number of shards."""
    x, m, _ = _observed(frequency, monetary_value, total_spend)
    repeat = (x > 0) & (m > 0)
    gg = _fit_gamma_gamma(x[repeat], m[repeat], customer_ids.filter(pl.Series(repeat)))
    m_pop = float(np.asarray(total_spend, dtype=np.float64).sum() / (x + 1).sum()) if x.size else 0.0
    cv2 = float(m.var() / m.mean() ** 2) if x.size and m.mean() > 0 else 0.0
    return SpendFit(gg, m_pop, cv2)


def expected_spend(
    frequency: np.ndarray, monetary_value: np.ndarray, total_spend: np.ndarray, customer_ids: pl.Series
) -> np.ndarray:
    """Shrunk expected spend per purchase day (see module docstring); inputs are buyers only, in id order."""
    return spend_model(frequency, monetary_value, total_spend, customer_ids)[0]


def spend_model(
    frequency: np.ndarray, monetary_value: np.ndarray, total_spend: np.ndarray, customer_ids: pl.Series,
    fit: SpendFit | None = None,
) -> tuple[np.ndarray, float]:  # fmt: skip
    """(``expected_spend``, CV^2 of one purchase's spend around it): 1/p under Gamma-Gamma; for the fallback, the
    CV^2 of the buyers' mean spend per purchase day (an upper bound: it also holds the spread between buyers).
    Rows in customer_id order; `fit`: the population's (``fit_spend``) when these buyers are one shard of it."""
    fit = fit or fit_spend(frequency, monetary_value, total_spend, customer_ids)
    _, m, n_obs = _observed(frequency, monetary_value, total_spend)
    if fit.gamma_gamma is None:
        return (n_obs * m + fit.m_pop) / (n_obs + 1), fit.cv2
    p, q, v = fit.gamma_gamma
    return (v * p + p * n_obs * m) / (p * n_obs + q - 1), 1.0 / p


def compute_clv(
    features: pl.DataFrame,
    params: BgNbdParams,
    churn_risk: np.ndarray | None,
    horizon_months: int = 12,
    monthly_discount: float = 0.01,
    *,
    churn_horizon_days: int = 90,
    param_draws: ParamDraws | None = None,
) -> pl.DataFrame:
    """(customer_id, expected_purchases_12m, clv, clv_low, clv_high) in ``features`` row order; null for prospects.

    ``churn_risk`` is aligned with the rows of ``features`` (NaN for prospects) and refers to
    ``churn_horizon_days``; None keeps BG/NBD's own P(alive). ``param_draws`` (bootstrap fits, see
    ``core.predictions``) add the parameter uncertainty to the interval; ``expected_purchases_12m`` is over
    the ``horizon_months``.
    """
    point, interval = clv_and_interval(
        features, params, churn_risk, horizon_months, monthly_discount, churn_horizon_days=churn_horizon_days
    )
    return pl.concat([point, interval(param_draws)], how="horizontal")


def clv_and_interval(
    features: pl.DataFrame,
    params: BgNbdParams,
    churn_risk: np.ndarray | None,
    horizon_months: int = 12,
    monthly_discount: float = 0.01,
    *,
    churn_horizon_days: int = 90,
    spend_fit: SpendFit | None = None,
) -> tuple[pl.DataFrame, Callable[[ParamDraws | None], pl.DataFrame]]:
    """``compute_clv`` in two parts: (customer_id, expected_purchases_12m, clv), and a function of the bootstrap
    fits giving (clv_low, clv_high) in the same row order, so that the interval is worked out apart.
    `spend_fit`: the population's (``fit_spend``) when `features` is one shard of it."""
    if horizon_months < 1 or monthly_discount < 0:
        raise ValueError("need horizon_months >= 1 and monthly_discount >= 0")
    buyers = features["frequency"].is_not_null().to_numpy()

    def published(**columns: np.ndarray) -> pl.DataFrame:
        out = {}
        for name, values in columns.items():
            full = np.full(features.height, np.nan)
            full[buyers] = values
            out[name] = pl.Series(values=full, nan_to_null=True)
        return pl.DataFrame(out)

    if not buyers.any():
        nothing = np.zeros(0)
        point = published(expected_purchases_12m=nothing, clv=nothing)
        return point.insert_column(0, features["customer_id"]), lambda _: published(clv_low=nothing, clv_high=nothing)
    b = features.select("customer_id", "frequency", "recency", "T", "monetary_value", "total_spend").filter(
        pl.Series(buyers)
    )
    x, tx, t_obs = (b[c].cast(pl.Float64).to_numpy() for c in ("frequency", "recency", "T"))
    (gx, gt), grid, _ = _unique_rows(x, t_obs)  # all but P(alive) and spend depend on (x, T) only
    horizons = DAYS_PER_MONTH * np.arange(1, horizon_months + 1)
    discount = (1.0 + monthly_discount) ** -np.arange(1, horizon_months + 1)
    # purchases = E(12 months); sum_m discount_m * (E(m) - E(m - 1)) = sum_m E(m) * (discount_m - discount_m+1)
    weights = np.stack([np.eye(horizon_months)[-1], discount - np.append(discount[1:], 0.0)])
    total, discounted = expected_purchases_if_alive(params, horizons, gx, gt, weights=weights)
    q = np.full(x.size, np.nan) if churn_risk is None else np.asarray(churn_risk, dtype=np.float64)[buyers]
    p_alive = implied_p_alive(params, q, gx, gt, churn_horizon_days, grid)
    unknown = np.flatnonzero(np.isnan(q))  # BG/NBD's own P(alive) where no churn risk is given
    p_alive[unknown] = probability_alive(params, x[unknown], tx[unknown], t_obs[unknown])
    spend, spend_cv2 = spend_model(
        x, b["monetary_value"].to_numpy(), b["total_spend"].to_numpy(), b["customer_id"], spend_fit
    )
    value = p_alive * discounted[grid] * spend
    point = published(expected_purchases_12m=p_alive * total[grid], clv=value)

    def interval(param_draws: ParamDraws | None) -> pl.DataFrame:
        log_sd = parameter_log_sd(param_draws, gx, gt, horizons[-1], churn_horizon_days)
        low, high = clv_interval(value, p_alive, grid, total, params.r + gx, spend_cv2, log_sd)
        return published(clv_low=low, clv_high=high)

    return point.insert_column(0, features["customer_id"]), interval
