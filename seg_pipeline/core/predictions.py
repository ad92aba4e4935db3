"""The predictions a CLV practitioner expects beside churn_risk: P(alive), expected purchases per window, the
next order date, the CLV interval, and their check against the latest complete window.

Everything starts from the version's BG/NBD params (r, alpha, a, b) and the churn risk q = P(no purchase in the
churn horizon h), for buyers (x = frequency, T in days):

- alive = (1 - q) / (1 - P0(h)), P0(t) = ((alpha + T) / (alpha + T + t))^(r + x) = P(no purchase in t | alive):
  the BG/NBD-sense P(alive) under which BG/NBD's P(no purchase in h) equals q, clipped to [0, 1]. A long-silent
  one-time buyer is not alive by construction here (BG/NBD's own P(alive) is 1 for them).
- ``p_alive`` = alive * (1 - P0(365)) = P(at least one purchase in the next 365 days): the probability that the
  customer is still an active customer, the one-year counterpart of churn_risk: churn_risk = 1 - alive * (1 -
  P0(h)), 1 - p_alive = 1 - alive * (1 - P0(365)). It falls with silence and rises with the purchase rate.
  (``alive`` itself is near 1 for slow buyers whom the churn model finds less silent than BG/NBD's rate allows,
  so it ranks who buys again poorly: AUC 0.39 against 0.77 for ``p_alive`` on CDNOW, see the README.)
- Expected purchase days in w days: ``alive * E(w | alive)``, BG/NBD's expected purchases given alive.
- Next order: given alive, the time to the next purchase has survival ((alpha + T) / (alpha + T + t))^(r + x)
  (Poisson purchases at a Gamma(r + x, alpha + T) rate), so P(next purchase within t) = alive * (1 - that).
  Its median t50 = (alpha + T) * ((1 - 1 / (2 alive))^(-1 / (r + x)) - 1) exists when alive > 1/2;
  ``next_order_date`` = D + ceil(t50) days (at least 1), null when t50 > 365 days, i.e. when p_alive < 1/2
  (more likely than not no order within a year). The rhythm baseline: last purchase day + the customer's mean
  days between purchase days (the buyers' median of it for one-time buyers), at the earliest D + 1.
- CLV interval (80%): given alive, the discounted spend V over the horizon is approximated by a Gamma with the
  mean clv / alive and CV^2 = (1 + s^2) / n + 1 / (r + x) (n expected purchases given alive, s^2 the spend
  per purchase's CV^2 from Gamma-Gamma, 1 / (r + x) the spread of the rate posterior); with probability
  1 - alive V = 0. The 10% and 90% quantiles of that mixture are widened by the parameter uncertainty: the
  standard deviation sigma of log(E(H | alive) / (1 - P0)) over BG/NBD fits on 8 bootstrap resamples of 5,000
  buyers, rescaled by sqrt(5,000 / buyers fitted) to the spread of the version's own fit, times
  exp(-/+ 1.2816 sigma), and rounded to whole purchases of the mean discounted value per purchase
  (a continuity correction: counts are whole, and a continuous upper end of 0.6 purchases would miss every
  customer who buys once).
  ``clv_low <= clv <= clv_high`` holds by clipping.
"""

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl
from scipy.special import gammainc, gammaincinv

from seg_pipeline.core.bgnbd import (
    BgNbdParams,
    _unique_rows,
    expected_purchases_if_alive,
    fit_bgnbd,
    probability_no_purchase_if_alive,
)

WINDOWS = (30, 90, 365)
NEXT_ORDER_WITHIN_DAYS = 365
ACTIVE_DAYS = 365  # p_alive: P(a purchase within this many days)
INTERVAL_LEVEL = 0.8
_Z = 1.2815515655446004  # standard normal 90% quantile: the parameter factor of an 80% interval
BOOTSTRAP_DRAWS = 8
BOOTSTRAP_SAMPLE = 5_000


def implied_p_alive(
    params: BgNbdParams, churn_risk: np.ndarray, frequency: np.ndarray, T: np.ndarray, horizon_days: int,
    grid: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """BG/NBD-sense P(alive) consistent with the churn risk (``alive`` of the module docstring); NaN where
    churn_risk is NaN. ``grid``: each churn risk's row of (frequency, T) when those are the distinct rows."""
    silent_if_alive = probability_no_purchase_if_alive(params, horizon_days, frequency, T)
    silent_if_alive = silent_if_alive if grid is None else silent_if_alive[grid]
    return np.clip((1.0 - churn_risk) / np.maximum(1.0 - silent_if_alive, 1e-12), 0.0, 1.0)


def next_order_days(
    params: BgNbdParams, alive: np.ndarray, frequency: np.ndarray, T: np.ndarray,
    within_days: int = NEXT_ORDER_WITHIN_DAYS,
) -> np.ndarray:  # fmt: skip
    """Days from D to the median next purchase day (at least 1); NaN when it is more than ``within_days`` away.

    ``alive``: ``implied_p_alive``."""
    likely = alive > 0.5
    left = np.where(likely, 1.0 - 0.5 / np.where(likely, alive, 1.0), 1.0)
    t50 = (params.alpha + T) * np.expm1(-np.log(left) / (params.r + frequency))
    days = np.maximum(np.ceil(t50), 1.0)
    return np.where(likely & (t50 <= within_days), days, np.nan)


def rhythm_baseline_days(days_since_last_order: np.ndarray, mean_days_between: np.ndarray) -> np.ndarray:
    """Days from D to last purchase + mean gap (the buyers' median gap for one-time buyers), at least 1."""
    known = mean_days_between[~np.isnan(mean_days_between)]
    gap = np.where(np.isnan(mean_days_between), np.median(known) if known.size else np.nan, mean_days_between)
    return np.maximum(gap - days_since_last_order, 1.0)


@dataclass(frozen=True)
class ParamDraws:
    """BG/NBD fits on bootstrap resamples of ``size`` of ``n`` buyers: their spread times sqrt(size / n) is that of
    a fit on all n (an m-out-of-n bootstrap: small resamples keep it cheap)."""

    fits: tuple[BgNbdParams, ...]
    size: int
    n: int

    @property
    def scale(self) -> float:
        return float(np.sqrt(self.size / self.n)) if self.n else 1.0


def bootstrap_params(
    frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, penalizer: float, *,
    draws: int = BOOTSTRAP_DRAWS, size: int = BOOTSTRAP_SAMPLE, seed: int = 0, start: BgNbdParams | None = None,
) -> ParamDraws:  # fmt: skip
    """BG/NBD fits on ``draws`` seeded resamples (with replacement) of ``size`` of the given buyers (those the
    version's params are fitted on); fits that fail are left out. ``start``: the version's own fit, where each
    resample's search starts (its optimum is near)."""
    rng = np.random.default_rng(seed)
    size = min(size, frequency.size)
    fits = []
    for _ in range(draws):
        chosen = rng.integers(0, frequency.size, size)
        try:
            fits.append(fit_bgnbd(frequency[chosen], recency[chosen], T[chosen], penalizer=penalizer, start=start))
        except (ValueError, RuntimeError):
            continue
    return ParamDraws(tuple(fits), size, frequency.size)


def parameter_log_sd(
    draws: ParamDraws | None, frequency: np.ndarray, T: np.ndarray, horizon_days: float, churn_horizon_days: int
) -> np.ndarray:
    """Per (x, T) row: std over the draws of log(E(horizon | alive) / (1 - P0)), rescaled to the full fit (see
    ``ParamDraws``); 0 without two draws. Give it distinct rows (the grid), it evaluates every row."""
    if draws is None or len(draws.fits) < 2:
        return np.zeros(np.shape(frequency))
    gx, gt = np.asarray(frequency, dtype=np.float64), np.asarray(T, dtype=np.float64)
    logs = np.stack([
        np.log(np.maximum(expected_purchases_if_alive(p, horizon_days, gx, gt), 1e-300))
        - np.log(np.maximum(1.0 - probability_no_purchase_if_alive(p, churn_horizon_days, gx, gt), 1e-300))
        for p in draws.fits
    ])  # fmt: skip
    logs = logs[np.isfinite(logs).all(axis=1)]  # a degenerate resample fit (a short history) tells nothing
    return logs.std(axis=0) * draws.scale if len(logs) >= 2 else np.zeros(gx.shape)


def clv_interval(
    clv: np.ndarray, p_alive: np.ndarray, grid: np.ndarray, purchases_if_alive: np.ndarray, rate_shape: np.ndarray,
    spend_cv2: float, log_sd: np.ndarray, level: float = INTERVAL_LEVEL,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(low, high): the central ``level`` interval of the module docstring's mixture, around ``clv``.

    ``clv``, ``p_alive`` per customer; ``purchases_if_alive``, ``rate_shape``, ``log_sd`` per distinct (x, T), the
    customer's row of them ``grid``. An end is k whole purchases of the mean discounted value per purchase with
    k = round(purchases / shape x Gamma quantile x parameter factor), a function of the customer's (x, T) and
    quantile level only: k is counted as the number of whole-purchase edges whose Gamma CDF on that row of the grid
    the customer's level reaches (``_whole_purchases``), no per-customer inverse of the Gamma."""
    alive = np.maximum(p_alive, 1e-12)
    purchases = np.maximum(purchases_if_alive, 1e-12)
    shape = 1.0 / ((1.0 + spend_cv2) / purchases + 1.0 / rate_shape)
    per_purchase = np.where(purchases_if_alive[grid] > 0, clv / alive / purchases[grid], 0.0)
    tail = (1.0 - level) / 2
    ends = []
    for u, z in ((tail, -_Z), (1.0 - tail, _Z)):
        inner = np.clip((u - (1.0 - alive)) / alive, 0.0, 1.0)  # the level within the alive part of the mixture
        counts_per_quantile = np.where(purchases_if_alive > 0, purchases / shape * np.exp(z * log_sd), 0.0)
        ends.append(_whole_purchases(shape, counts_per_quantile, grid, inner) * per_purchase)
    return np.minimum(ends[0], clv), np.maximum(ends[1], clv)


_MAX_EDGES = 256  # grid rows needing more whole-purchase edges invert the Gamma per customer instead


def _whole_purchases(shape: np.ndarray, per_quantile: np.ndarray, grid: np.ndarray, level: np.ndarray) -> np.ndarray:
    """round(per_quantile[g] x Q(shape[g], level)) per customer (g = its ``grid`` row, Q the unit-scale Gamma
    quantile, 0 at level 0): k >= j exactly when level >= P(shape, (j - 1/2) / per_quantile), so k is the number of
    those edges at or below the level. Customers at a level above 0 find it by a binary search over their grid row's
    edges between the counts at the lowest and the highest such level of the row's customers (those below are
    reached by all of them; a margin of one each way covers the rounding)."""
    searched = np.flatnonzero(level > 0)
    g, at = grid[searched], level[searched]
    top, bottom = np.zeros(shape.size), np.ones(shape.size)
    np.maximum.at(top, g, at)
    np.minimum.at(bottom, g, at)
    used = top > 0
    most = np.where(used, np.round(per_quantile * gammaincinv(shape, np.where(used, top, 0.0))), 0.0)
    least = np.where(used, np.round(per_quantile * gammaincinv(shape, np.minimum(bottom, top))), 0.0)
    direct = most > _MAX_EDGES
    skipped = np.maximum(least - 1, 0).astype(np.intp)  # edges every searched customer of the row reaches
    n_edges = np.where(direct | (per_quantile == 0), 0, most + 1 - skipped).astype(np.intp)  # + 1: the margin
    starts = np.concatenate([[0], np.cumsum(n_edges)])
    row = np.repeat(np.arange(shape.size), n_edges)
    j = np.arange(row.size) - starts[row] + 1 + skipped[row]
    edges = np.concatenate([[np.inf], gammainc(shape[row], (j - 0.5) / per_quantile[row])])  # [0]: "no edge"
    n, start = n_edges[g], starts[g]
    count = np.zeros(searched.size, dtype=np.intp)
    step = 1 << int(n_edges.max(initial=0)).bit_length()
    while step:
        trial = count + step
        within = trial <= n
        count = np.where(within & (edges[np.where(within, start + trial, 0)] <= at), trial, count)
        step >>= 1
    out = np.zeros(grid.size)
    out[searched] = count + skipped[g]
    slow = searched[direct[g]]
    out[slow] = np.round(per_quantile[grid[slow]] * gammaincinv(shape[grid[slow]], level[slow]))
    return out


def predict(
    features: pl.DataFrame, params: BgNbdParams, churn_risk: np.ndarray, as_of: date, churn_horizon_days: int
) -> pl.DataFrame:
    """(customer_id, p_alive, expected_purchases_<w>d for w in WINDOWS, next_order_date) in ``features`` row order.

    ``churn_risk`` is aligned with ``features`` (NaN for prospects); prospects get nulls.
    """
    buyers = features["frequency"].is_not_null().to_numpy()
    b = features.select(pl.col("frequency", "T").cast(pl.Float64)).filter(pl.Series(buyers))
    x, t_obs = b["frequency"].to_numpy(), b["T"].to_numpy()
    (gx, gt), grid, _ = _unique_rows(x, t_obs)  # BG/NBD's terms once per distinct (x, T)
    q = np.asarray(churn_risk, dtype=np.float64)[buyers]
    alive = implied_p_alive(params, q, gx, gt, churn_horizon_days, grid)
    p_alive = alive * (1.0 - probability_no_purchase_if_alive(params, ACTIVE_DAYS, gx, gt))[grid]
    purchases = alive * expected_purchases_if_alive(params, np.asarray(WINDOWS, dtype=np.float64), gx, gt)[:, grid]
    days = next_order_days(params, alive, x, t_obs)

    def full(values: np.ndarray) -> pl.Series:
        out = np.full(features.height, np.nan)
        out[buyers] = values
        return pl.Series(values=out, nan_to_null=True)

    windows = {f"expected_purchases_{w}d": full(purchases[k]) for k, w in enumerate(WINDOWS)}
    frame = pl.DataFrame({"customer_id": features["customer_id"], "p_alive": full(p_alive), **windows,
                          "_days": full(days)})  # fmt: skip
    due = (pl.col("_days").cast(pl.Int32) + (as_of - date(1970, 1, 1)).days).cast(pl.Date)  # a Date counts days
    return frame.select("customer_id", "p_alive", *windows, due.alias("next_order_date"))


def outcomes(orders: pl.DataFrame, cut: date, days: int, monthly_discount: float) -> pl.DataFrame:
    """Per customer with a completed order in (cut, cut + days]: purchase days, days to the first of them, and
    spend discounted by month from ``cut`` as CLV discounts it (month m = days in ((m-1) M, m M], M = 365.25/12)."""
    month = 365.25 / 12
    ahead = (pl.col("order_day") - pl.lit(cut)).dt.total_days()
    return (
        orders.lazy()
        .filter((pl.col("status") == "completed") & (pl.col("order_day") > cut)
                & (pl.col("order_day") <= cut + timedelta(days=days)))  # fmt: skip
        .with_columns(ahead.alias("_ahead"))
        .group_by("customer_id")
        .agg(
            pl.col("order_day").n_unique().alias("purchase_days"),
            pl.col("_ahead").min().cast(pl.Float64).alias("days_to_next"),
            (pl.col("amount") * (1.0 + monthly_discount) ** -(pl.col("_ahead") / month).ceil()).sum().alias("spend"),
        )
        .collect()
    )


def window_check(scored: pl.DataFrame, realized: pl.DataFrame, window: int) -> dict:
    """Predictions made at a cut against what happened in the ``window`` days after it.

    ``scored``: buyers at the cut with ``expected_purchases_<window>d``, ``next_order_days``, ``baseline_days``,
    ``clv``, ``clv_low``, ``clv_high`` (the latter three over the window). Next-order errors are mean absolute
    days with predictions and outcomes capped at the window (no order / no prediction = the window's end), over
    all buyers and (``_ordering``) over those who did order in the window.
    """
    rows = scored.join(realized, on="customer_id", how="left").with_columns(
        pl.col("purchase_days").fill_null(0), pl.col("spend").fill_null(0.0)
    )

    def capped(column: str) -> pl.Expr:
        return pl.col(column).fill_nan(None).fill_null(window).clip(upper_bound=window)

    actual = capped("days_to_next")
    summary = rows.select(
        pl.len().alias("customers"),
        pl.col(f"expected_purchases_{window}d").sum().alias("predicted_purchase_days"),
        pl.col("purchase_days").sum().cast(pl.Float64).alias("actual_purchase_days"),
        (capped("next_order_days") - actual).abs().mean().alias("next_order_mae_days"),
        (capped("baseline_days") - actual).abs().mean().alias("rhythm_baseline_mae_days"),
        (capped("next_order_days") - actual).abs().filter(pl.col("days_to_next").is_not_null()).mean()
        .alias("next_order_mae_days_ordering"),
        (capped("baseline_days") - actual).abs().filter(pl.col("days_to_next").is_not_null()).mean()
        .alias("rhythm_baseline_mae_days_ordering"),
        pl.col("spend").is_between(pl.col("clv_low"), pl.col("clv_high")).mean().alias("clv_interval_coverage"),
    ).row(0, named=True)
    actual_days = summary["actual_purchase_days"]
    summary["purchase_ratio"] = summary["predicted_purchase_days"] / actual_days if actual_days else None
    return {"window_days": window, **summary}


def carried_checks(
    previous: dict | None, as_of: date, longest_tenure_days: int | None, max_age_days: int
) -> dict | None:
    """The previous version's window checks (``{"windows", "checked_as_of"}``) if version `as_of` may carry them.

    `previous`: that version's metrics when the same churn model made it (else None). They are carried while
    younger than `max_age_days` (SEG_RETRAIN_EVERY_DAYS) and covering every window complete now (a window is
    complete when the oldest buyer, `longest_tenure_days` old, bought before it began); otherwise None: check
    again.
    """
    carried = (previous or {}).get("predictions", {})
    checked = carried.get("checked_as_of")
    complete = 0
    if longest_tenure_days is not None:
        complete = sum(w <= longest_tenure_days for w in WINDOWS)
    if checked and len(carried.get("windows", [])) >= complete and (
        (as_of - date.fromisoformat(checked)).days < max_age_days
    ):
        return {"windows": carried["windows"], "checked_as_of": checked}
    return None
