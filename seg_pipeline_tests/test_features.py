"""Customer features: hand-computed BTYD golden cases, point-in-time correctness, documentation."""

from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from seg_pipeline.core.features import BEHAVIOURAL_COLUMNS, FEATURE_COLUMNS, compute_customer_features

D = date(2026, 6, 30)


def orders(*rows: tuple) -> pl.DataFrame:
    """Orders from (customer_id, day, amount[, status[, channel, category]]) tuples."""
    records = []
    for i, (customer, day, amount, *rest) in enumerate(rows):
        status, channel, category = (list(rest) + ["completed", "web", "books"][len(rest):])[:3]
        records.append({
            "order_id": f"O{i}", "customer_id": customer,
            "order_ts": datetime.combine(day, datetime.min.time()) + timedelta(hours=10 + i % 10),
            "order_day": day, "amount": float(amount), "currency": "USD", "status": status,
            "channel": channel, "category": category, "quantity": 1,
        })  # fmt: skip
    return pl.DataFrame(records).with_columns(pl.col("quantity").cast(pl.Int32))


def profiles(*customer_ids: str) -> pl.DataFrame:
    n = len(customer_ids)
    return pl.DataFrame({
        "customer_id": list(customer_ids), "signup_date": [date(2025, 1, 1)] * n, "birth_year": [1990] * n,
        "gender": ["female"] * n, "region": ["west"] * n, "customer_type": ["individual"] * n,
        "is_member": [True] * n, "name": ["Ann"] * n, "email": ["a@example.com"] * n, "phone": ["555-0100"] * n,
    }).with_columns(pl.col("birth_year").cast(pl.Int32))  # fmt: skip


def row(features: pl.DataFrame, customer: str) -> dict:
    return features.filter(pl.col("customer_id") == customer).row(0, named=True)


def test_several_orders_on_one_day_are_one_purchase_day_whose_amounts_add_up():
    f = compute_customer_features(
        orders(("A", D - timedelta(10), 5), ("A", D - timedelta(10), 7), ("A", D - timedelta(4), 3),
               ("A", D - timedelta(4), 1), ("A", D - timedelta(4), 6)), None, D)  # fmt: skip
    a = row(f, "A")
    assert (a["frequency"], a["recency"], a["T"]) == (1, 6.0, 10.0)
    assert a["monetary_value"] == pytest.approx(10.0)  # 3 + 1 + 6 on the repeat day; the first day excluded
    assert (a["order_count"], a["total_spend"], a["days_since_last_order"]) == (5, 22.0, 4)


def test_one_time_buyer():
    a = row(compute_customer_features(orders(("A", D - timedelta(30), 40)), None, D), "A")
    assert (a["frequency"], a["recency"], a["T"], a["monetary_value"]) == (0, 0.0, 30.0, 0.0)
    assert a["mean_days_between_purchases"] is None


def test_cancelled_and_returned_orders_count_only_in_their_rates():
    f = compute_customer_features(
        orders(("A", D - timedelta(20), 10), ("A", D - timedelta(15), 99, "cancelled"),
               ("A", D - timedelta(12), 50, "returned"), ("A", D - timedelta(5), 30)), None, D)  # fmt: skip
    a = row(f, "A")
    assert (a["frequency"], a["recency"], a["T"], a["monetary_value"]) == (1, 15.0, 20.0, 30.0)
    assert (a["order_count"], a["total_spend"]) == (2, 40.0)
    assert a["cancel_rate"] == pytest.approx(0.25) and a["return_rate"] == pytest.approx(0.25)


def test_customer_whose_first_order_is_on_the_as_of_day():
    a = row(compute_customer_features(orders(("A", D, 12)), None, D), "A")
    assert (a["frequency"], a["recency"], a["T"], a["days_since_last_order"]) == (0, 0.0, 0.0, 0)


def test_repeat_buyer_over_several_days():
    days = [D - timedelta(100), D - timedelta(60), D - timedelta(40), D - timedelta(10)]
    a = row(compute_customer_features(orders(*[("A", d, amt) for d, amt in zip(days, [10, 20, 30, 40])]), None, D), "A")
    assert (a["frequency"], a["recency"], a["T"]) == (3, 90.0, 100.0)
    assert a["monetary_value"] == pytest.approx(30.0)
    assert a["mean_days_between_purchases"] == pytest.approx(30.0)
    assert (a["orders_30d"], a["orders_90d"], a["spend_90d"], a["spend_prev_90d"]) == (1, 3, 90.0, 10.0)
    assert a["spend_trend_90d"] == pytest.approx((90 - 10) / (90 + 10))


def test_window_boundaries_are_the_n_days_ending_with_as_of():
    f = compute_customer_features(orders(("A", D - timedelta(29), 1), ("A", D - timedelta(30), 2)), None, D)
    a = row(f, "A")
    assert (a["orders_30d"], a["spend_30d"]) == (1, 1.0)


def test_nothing_after_as_of_leaks_in():
    base = orders(("A", D - timedelta(50), 10), ("B", D - timedelta(3), 7), ("A", D, 5))
    later = pl.concat([base, orders(("A", D + timedelta(1), 100), ("C", D + timedelta(2), 9)).with_columns(
        pl.col("order_id") + "x")])  # fmt: skip
    assert compute_customer_features(later, profiles("A"), D).equals(compute_customer_features(base, profiles("A"), D))


def test_prospects_and_customers_without_profile_are_present():
    f = compute_customer_features(orders(("A", D - timedelta(3), 10)), profiles("P"), D)
    assert f["customer_id"].to_list() == ["A", "P"]
    prospect, buyer = row(f, "P"), row(f, "A")
    assert all(prospect[c] is None for c in BEHAVIOURAL_COLUMNS)
    assert prospect["has_profile"] and prospect["region"] == "west" and prospect["age_band"] == "35-44"
    assert not buyer["has_profile"] and buyer["region"] is None
    assert {"name", "email", "phone"}.isdisjoint(f.columns)


def test_every_column_is_documented_in_output_order():
    f = compute_customer_features(orders(("A", D - timedelta(3), 10)), profiles("A"), D)
    assert list(FEATURE_COLUMNS) == f.columns
    assert all(len(text) > 10 for text in FEATURE_COLUMNS.values())


def test_btyd_columns_agree_with_an_independent_duckdb_computation():
    rng = np.random.default_rng(3)
    n = 3000
    frame = orders(*[
        (f"C{c}", D - timedelta(int(d)), round(float(a), 2), s)
        for c, d, a, s in zip(rng.integers(0, 300, n), rng.integers(0, 400, n), rng.gamma(2, 20, n),
                              rng.choice(["completed", "completed", "completed", "cancelled", "returned"], n))
    ])  # fmt: skip
    ours = compute_customer_features(frame, None, D).select("customer_id", "frequency", "recency", "T", "monetary_value")
    expected = duckdb.sql(f"""
        with days as (select customer_id, order_day, sum(amount) as spend from frame
                      where status = 'completed' group by all),
        firsts as (select customer_id, min(order_day) as first_day, max(order_day) as last_day from days group by all)
        select customer_id, count(*) - 1 as frequency,
               date_diff('day', first_day, last_day)::double as recency,
               date_diff('day', first_day, DATE '{D}')::double as T,
               coalesce(avg(spend) filter (where order_day > first_day), 0) as monetary_value
        from days join firsts using (customer_id) group by customer_id, first_day, last_day order by customer_id
    """).pl()  # fmt: skip
    assert ours.height == expected.height
    for column in ("frequency", "recency", "T"):
        assert ours[column].cast(pl.Float64).to_list() == expected[column].cast(pl.Float64).to_list(), column
    assert np.allclose(ours["monetary_value"].to_numpy(), expected["monetary_value"].to_numpy())
