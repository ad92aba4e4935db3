"""Prospects: a persona from the profile, and a point-in-time purchase propensity with a prior fallback."""

from datetime import date, timedelta

import numpy as np
import polars as pl

from seg_pipeline.core import prospects
from seg_pipeline.core.features import compute_customer_features, profile_snapshot
from seg_pipeline_tests.conftest import ORDER_SCHEMA

D, H = date(2024, 6, 30), 90
PAST = D - timedelta(days=H)


def synthetic(n: int = 3000, seed: int = 3) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Profiles signed up before D - h and first orders in (D - h, D]: members and businesses convert far more
    often, signup recency matters a little; plus buyers who bought before D - h (no prospects then)."""
    rng = np.random.default_rng(seed)
    member = rng.random(n) < 0.4
    business = rng.random(n) < 0.2
    signup_days_before_past = rng.integers(1, 700, n)
    logit = -2.2 + 1.8 * member + 1.2 * business - 0.001 * signup_days_before_past
    converts = rng.random(n) < 1 / (1 + np.exp(-logit))
    early = rng.random(n) < 0.1  # bought before D - h
    ids = [f"c{i:05d}" for i in range(n)]
    profiles = pl.DataFrame({
        "customer_id": ids,
        "signup_date": [PAST - timedelta(days=int(d)) for d in signup_days_before_past],
        "birth_year": rng.integers(1950, 2004, n).astype(np.int32),
        "gender": None, "region": rng.choice(["north", "south"], n),
        "customer_type": np.where(business, "business", "individual"), "is_member": member,
    }).cast({"gender": pl.String})  # fmt: skip
    buyers = [i for i in range(n) if converts[i] or early[i]]
    day = [PAST - timedelta(days=5) if early[i] else PAST + timedelta(days=int(1 + i % (H - 1))) for i in buyers]
    orders = pl.DataFrame({
        "order_id": [f"o{i}" for i in buyers], "customer_id": [ids[i] for i in buyers],
        "order_ts": [d for d in day], "order_day": day, "amount": 10.0, "currency": "USD", "status": "completed",
        "channel": None, "category": None, "quantity": 1,
    }).with_columns(pl.col("order_day").cast(pl.Datetime("us")).alias("order_ts")).cast(ORDER_SCHEMA)  # fmt: skip
    return orders, profiles


def test_training_frame_is_point_in_time():
    orders, profiles = synthetic()
    now = compute_customer_features(orders, profiles, D)
    train = prospects.training_frame(profile_snapshot(profiles, PAST), now, H)
    early = set(orders.filter(pl.col("order_day") <= PAST)["customer_id"])
    assert early and not early & set(train["customer_id"])  # buyers at D - h were no prospects then
    converted = set(orders.filter(pl.col("order_day") > PAST)["customer_id"])
    assert set(train.filter("converted")["customer_id"]) == converted
    assert train["days_since_signup"].min() >= 1  # as of D - h, not D


def test_propensity_beats_signup_recency_and_is_calibrated_and_null_for_buyers():
    orders, profiles = synthetic()
    now = compute_customer_features(orders, profiles, D)
    train = prospects.training_frame(profile_snapshot(profiles, PAST), now, H)
    propensity, metrics = prospects.score_prospects(now, train)
    assert metrics["method"] == "model" and metrics["n_holdout"] > 500
    assert metrics["model"]["auc"] > metrics["signup_recency"]["auc"] + 0.1, metrics
    assert metrics["model"]["brier"] < metrics["signup_recency"]["brier"]
    assert abs(metrics["holdout_mean_predicted"] - metrics["holdout_conversion_rate"]) < 0.03
    is_prospect = now["frequency"].is_null()
    assert propensity.filter(~is_prospect).is_null().all()
    assert propensity.filter(is_prospect).is_between(0, 1).all() and propensity.filter(is_prospect).len() > 1000
    scored = now.with_columns(propensity).filter(pl.col("frequency").is_null())
    by_member = dict(scored.group_by("is_member").agg(pl.col("purchase_propensity").mean()).iter_rows())
    assert by_member[True] > 2 * by_member[False]
    again, again_metrics = prospects.score_prospects(now, train)
    assert again.equals(propensity) and again_metrics == metrics  # seeded


def test_too_little_history_falls_back_to_the_smoothed_prior():
    orders, profiles = synthetic(n=150)
    now = compute_customer_features(orders, profiles, D)
    train = prospects.training_frame(profile_snapshot(profiles, PAST), now, H)
    propensity, metrics = prospects.score_prospects(now, train)
    assert metrics["method"] == "prior" and "past prospects" in metrics["reason"]
    rate = (train["converted"].sum() + 1) / (train.height + 2)
    assert propensity.drop_nulls().unique().to_list() == [rate]
    none, none_metrics = prospects.score_prospects(now, None)
    assert none_metrics["method"] == "prior" and none.drop_nulls().unique().to_list() == [0.5]


def test_persona_from_the_profile():
    features = pl.DataFrame({
        "customer_type": ["business", "individual", None, "government"],
        "is_member": [True, False, None, True], "days_since_signup": [10, 200, None, 400],
    })  # fmt: skip
    assert features.select(prospects.persona_expr()).to_series().to_list() == [
        "prospect businesses, members, signed up < 30 days ago",
        "prospect individuals, non-members, signed up 180-364 days ago",
        "prospect unknown types, membership unknown, signed up at an unknown date",
        "prospect government bodies, members, signed up a year ago or more",
    ]


def test_with_personas_fills_only_the_prospects_labels():
    features = pl.DataFrame({
        "customer_type": ["business", "individual", None], "is_member": [True, False, None],
        "days_since_signup": [10, 200, None],
    })  # fmt: skip
    labels = pl.Series("cluster_label", ["big-basket buyers", None, None], dtype=pl.String)
    filled = prospects.with_personas(labels, features)
    assert filled.to_list() == ["big-basket buyers", *features.select(prospects.persona_expr()).to_series()[1:]]
    assert labels.null_count() == 2  # the labels given are left as they were
