"""Seeded, vectorized demo landing-data generator (orders and profile snapshots, CONTRACT section 1).

Customers follow a Pareto/NBD-like process: they join over the window (growing), buy at a
gamma-distributed daily rate modulated by weekly and yearly seasonality, and drop out after an
exponential lifetime. Spend is lognormal per customer times lognormal per order. A small share of
rows is corrupted in ways the validation stage must quarantine (see ``DIRTY_ORDER_KINDS``).
All string columns are built with polars expressions; there are no per-row Python loops.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from seg_pipeline.storage.landing import COLUMNS

ORDER_COLUMNS = COLUMNS["orders"]
PROFILE_COLUMNS = COLUMNS["profiles"]
DIRTY_ORDER_KINDS = (
    "null_order_id", "null_customer_id", "unparseable_order_ts", "order_ts_other_day", "negative_amount",
    "non_numeric_amount", "unknown_status", "zero_quantity", "bad_currency", "duplicate_row", "repeated_order_id",
)
DIRTY_PROFILE_KINDS = ("duplicate_customer_id", "impossible_birth_year", "unknown_customer_type")

STATUSES = ("completed", "cancelled", "returned")
STATUS_P = (0.91, 0.05, 0.04)
CHANNELS = ("web", "app", "store", "marketplace")
CHANNEL_P = (0.45, 0.30, 0.15, 0.10)
CATEGORIES = ("electronics", "fashion", "home", "beauty", "sports", "toys", "grocery", "books")
CATEGORY_P = (0.14, 0.20, 0.15, 0.12, 0.10, 0.08, 0.13, 0.08)
QUANTITY_P = (0.45, 0.25, 0.13, 0.08, 0.05, 0.04)
CUSTOMER_TYPES = ("individual", "business", "government")
CUSTOMER_TYPE_P = (0.90, 0.08, 0.02)
GENDERS = ("female", "male", "other")
GENDER_P = (0.51, 0.47, 0.02)
REGIONS = ("northeast", "southeast", "midwest", "southwest", "west", "northwest")
REGION_P = (0.20, 0.22, 0.20, 0.12, 0.18, 0.08)
WEEKDAY_FACTOR = (0.92, 0.90, 0.93, 0.97, 1.05, 1.18, 1.12)  # Monday..Sunday
MONTH_FACTOR = (0.90, 0.86, 0.94, 0.96, 0.98, 0.96, 0.95, 0.98, 0.96, 1.00, 1.25, 1.40)  # Jan..Dec
HOUR_FACTOR = (2, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 8, 9, 8, 7, 7, 8, 9, 11, 12, 12, 10, 7, 4)
FEMALE_FIRST_NAMES = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen", "Lisa",
    "Nancy", "Sofia", "Aisha", "Priya", "Fatima", "Emma", "Olivia", "Ava", "Mia",
)
MALE_FIRST_NAMES = (
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Carlos", "Daniel",
    "Matthew", "Anthony", "Mark", "Wei", "Kenji", "Luis", "Noah", "Liam", "Mateo",
)
FIRST_NAMES = FEMALE_FIRST_NAMES + MALE_FIRST_NAMES
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young",
    "Allen", "King", "Wright", "Scott", "Nguyen", "Hill", "Flores", "Green",
)
BUSINESS_SUFFIXES = ("LLC", "Inc", "Group", "Partners", "Supply Co")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")

PRE_EXISTING_SHARE = 0.25  # customers who signed up before the window (up to PRE_EXISTING_MAX_DAYS earlier)
PRE_EXISTING_MAX_DAYS = 3 * 365
SIGNUP_GROWTH = 1.0  # signup intensity grows linearly to (1 + growth) x its start level
PROSPECT_SHARE = 0.08
NO_PROFILE_SHARE = 0.03  # of ordering customers
RATE_MEAN, RATE_SHAPE = 0.05, 0.8  # daily purchase rate ~ Gamma (Pareto/NBD lambda)
LIFETIME_MEAN, LIFETIME_SHAPE = 450.0, 1.5  # dropout rate ~ Gamma with mean 1/LIFETIME_MEAN (Pareto/NBD mu)
MEMBER_SHARE, MEMBER_RATE_LIFT = 0.35, 1.4
SPEND_MEDIAN, SPEND_SIGMA, ORDER_SIGMA = 35.0, 0.8, 0.4
QUANTITY_SPEND_EXPONENT = 0.6  # order amount grows as quantity ** exponent
BUSINESS_SPEND_LIFT = 2.5
PREFERRED_CHANNEL_P, FAVOURITE_CATEGORY_P = 0.8, 0.55
NULL_CHANNEL_P, NULL_CATEGORY_P = 0.01, 0.005
MISSING_BIRTH_YEAR_P, MISSING_GENDER_P, MISSING_EMAIL_P, MISSING_PHONE_P = 0.04, 0.03, 0.02, 0.08  # in profiles
TS_SUFFIXES = ("", "Z", "+00:00")
TS_SUFFIX_P = (0.97, 0.015, 0.015)

_EPOCH = date(1970, 1, 1)
_PICK_RESOLUTION = 1 << 16
_MAX_DAY_SHIFT = 3  # order_ts_other_day moves order_ts by up to this many days
_CHUNK_ROWS = 1_000_000  # order rows formatted at a time
_PHONE_AREAS = tuple(range(201, 990))


@dataclass(frozen=True)
class GenerateSummary:
    """What ``generate_landing`` wrote."""

    out_dir: Path
    start_date: date
    end_date: date
    days: int
    customers: int  # all customer ids (buyers, prospects, buyers without profile)
    prospects: int  # profiled customers who never order
    customers_without_profile: int
    orders: int  # order rows written, dirty rows included
    dirty_orders: int  # order rows that break the contract
    order_files: int
    profile_files: int

    @property
    def files_written(self) -> int:
        """Order plus profile files."""
        return self.order_files + self.profile_files


@dataclass(frozen=True)
class _Customers:
    """Per-customer latent state, indexed by customer number - 1 (sorted by signup day)."""

    signup_day: np.ndarray  # day index relative to the window start (negative: before it)
    is_prospect: np.ndarray
    has_profile: np.ndarray
    is_member: np.ndarray
    type_code: np.ndarray
    rate: np.ndarray  # expected orders per seasonality-weighted day
    active_from: np.ndarray  # first active day in the window
    active_to: np.ndarray  # exclusive end of the active days
    unit_spend: np.ndarray
    channel: np.ndarray
    category: np.ndarray


def generate_landing(
    out_dir: Path,
    *,
    customers: int = 20_000,
    days: int = 730,
    orders: int | None = None,
    seed: int = 42,
    end_date: date = date(2026, 11, 21),
    file_format: Literal["csv", "parquet"] = "csv",
    dirty_share: float = 0.005,
    profile_snapshot_every_days: int = 7,
    progress: Callable[[str], None] | None = None,
) -> GenerateSummary:
    """Write ``orders/YYYY-MM-DD.<ext>`` (one file per day with orders) and ``profiles/YYYY-MM-DD.<ext>``
    (full snapshots on the first day, every ``profile_snapshot_every_days`` days and on the last day).

    Deterministic: the same arguments give byte-identical files. Existing files are overwritten, other files
    in ``out_dir`` are left alone. Parquet files hold the same values as the CSV files; in both formats
    ``order_ts`` and ``amount`` are strings so that dirty values can be represented.

    ``orders`` (default: about 15 per customer over 730 days) scales every customer's purchase rate so that
    about that many order rows are written; it cannot go below the one first order of each joining customer.
    """
    if customers < 1 or days < 1 or profile_snapshot_every_days < 1 or (orders is not None and orders < 1):
        raise ValueError("customers, days, orders and profile_snapshot_every_days must be >= 1")
    if not 0.0 <= dirty_share < 1.0:
        raise ValueError("dirty_share must be in [0, 1)")
    if file_format not in ("csv", "parquet"):
        raise ValueError(f"file_format must be 'csv' or 'parquet', got {file_format!r}")
    say = progress or (lambda _msg: None)
    start_date = end_date - timedelta(days=days - 1)
    rng_customers, rng_orders, rng_dirty, rng_profiles = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    weights = _season_weights(start_date, days)

    say(f"simulating {customers:,} customers over {days} days ({start_date} .. {end_date})")
    cust = _simulate_customers(rng_customers, customers, weights)
    if orders is not None:
        cust = _scale_rates(cust, weights, orders / (1.0 + dirty_share / len(DIRTY_ORDER_KINDS)))
    rows = _simulate_orders(rng_orders, cust, weights)
    say(f"simulated {len(rows['day']):,} clean orders; writing order files")
    rows, dirty_orders = _add_dirty_orders(rng_dirty, rows, days, dirty_share)
    n_order_rows = len(rows["day"])
    customer_ids = _customer_ids(customers)
    fmt = _OrderFormat(start_date, days, int(rows["number"].max(initial=0)), customer_ids)
    out = Path(out_dir)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        order_files = _write_orders(rows, fmt, start_date, days, out / "orders", file_format, pool)
        say(f"wrote {n_order_rows:,} order rows ({dirty_orders:,} dirty) into {order_files} files")
        del rows
        profile_frame, profile_signup = _profile_frame(rng_profiles, cust, start_date, customer_ids, dirty_share)
        snapshot_days = sorted({*range(0, days, profile_snapshot_every_days), days - 1})
        _write_profiles(profile_frame, profile_signup, snapshot_days, start_date, out / "profiles", file_format, pool)
    say(f"wrote {len(snapshot_days)} profile snapshots (last one {profile_frame.height:,} rows)")

    return GenerateSummary(
        out_dir=out,
        start_date=start_date,
        end_date=end_date,
        days=days,
        customers=customers,
        prospects=int(cust.is_prospect.sum()),
        customers_without_profile=int((~cust.has_profile).sum()),
        orders=n_order_rows,
        dirty_orders=dirty_orders,
        order_files=order_files,
        profile_files=len(snapshot_days),
    )


def _season_weights(start_date: date, days: int) -> np.ndarray:
    """Relative order intensity per day: weekday factor x month factor, mean 1."""
    day_numbers = (start_date - _EPOCH).days + np.arange(days)
    weekday = (day_numbers + 3) % 7  # 1970-01-01 was a Thursday
    month = np.arange(days).astype("timedelta64[D]") + np.datetime64(start_date, "D")
    month = month.astype("datetime64[M]").astype(np.int64) % 12
    w = np.asarray(WEEKDAY_FACTOR)[weekday] * np.asarray(MONTH_FACTOR)[month]
    return w / w.mean()


def _pick(rng: np.random.Generator, p: tuple[float, ...], size: int) -> np.ndarray:
    """Vectorized categorical draw of codes 0..len(p)-1 (int8) through a 2**16-entry lookup table."""
    cdf = np.cumsum(p) / np.sum(p)
    table = np.searchsorted(cdf, (np.arange(_PICK_RESOLUTION) + 0.5) / _PICK_RESOLUTION, side="right")
    table = np.minimum(table, len(p) - 1).astype(np.int8)
    return table[rng.integers(0, _PICK_RESOLUTION, size, dtype=np.uint16)]


def _chance(rng: np.random.Generator, p: float, size: int) -> np.ndarray:
    """Boolean array, each True with probability p."""
    return rng.random(size, dtype=np.float32) < p


def _simulate_customers(rng: np.random.Generator, n: int, weights: np.ndarray) -> _Customers:
    """Draw signup days, roles and latent purchase/dropout/spend parameters for ``n`` customers."""
    days = len(weights)
    n_pre = round(PRE_EXISTING_SHARE * n)
    signup_w = (1.0 + SIGNUP_GROWTH * np.arange(days) / days) * weights
    cdf = np.cumsum(signup_w)
    joined = np.searchsorted(cdf, rng.random(n - n_pre) * cdf[-1], side="right")
    pre = -rng.integers(1, PRE_EXISTING_MAX_DAYS + 1, size=n_pre)
    signup_day = np.sort(np.concatenate([pre, np.minimum(joined, days - 1)]))  # customer number follows signup

    roles = rng.permutation(n)
    n_prospect = round(PROSPECT_SHARE * n)
    n_no_profile = round(NO_PROFILE_SHARE * (n - n_prospect))
    is_prospect = np.zeros(n, dtype=bool)
    is_prospect[roles[:n_prospect]] = True
    has_profile = np.ones(n, dtype=bool)
    has_profile[roles[n_prospect : n_prospect + n_no_profile]] = False

    is_member = _chance(rng, MEMBER_SHARE, n) & ~is_prospect  # membership comes with buying: prospects never join
    type_code = _pick(rng, CUSTOMER_TYPE_P, n)
    rate = RATE_MEAN * rng.gamma(RATE_SHAPE, 1.0 / RATE_SHAPE, n) * np.where(is_member, MEMBER_RATE_LIFT, 1.0)
    rate[is_prospect] = 0.0
    dropout = rng.gamma(LIFETIME_SHAPE, 1.0 / LIFETIME_SHAPE, n) / LIFETIME_MEAN
    lifetime = rng.exponential(1.0, n) / dropout  # memoryless: pre-existing customers start alive at day 0
    active_from = np.maximum(signup_day, 0)
    active_to = np.minimum(active_from + np.floor(lifetime).astype(np.int64) + 1, days)
    unit_spend = SPEND_MEDIAN * rng.lognormal(0.0, SPEND_SIGMA, n) * np.where(type_code > 0, BUSINESS_SPEND_LIFT, 1.0)
    return _Customers(
        signup_day=signup_day,
        is_prospect=is_prospect,
        has_profile=has_profile,
        is_member=is_member,
        type_code=type_code,
        rate=rate,
        active_from=active_from,
        active_to=active_to,
        unit_spend=unit_spend,
        channel=_pick(rng, CHANNEL_P, n),
        category=_pick(rng, CATEGORY_P, n),
    )


def _scale_rates(c: _Customers, weights: np.ndarray, clean_orders: float) -> _Customers:
    """Scale the purchase rates so that the expected number of clean orders (first orders of joiners plus
    Poisson repeat orders, as drawn in ``_simulate_orders``) is ``clean_orders``, or as close as rates >= 0 allow."""
    cum = np.concatenate([[0.0], np.cumsum(weights)])
    first_orders = np.count_nonzero(~c.is_prospect & (c.signup_day >= 0))
    repeat_orders = float(np.sum(c.rate * (cum[c.active_to] - cum[c.active_from])))
    scale = max(clean_orders - first_orders, 0.0) / repeat_orders if repeat_orders > 0 else 0.0
    return replace(c, rate=c.rate * scale)


def _simulate_orders(rng: np.random.Generator, c: _Customers, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Draw all orders as numeric arrays sorted by (day, second), with sequential order numbers."""
    cum = np.concatenate([[0.0], np.cumsum(weights)])
    first = np.flatnonzero(~c.is_prospect & (c.signup_day >= 0)).astype(np.int32)  # joiners buy at signup
    n_repeat = rng.poisson(c.rate * (cum[c.active_to] - cum[c.active_from]))
    repeat = np.repeat(np.arange(len(c.rate), dtype=np.int32), n_repeat)
    lo, hi = cum[c.active_from][repeat], cum[c.active_to][repeat]
    repeat_day = _inverse_cdf(cum, lo + rng.random(len(repeat)) * (hi - lo))
    del lo, hi

    cust = np.concatenate([first, repeat])
    day = np.concatenate([c.signup_day[first], repeat_day])
    del repeat, repeat_day
    n = len(cust)
    second = _pick(rng, HOUR_FACTOR, n).astype(np.int64) * 3600 + rng.integers(0, 3600, n, dtype=np.int32)
    # Unique sort key (day-second << 32 | row) -> deterministic order without a stable sort.
    key = np.asarray(pl.Series(((day * 86_400 + second) << 32) | np.arange(n)).sort())
    row = key & 0xFFFFFFFF
    cust, day_second = cust[row], key >> 32
    del key, row, second

    channel = np.where(_chance(rng, PREFERRED_CHANNEL_P, n), c.channel[cust], _pick(rng, CHANNEL_P, n))
    channel[_chance(rng, NULL_CHANNEL_P, n)] = -1
    category = np.where(_chance(rng, FAVOURITE_CATEGORY_P, n), c.category[cust], _pick(rng, CATEGORY_P, n))
    category[_chance(rng, NULL_CATEGORY_P, n)] = -1
    quantity = _pick(rng, QUANTITY_P, n) + 1
    quantity_factor = np.arange(len(QUANTITY_P) + 1) ** QUANTITY_SPEND_EXPONENT
    amount = c.unit_spend[cust] * quantity_factor[quantity] * rng.lognormal(0.0, ORDER_SIGMA, n)
    return {
        "number": np.arange(1, n + 1, dtype=np.int64),
        "cust": cust,
        "day": (day_second // 86_400).astype(np.int32),
        "second": (day_second % 86_400).astype(np.int32),
        "cents": np.maximum(np.rint(amount * 100), 50).astype(np.int64),
        "status": _pick(rng, STATUS_P, n),
        "channel": channel,
        "category": category,
        "quantity": quantity,
        "ts_suffix": _pick(rng, TS_SUFFIX_P, n),
    }


def _inverse_cdf(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Day d with cum[d] <= u < cum[d + 1], via a lookup table finer than a day plus one correction step
    (much faster than ``np.searchsorted`` for millions of random queries)."""
    days = len(cum) - 1
    resolution = max(1 << 18, 64 * days)
    scale = resolution / cum[-1]
    table = (np.searchsorted(cum, np.arange(resolution) / scale, side="right") - 1).astype(np.int32)
    day = table[np.minimum((u * scale).astype(np.int64), resolution - 1)]
    day += cum[day + 1] <= u
    return np.minimum(day, days - 1)


def _add_dirty_orders(
    rng: np.random.Generator, o: dict[str, np.ndarray], days: int, dirty_share: float
) -> tuple[dict[str, np.ndarray], int]:
    """Mark ~dirty_share of rows with a dirty kind (code into DIRTY_ORDER_KINDS, -1 = clean), duplicate rows
    of kind duplicate_row, and give repeated_order_id rows the number of an order from an earlier day."""
    n = len(o["day"])
    n_dirty = min(round(dirty_share * n), n)
    rows = np.sort(rng.choice(n, n_dirty, replace=False))
    kinds = rng.permutation(np.arange(n_dirty) % len(DIRTY_ORDER_KINDS)).astype(np.int8)
    day_start = np.searchsorted(o["day"], np.arange(days))[o["day"][rows]]  # first row of each dirty row's day
    repeated_id = DIRTY_ORDER_KINDS.index("repeated_order_id")
    # A repeated id needs an earlier day: swap that kind away from first-day rows where possible.
    stuck = np.flatnonzero((kinds == repeated_id) & (day_start == 0))
    movable = np.flatnonzero((kinds != repeated_id) & (day_start > 0))[: len(stuck)]
    kinds[stuck[: len(movable)]], kinds[movable] = kinds[movable], repeated_id
    kinds[stuck[len(movable) :]] = DIRTY_ORDER_KINDS.index("null_order_id")
    repeated = kinds == repeated_id
    # Copy the id of a random clean row of an earlier day: the k-th clean row sits at k + #{j: rows[j] - j <= k}.
    clean_before = day_start[repeated] - np.searchsorted(rows, day_start[repeated])
    k = (rng.random(repeated.sum()) * clean_before).astype(np.int64)
    o["number"][rows[repeated]] = o["number"][k + np.searchsorted(rows - np.arange(n_dirty), k, side="right")]
    shifted = kinds == DIRTY_ORDER_KINDS.index("order_ts_other_day")
    o["day_shift"] = np.zeros(n, dtype=np.int32)
    shifts = np.concatenate([np.arange(-_MAX_DAY_SHIFT, 0), np.arange(1, _MAX_DAY_SHIFT + 1)]).astype(np.int32)
    o["day_shift"][rows[shifted]] = rng.choice(shifts, shifted.sum())
    negative = rows[kinds == DIRTY_ORDER_KINDS.index("negative_amount")]
    o["cents"][negative] = -np.maximum(o["cents"][negative], 100)
    o["dirty"] = np.full(n, -1, dtype=np.int8)
    o["dirty"][rows] = kinds
    duplicated = rows[kinds == DIRTY_ORDER_KINDS.index("duplicate_row")]
    return {k: np.insert(v, duplicated + 1, v[duplicated]) for k, v in o.items()}, n_dirty


def _strings(expr: pl.Expr) -> pl.Series:
    """Evaluate a column-free expression (e.g. over ``pl.int_range``) into a lookup table."""
    return pl.select(expr).to_series()


def _padded(prefix: str, values: pl.Expr, width: int) -> pl.Expr:
    return pl.concat_str(pl.lit(prefix), values.cast(pl.Utf8).str.zfill(width))


def _customer_ids(n_customers: int) -> pl.Series:
    """'C0000001'.. for customer numbers 1..n (index = customer number - 1)."""
    return _strings(_padded("C", pl.int_range(1, n_customers + 1), max(7, len(str(n_customers)))))


def _lookup(table: pl.Series | tuple[str, ...], index: pl.Expr) -> pl.Expr:
    """table[index] per row; a null index gives null. Much faster than formatting each row."""
    return pl.lit(pl.Series(table, dtype=pl.Utf8)).gather(index)


class _OrderFormat:
    """Turns numeric order arrays into the landing order rows through small lookup tables
    (ids, dates, times of day, cents) and at most one concat per column; applies the dirty kinds."""

    def __init__(self, start_date: date, days: int, max_number: int, customer_ids: pl.Series) -> None:
        width = max(10, len(str(max_number)))
        self.id_low = _strings(pl.int_range(0, 100_000).cast(pl.Utf8).str.zfill(5))
        self.id_high = _strings(_padded("O", pl.int_range(0, max_number // 100_000 + 1), width - 5))
        self.customer_ids = customer_ids
        self.dates = _strings(pl.date_range(start_date - timedelta(days=_MAX_DAY_SHIFT),
                                            start_date + timedelta(days=days + _MAX_DAY_SHIFT)).dt.strftime("%Y-%m-%d"))
        index = pl.int_range(0, 86_400 * len(TS_SUFFIXES))
        self.times = _strings(pl.concat_str(  # index = suffix * 86400 + second of the day
            (index % 86_400 * 1_000_000).cast(pl.Datetime("us")).dt.strftime("T%H:%M:%S"),
            _lookup(TS_SUFFIXES, index // 86_400),
        ))
        self.cents = _strings(pl.concat_str(pl.lit("."), pl.int_range(0, 100).cast(pl.Utf8).str.zfill(2)))

    def frame(self, o: dict[str, np.ndarray]) -> pl.DataFrame:
        kind = {name: pl.col("dirty") == i for i, name in enumerate(DIRTY_ORDER_KINDS)}
        valid = {name: pl.when(pl.col(name) >= 0).then(pl.col(name)) for name in ("channel", "category")}
        cents = pl.col("cents").abs()
        return pl.DataFrame(o).select(
            order_id=pl.when(~kind["null_order_id"]).then(pl.concat_str(
                _lookup(self.id_high, pl.col("number") // 100_000), _lookup(self.id_low, pl.col("number") % 100_000))),
            customer_id=pl.when(~kind["null_customer_id"]).then(_lookup(self.customer_ids, pl.col("cust"))),
            order_ts=pl.when(kind["unparseable_order_ts"]).then(pl.lit("not-a-date")).otherwise(pl.concat_str(
                _lookup(self.dates, pl.col("day") + pl.col("day_shift") + _MAX_DAY_SHIFT),
                _lookup(self.times, pl.col("ts_suffix").cast(pl.Int32) * 86_400 + pl.col("second")))),
            amount=pl.when(kind["non_numeric_amount"]).then(pl.lit("12,5x")).otherwise(pl.concat_str(
                (cents // 100 * pl.col("cents").sign()).cast(pl.Utf8),  # negative amounts are >= 1 dollar
                _lookup(self.cents, cents % 100))),
            currency=pl.when(kind["bad_currency"]).then(pl.lit("US")).otherwise(pl.lit("USD")),
            status=pl.when(kind["unknown_status"]).then(pl.lit("shipped")).otherwise(
                _lookup(STATUSES, pl.col("status"))),
            channel=_lookup(CHANNELS, valid["channel"]),
            category=_lookup(CATEGORIES, valid["category"]),
            quantity=pl.when(kind["zero_quantity"]).then(0).otherwise(pl.col("quantity")).cast(pl.Int64),
        )


def _write_frame(frame: pl.DataFrame, path: Path, file_format: str) -> None:
    if file_format == "csv":
        frame.write_csv(path)
    else:  # snappy without statistics: about twice as fast to write as zstd, files are read whole anyway
        frame.write_parquet(path, compression="snappy", statistics=False)


def _write_orders(
    o: dict[str, np.ndarray], fmt: _OrderFormat, start_date: date, days: int, out: Path, file_format: str,
    pool: ThreadPoolExecutor,
) -> int:
    """Write one file per day that has orders (``o`` is sorted by day), formatting chunks of whole days of
    about ``_CHUNK_ROWS`` rows at a time to bound memory; return the number of files."""
    out.mkdir(parents=True, exist_ok=True)
    bounds = np.searchsorted(o["day"], np.arange(days + 1))
    cuts = np.unique(np.concatenate([[0], np.searchsorted(bounds, np.arange(_CHUNK_ROWS, bounds[-1], _CHUNK_ROWS)),
                                     [days]]))
    files = 0
    for first_day, end_day in zip(cuts[:-1], cuts[1:], strict=True):
        r0 = bounds[first_day]
        frame = fmt.frame({k: v[r0 : bounds[end_day]] for k, v in o.items()})
        parts = [
            (frame.slice(int(bounds[d] - r0), int(bounds[d + 1] - bounds[d])),
             out / f"{start_date + timedelta(days=int(d))}.{file_format}")
            for d in range(first_day, end_day) if bounds[d + 1] > bounds[d]
        ]
        list(pool.map(lambda part: _write_frame(*part, file_format), parts))
        files += len(parts)
    return files


def _profile_frame(
    rng: np.random.Generator, c: _Customers, start_date: date, customer_ids: pl.Series, dirty_share: float
) -> tuple[pl.DataFrame, np.ndarray]:
    """Build all profile rows (sorted by customer_id, hence by signup) incl. dirty rows; also return each
    row's signup day so that a snapshot on day d is the prefix of rows with signup_day <= d."""
    cust = np.flatnonzero(c.has_profile)
    n = len(cust)
    type_code = c.type_code[cust]
    individual = type_code == 0
    gender = np.where(individual & ~_chance(rng, MISSING_GENDER_P, n), _pick(rng, GENDER_P, n), -1)
    # First names match gender 0 (female) / 1 (male); other or unknown genders get any first name.
    n_female = len(FEMALE_FIRST_NAMES)
    first = np.where(gender == 0, rng.integers(0, n_female, n), rng.integers(0, len(FIRST_NAMES), n))
    first = np.where(gender == 1, n_female + rng.integers(0, len(MALE_FIRST_NAMES), n), first)
    last = rng.integers(0, len(LAST_NAMES), n)
    suffix = rng.integers(0, len(BUSINESS_SUFFIXES), n)
    # Index into NAMES: individuals "First Last", businesses "Last Suffix", government "Last County".
    n_people, n_firms = len(FIRST_NAMES) * len(LAST_NAMES), len(LAST_NAMES) * len(BUSINESS_SUFFIXES)
    name = np.select(
        [type_code == 1, type_code == 2],
        [n_people + last * len(BUSINESS_SUFFIXES) + suffix, n_people + n_firms + last],
        first * len(LAST_NAMES) + last,
    )
    a = {
        "cust": cust,
        "signup": c.signup_day[cust].astype(np.int32),
        "birth_year": np.where(individual & ~_chance(rng, MISSING_BIRTH_YEAR_P, n),
                               start_date.year - np.clip(rng.normal(41.0, 14.0, n), 18, 85).astype(np.int32), -1),
        "gender": gender,
        "region": _pick(rng, REGION_P, n),
        "type_code": type_code,
        "is_member": c.is_member[cust],
        "name": name,
        "mailbox": first * len(LAST_NAMES) + last,
        "domain": np.where(_chance(rng, MISSING_EMAIL_P, n), -1, rng.integers(0, len(EMAIL_DOMAINS), n)),
        "phone": np.where(_chance(rng, MISSING_PHONE_P, n), -1, rng.integers(0, len(_PHONE_AREAS) * 100, n)),
    }
    k = round(dirty_share * n / len(DIRTY_PROFILE_KINDS))
    k = min(max(k, 1 if dirty_share > 0 else 0), n // len(DIRTY_PROFILE_KINDS))
    rows = rng.choice(n, k * len(DIRTY_PROFILE_KINDS), replace=False)
    a["birth_year"][rows[k : 2 * k]] = rng.choice(np.array([1800, 2090]), k)
    a["type_code"][rows[2 * k :]] = len(CUSTOMER_TYPES)  # 'alien'
    copies = np.ones(n, dtype=np.int64)
    copies[rows[:k]] = 2
    a = {key: np.repeat(v, copies) for key, v in a.items()}
    # The second row of a duplicated customer_id conflicts with the first (other email domain, membership).
    conflict = np.zeros(len(a["cust"]), dtype=bool)
    conflict[1:] = a["cust"][1:] == a["cust"][:-1]
    a["domain"][conflict] = len(EMAIL_DOMAINS)
    a["is_member"] ^= conflict

    names = [f"{f} {la}" for f in FIRST_NAMES for la in LAST_NAMES]
    names += [f"{la} {s}" for la in LAST_NAMES for s in BUSINESS_SUFFIXES] + [f"{la} County" for la in LAST_NAMES]
    mailboxes = [f"{f.lower()}.{la.lower()}" for f in FIRST_NAMES for la in LAST_NAMES]
    domains = [f"@{d}" for d in (*EMAIL_DOMAINS, "old.example.com")]
    phone_index = pl.int_range(0, len(_PHONE_AREAS) * 100)
    phones = _strings(pl.format("+1-{}-555-0{}", phone_index // 100 + _PHONE_AREAS[0], phone_index % 100 + 100))
    valid = {col: pl.when(pl.col(col) >= 0).then(pl.col(col)) for col in ("birth_year", "gender", "domain", "phone")}
    frame = pl.DataFrame(a).select(
        customer_id=_lookup(customer_ids, pl.col("cust")),
        signup_date=(pl.col("signup") + (start_date - _EPOCH).days).cast(pl.Date),
        birth_year=valid["birth_year"].cast(pl.Int32),
        gender=_lookup(GENDERS, valid["gender"]),
        region=_lookup(REGIONS, pl.col("region")),
        customer_type=_lookup((*CUSTOMER_TYPES, "alien"), pl.col("type_code")),
        is_member=pl.col("is_member"),
        name=_lookup(tuple(names), pl.col("name")),
        email=pl.concat_str(_lookup(tuple(mailboxes), pl.col("mailbox")), (pl.col("cust") + 1).cast(pl.Utf8),
                            _lookup(tuple(domains), valid["domain"])),
        phone=_lookup(phones, valid["phone"]),
    )
    return frame, a["signup"]


def _write_profiles(
    frame: pl.DataFrame, signup: np.ndarray, snapshot_days: list[int], start_date: date, out: Path,
    file_format: str, pool: ThreadPoolExecutor,
) -> None:
    """Write each snapshot as the prefix of ``frame`` holding the customers signed up by that day.
    CSV snapshots are byte slices of one serialization (no field contains a newline)."""
    out.mkdir(parents=True, exist_ok=True)
    counts = np.searchsorted(signup, snapshot_days, side="right")
    paths = [out / f"{start_date + timedelta(days=d)}.{file_format}" for d in snapshot_days]
    if file_format == "csv":
        buf = frame.write_csv().encode()
        line_ends = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == ord("\n"))
        if len(line_ends) != frame.height + 1:
            raise AssertionError("profile CSV fields must not contain newlines")
        list(pool.map(lambda path, n: path.write_bytes(memoryview(buf)[: line_ends[n] + 1]), paths, counts))
    else:
        list(pool.map(lambda path, n: _write_frame(frame.slice(0, int(n)), path, file_format), paths, counts))


def plant_campaign(
    out_dir: Path,
    treated: pl.Series,
    as_of: date,
    lift: float,
    *,
    horizon_days: int = 90,
    seed: int = 42,
    tag: str = "campaign",
) -> int:
    """Simulate a campaign that worked: add one completed order, in the `horizon_days` after `as_of`, for
    round(lift x len(treated)) of the `treated` customer ids that have no completed order in those days in
    the landed files, so their purchase rate rises by `lift` over what it was. Writes
    ``orders/YYYY-MM-DD-<tag>.csv`` for each day with such orders (replacing an earlier call's with the same
    tag); deterministic for the same files and arguments. Returns the orders written.
    """
    folder = Path(out_dir) / "orders"
    for old in folder.glob(f"*-{tag}.csv"):
        old.unlink()
    window = [as_of + timedelta(days=k) for k in range(1, horizon_days + 1)]
    files = [f for day in window for f in sorted(folder.glob(f"{day.isoformat()}*"))]
    landed = [
        pl.read_csv(f, infer_schema=False) if ".csv" in f.suffixes else pl.read_parquet(f) for f in files
    ]
    bought = pl.concat(
        [frame.filter(pl.col("status").is_null() | (pl.col("status") == "completed")).select("customer_id")
         for frame in landed] or [pl.DataFrame(schema={"customer_id": pl.String()})]
    )  # fmt: skip
    ids = treated.sort()
    idle = ids.filter(~ids.is_in(bought["customer_id"].implode()))
    wanted = round(lift * len(treated))
    if not 0 <= wanted <= len(idle):
        raise ValueError(
            f"campaign lift {lift}: needs {wanted} of the {len(treated)} treated customers without an order "
            f"in the {horizon_days} days after {as_of}, only {len(idle)} have none"
        )
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(idle), wanted, replace=False))
    orders = pl.DataFrame(
        {"customer_id": idle.gather(picked), "offset": rng.integers(1, horizon_days + 1, wanted),
         "amount": rng.lognormal(3.5, 0.6, wanted)}
    ).select(
        order_id=pl.format("{}-{}", pl.lit(tag.upper()), pl.int_range(pl.len()).cast(pl.String).str.zfill(7)),
        customer_id="customer_id",
        order_ts=(pl.lit(as_of) + pl.duration(days="offset")).dt.strftime("%Y-%m-%dT12:00:00"),
        amount=pl.col("amount").round(2).cast(pl.String),
        currency=pl.lit("USD"), status=pl.lit("completed"), channel=pl.lit("web"), category=pl.lit("home"),
        quantity=pl.lit("1"),
    )  # fmt: skip
    by_day = orders.with_columns(day=pl.col("order_ts").str.slice(0, 10)).partition_by("day", as_dict=True)
    for (day,), rows in by_day.items():
        rows.drop("day").write_csv(folder / f"{day}-{tag}.csv")
    return wanted
