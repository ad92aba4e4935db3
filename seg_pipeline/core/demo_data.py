"""Seeded, vectorized demo landing-data generator (orders and profile snapshots, CONTRACT section 1).

Customers follow a Pareto/NBD-like process: they join over the window (growing), buy at a
gamma-distributed daily rate modulated by weekly and yearly seasonality, and drop out after an
exponential lifetime. Spend is lognormal per customer times lognormal per order. A small share of
rows is corrupted in ways the validation stage must quarantine (see ``DIRTY_ORDER_KINDS``).
All string columns are built with polars expressions; there are no per-row Python loops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

ORDER_COLUMNS = ("order_id", "customer_id", "order_ts", "amount", "currency", "status", "channel", "category", "quantity")
PROFILE_COLUMNS = (
    "customer_id", "signup_date", "birth_year", "gender", "region", "customer_type", "is_member", "name", "email", "phone",
)
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
FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William", "Elizabeth", "David",
    "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen", "Daniel", "Lisa",
    "Matthew", "Nancy", "Anthony", "Sofia", "Mark", "Aisha", "Wei", "Priya", "Kenji", "Fatima", "Luis", "Emma",
    "Noah", "Olivia", "Liam", "Ava", "Mateo", "Mia",
)
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
BUSINESS_SPEND_LIFT = 2.5
PREFERRED_CHANNEL_P, FAVOURITE_CATEGORY_P = 0.8, 0.55
NULL_CHANNEL_P, NULL_CATEGORY_P = 0.01, 0.005
TS_SUFFIXES = ("", "Z", "+00:00")
TS_SUFFIX_P = (0.97, 0.015, 0.015)

_EPOCH = date(1970, 1, 1)
_US_PER_DAY = 86_400_000_000


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
    """
    if customers < 1 or days < 1 or profile_snapshot_every_days < 1:
        raise ValueError("customers, days and profile_snapshot_every_days must be >= 1")
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
    orders = _simulate_orders(rng_orders, cust, weights)
    say(f"simulated {len(orders['day']):,} clean orders; building order rows")
    orders, dirty_orders = _add_dirty_orders(rng_dirty, orders, dirty_share)
    order_frame = _order_frame(orders, start_date, customers)
    order_files = _write_orders(order_frame, orders["day"], start_date, days, Path(out_dir) / "orders", file_format)
    n_order_rows = order_frame.height
    say(f"wrote {n_order_rows:,} order rows ({dirty_orders:,} dirty) into {order_files} files")
    del order_frame, orders

    profile_frame, profile_signup = _profile_frame(rng_profiles, cust, start_date, customers, dirty_share)
    snapshot_days = sorted({*range(0, days, profile_snapshot_every_days), days - 1})
    _write_profiles(profile_frame, profile_signup, snapshot_days, start_date, Path(out_dir) / "profiles", file_format)
    say(f"wrote {len(snapshot_days)} profile snapshots (last one {profile_frame.height:,} rows)")

    return GenerateSummary(
        out_dir=Path(out_dir),
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
    """Vectorized categorical draw of codes 0..len(p)-1 (int8)."""
    cdf = np.cumsum(p) / np.sum(p)
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(p) - 1).astype(np.int8)


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

    is_member = rng.random(n) < MEMBER_SHARE
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


def _simulate_orders(rng: np.random.Generator, c: _Customers, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Draw all orders as numeric arrays sorted by (day, second), with sequential order numbers."""
    cum = np.concatenate([[0.0], np.cumsum(weights)])
    first = np.flatnonzero(~c.is_prospect & (c.signup_day >= 0))  # joiners buy on their signup day
    n_repeat = rng.poisson(c.rate * (cum[c.active_to] - cum[c.active_from]))
    repeat = np.repeat(np.arange(len(c.rate), dtype=np.int32), n_repeat)
    lo, hi = cum[c.active_from[repeat]], cum[c.active_to[repeat]]
    repeat_day = np.searchsorted(cum, lo + rng.random(len(repeat)) * (hi - lo), side="right") - 1
    repeat_day = np.clip(repeat_day, c.active_from[repeat], c.active_to[repeat] - 1)

    cust = np.concatenate([first.astype(np.int32), repeat])
    day = np.concatenate([c.signup_day[first], repeat_day]).astype(np.int32)
    n = len(cust)
    second = _pick(rng, HOUR_FACTOR, n).astype(np.int32) * 3600 + rng.integers(0, 3600, n, dtype=np.int32)
    order = np.argsort(day.astype(np.int64) * 86_400 + second, kind="stable")
    cust, day, second = cust[order], day[order], second[order]

    channel = np.where(rng.random(n) < PREFERRED_CHANNEL_P, c.channel[cust], _pick(rng, CHANNEL_P, n))
    channel[rng.random(n) < NULL_CHANNEL_P] = -1
    category = np.where(rng.random(n) < FAVOURITE_CATEGORY_P, c.category[cust], _pick(rng, CATEGORY_P, n))
    category[rng.random(n) < NULL_CATEGORY_P] = -1
    quantity = _pick(rng, QUANTITY_P, n) + 1
    amount = c.unit_spend[cust] * quantity**0.6 * rng.lognormal(0.0, ORDER_SIGMA, n)
    return {
        "number": np.arange(1, n + 1, dtype=np.int64),
        "cust": cust,
        "day": day,
        "second": second,
        "cents": np.maximum(np.rint(amount * 100), 50).astype(np.int64),
        "status": _pick(rng, STATUS_P, n),
        "channel": channel.astype(np.int8),
        "category": category.astype(np.int8),
        "quantity": quantity.astype(np.int8),
        "ts_suffix": _pick(rng, TS_SUFFIX_P, n),
    }


def _add_dirty_orders(
    rng: np.random.Generator, o: dict[str, np.ndarray], dirty_share: float
) -> tuple[dict[str, np.ndarray], int]:
    """Mark ~dirty_share of rows with a dirty kind (code into DIRTY_ORDER_KINDS, -1 = clean), duplicate rows
    of kind duplicate_row, and give repeated_order_id rows the number of an order from an earlier day."""
    n = len(o["day"])
    n_dirty = min(round(dirty_share * n), n)
    dirty = np.full(n, -1, dtype=np.int8)
    rows = rng.choice(n, n_dirty, replace=False)
    dirty[rows] = np.arange(n_dirty) % len(DIRTY_ORDER_KINDS)
    day_start = np.searchsorted(o["day"], o["day"])  # index of the first row of each row's day
    repeated_id = DIRTY_ORDER_KINDS.index("repeated_order_id")
    dirty[(dirty == repeated_id) & (day_start == 0)] = DIRTY_ORDER_KINDS.index("null_order_id")
    rep = np.flatnonzero(dirty == repeated_id)
    o["number"][rep] = 1 + np.floor(rng.random(len(rep)) * day_start[rep]).astype(np.int64)
    o["day_shift"] = np.where(dirty == DIRTY_ORDER_KINDS.index("order_ts_other_day"),
                              rng.choice(np.array([-3, -2, -1, 1, 2, 3], dtype=np.int32), n), 0).astype(np.int32)
    o["dirty"] = dirty
    copies = 1 + (dirty == DIRTY_ORDER_KINDS.index("duplicate_row"))
    return {k: np.repeat(v, copies) for k, v in o.items()}, n_dirty


def _padded(prefix: str, col: pl.Expr, width: int) -> pl.Expr:
    return pl.concat_str(pl.lit(prefix), col.cast(pl.Utf8).str.zfill(width))


def _order_frame(o: dict[str, np.ndarray], start_date: date, n_customers: int) -> pl.DataFrame:
    """Build the string-typed order rows, applying the dirty kinds."""
    kind = {name: pl.col("dirty") == i for i, name in enumerate(DIRTY_ORDER_KINDS)}
    start_us = (start_date - _EPOCH).days * _US_PER_DAY
    cents = pl.col("cents").abs()
    amount = pl.concat_str(
        pl.when(kind["negative_amount"]).then(pl.lit("-")).otherwise(pl.lit("")),
        (cents // 100).cast(pl.Utf8), pl.lit("."), (cents % 100).cast(pl.Utf8).str.zfill(2),
    )
    ts = (
        (pl.lit(start_us) + (pl.col("day") + pl.col("day_shift")).cast(pl.Int64) * _US_PER_DAY
         + pl.col("second").cast(pl.Int64) * 1_000_000)
        .cast(pl.Datetime("us"))
        .dt.strftime("%Y-%m-%dT%H:%M:%S")
    )
    suffix = pl.col("ts_suffix").replace_strict(dict(enumerate(TS_SUFFIXES)), return_dtype=pl.Utf8)
    return pl.DataFrame(o).select(
        order_id=pl.when(kind["null_order_id"]).then(None).otherwise(
            _padded("O", pl.col("number"), max(10, len(str(len(o["day"])))))),
        customer_id=pl.when(kind["null_customer_id"]).then(None).otherwise(
            _padded("C", pl.col("cust") + 1, max(7, len(str(n_customers))))),
        order_ts=pl.when(kind["unparseable_order_ts"]).then(pl.lit("not-a-date")).otherwise(pl.concat_str(ts, suffix)),
        amount=pl.when(kind["non_numeric_amount"]).then(pl.lit("12,5x")).otherwise(amount),
        currency=pl.when(kind["bad_currency"]).then(pl.lit("US")).otherwise(pl.lit("USD")),
        status=pl.when(kind["unknown_status"]).then(pl.lit("shipped")).otherwise(
            pl.col("status").replace_strict(dict(enumerate(STATUSES)), return_dtype=pl.Utf8)),
        channel=pl.col("channel").replace_strict(dict(enumerate(CHANNELS)), default=None, return_dtype=pl.Utf8),
        category=pl.col("category").replace_strict(dict(enumerate(CATEGORIES)), default=None, return_dtype=pl.Utf8),
        quantity=pl.when(kind["zero_quantity"]).then(0).otherwise(pl.col("quantity")).cast(pl.Int64),
    )


def _write_frame(frame: pl.DataFrame, path: Path, file_format: str) -> None:
    if file_format == "csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path, compression="zstd", statistics=True)


def _write_orders(
    frame: pl.DataFrame, day: np.ndarray, start_date: date, days: int, out: Path, file_format: str
) -> int:
    """Write one file per day that has orders (``day`` is sorted); return the number of files."""
    out.mkdir(parents=True, exist_ok=True)
    bounds = np.searchsorted(day, np.arange(days + 1))
    with_orders = np.flatnonzero(np.diff(bounds))
    for d in with_orders:
        part = frame.slice(int(bounds[d]), int(bounds[d + 1] - bounds[d]))
        _write_frame(part, out / f"{start_date + timedelta(days=int(d))}.{file_format}", file_format)
    return len(with_orders)


def _profile_frame(
    rng: np.random.Generator, c: _Customers, start_date: date, n_customers: int, dirty_share: float
) -> tuple[pl.DataFrame, np.ndarray]:
    """Build all profile rows (sorted by customer_id, hence by signup) incl. dirty rows; also return each
    row's signup day so that a snapshot on day d is the prefix of rows with signup_day <= d."""
    cust = np.flatnonzero(c.has_profile)
    n = len(cust)
    type_code = c.type_code[cust]
    individual = type_code == 0
    birth_year = start_date.year - np.clip(rng.normal(41.0, 14.0, n), 18, 85).astype(np.int32)
    a = {
        "cust": cust,
        "signup": c.signup_day[cust].astype(np.int32),
        "birth_year": np.where(individual & (rng.random(n) >= 0.04), birth_year, -1).astype(np.int32),
        "gender": np.where(individual & (rng.random(n) >= 0.03), _pick(rng, GENDER_P, n), -1).astype(np.int8),
        "region": _pick(rng, REGION_P, n),
        "type_code": type_code,
        "is_member": c.is_member[cust],
        "first": rng.integers(0, len(FIRST_NAMES), n, dtype=np.int16),
        "last": rng.integers(0, len(LAST_NAMES), n, dtype=np.int16),
        "suffix": rng.integers(0, len(BUSINESS_SUFFIXES), n, dtype=np.int8),
        "domain": rng.integers(0, len(EMAIL_DOMAINS), n, dtype=np.int8),
        "has_email": rng.random(n) >= 0.02,
        "area": rng.integers(201, 990, n, dtype=np.int16),
        "line": rng.integers(100, 200, n, dtype=np.int16),
        "has_phone": rng.random(n) >= 0.08,
    }
    k = min(max(1, round(dirty_share * n / len(DIRTY_PROFILE_KINDS))), n // len(DIRTY_PROFILE_KINDS))
    k = k if dirty_share > 0 else 0
    rows = rng.choice(n, k * len(DIRTY_PROFILE_KINDS), replace=False)
    a["birth_year"][rows[k : 2 * k]] = rng.choice(np.array([1800, 2090], dtype=np.int32), k)
    a["type_code"][rows[2 * k :]] = len(CUSTOMER_TYPES)  # 'alien'
    copies = np.ones(n, dtype=np.int64)
    copies[rows[:k]] = 2
    a = {key: np.repeat(v, copies) for key, v in a.items()}
    a["conflict"] = np.zeros(len(a["cust"]), dtype=bool)  # second row of a duplicated customer_id
    a["conflict"][1:] = a["cust"][1:] == a["cust"][:-1]

    def word(values: tuple[str, ...], col: str) -> pl.Expr:
        return pl.col(col).replace_strict(dict(enumerate(values)), default=None, return_dtype=pl.Utf8)

    first, last = word(FIRST_NAMES, "first"), word(LAST_NAMES, "last")
    name = (
        pl.when(pl.col("type_code") == 1).then(pl.concat_str(last, pl.lit(" "), word(BUSINESS_SUFFIXES, "suffix")))
        .when(pl.col("type_code") == 2).then(pl.concat_str(last, pl.lit(" County")))
        .otherwise(pl.concat_str(first, pl.lit(" "), last))
    )
    email = pl.concat_str(
        first.str.to_lowercase(), pl.lit("."), last.str.to_lowercase(), (pl.col("cust") + 1).cast(pl.Utf8),
        pl.when(pl.col("conflict")).then(pl.lit("@old.example.com")).otherwise(
            pl.concat_str(pl.lit("@"), word(EMAIL_DOMAINS, "domain"))),
    )
    phone = pl.concat_str(pl.lit("+1-"), pl.col("area").cast(pl.Utf8), pl.lit("-555-0"), pl.col("line").cast(pl.Utf8))
    frame = pl.DataFrame(a).select(
        customer_id=_padded("C", pl.col("cust") + 1, max(7, len(str(n_customers)))),
        signup_date=(pl.col("signup") + (start_date - _EPOCH).days).cast(pl.Date),
        birth_year=pl.when(pl.col("birth_year") >= 0).then(pl.col("birth_year")),
        gender=word(GENDERS, "gender"),
        region=word(REGIONS, "region"),
        customer_type=word((*CUSTOMER_TYPES, "alien"), "type_code"),
        is_member=pl.col("is_member") ^ pl.col("conflict"),
        name=name,
        email=pl.when(pl.col("has_email")).then(email),
        phone=pl.when(pl.col("has_phone")).then(phone),
    )
    return frame, a["signup"]


def _write_profiles(
    frame: pl.DataFrame, signup: np.ndarray, snapshot_days: list[int], start_date: date, out: Path, file_format: str
) -> None:
    """Write each snapshot as the prefix of ``frame`` holding the customers signed up by that day.
    CSV snapshots are byte slices of one serialization (no field contains a newline)."""
    out.mkdir(parents=True, exist_ok=True)
    counts = np.searchsorted(signup, snapshot_days, side="right")
    if file_format == "csv":
        buf = frame.write_csv().encode()
        line_ends = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == ord("\n"))
        if len(line_ends) != frame.height + 1:
            raise AssertionError("profile CSV fields must not contain newlines")
    for d, count in zip(snapshot_days, counts, strict=True):
        path = out / f"{start_date + timedelta(days=d)}.{file_format}"
        if file_format == "csv":
            path.write_bytes(memoryview(buf)[: line_ends[count] + 1])
        else:
            frame.slice(0, int(count)).write_parquet(path, compression="zstd", statistics=True)
