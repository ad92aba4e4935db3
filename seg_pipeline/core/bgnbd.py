"""BG/NBD buy-till-you-die model (Fader, Hardie & Lee 2005), fitted by maximum likelihood.

Inputs are the lifetimes / pymc-marketing summary arrays in days: ``frequency`` x
(repeat purchase days), ``recency`` t_x (first -> last purchase day) and ``T``
(first purchase day -> as-of). Purchase rates are Gamma(r, alpha) across customers,
drop-out probabilities after each repeat purchase Beta(a, b).

Fitting maximises the mean log-likelihood over log-parameters with L-BFGS-B and an
analytic gradient; times are rescaled so that max(T) = 10 during the fit and identical
(x, t_x, T) rows are collapsed with weights, so a million customers fit in about a second.
Those distinct rows and their counts (``btyd_counts``) are all a fit reads of the buyers: the counts of
several shards, added up (``core.shards.merge_counts``), fit exactly as all their buyers do
(``fit_bgnbd_counts``).

Known flaw (documented in the BG/NBD literature, fixed by MBG/NBD): drop-out can only
happen right after a repeat purchase, so ``probability_alive`` is exactly 1 for every
customer with frequency 0, however long ago their only purchase was. Their posterior
purchase rate still shrinks with T, so ``expected_purchases`` and
``probability_no_purchase`` do fall for long-silent one-time buyers.
"""

from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from functools import cache

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1
from threadpoolctl import ThreadpoolController

ArrayLike = np.ndarray | float | int


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD parameters; ``alpha`` is in days."""

    r: float
    alpha: float
    a: float
    b: float

    def to_dict(self) -> dict[str, float]:
        """Plain-float dict (JSON-serialisable)."""
        return {k: float(v) for k, v in asdict(self).items()}


def _as_arrays(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, tx, t_obs = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T))
    if np.isnan(x).any() or np.isnan(tx).any() or np.isnan(t_obs).any():
        raise ValueError("frequency/recency/T must not contain NaN (drop prospects first)")
    if (x < 0).any() or (tx < 0).any() or (tx > t_obs + 1e-9).any():
        raise ValueError("need frequency >= 0 and 0 <= recency <= T")
    return x, tx, t_obs


def _unique_rows(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Distinct rows of equal-length 1-D columns, in sorted order: (columns, inverse index, counts).

    Columns of small non-negative whole numbers (days, purchase counts) are counted on their dense mixed-radix key
    in linear time instead of sorted."""
    dense = _dense_unique_rows(cols)
    if dense is not None:
        return dense
    order = np.lexsort(cols[::-1])
    ordered = [c[order] for c in cols]
    same_as_previous = np.ones(max(order.size - 1, 0), dtype=bool)
    for c in ordered:
        same_as_previous &= c[1:] == c[:-1]
    start = np.concatenate([[True], ~same_as_previous])[: order.size]
    inverse = np.empty(order.size, dtype=np.int64)
    inverse[order] = np.cumsum(start) - 1
    counts = np.diff(np.append(np.flatnonzero(start), order.size))
    return [c[start] for c in ordered], inverse, counts


_DENSE_KEYS = 1 << 24  # largest key range counted densely


def _dense_unique_rows(cols: tuple[np.ndarray, ...]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray] | None:
    """``_unique_rows`` by counting, when every column holds whole numbers in [0, a small bound); else None."""
    if not cols or not cols[0].size:
        return None
    sizes = []
    for c in cols:
        low, high = float(c.min()), float(c.max())
        if not (low >= 0 and high < _DENSE_KEYS):
            return None
        sizes.append(int(high) + 1)
    if np.prod(np.asarray(sizes, dtype=np.float64)) > _DENSE_KEYS:
        return None
    key = np.zeros(cols[0].size, dtype=np.int64)
    for c, size in zip(cols, sizes, strict=True):
        whole = c.astype(np.int64)
        if not np.array_equal(whole, c):
            return None
        key = key * size + whole
    counts = np.bincount(key)
    present = np.flatnonzero(counts)
    position = np.zeros(counts.size, dtype=np.int64)
    position[present] = np.arange(present.size)
    columns, rest = [], present
    for size in reversed(sizes):
        rest, digit = np.divmod(rest, size)
        columns.append(digit.astype(np.float64))
    return columns[::-1], position[key], counts[present]


def _neg_ll_and_grad(
    log_params: np.ndarray,
    x: np.ndarray,
    tx: np.ndarray,
    t_obs: np.ndarray,
    weights: np.ndarray,
    penalizer: float,
) -> tuple[float, np.ndarray]:
    """Weighted mean negative log-likelihood (plus L2 penalty on log-params) and gradient."""
    r, alpha, a, b = np.exp(log_params)
    rep = x > 0
    log_a_t = np.log(alpha + t_obs)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * log_a_t
    log_a_tx = np.log(alpha + tx)
    a4 = np.full_like(x, -np.inf)
    a4[rep] = np.log(a) - np.log(b + x[rep] - 1) - (r + x[rep]) * log_a_tx[rep]
    ll = a1 + a2 + np.logaddexp(a3, a4)
    w4 = np.zeros_like(x)
    w4[rep] = expit(a4[rep] - a3[rep])
    w3 = 1.0 - w4
    inv_bx1 = np.zeros_like(x)
    inv_bx1[rep] = 1.0 / (b + x[rep] - 1)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w3 * log_a_t - w4 * log_a_tx
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + t_obs) + w4 / (alpha + tx))
    d_a = digamma(a + b) - digamma(a + b + x) + w4 / a
    d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - w4 * inv_bx1
    total = weights.sum()
    grad_params = np.array([(weights * d).sum() for d in (d_r, d_alpha, d_a, d_b)]) / total
    value = -(weights * ll).sum() / total + penalizer * float(log_params @ log_params)
    grad = -grad_params * np.exp(log_params) + 2.0 * penalizer * log_params
    return float(value), grad


@cache
def _blas_libraries() -> ThreadpoolController:
    """The process's thread pools, found once (a fresh ``threadpool_limits`` scans the loaded libraries again)."""
    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager:
    """Context limiting BLAS to one thread: for tiny BLAS calls thread wake-ups cost more than they save."""
    return _blas_libraries().limit(limits=1, user_api="blas")


def btyd_counts(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> pl.DataFrame:
    """The distinct (frequency, recency, T) rows in sorted order with their ``count``: what a fit reads."""
    (ux, utx, ut), _, counts = _unique_rows(*_as_arrays(frequency, recency, T))
    return pl.DataFrame({"frequency": ux, "recency": utx, "T": ut, "count": counts.astype(np.int64)})


def fit_bgnbd(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, penalizer: float = 0.0, *, start: BgNbdParams | None = None
) -> BgNbdParams:
    """Maximum-likelihood BG/NBD fit; ``penalizer`` adds ``penalizer * sum(log(param)^2)``. ``start``: params to
    start the search from (e.g. a fit on similar data: fewer steps to the same optimum)."""
    return fit_bgnbd_counts(btyd_counts(frequency, recency, T), penalizer, start=start)


def fit_bgnbd_counts(counts: pl.DataFrame, penalizer: float = 0.0, *, start: BgNbdParams | None = None) -> BgNbdParams:
    """``fit_bgnbd`` of the buyers whose ``btyd_counts`` (or the merged counts of several shards) are `counts`."""
    if counts.height == 0:
        raise ValueError("cannot fit BG/NBD on zero customers")
    ux, utx, ut = (counts[c].cast(pl.Float64).to_numpy() for c in ("frequency", "recency", "T"))
    scale = 10.0 / max(float(ut.max()), 1.0)
    x0 = np.zeros(4) if start is None else np.clip(
        np.log([start.r, start.alpha * scale, start.a, start.b]), -12.0, 12.0
    )  # fmt: skip
    with one_blas_thread():
        res = minimize(
            _neg_ll_and_grad,
            x0=x0,
            args=(ux, utx * scale, ut * scale, counts["count"].cast(pl.Float64).to_numpy(), penalizer),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-12.0, 12.0)] * 4,
            options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-8},
        )
    if not np.isfinite(res.fun):
        raise RuntimeError(f"BG/NBD fit failed: {res.message}")
    r, alpha, a, b = np.exp(res.x)
    return BgNbdParams(r=float(r), alpha=float(alpha / scale), a=float(a), b=float(b))


def _log_odds_dead(params: BgNbdParams, x: np.ndarray, tx: np.ndarray, t_obs: np.ndarray) -> np.ndarray:
    """log(P(dead) / P(alive)); -inf for frequency 0."""
    out = np.full(np.broadcast(x, tx, t_obs).shape, -np.inf)
    x, tx, t_obs = np.broadcast_arrays(x, tx, t_obs)
    rep = x > 0
    out[rep] = (
        np.log(params.a)
        - np.log(params.b + x[rep] - 1)
        + (params.r + x[rep]) * (np.log(params.alpha + t_obs[rep]) - np.log(params.alpha + tx[rep]))
    )
    return out


def probability_alive(params: BgNbdParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """P(customer still alive at T); exactly 1 for frequency 0 (see module docstring)."""
    x, tx, t_obs = _as_arrays(frequency, recency, T)
    return expit(-_log_odds_dead(params, x, tx, t_obs))


def probability_no_purchase_if_alive(
    params: BgNbdParams, t: ArrayLike, frequency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """P(no purchase in (T, T + t] | alive at T) = ((alpha+T)/(alpha+T+t))^(r+x).

    Given alive at T the rate posterior is Gamma(r + x, alpha + T), and drop-out only follows a purchase.
    """
    x, t_obs = np.asarray(frequency, dtype=np.float64), np.asarray(T, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    return np.exp((params.r + x) * (np.log(params.alpha + t_obs) - np.log(params.alpha + t_obs + t)))


def probability_no_purchase(
    params: BgNbdParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """P(no purchase in (T, T + t]) = (1 - P(alive)) + P(alive) * P(no purchase | alive)."""
    x, tx, t_obs = _as_arrays(frequency, recency, T)
    p_alive = expit(-_log_odds_dead(params, x, tx, t_obs))
    return 1.0 - p_alive + p_alive * probability_no_purchase_if_alive(params, t, x, t_obs)


def expected_purchases_if_alive(
    params: BgNbdParams, t: ArrayLike, frequency: ArrayLike, T: ArrayLike, *, weights: ArrayLike | None = None
) -> np.ndarray:
    """Expected number of purchases in (T, T + t] given alive at T; it depends on (x, T) only.

    ``t`` is a scalar (result shaped like the customer arrays) or a 1-D array of horizons
    (result shape ``(len(t),) + customer shape``). ``weights`` (shape ``(..., len(t))``) asks
    for weighted sums over the horizons instead (shape ``weights.shape[:-1] + customer shape``),
    summed before the per-customer arrays are made. Uses the Euler transform
    2F1(r+x, b+x; c; z) = (1-z)^(a-1-r-x) 2F1(a+b-1-r, a-1; c; z), c = a+b+x-1, whose
    parameters do not grow with x (stable for heavy buyers), evaluated once per distinct (x, T).
    """
    x, t_obs = np.broadcast_arrays(np.asarray(frequency, dtype=np.float64), np.asarray(T, dtype=np.float64))
    r, alpha, b = params.r, params.alpha, params.b
    a = params.a if abs(params.a - 1.0) > 1e-6 else 1.0 + 1e-6
    (ux, ut), inverse, _ = _unique_rows(x.ravel(), t_obs.ravel())
    tt = np.asarray(t, dtype=np.float64)
    if tt.ndim > 1:
        raise ValueError("t must be a scalar or a 1-D array of horizons")
    z = tt[..., None] / (alpha + ut + tt[..., None])
    c = a + b + ux - 1
    uncond = c / (a - 1) * (1.0 - np.exp((a - 1) * np.log1p(-z)) * hyp2f1(a + b - 1 - r, a - 1, c, z))
    if weights is not None:
        uncond = np.asarray(weights, dtype=np.float64) @ uncond
    return uncond[..., inverse].reshape(uncond.shape[:-1] + x.shape)


def expected_purchases(
    params: BgNbdParams,
    t: ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    weights: ArrayLike | None = None,
) -> np.ndarray:
    """Conditional expected number of purchases in (T, T + t] (FHL 2005, eq. 10): P(alive) times
    ``expected_purchases_if_alive`` (same ``t`` and ``weights``)."""
    x, tx, t_obs = np.broadcast_arrays(*_as_arrays(frequency, recency, T))
    if_alive = expected_purchases_if_alive(params, t, x, t_obs, weights=weights)
    return if_alive * expit(-_log_odds_dead(params, x, tx, t_obs))
