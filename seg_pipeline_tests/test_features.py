"""customer_features: hand-computed golden values, point-in-time safety, and an independent DuckDB cross-check."""

import random
from datetime import date, datetime, timedelta

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from seg_pipeline.core import features
from seg_pipeline.core.features import BEHAVIOURAL_COLUMNS, FEATURE_COLUMNS, compute_customer_features
from seg_pipeline.core.shards import shard_of
from seg_pipeline_tests.conftest import ORDER_SCHEMA

AS_OF = date(2024, 6, 30)
PROFILE_SCHEMA = {
    "customer_id": pl.Utf8,
    "signup_date": pl.Date,
    "birth_year": pl.Int32,
    "gender": pl.Utf8,
    "region": pl.Utf8,
    "customer_type": pl.Utf8,
    "is_member": pl.Boolean,
    "name": pl.Utf8,
    "email": pl.Utf8,
    "phone": pl.Utf8,
}


def orders_frame(rows: list[tuple]) -> pl.DataFrame:
    """Rows of (customer_id, order_day, amount, status, channel, category) as an accepted orders frame."""
    return pl.DataFrame(
        [
            {
                "order_id": f"o{i}",
                "customer_id": customer,
                "order_ts": datetime.combine(day, datetime.min.time()) + timedelta(hours=i % 24),
                "order_day": day,
                "amount": amount,
                "currency": "USD",
                "status": status,
                "channel": channel,
                "category": category,
                "quantity": 1,
            }
            for i, (customer, day, amount, status, channel, category) in enumerate(rows)
        ],
        schema=ORDER_SCHEMA,
    )


def profiles_frame(rows: list[tuple]) -> pl.DataFrame:
    """Rows of (customer_id, signup_date, birth_year, gender, region, customer_type, is_member)."""
    return pl.DataFrame(
        [(*row, f"name {row[0]}", f"{row[0]}@example.com", "+100") for row in rows], schema=PROFILE_SCHEMA, orient="row"
    )


def ago(days: int) -> date:
    return AS_OF - timedelta(days=days)


GOLDEN_ORDERS = [
    # A: repeat buyer; two orders on 2024-01-10 form one purchase day of 15
    ("A", date(2024, 1, 10), 10.0, "completed", "web", "books"),
    ("A", date(2024, 1, 10), 5.0, "completed", "app", "toys"),
    ("A", date(2024, 3, 1), 20.0, "completed", "web", "books"),
    ("A", date(2024, 5, 1), 99.0, "cancelled", "web", "books"),
    ("A", date(2024, 6, 20), 30.0, "completed", "store", "garden"),
    ("A", date(2024, 6, 25), 50.0, "returned", "web", "books"),
    # B: one-time buyer without channel or category
    ("B", date(2024, 6, 1), 40.0, "completed", None, None),
    # C: first order on as_of
    ("C", AS_OF, 12.0, "completed", "app", "toys"),
    # D: only cancelled / returned orders and no profile: not a known customer
    ("D", date(2024, 6, 2), 8.0, "cancelled", "web", None),
    ("D", date(2024, 6, 3), 9.0, "returned", "web", None),
    # E: only a cancelled order but a profile: a prospect
    ("E", date(2024, 6, 4), 7.0, "cancelled", "app", None),
    # H: several orders on one day incl. a cancelled one
    ("H", date(2024, 6, 10), 10.0, "completed", "app", "toys"),
    ("H", date(2024, 6, 10), 15.0, "completed", "web", "toys"),
    ("H", date(2024, 6, 10), 100.0, "cancelled", "web", "toys"),
]
GOLDEN_PROFILES = [
    ("A", date(2020, 1, 1), 2000, "f", "north", "individual", True),
    ("C", None, None, None, None, "business", None),
    ("E", date(2024, 6, 1), 1959, "m", "south", "individual", False),
    ("F", date(2023, 6, 30), 1960, "x", "east", "government", True),
]


@pytest.fixture(scope="module")
def golden() -> dict[str, dict]:
    out = compute_customer_features(orders_frame(GOLDEN_ORDERS), profiles_frame(GOLDEN_PROFILES), AS_OF)
    return {row["customer_id"]: row for row in out.iter_rows(named=True)}


def test_known_customers_only_and_sorted(golden):
    assert list(golden) == ["A", "B", "C", "E", "F", "H"]  # D has no completed order and no profile


def test_repeat_buyer_golden_values(golden):
    a = golden["A"]
    # purchase days 2024-01-10 (15), 2024-03-01 (20), 2024-06-20 (30); cancelled and returned orders ignored
    assert (a["frequency"], a["recency"], a["T"], a["monetary_value"]) == (2, 162.0, 172.0, 25.0)
    assert (a["days_since_last_order"], a["days_since_first_order"]) == (10, 172)
    assert (a["order_count"], a["total_spend"], a["avg_order_value"]) == (4, 65.0, 16.25)
    # gaps 51 and 111 days
    assert (a["mean_days_between_purchases"], a["std_days_between_purchases"]) == (81.0, 30.0)
    assert a["active_months"] == 3
    assert (a["cancel_rate"], a["return_rate"]) == (1 / 6, 1 / 6)  # over all 6 orders
    assert a["distinct_categories"] == 3
    assert (a["main_channel"], a["main_channel_share"]) == ("web", 0.5)
    assert (a["orders_30d"], a["spend_30d"], a["orders_90d"], a["spend_90d"]) == (1, 30.0, 1, 30.0)
    assert (a["orders_180d"], a["spend_180d"], a["orders_365d"], a["spend_365d"]) == (4, 65.0, 4, 65.0)
    assert a["spend_prev_90d"] == 35.0
    assert a["spend_trend_90d"] == pytest.approx(-5 / 65)


def test_one_time_buyer(golden):
    b = golden["B"]
    assert (b["frequency"], b["recency"], b["T"], b["monetary_value"]) == (0, 0.0, 29.0, 0.0)
    assert (b["order_count"], b["total_spend"], b["days_since_last_order"]) == (1, 40.0, 29)
    assert b["mean_days_between_purchases"] is None and b["std_days_between_purchases"] is None
    assert (b["distinct_categories"], b["main_channel"], b["main_channel_share"]) == (0, None, None)
    assert (b["active_months"], b["cancel_rate"], b["return_rate"]) == (1, 0.0, 0.0)


def test_first_order_on_as_of(golden):
    c = golden["C"]
    assert (c["frequency"], c["recency"], c["T"], c["monetary_value"]) == (0, 0.0, 0.0, 0.0)
    assert (c["days_since_last_order"], c["days_since_first_order"], c["orders_30d"], c["spend_30d"]) == (0, 0, 1, 12.0)


def test_several_orders_on_one_day_are_one_purchase_day(golden):
    h = golden["H"]
    assert (h["frequency"], h["recency"], h["monetary_value"]) == (0, 0.0, 0.0)
    assert (h["order_count"], h["total_spend"], h["avg_order_value"]) == (2, 25.0, 12.5)
    assert (h["cancel_rate"], h["return_rate"]) == (1 / 3, 0.0)
    assert (h["main_channel"], h["main_channel_share"]) == ("app", 0.5)  # 1:1 tie -> alphabetically first


def test_prospects_have_null_behaviour_and_profile(golden):
    for customer in ("E", "F"):  # E only cancelled an order, F never ordered
        row = golden[customer]
        assert all(row[c] is None for c in BEHAVIOURAL_COLUMNS), customer
        assert row["has_profile"] is True
    assert (golden["E"]["age_band"], golden["E"]["days_since_signup"], golden["E"]["region"]) == ("65+", 29, "south")
    assert (golden["F"]["age_band"], golden["F"]["days_since_signup"], golden["F"]["customer_type"]) == (
        "55-64",
        366,
        "government",
    )


def test_profile_fields(golden):
    assert (golden["A"]["age_band"], golden["A"]["gender"], golden["A"]["is_member"]) == ("<25", "f", True)
    assert golden["A"]["days_since_signup"] == (AS_OF - date(2020, 1, 1)).days
    c = golden["C"]  # a profile with unknowns
    assert (c["age_band"], c["days_since_signup"], c["customer_type"], c["has_profile"]) == (
        None,
        None,
        "business",
        True,
    )


def test_buyer_without_profile_has_null_profile_fields(golden):
    for customer in ("B", "H"):
        row = golden[customer]
        assert row["has_profile"] is False
        assert all(
            row[c] is None for c in ("age_band", "gender", "region", "customer_type", "is_member", "days_since_signup")
        )
        assert row["frequency"] is not None


@pytest.mark.parametrize(
    ("birth_year", "band"),
    [
        (2000, "<25"),
        (1999, "25-34"),
        (1990, "25-34"),
        (1989, "35-44"),
        (1979, "45-54"),
        (1969, "55-64"),
        (1960, "55-64"),
        (1959, "65+"),
        (2025, None),
        (None, None),
    ],
)
def test_age_band(birth_year, band):
    profiles = profiles_frame([("P", None, birth_year, None, None, None, None)])
    out = compute_customer_features(orders_frame([]), profiles, AS_OF)
    assert out["age_band"].to_list() == [band]


def test_window_boundaries():
    # order N days before as_of, amount 2**i: (as_of - N, as_of] is "last N days"
    offsets = [29, 30, 89, 90, 179, 180, 364, 365]
    rows = [("G", ago(n), float(2**i), "completed", "web", "x") for i, n in enumerate(offsets)]
    g = compute_customer_features(orders_frame(rows), None, AS_OF).row(0, named=True)
    assert [g[f"orders_{n}d"] for n in (30, 90, 180, 365)] == [1, 3, 5, 7]
    assert [g[f"spend_{n}d"] for n in (30, 90, 180, 365)] == [1.0, 7.0, 31.0, 127.0]
    assert g["spend_prev_90d"] == 24.0  # 90 and 179 days before
    assert g["spend_trend_90d"] == pytest.approx((7 - 24) / 31)
    assert (g["frequency"], g["recency"], g["T"]) == (7, 336.0, 365.0)


def test_spend_trend_is_zero_without_recent_spend():
    g = compute_customer_features(orders_frame([("G", ago(400), 5.0, "completed", "web", None)]), None, AS_OF).row(
        0, named=True
    )
    assert (g["spend_90d"], g["spend_prev_90d"], g["spend_trend_90d"], g["orders_365d"]) == (0.0, 0.0, 0.0, 0)


def test_orders_after_as_of_change_nothing():
    orders = orders_frame(GOLDEN_ORDERS)
    later = orders_frame(
        [
            ("A", AS_OF + timedelta(days=1), 1000.0, "completed", "app", "new"),
            ("B", AS_OF + timedelta(days=30), 5.0, "cancelled", "web", None),
            ("Z", AS_OF + timedelta(days=1), 5.0, "completed", "web", None),  # a customer that does not exist yet
        ]
    ).with_columns(pl.col("order_id") + "_later")
    profiles = profiles_frame(GOLDEN_PROFILES)
    expected = compute_customer_features(orders, profiles, AS_OF)
    assert_frame_equal(compute_customer_features(pl.concat([orders, later]), profiles, AS_OF), expected)
    assert_frame_equal(compute_customer_features(pl.concat([later, orders]).lazy(), profiles, AS_OF), expected)


def test_columns_documented_in_order_and_no_personal_data(golden):
    out = compute_customer_features(orders_frame(GOLDEN_ORDERS), profiles_frame(GOLDEN_PROFILES), AS_OF)
    assert out.columns == list(FEATURE_COLUMNS)
    assert all(isinstance(text, str) and text and "\n" not in text for text in FEATURE_COLUMNS.values())
    assert not {"name", "email", "phone"} & set(out.columns)
    assert BEHAVIOURAL_COLUMNS[0] == "frequency" and BEHAVIOURAL_COLUMNS[-1] == "main_channel_share"
    assert set(BEHAVIOURAL_COLUMNS) < set(FEATURE_COLUMNS)
    assert out.schema["frequency"] == pl.Int64 and out.schema["recency"] == pl.Float64 and out.schema["T"] == pl.Float64
    assert out.schema["as_of"] == pl.Date and out["as_of"].unique().to_list() == [AS_OF]


def test_empty_inputs_keep_the_schema():
    out = compute_customer_features(orders_frame([]), None, AS_OF)
    assert out.height == 0 and out.columns == list(FEATURE_COLUMNS)
    assert out.schema == compute_customer_features(orders_frame(GOLDEN_ORDERS), None, AS_OF).schema
    only_cancelled = compute_customer_features(orders_frame([("D", ago(1), 1.0, "cancelled", None, None)]), None, AS_OF)
    assert only_cancelled.height == 0


def random_inputs(n_orders: int, n_customers: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = random.Random(seed)
    customers = [f"C{i:04d}" for i in range(n_customers)]
    rows = [
        (
            rng.choice(customers),
            AS_OF + timedelta(days=rng.randint(-800, 20)),
            round(rng.uniform(0, 200), 2),
            rng.choices(["completed", "cancelled", "returned"], weights=[8, 1, 1])[0],
            rng.choice(["web", "app", "store", None]),
            rng.choice(["a", "b", "c", "d", None]),
        )
        for _ in range(n_orders)
    ]
    rows += [(rng.choice(customers[:20]), rng.choice([AS_OF, ago(3)]), 1.0, "completed", "web", "a") for _ in range(60)]
    profile_ids = rng.sample(customers, n_customers // 2) + [f"P{i:03d}" for i in range(30)]
    profiles = [
        (
            c,
            ago(rng.randint(0, 2000)),
            rng.choice([None, rng.randint(1930, 2010)]),
            rng.choice(["f", "m", None]),
            rng.choice(["north", "south"]),
            rng.choice(["individual", "business"]),
            rng.choice([True, False, None]),
        )
        for c in profile_ids
    ]
    quantity = pl.Series([rng.choice([None, 1, 2, 5]) for _ in rows], dtype=pl.Int32)
    return orders_frame(rows).with_columns(quantity=quantity), profiles_frame(profiles)


# An independent, straightforward formulation of every column in SQL.
REFERENCE_SQL = """
with o as (select * from orders where order_day <= $as_of),
d as (select customer_id, order_day, sum(amount) as amt, count(*) as n from o where status = 'completed' group by all),
g as (select customer_id, order_day - lag(order_day) over (partition by customer_id order by order_day) as gap from d),
gaps as (select customer_id, avg(gap) as mean_gap, stddev_pop(gap) as std_gap from g group by all),
btyd as (
  select customer_id,
    count(*) - 1 as frequency,
    (max(order_day) - min(order_day))::double as recency,
    ($as_of - min(order_day))::double as "T",
    case when count(*) > 1 then (sum(amt) - arg_min(amt, order_day)) / (count(*) - 1) else 0 end as monetary_value,
    $as_of - max(order_day) as days_since_last_order,
    sum(n) as order_count, sum(amt) as total_spend,
    coalesce(sum(n) filter (where order_day > $as_of - 30), 0) as orders_30d,
    coalesce(sum(n) filter (where order_day > $as_of - 90), 0) as orders_90d,
    coalesce(sum(n) filter (where order_day > $as_of - 180), 0) as orders_180d,
    coalesce(sum(n) filter (where order_day > $as_of - 365), 0) as orders_365d,
    coalesce(sum(amt) filter (where order_day > $as_of - 30), 0) as spend_30d,
    coalesce(sum(amt) filter (where order_day > $as_of - 90), 0) as spend_90d,
    coalesce(sum(amt) filter (where order_day > $as_of - 180), 0) as spend_180d,
    coalesce(sum(amt) filter (where order_day > $as_of - 365), 0) as spend_365d,
    coalesce(sum(amt) filter (where order_day > $as_of - 180 and order_day <= $as_of - 90), 0) as spend_prev_90d,
    $as_of - min(order_day) as days_since_first_order,
    count(distinct date_trunc('month', order_day)) as active_months
  from d group by all),
mix as (
  select customer_id,
    count(*) filter (where status = 'cancelled') / count(*) as cancel_rate,
    count(*) filter (where status = 'returned') / count(*) as return_rate,
    count(distinct category) filter (where status = 'completed') as distinct_categories,
    avg(quantity) filter (where status = 'completed') as items_per_order
  from o group by all),
cat as (
  select customer_id, category, sum(amount) as spend,
    row_number() over (partition by customer_id order by sum(amount) desc, category) as rk
  from o where status = 'completed' and category is not null group by customer_id, category),
ch as (
  select customer_id, channel, count(*) as n,
    row_number() over (partition by customer_id order by count(*) desc, channel) as rk
  from o where status = 'completed' and channel is not null group by customer_id, channel),
buyers as (
  select b.*, gaps.mean_gap, gaps.std_gap, mix.cancel_rate, mix.return_rate, mix.distinct_categories,
    mix.items_per_order, cat.category as main_category,
    case when b.total_spend > 0 then cat.spend / b.total_spend end as main_category_share,
    ch.channel as main_channel, ch.n / b.order_count as main_channel_share
  from btyd b join gaps using (customer_id) join mix using (customer_id)
  left join cat on cat.customer_id = b.customer_id and cat.rk = 1
  left join ch on ch.customer_id = b.customer_id and ch.rk = 1)
select $as_of as as_of, coalesce(b.customer_id, p.customer_id) as customer_id,
  b.frequency, b.recency, b."T", b.monetary_value, b.days_since_last_order, b.order_count, b.total_spend,
  b.total_spend / b.order_count as avg_order_value,
  b.orders_30d, b.orders_90d, b.orders_180d, b.orders_365d,
  b.spend_30d, b.spend_90d, b.spend_180d, b.spend_365d, b.spend_prev_90d,
  case when b.spend_90d + b.spend_prev_90d > 0 then (b.spend_90d - b.spend_prev_90d) / (b.spend_90d + b.spend_prev_90d)
       when b.customer_id is not null then 0 end as spend_trend_90d,
  b.mean_gap as mean_days_between_purchases, b.std_gap as std_days_between_purchases,
  b.days_since_first_order, b.active_months, b.cancel_rate, b.return_rate, b.distinct_categories,
  b.items_per_order, b.main_category, b.main_category_share, b.main_channel, b.main_channel_share,
  case when year($as_of) - p.birth_year < 0 then null
       when year($as_of) - p.birth_year < 25 then '<25' when year($as_of) - p.birth_year < 35 then '25-34'
       when year($as_of) - p.birth_year < 45 then '35-44' when year($as_of) - p.birth_year < 55 then '45-54'
       when year($as_of) - p.birth_year < 65 then '55-64' when p.birth_year is not null then '65+' end as age_band,
  p.gender, p.region, p.customer_type, p.is_member, $as_of - p.signup_date as days_since_signup,
  p.customer_id is not null as has_profile
from buyers b full join profiles p on p.customer_id = b.customer_id
order by customer_id
"""


def reference_features(orders: pl.DataFrame, profiles: pl.DataFrame, as_of: date) -> pl.DataFrame:
    con = duckdb.connect()
    con.register("orders", orders.to_arrow())
    con.register("profiles", profiles.to_arrow())
    out = con.sql(REFERENCE_SQL, params={"as_of": as_of}).pl()
    return out.cast({c: t for c, t in compute_customer_features(orders.head(0), None, as_of).schema.items()})


@pytest.mark.parametrize("as_of", [AS_OF, date(2023, 2, 28), date(2022, 4, 1)])
def test_matches_independent_duckdb_computation(as_of):
    orders, profiles = random_inputs(2000, 150, seed=as_of.toordinal())
    out = compute_customer_features(orders, profiles, as_of)
    assert out.height > 100
    assert_frame_equal(out, reference_features(orders, profiles, as_of), check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


def test_hash_clashes_are_redone(monkeypatch):
    orders, profiles = random_inputs(1500, 120, seed=3)
    expected = compute_customer_features(orders, profiles, AS_OF)
    hash_of = features._customer_hash

    def clash_some(customer_id: pl.Expr, seed: int) -> pl.Expr:  # seed 0: C0001..C0009 share one key
        if seed == 0:
            return (
                pl.when(customer_id.str.starts_with("C000"))
                .then(pl.lit(1 << 40, pl.UInt64))
                .otherwise(hash_of(customer_id, seed))
            )
        return hash_of(customer_id, seed)

    monkeypatch.setattr(features, "_customer_hash", clash_some)
    assert_frame_equal(compute_customer_features(orders, profiles, AS_OF), expected)
    monkeypatch.setattr(
        features, "_customer_hash", lambda c, seed: hash_of(c, seed) if seed > 2 else pl.lit(0, pl.UInt64)
    )
    assert_frame_equal(compute_customer_features(orders, profiles, AS_OF), expected)
    monkeypatch.setattr(
        features,
        "_customer_hash",
        lambda c, seed: hash_of(c, 99) & 0 if seed < features._MAX_SEEDS + 5 else hash_of(c, seed),
    )
    with pytest.raises(RuntimeError, match="clashed"):
        compute_customer_features(orders, profiles, AS_OF)


def test_order_by_customer_id_with_long_and_unicode_ids():
    ids = ["customer-10", "customer-2", "customer-1", "Z", "a", "é9", "ab", "customer", "b\x00"]
    rows = [(c, ago(i), 1.0, "completed", None, None) for i, c in enumerate(ids)]
    out = compute_customer_features(orders_frame(rows), None, AS_OF)
    assert out["customer_id"].to_list() == sorted(ids, key=str.encode)
    short = compute_customer_features(orders_frame(rows[3:]), None, AS_OF)  # distinct 8-byte prefixes
    assert short["customer_id"].to_list() == sorted(ids[3:], key=str.encode)


def test_duplicate_profile_ids_are_rejected():
    profiles = profiles_frame([("A", None, None, None, None, None, None)] * 2)
    with pytest.raises(ValueError, match="duplicate"):
        compute_customer_features(orders_frame([]), profiles, AS_OF)


def test_deterministic_and_input_order_independent():
    orders, profiles = random_inputs(1000, 80, seed=5)
    first = compute_customer_features(orders, profiles, AS_OF)
    shuffled = compute_customer_features(orders.sample(fraction=1.0, shuffle=True, seed=1), profiles.reverse(), AS_OF)
    assert_frame_equal(shuffled, first, check_exact=False, rel_tol=1e-12)


def test_the_features_of_each_customer_shard_are_its_rows_of_the_whole_table_bit_for_bit():
    """Customer shards (services.features) make the table shard by shard: every float equal, not close."""
    orders, profiles = random_inputs(30_000, 3_000, seed=7)
    whole = compute_customer_features(orders, profiles, AS_OF)
    ids = whole["customer_id"]
    shard = shard_of(ids, 3)
    members = [pl.col("customer_id").is_in(ids.filter(shard == k).implode()) for k in range(3)]
    parts = [compute_customer_features(orders.filter(m), profiles.filter(m), AS_OF) for m in members]
    assert_frame_equal(pl.concat(parts).sort("customer_id"), whole, check_exact=True)


@pytest.mark.parametrize("gap_days", [1, 3, 40])
def test_rolling_forward_from_an_earlier_version_equals_computing_from_scratch(gap_days):
    """Only customers with orders on new or window-boundary days are recomputed; the result is identical."""
    orders, profiles = random_inputs(4000, 300, seed=gap_days)
    previous_as_of = AS_OF - timedelta(days=gap_days)
    previous = compute_customer_features(orders, profiles.head(200), previous_as_of)
    snapshot = profiles.tail(250)  # a different snapshot at as_of: some profiles gone, some new
    ranges = features.changed_day_ranges(previous_as_of, AS_OF)
    in_ranges = pl.any_horizontal(pl.col("order_day").is_between(first, last) for first, last in ranges)
    changed = orders.filter(pl.col("customer_id").is_in(orders.filter(in_ranges)["customer_id"].implode()))
    assert 0 < changed["customer_id"].n_unique() < orders["customer_id"].n_unique()  # some, not all

    rolled = features.roll_forward(previous, previous_as_of, changed, snapshot, AS_OF)

    assert_frame_equal(rolled, compute_customer_features(orders, snapshot, AS_OF))


def test_rolling_forward_from_an_empty_version_equals_computing_from_scratch():
    """A day before the first order and profile leaves an empty table; the next day rolls forward from it."""
    orders, profiles = random_inputs(500, 40, seed=2)
    first_day = orders["order_day"].min()
    empty = compute_customer_features(orders, None, first_day - timedelta(days=1))
    assert empty.is_empty()

    rolled = features.roll_forward(empty, first_day - timedelta(days=1), orders, profiles, AS_OF)

    assert_frame_equal(rolled, compute_customer_features(orders, profiles, AS_OF))


def test_rolling_forward_needs_a_later_date():
    with pytest.raises(ValueError, match="must be after"):
        features.changed_day_ranges(AS_OF, AS_OF)


def test_feature_schema_is_what_is_computed():
    computed = compute_customer_features(orders_frame([("c1", AS_OF, 1.0, "completed", "web", "a")]), None, AS_OF)
    assert computed.schema == pl.Schema(features.FEATURE_SCHEMA)


def test_main_category_by_spend_and_items_per_order(golden):
    """A spent 30 on books and 30 on garden (a tie: alphabetically first) of 65; B has no category."""
    a, b = golden["A"], golden["B"]
    assert (a["main_category"], a["main_category_share"], a["items_per_order"]) == ("books", 30 / 65, 1.0)
    assert (b["main_category"], b["main_category_share"]) == (None, None)
