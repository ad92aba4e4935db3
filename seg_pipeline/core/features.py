"""Point-in-time customer features (``customer_features``) computed with Polars.

One row per known customer as of day ``as_of``: a customer with at least one
completed order on or before ``as_of``, or present in the profile snapshot.
Only orders with ``order_day <= as_of`` are read; nothing later can leak in.

BTYD summary (the lifetimes ``summary_data_from_transaction_data`` /
pymc-marketing ``rfm_summary`` convention with ``freq='D'``): purchases are
completed orders; several orders on one day are ONE purchase day whose amounts
add up. ``frequency`` is the number of distinct purchase days after the first,
``recency`` the days from the first to the last purchase day, ``T`` the days
from the first purchase day to ``as_of`` and ``monetary_value`` the mean spend
per repeat purchase day (the first purchase day excluded, 0 when
``frequency == 0``). Windows ("last N days") are the N days ending with
``as_of`` inclusive: ``order_day`` in ``(as_of - N, as_of]``.

Prospects (a profile but no completed order) have every column of
``BEHAVIOURAL_COLUMNS`` null. Customers with orders but no profile have null
profile columns and ``has_profile = false``. Personal data (name, email,
phone) is never read.

Computation: orders are aggregated once to (customer, purchase day) -- all
non-completed orders of a customer fall into one extra row with a null day --
that frame is sorted by (customer key, day) and aggregated once more per
customer with a sorted group-by. The customer key is a 64-bit hash of
``customer_id`` truncated to 48 bits and packed with the day into one integer
sort key; if two customers share a key the exact (slower) string-keyed path is
used instead, so results never depend on hashing.
"""

from __future__ import annotations

from datetime import date

import polars as pl

FEATURE_COLUMNS: dict[str, str] = {
    "as_of": "Date D the features describe: everything known up to the end of UTC day D.",
    "customer_id": "Customer identifier.",
    "frequency": "BTYD: number of distinct purchase days (days with >= 1 completed order <= D) after the first.",
    "recency": "BTYD: days from the first to the last purchase day (0 for one purchase day).",
    "T": "BTYD: days from the first purchase day to D.",
    "monetary_value": "BTYD: mean spend per repeat purchase day (first purchase day excluded); 0 when frequency = 0.",
    "days_since_last_order": "Days from the last purchase day to D.",
    "order_count": "Number of completed orders <= D.",
    "total_spend": "Sum of amount over completed orders <= D.",
    "avg_order_value": "total_spend / order_count.",
    "orders_30d": "Completed orders with order_day in (D - 30, D].",
    "orders_90d": "Completed orders with order_day in (D - 90, D].",
    "orders_180d": "Completed orders with order_day in (D - 180, D].",
    "orders_365d": "Completed orders with order_day in (D - 365, D].",
    "spend_30d": "Spend of completed orders with order_day in (D - 30, D].",
    "spend_90d": "Spend of completed orders with order_day in (D - 90, D].",
    "spend_180d": "Spend of completed orders with order_day in (D - 180, D].",
    "spend_365d": "Spend of completed orders with order_day in (D - 365, D].",
    "spend_prev_90d": "Spend of completed orders with order_day in (D - 180, D - 90] (days 91..180 before D).",
    "spend_trend_90d": "(spend_90d - spend_prev_90d) / (spend_90d + spend_prev_90d) in [-1, 1]; 0 when both are 0.",
    "mean_days_between_purchases": "Mean gap in days between consecutive purchase days (= recency / frequency); null when frequency = 0.",
    "std_days_between_purchases": "Population std (ddof=0) of the gaps between consecutive purchase days; null when frequency = 0.",
    "days_since_first_order": "Days from the first purchase day to D (= T as an integer).",
    "active_months": "Number of distinct calendar months with >= 1 purchase day.",
    "cancel_rate": "Cancelled orders / all orders (any status) of the customer <= D.",
    "return_rate": "Returned orders / all orders (any status) of the customer <= D.",
    "distinct_categories": "Number of distinct non-null categories over completed orders <= D.",
    "main_channel": "Non-null channel with the most completed orders <= D (ties: alphabetically first); null if no channel known.",
    "main_channel_share": "Completed orders in main_channel / order_count; null when main_channel is null.",
    "age_band": "Age (D's year - birth_year) band: <25, 25-34, 35-44, 45-54, 55-64, 65+; null if unknown or negative.",
    "gender": "Gender from the profile snapshot.",
    "region": "Region from the profile snapshot.",
    "customer_type": "individual / business / government, from the profile snapshot.",
    "is_member": "Loyalty programme member, from the profile snapshot.",
    "days_since_signup": "Days from signup_date to D; null if unknown.",
    "has_profile": "Whether the customer is in the profile snapshot.",
}

BEHAVIOURAL_COLUMNS: tuple[str, ...] = tuple(
    list(FEATURE_COLUMNS)[list(FEATURE_COLUMNS).index("frequency") : list(FEATURE_COLUMNS).index("main_channel_share") + 1]
)

_WINDOWS = (30, 90, 180, 365)
_AGE_BANDS = ((25, "<25"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (65, "55-64"))
_PROFILE_SCHEMA = {
    "customer_id": pl.Utf8,
    "signup_date": pl.Date,
    "birth_year": pl.Int32,
    "gender": pl.Utf8,
    "region": pl.Utf8,
    "customer_type": pl.Utf8,
    "is_member": pl.Boolean,
}
_DAY_BITS = 16  # days before as_of packed into the low bits of the fast sort key
_NO_DAY = (1 << _DAY_BITS) - 1  # sort code of the row holding a customer's non-completed orders


def _customer_hash(customer_id: pl.Expr) -> pl.Expr:
    """64-bit hash of the customer id (only an accelerator: collisions switch to the exact path)."""
    return customer_id.hash(seed=0x5E6)


def compute_customer_features(
    orders: pl.DataFrame | pl.LazyFrame, profiles: pl.DataFrame | None, as_of: date
) -> pl.DataFrame:
    """Return ``customer_features`` as of ``as_of`` (columns and order: ``FEATURE_COLUMNS``), sorted by customer_id.

    ``orders`` is the accepted orders frame (any days; filtered here to ``order_day <= as_of``),
    ``profiles`` one accepted profile snapshot or None.
    """
    base = (
        orders.lazy()
        .filter(pl.col("order_day") <= as_of)
        .select(
            "customer_id",
            pl.col("amount").cast(pl.Float64),
            pl.col("category"),
            pl.col("channel"),
            (pl.col("status") == "completed").alias("_done"),
            (pl.col("status") == "cancelled").alias("_cancelled"),
            (pl.col("status") == "returned").alias("_returned"),
            # purchase day; every non-completed order of a customer shares the null day
            pl.when(pl.col("status") == "completed").then(pl.col("order_day")).alias("_day"),
        )
    )
    days = (
        base.group_by("customer_id", "_day")
        .agg(
            pl.len().alias("_n_all"),
            pl.col("_done").sum().alias("_n_done"),
            pl.col("_cancelled").sum().alias("_n_cancelled"),
            pl.col("_returned").sum().alias("_n_returned"),
            pl.col("amount").filter(pl.col("_done")).sum().alias("_spend"),
        )
        .with_columns(
            (pl.lit(as_of) - pl.col("_day")).dt.total_days().alias("_age"),
            _customer_hash(pl.col("customer_id")).alias("_key"),
        )
        .collect()
    )
    backbone = _sorted_backbone(days)
    if backbone is None:  # hash-prefix collision or an absurd date span: exact string-keyed path
        group = "customer_id"
        backbone = days.sort("customer_id", "_day", nulls_last=True).with_columns(
            pl.col("customer_id").alias("_key")
        )
        key = pl.col("customer_id")
    else:
        group = "_group"
        key = _customer_hash(pl.col("customer_id"))
    behaviour = _behaviour(backbone.lazy(), group, as_of)
    mix = _mix(base.with_columns(key.alias("_key")))
    customers = behaviour.join(mix, on="_key", how="left").drop("_key")
    return _with_profiles(customers, profiles, as_of).collect()


def _sorted_backbone(days: pl.DataFrame) -> pl.DataFrame | None:
    """``days`` sorted by (hash prefix, purchase day, null day last), or None if that order is not exact."""
    max_age = days["_age"].max()
    if max_age is not None and max_age >= _NO_DAY:
        return None
    prefix = pl.col("_key") >> _DAY_BITS
    day_code = (_NO_DAY - pl.col("_age").fill_null(-1) - 1).cast(pl.UInt64)
    out = (
        days.lazy()
        .sort(((prefix << _DAY_BITS) | day_code))
        .with_columns(prefix.alias("_group"))
        .collect()
    )
    same_group = out["_group"] == out["_group"].shift(1)
    if (same_group & (out["customer_id"] != out["customer_id"].shift(1))).any():
        return None
    return out.lazy().set_sorted("_group").collect()


def _behaviour(backbone: pl.LazyFrame, group: str, as_of: date) -> pl.LazyFrame:
    """Per-customer order behaviour from the (customer, purchase day) frame sorted by (group, day)."""
    day = pl.col("_day").cast(pl.Int32)
    same = pl.col(group) == pl.col(group).shift(1)
    month = pl.col("_day").dt.year().cast(pl.Int32) * 12 + pl.col("_day").dt.month().cast(pl.Int32)
    in_window = {n: pl.col("_age") < n for n in _WINDOWS}
    prev_90 = (pl.col("_age") >= 90) & (pl.col("_age") < 180)
    aggs = (
        backbone.with_columns(
            pl.when(same).then(day - day.shift(1)).cast(pl.Int64).alias("_gap"),
            (pl.col("_day").is_not_null() & (~same | (month != month.shift(1)))).alias("_new_month"),
            *(pl.when(w).then(pl.col("_n_done")).otherwise(0).alias(f"orders_{n}d") for n, w in in_window.items()),
            *(pl.when(w).then(pl.col("_spend")).otherwise(0.0).alias(f"spend_{n}d") for n, w in in_window.items()),
            pl.when(prev_90).then(pl.col("_spend")).otherwise(0.0).alias("spend_prev_90d"),
        )
        .group_by(group)
        .agg(
            pl.col("customer_id").first(),
            pl.col("_key").first(),
            pl.col("_day").is_not_null().sum().alias("_days"),
            pl.col("_day").first().alias("_first"),
            pl.col("_day").max().alias("_last"),
            pl.col("_spend").first().alias("_first_spend"),
            pl.col("_spend").sum().alias("total_spend"),
            pl.col("_n_done").sum().alias("order_count"),
            pl.col("_n_all").sum().alias("_n_all"),
            pl.col("_n_cancelled").sum().alias("_n_cancelled"),
            pl.col("_n_returned").sum().alias("_n_returned"),
            (pl.col("_gap").cast(pl.Float64) ** 2).sum().alias("_gap_sq"),
            pl.col("_new_month").sum().alias("active_months"),
            *(pl.col(f"orders_{n}d").sum() for n in _WINDOWS),
            *(pl.col(f"spend_{n}d").sum() for n in _WINDOWS),
            pl.col("spend_prev_90d").sum(),
        )
    )
    frequency = pl.col("_days") - 1
    recency = (pl.col("_last") - pl.col("_first")).dt.total_days()
    mean_gap = recency / frequency
    return aggs.select(
        "_key",
        "customer_id",
        (pl.col("_days") > 0).alias("_buyer"),
        frequency.cast(pl.Int64).alias("frequency"),
        recency.cast(pl.Float64).alias("recency"),
        (pl.lit(as_of) - pl.col("_first")).dt.total_days().cast(pl.Float64).alias("T"),
        pl.when(frequency > 0)
        .then((pl.col("total_spend") - pl.col("_first_spend")) / frequency)
        .otherwise(0.0)
        .alias("monetary_value"),
        (pl.lit(as_of) - pl.col("_last")).dt.total_days().cast(pl.Int64).alias("days_since_last_order"),
        pl.col("order_count").cast(pl.Int64),
        "total_spend",
        (pl.col("total_spend") / pl.col("order_count")).alias("avg_order_value"),
        *(pl.col(f"orders_{n}d").cast(pl.Int64) for n in _WINDOWS),
        *(pl.col(f"spend_{n}d") for n in _WINDOWS),
        "spend_prev_90d",
        pl.when(pl.col("spend_90d") + pl.col("spend_prev_90d") > 0)
        .then((pl.col("spend_90d") - pl.col("spend_prev_90d")) / (pl.col("spend_90d") + pl.col("spend_prev_90d")))
        .otherwise(0.0)
        .alias("spend_trend_90d"),
        pl.when(frequency > 0).then(mean_gap).alias("mean_days_between_purchases"),
        pl.when(frequency > 0)
        .then((pl.col("_gap_sq") / frequency - mean_gap**2).clip(lower_bound=0.0).sqrt())
        .alias("std_days_between_purchases"),
        (pl.lit(as_of) - pl.col("_first")).dt.total_days().cast(pl.Int64).alias("days_since_first_order"),
        pl.col("active_months").cast(pl.Int64),
        (pl.col("_n_cancelled") / pl.col("_n_all")).alias("cancel_rate"),
        (pl.col("_n_returned") / pl.col("_n_all")).alias("return_rate"),
    )


def _mix(base: pl.LazyFrame) -> pl.LazyFrame:
    """Per-customer category and channel mix over completed orders, keyed by ``_key``."""
    done = base.filter(pl.col("_done"))
    categories = (
        done.filter(pl.col("category").is_not_null())
        .group_by("_key")
        .agg(pl.col("category").n_unique().cast(pl.Int64).alias("distinct_categories"))
    )
    channels = (
        done.filter(pl.col("channel").is_not_null())
        .group_by("_key", "channel")
        .agg(pl.len().alias("_n"))
        .group_by("_key")
        .agg(
            pl.col("channel").filter(pl.col("_n") == pl.col("_n").max()).min().alias("main_channel"),
            pl.col("_n").max().alias("_n_main"),
        )
    )
    return categories.join(channels, on="_key", how="full", coalesce=True)


def _age_band(as_of: date) -> pl.Expr:
    age = as_of.year - pl.col("birth_year")
    band = pl.when(age < 0).then(pl.lit(None, pl.Utf8))
    for upper, label in _AGE_BANDS:
        band = band.when(age < upper).then(pl.lit(label))
    return band.otherwise(pl.lit("65+"))


def _with_profiles(customers: pl.LazyFrame, profiles: pl.DataFrame | None, as_of: date) -> pl.LazyFrame:
    """Join the profile snapshot, keep known customers, null behaviour of prospects, order the columns."""
    if profiles is None:
        snapshot = pl.LazyFrame(schema=_PROFILE_SCHEMA)
    else:
        if profiles["customer_id"].is_duplicated().any():
            raise ValueError("profiles snapshot has duplicate customer_id")
        snapshot = profiles.lazy().select(pl.col(c).cast(t) for c, t in _PROFILE_SCHEMA.items())
    snapshot = snapshot.select(
        "customer_id",
        _age_band(as_of).alias("age_band"),
        "gender",
        "region",
        "customer_type",
        "is_member",
        (pl.lit(as_of) - pl.col("signup_date")).dt.total_days().cast(pl.Int64).alias("days_since_signup"),
        pl.lit(True).alias("has_profile"),
    )
    buyer = pl.col("_buyer").fill_null(False)
    behaviour = {
        "distinct_categories": pl.col("distinct_categories").fill_null(0),
        "main_channel_share": pl.col("_n_main") / pl.col("order_count"),
    }
    return (
        customers.join(snapshot, on="customer_id", how="full", coalesce=True)
        .filter(buyer | pl.col("has_profile").is_not_null())
        .select(
            pl.lit(as_of).alias("as_of"),
            "customer_id",
            *(pl.when(buyer).then(behaviour.get(c, pl.col(c))).alias(c) for c in BEHAVIOURAL_COLUMNS),
            *(c for c in FEATURE_COLUMNS if c in snapshot.collect_schema() and c not in ("customer_id", "has_profile")),
            pl.col("has_profile").fill_null(False),
        )
        .sort("customer_id")
    )
