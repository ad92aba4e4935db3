"""Synthetic orders for the ML-core tests: a Pareto/NBD-like simulator with drop-out and covariates.

Customers join uniformly over the window, buy at a Gamma-distributed daily rate and drop out after an
exponential lifetime. Signals a plain BTYD model cannot use: members buy more and churn much less,
return-prone customers churn more, engagement decays with tenure (rate falls towards 35% of its start
level, time constant 180 days) and the purchase rate fades over the last 90 days before drop-out.
"""

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

STATUS_CANCEL_P = 0.04
FADE_DAYS = 90.0
DECAY_FLOOR, DECAY_DAYS = 0.35, 180.0


def simulate_bgnbd(
    n: int, r: float, alpha: float, a: float, b: float, T_max: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (frequency, recency, T) from the BG/NBD generative process (continuous time)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.uniform(0.2 * T_max, T_max, n)
    t = np.zeros(n)
    x = np.zeros(n)
    tx = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        t[idx] += rng.exponential(1.0, idx.size) / lam[idx]
        buys = t[idx] <= T[idx]
        alive[idx[~buys]] = False
        bought = idx[buys]
        x[bought] += 1
        tx[bought] = t[bought]
        alive[bought[rng.random(bought.size) < p[bought]]] = False
    return x, tx, T


def simulate_orders(
    n_customers: int = 4000, days: int = 600, end_date: date = date(2024, 6, 30), seed: int = 0, extra_days: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Accepted-style orders and profiles over ``days`` days ending at ``end_date`` (+ ``extra_days``).

    The process is fixed by ``seed``; ``extra_days`` only extends the observation window, so the orders up
    to ``end_date`` are identical for any ``extra_days``. Returns (orders, profiles), profiles including
    5% prospects without orders.
    """
    rng = np.random.default_rng(seed)
    n = n_customers
    start = end_date - timedelta(days=days - 1)
    horizon = float(days + extra_days)
    join = rng.uniform(0, days, n)
    member = rng.random(n) < 0.35
    ret_p = rng.beta(1.0, 8.0, n)
    lam = rng.gamma(0.9, 1.0 / 20.0, n) * np.where(member, 1.3, 1.0)
    mu = rng.gamma(2.0, 1.0 / (2.0 * 250.0), n) * np.where(member, 0.3, 1.0) * (1.0 + 15.0 * ret_p)
    death = join + rng.exponential(1.0, n) / mu
    spend = np.exp(rng.normal(3.5, 0.7, n))

    # Poisson events on [join, death) drawn over a fixed long span, so extra_days never changes them.
    span = np.maximum(np.minimum(death, days + 400.0) - join, 0.0)
    counts = rng.poisson(lam * span)
    cust = np.repeat(np.arange(n), counts)
    t = join[cust] + rng.random(cust.size) * span[cust]
    fade = 1.0 - 0.85 * np.clip((t - (death[cust] - FADE_DAYS)) / FADE_DAYS, 0.0, 1.0)
    decay = DECAY_FLOOR + (1.0 - DECAY_FLOOR) * np.exp(-(t - join[cust]) / DECAY_DAYS)
    keep = rng.random(cust.size) < fade * decay
    u_status = rng.random(cust.size)
    noise = rng.lognormal(0.0, 0.4, cust.size)
    cust, t, u_status, noise = cust[keep], t[keep], u_status[keep], noise[keep]
    cust = np.concatenate([np.arange(n), cust])
    t = np.concatenate([join, t])
    u_status = np.concatenate([np.ones(n), u_status])  # first orders are completed
    noise = np.concatenate([np.ones(n), noise])
    in_window = t < horizon
    cust, t, u_status, noise = cust[in_window], t[in_window], u_status[in_window], noise[in_window]
    status = np.where(
        u_status < ret_p[cust], "returned", np.where(u_status < ret_p[cust] + STATUS_CANCEL_P, "cancelled", "completed")
    )
    ts = np.datetime64(datetime(start.year, start.month, start.day), "us") + (t * 86_400e6).astype("timedelta64[us]")
    ids = np.array([f"C{i:06d}" for i in range(n + n // 20)])
    channels = np.array(["web", "app", "store"])
    orders = (
        pl.DataFrame(
            {
                "customer_id": ids[cust],
                "order_ts": ts,
                "amount": np.round(spend[cust] * noise, 2),
                "status": status,
                "channel": channels[cust % 3],
                "category": np.array(["home", "fashion", "books", "toys"])[(cust // 3) % 4],
                "quantity": (cust % 3 + 1).astype(np.int32),
            }
        )
        .sort("order_ts", "customer_id")
        .with_columns(
            order_id=pl.format("O{}", pl.int_range(pl.len()).cast(pl.Utf8).str.zfill(8)),
            order_day=pl.col("order_ts").dt.date(),
            currency=pl.lit("USD"),
        )
        .select("order_id", "customer_id", "order_ts", "order_day", "amount", "currency", "status", "channel",
                "category", "quantity")
    )
    m = ids.size
    signup = np.concatenate([join, rng.uniform(0, days, m - n)]).astype(int)
    profiles = pl.DataFrame(
        {
            "customer_id": ids,
            "signup_date": [start + timedelta(days=int(d)) for d in signup],
            "birth_year": rng.integers(1950, 2005, m).astype(np.int32),
            "gender": np.array(["female", "male"])[rng.integers(0, 2, m)],
            "region": np.array(["north", "south", "east", "west"])[rng.integers(0, 4, m)],
            "customer_type": "individual",
            "is_member": np.concatenate([member, rng.random(m - n) < 0.35]),
            "name": "x",
            "email": "x@example.com",
            "phone": "0",
        }
    )
    return orders, profiles
