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

Computation (sized for ~10M orders, lazy Polars, no per-row Python): every
order gets one 64-bit key whose high bits are a hash of ``customer_id`` and
whose low bits are its purchase day (or, for a non-completed order, its
status). The orders are sorted once by that key, so each customer's orders are
contiguous and in day order, and one sorted group-by yields every per-customer
feature (purchase days, gaps and months are changes between neighbouring
rows). Hashing is only an accelerator: a second, independent hash proves that
no two customers share a key, and customers that do are recomputed with the
next seed, so results never depend on hashing.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from seg_pipeline.core.schemas import CUSTOMER_FEATURES, PROFILES

#: column -> its meaning, in output order (declared in the schema registry)
FEATURE_COLUMNS: dict[str, str] = CUSTOMER_FEATURES.docs
#: the dtype of every column (what ``compute_customer_features`` returns; a test keeps them equal)
FEATURE_SCHEMA: dict[str, pl.DataType] = CUSTOMER_FEATURES.polars

BEHAVIOURAL_COLUMNS: tuple[str, ...] = tuple(
    list(FEATURE_COLUMNS)[
        list(FEATURE_COLUMNS).index("frequency") : list(FEATURE_COLUMNS).index("main_channel_share") + 1
    ]
)

_WINDOWS = (30, 90, 180, 365)
_WINDOW_NAMES = (*(f"{n}d" for n in _WINDOWS), "prev_90d")
_AGE_BANDS = ((25, "<25"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (65, "55-64"))
_PROFILE_COLUMNS = ("age_band", "gender", "region", "customer_type", "is_member", "days_since_signup")
_PROFILE_SCHEMA = {
    c: PROFILES.polars[c]
    for c in ("customer_id", "signup_date", "birth_year", "gender", "region", "customer_type", "is_member")
}
_ORDER_COLUMNS = ("customer_id", "order_day", "amount", "status", "channel", "category", "quantity")
_U64 = (1 << 64) - 1
#: the engine of the per-customer sums: in memory, each customer's floats are added over its own rows in order, so a
#: customer's features do not depend on the other customers read with it (the streaming engine adds partial sums
#: of chunks whose bounds do); customer shards rely on it (README "Customer shards")
SUMS_ENGINE = "in-memory"
_MAX_SEEDS = 8


def _customer_hash(customer_id: pl.Expr, seed: int) -> pl.Expr:
    """64-bit hash of the customer id for ``seed`` (an accelerator only: clashes are detected and redone)."""
    return customer_id.hash(seed=seed)


def compute_customer_features(
    orders: pl.DataFrame | pl.LazyFrame, profiles: pl.DataFrame | None, as_of: date
) -> pl.DataFrame:
    """Return ``customer_features`` as of ``as_of`` (columns and order: ``FEATURE_COLUMNS``), sorted by customer_id.

    ``orders`` is the accepted orders frame (any days; only ``order_day <= as_of`` is used),
    ``profiles`` one accepted profile snapshot (unique customer_id) or None.
    """
    return _assemble(_buyers(_orders_until(orders, as_of), as_of, seed=0), profiles, as_of)


def changed_day_ranges(previous_as_of: date, as_of: date) -> list[tuple[date, date]]:
    """Inclusive day ranges whose orders can make a customer's behaviour differ between the two dates.

    The new days (previous_as_of, as_of], and the days leaving each window meanwhile. A customer
    without orders in any of them has, at ``as_of``, the behaviour of ``previous_as_of`` aged by
    the days in between (see ``roll_forward``).
    """
    if as_of <= previous_as_of:
        raise ValueError(f"as_of {as_of} must be after previous_as_of {previous_as_of}")
    first = previous_as_of + timedelta(days=1)
    return [(first, as_of)] + [(first - timedelta(days=n), as_of - timedelta(days=n)) for n in _WINDOWS]


def roll_forward(
    previous: pl.DataFrame,
    previous_as_of: date,
    changed_orders: pl.DataFrame | pl.LazyFrame,
    profiles: pl.DataFrame | None,
    as_of: date,
) -> pl.DataFrame:
    """``customer_features`` at ``as_of`` from an earlier version, equal to ``compute_customer_features``.

    ``previous`` is the feature table at the earlier date P = ``previous_as_of`` (possibly empty: a day
    before the first order and profile) computed from the same orders <= P;
    ``changed_orders`` holds every order <= ``as_of`` of each customer with an order in
    ``changed_day_ranges(P, as_of)``. Those customers are recomputed; every other buyer keeps
    P's behaviour, its day counts moved on by the days in between. Profile columns always come
    from ``profiles`` (the snapshot in force at ``as_of``).
    """
    days = (as_of - previous_as_of).days
    changed_orders = _orders_until(changed_orders, as_of)
    recomputed = _buyers(changed_orders, as_of, seed=0)
    aged = {c: pl.col(c) + days for c in ("T", "days_since_last_order", "days_since_first_order")}
    kept = (
        previous.filter(pl.col("frequency").is_not_null())
        .join(changed_orders.select("customer_id").unique(), on="customer_id", how="anti")
        .select(
            pl.col(c).cast(dtype) if c not in aged else aged[c].cast(dtype).alias(c)
            for c, dtype in recomputed.schema.items()
        )
    )
    return _assemble(pl.concat([kept, recomputed]), profiles, as_of)


def _orders_until(orders: pl.DataFrame | pl.LazyFrame, as_of: date) -> pl.DataFrame:
    if isinstance(orders, pl.LazyFrame):
        return orders.select(_ORDER_COLUMNS).filter(pl.col("order_day") <= as_of).collect()
    return orders


def _assemble(buyers: pl.DataFrame, profiles: pl.DataFrame | None, as_of: date) -> pl.DataFrame:
    """The feature table: buyers' behaviour and the profile snapshot's columns, sorted by customer_id."""
    snapshot = profile_snapshot(profiles, as_of)
    return (
        buyers.lazy()
        .join(snapshot.lazy(), on="customer_id", how="full", coalesce=True)
        .select(
            pl.lit(as_of).alias("as_of"),
            "customer_id",
            *BEHAVIOURAL_COLUMNS,
            *_PROFILE_COLUMNS,
            pl.col("has_profile").fill_null(False),
        )
        .collect()
        .pipe(_sort_by_customer_id, profiles)
    )


def _sort_by_customer_id(frame: pl.DataFrame, profiles: pl.DataFrame | None) -> pl.DataFrame:
    """``frame`` sorted by customer_id; raises naming the rows if an id repeats (a profile snapshot with duplicates).

    Ordering by the ids' first 8 bytes as an integer is much faster than comparing strings and gives
    the same order unless two ids share those bytes."""
    frame = frame.rechunk()
    prefix = frame.select(
        pl.col("customer_id")
        .str.pad_end(8, "\0")
        .cast(pl.Binary)
        .bin.head(8)
        .bin.reinterpret(dtype=pl.UInt64, endianness="big")
    ).to_series()
    order = prefix.arg_sort()
    if not (prefix.gather(order).diff() == 0).any():
        return frame[order]
    frame = frame.sort("customer_id")
    if (frame["customer_id"] == frame["customer_id"].shift(1)).any():
        raise ValueError(_duplicate_profile(profiles))
    return frame


def _duplicate_profile(profiles: pl.DataFrame | None) -> str:
    """One line naming a customer_id the profile snapshot holds twice and where (`source_file`, `source_row`)."""
    if profiles is None or "source_file" not in profiles.columns:
        return "profiles snapshot has duplicate customer_id"
    rows = profiles.filter(pl.col("customer_id").is_duplicated()).sort("customer_id", "source_file", "source_row")
    first = rows.filter(pl.col("customer_id") == rows["customer_id"][0])
    places = " and ".join(f"{file} row {row}" for file, row in first.select("source_file", "source_row").iter_rows())
    return f"profiles snapshot has customer_id {first['customer_id'][0]!r} more than once: {places}"


def _buyers(orders: pl.DataFrame, as_of: date, seed: int) -> pl.DataFrame:
    """customer_id and behaviour of every customer with a completed order on or before ``as_of``.

    Customers whose hash key is shared with another customer are redone on their own with the next seed.
    """
    if seed == _MAX_SEEDS:
        raise RuntimeError(f"customer key hashes clashed for {_MAX_SEEDS} seeds")
    distinct = orders.select(pl.col("channel", "category").unique().drop_nulls().sort().implode())  # in parallel
    channels, categories = (distinct.get_column(c).explode().drop_nulls() for c in ("channel", "category"))
    first_day = orders["order_day"].min()
    # key = hash bits above ``low`` | a code in ``low``: for the order rows
    # 0 .. low-3 the purchase day (ascending), low-2 cancelled, low-1 returned, low any other status;
    # for the (customer, channel) rows the channel's index.
    span = max((as_of - first_day).days if first_day else 0, 0) + 3
    low = (1 << max(span, len(channels), len(categories)).bit_length()) - 1
    key = _customer_hash(pl.col("customer_id"), seed) & (_U64 ^ low)
    status = pl.col("status")
    code = (
        pl.when(status == "completed")
        .then(low - 3 - (pl.lit(as_of) - pl.col("order_day")).dt.total_days())
        .when(status == "cancelled")
        .then(low - 2)
        .when(status == "returned")
        .then(low - 1)
        .otherwise(low)
        .cast(pl.UInt64)
    )
    known = orders.lazy().with_row_index("_row").filter(pl.col("order_day") <= as_of)
    sorted_orders = (
        known.select(
            (key | code).alias("_packed"),
            pl.col("amount").cast(pl.Float64),
            pl.when(status == "completed")
            .then(pl.col("category").cast(pl.Enum(categories)).to_physical())
            .alias("_category"),
            pl.when(status == "completed").then(pl.col("quantity")).alias("_quantity"),
            _customer_hash(pl.col("customer_id"), seed + 1_000_003).alias("_check"),
            "_row",
        )
        .sort("_packed", maintain_order=True)
        .collect()
    )
    customer = pl.col("_packed") & (_U64 ^ low)
    # two customers share a key iff one key's rows carry different second hashes
    clashed = sorted_orders.filter(
        (customer == customer.shift(1)) & (pl.col("_check") != pl.col("_check").shift(1))
    ).select(customer.unique())["_packed"]
    buyers = (
        _behaviour(sorted_orders, low, as_of)
        .filter(pl.col("_buyer") & ~pl.col("_key").is_in(clashed.implode()))
        .collect(engine=SUMS_ENGINE)
    )
    buyers = (
        buyers.with_columns(orders["customer_id"].gather(buyers["_row"]))
        .join(_main_category(sorted_orders, categories, low), on="_key", how="left")
        .join(_main_channel(known, key, channels, low), on="_key", how="left")
        .select(
            "customer_id",
            *BEHAVIOURAL_COLUMNS[: BEHAVIOURAL_COLUMNS.index("main_category")],
            "main_category",
            pl.when(pl.col("total_spend") > 0)
            .then(pl.col("_main_spend") / pl.col("total_spend"))
            .alias("main_category_share"),
            "main_channel",
            (pl.col("_n_main") / pl.col("order_count")).alias("main_channel_share"),
        )
    )
    if clashed.is_empty():
        return buyers
    return pl.concat([buyers, _buyers(orders.filter(key.is_in(clashed.implode())), as_of, seed + 1)])


def _behaviour(sorted_orders: pl.DataFrame, low: int, as_of: date) -> pl.LazyFrame:
    """Per-customer order behaviour from the orders sorted by ``_packed`` (customer key, then day or status)."""
    packed, code = pl.col("_packed"), pl.col("_packed") & low
    on_day = code <= low - 3
    age = pl.col("_age")  # days before as_of; null for non-completed orders
    same = (pl.col("_key") == pl.col("_key").shift(1)).fill_null(False)
    new_day = on_day & (packed != packed.shift(1)).fill_null(True)
    month = pl.lit(_month_of_age(sorted_orders, low, as_of)).gather(age)
    first_row = pl.when(~same).then(packed).forward_fill()
    amount = pl.col("amount")
    rows = (
        sorted_orders.lazy()
        .with_columns(
            (packed & (_U64 ^ low)).alias("_key"), pl.when(on_day).then(low - 3 - code.cast(pl.Int32)).alias("_age")
        )
        .set_sorted("_key")
    )
    recent = _windows(rows, age)
    aggs = (
        rows.with_columns(
            new_day.alias("_new_day"),
            pl.when(new_day & same).then(age.shift(1) - age).cast(pl.Float64).alias("_gap"),
            (new_day & (~same | (month != month.shift(1)))).alias("_new_month"),
            pl.when(on_day & (packed != first_row)).then(amount).alias("_repeat_spend"),
            pl.when(on_day).then(amount).alias("_spend"),
            (code == low - 2).alias("_cancelled"),
            (code == low - 1).alias("_returned"),
        )
        .group_by("_key")
        .agg(
            pl.col("_row").first(),
            pl.col("_new_day").sum().cast(pl.Int64).alias("_days"),
            pl.col("_age").max().alias("_first_age"),
            pl.col("_age").min().alias("_last_age"),
            pl.col("_repeat_spend").sum(),
            pl.col("_spend").sum().alias("total_spend"),
            pl.col("_age").count().cast(pl.Int64).alias("order_count"),
            pl.len().alias("_n_all"),
            pl.col("_cancelled").sum(),
            pl.col("_returned").sum(),
            (pl.col("_gap") ** 2).sum().alias("_gap_sq"),
            pl.col("_new_month").sum().cast(pl.Int64).alias("active_months"),
            (pl.col("_category").n_unique() - pl.col("_category").is_null().any())
            .cast(pl.Int64)
            .alias("distinct_categories"),
            pl.col("_quantity").mean().cast(pl.Float64).alias("items_per_order"),
        )
        .join(recent, on="_key", how="left")
        .with_columns(pl.col(f"orders_{k}").fill_null(0) for k in _WINDOW_NAMES)
        .with_columns(pl.col(f"spend_{k}").fill_null(0.0) for k in _WINDOW_NAMES)
    )
    return _behaviour_columns(aggs)


def _windows(rows: pl.LazyFrame, age: pl.Expr) -> pl.LazyFrame:
    """Per ``_key``: completed orders and spend in each trailing window (only the last year's rows are read)."""
    windows = {f"{n}d": age < n for n in _WINDOWS}
    windows["prev_90d"] = (age >= 90) & (age < 180)
    return (
        rows.filter(age < max(_WINDOWS))
        .set_sorted("_key")
        .group_by("_key")
        .agg(
            *(w.sum().cast(pl.Int64).alias(f"orders_{k}") for k, w in windows.items()),
            *(pl.when(w).then(pl.col("amount")).otherwise(0.0).sum().alias(f"spend_{k}") for k, w in windows.items()),
        )
    )


def _behaviour_columns(aggs: pl.LazyFrame) -> pl.LazyFrame:
    """The behavioural feature columns from the per-customer aggregates of ``_behaviour``."""
    frequency = pl.col("_days") - 1
    recency = pl.col("_first_age") - pl.col("_last_age")
    mean_gap = recency / frequency
    spend_90, spend_prev = pl.col("spend_90d"), pl.col("spend_prev_90d")
    return aggs.select(
        "_key",
        "_row",
        (pl.col("_days") > 0).alias("_buyer"),
        frequency.alias("frequency"),
        recency.cast(pl.Float64).alias("recency"),
        pl.col("_first_age").cast(pl.Float64).alias("T"),
        pl.when(frequency > 0).then(pl.col("_repeat_spend") / frequency).otherwise(0.0).alias("monetary_value"),
        pl.col("_last_age").cast(pl.Int64).alias("days_since_last_order"),
        "order_count",
        "total_spend",
        (pl.col("total_spend") / pl.col("order_count")).alias("avg_order_value"),
        *(f"orders_{k}d" for k in _WINDOWS),
        *(f"spend_{k}d" for k in _WINDOWS),
        "spend_prev_90d",
        pl.when(spend_90 + spend_prev > 0)
        .then((spend_90 - spend_prev) / (spend_90 + spend_prev))
        .otherwise(0.0)
        .alias("spend_trend_90d"),
        pl.when(frequency > 0).then(mean_gap).alias("mean_days_between_purchases"),
        pl.when(frequency > 0)
        .then((pl.col("_gap_sq") / frequency - mean_gap**2).clip(lower_bound=0.0).sqrt())
        .alias("std_days_between_purchases"),
        pl.col("_first_age").cast(pl.Int64).alias("days_since_first_order"),
        "active_months",
        (pl.col("_cancelled") / pl.col("_n_all")).alias("cancel_rate"),
        (pl.col("_returned") / pl.col("_n_all")).alias("return_rate"),
        "distinct_categories",
        "items_per_order",
    )


def _month_of_age(sorted_orders: pl.DataFrame, low: int, as_of: date) -> pl.Series:
    """Calendar month number of the day ``age`` days before ``as_of``, for every age in ``sorted_orders``."""
    oldest = (
        sorted_orders.select((low - 3 - (pl.col("_packed") & low).min().cast(pl.Int64)).clip(lower_bound=0)).item() or 0
    )
    days = pl.date_range(as_of - timedelta(days=oldest), as_of, eager=True).reverse()
    return (days.dt.year().cast(pl.Int32) * 12 + days.dt.month().cast(pl.Int32)).rename("month")


def _main_channel(orders: pl.LazyFrame, key: pl.Expr, channels: pl.Series, low: int) -> pl.DataFrame:
    """Per ``_key``: the channel with the most completed orders (ties: alphabetically first) and that count.

    ``channels`` are the sorted distinct channels; a channel's index goes into the ``low`` key bits, so
    sorting the (customer, channel) keys and counting equal runs gives the order count per pair.
    """
    index = pl.col("channel").cast(pl.Enum(channels)).to_physical().cast(pl.UInt64)
    # most orders first, then the alphabetically first channel: one integer score per (customer, channel)
    score = pl.col("len").cast(pl.UInt64) * (1 << 32) + (len(channels) - 1 - (pl.col("value") & low))
    return (
        orders.filter((pl.col("status") == "completed") & pl.col("channel").is_not_null())
        .select((key | index).sort().rle().alias("_run"))
        .unnest("_run")
        .with_columns((pl.col("value") & (_U64 ^ low)).alias("_key"))
        .set_sorted("_key")
        .group_by("_key")
        .agg(score.max().alias("_score"))
        .select(
            "_key",
            pl.lit(channels).gather(len(channels) - 1 - pl.col("_score") % (1 << 32)).alias("main_channel"),
            (pl.col("_score") // (1 << 32)).alias("_n_main"),
        )
        .collect()
    )


def _main_category(sorted_orders: pl.DataFrame, categories: pl.Series, low: int) -> pl.DataFrame:
    """Per ``_key``: the category with the most completed spend (ties: alphabetically first) and that spend.

    ``categories`` are the sorted distinct categories; the ``_category`` index of each completed order goes into
    the ``low`` key bits, so the (customer, category) keys sorted and summed in runs give the spend per pair.
    """
    spend = pl.col("_main_spend")
    return (
        sorted_orders.lazy()
        .filter(pl.col("_category").is_not_null())
        .select(
            ((pl.col("_packed") & (_U64 ^ low)) | pl.col("_category").cast(pl.UInt64)).alias("_pair"),
            "amount",
        )
        .sort("_pair", maintain_order=True)
        .group_by("_pair", maintain_order=True)
        .agg(pl.col("amount").sum().alias("_main_spend"))
        .select((pl.col("_pair") & (_U64 ^ low)).alias("_key"), (pl.col("_pair") & low).alias("_index"), spend)
        .set_sorted("_key")
        .group_by("_key")
        # within a customer the pairs are in category order: the first largest spend is the alphabetically first
        .agg(pl.col("_index").get(spend.arg_max()), spend.max())
        .select("_key", pl.lit(categories).gather(pl.col("_index")).alias("main_category"), "_main_spend")
        .collect(engine=SUMS_ENGINE)
    )


def _age_band(as_of: date) -> pl.Expr:
    age = as_of.year - pl.col("birth_year")
    band = pl.when(age < 0).then(pl.lit(None, pl.Utf8))
    for upper, label in _AGE_BANDS:
        band = band.when(age < upper).then(pl.lit(label))
    return band.when(age.is_not_null()).then(pl.lit("65+"))


def profile_snapshot(profiles: pl.DataFrame | None, as_of: date) -> pl.DataFrame:
    """The profile output columns per customer_id (empty when there is no snapshot)."""
    if profiles is None:
        profiles = pl.DataFrame(schema=_PROFILE_SCHEMA)
    return (
        profiles.select(
            "customer_id",
            _age_band(as_of).alias("age_band"),
            "gender",
            "region",
            "customer_type",
            "is_member",
            (pl.lit(as_of) - pl.col("signup_date")).dt.total_days().cast(pl.Int64).alias("days_since_signup"),
            pl.lit(True).alias("has_profile"),
        )
        .cast({c: t for c, t in _PROFILE_SCHEMA.items() if c in _PROFILE_COLUMNS})
        .rechunk()
    )
