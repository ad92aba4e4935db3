import re
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seg_pipeline.core import clusters
from seg_pipeline.core.clusters import ClusterModel, label_keep_share
from seg_pipeline.core.features import compute_customer_features
from seg_pipeline.storage.model_store import ModelStore
from seg_pipeline.storage.store import WorkingStore
from seg_pipeline_tests.conftest import ORDER_SCHEMA
from seg_pipeline_tests.ml_synth import simulate_orders

DAY1 = date(2024, 6, 30)
WORD = re.compile(r"^[a-z0-9-]+$|^#\d+$")


def fit_clusters(*args, **kwargs) -> ClusterModel:
    return clusters.fit_clusters(*args, **kwargs)[0]


@pytest.fixture(scope="module")
def days() -> tuple[pl.DataFrame, pl.DataFrame]:
    orders, profiles = simulate_orders(4000, 600, end_date=DAY1, seed=1, extra_days=1)
    return (
        compute_customer_features(orders, profiles, DAY1),
        compute_customer_features(orders, profiles, DAY1 + timedelta(days=1)),
    )


@pytest.fixture(scope="module")
def model1(days: tuple[pl.DataFrame, pl.DataFrame]) -> ClusterModel:
    return fit_clusters(days[0], seed=0)


def _labels(model: ClusterModel, features: pl.DataFrame) -> pl.DataFrame:
    return features.select("customer_id").with_columns(model.predict_labels(features))


def test_deterministic(days: tuple[pl.DataFrame, pl.DataFrame], model1: ClusterModel) -> None:
    again = fit_clusters(days[0].sample(fraction=1.0, shuffle=True, seed=3), seed=0)
    assert again.content_hash() == model1.content_hash()
    assert again.predict_labels(days[0]).to_list() == model1.predict_labels(days[0]).to_list()


def test_k_names_and_prospects(days: tuple[pl.DataFrame, pl.DataFrame], model1: ClusterModel) -> None:
    assert 2 <= model1.k <= 12 and len(model1.labels) == model1.k
    assert -1.0 <= model1.silhouette <= 1.0
    assert len(set(model1.labels)) == model1.k
    assert all(WORD.match(word) for label in model1.labels for word in label.split()), model1.labels
    assert model1.trained_as_of == DAY1
    labels = model1.predict_labels(days[0])
    prospects = days[0]["frequency"].is_null()
    assert prospects.any()
    assert labels.filter(prospects).is_null().all()  # prospects get their persona from core.prospects
    assert set(labels.filter(~prospects).unique().to_list()) <= set(model1.labels)
    assert labels.filter(~prospects).n_unique() == model1.k


def test_names_follow_behaviour(days: tuple[pl.DataFrame, pl.DataFrame], model1: ClusterModel) -> None:
    feats = days[0].with_columns(model1.predict_labels(days[0])).filter(pl.col("frequency").is_not_null())
    pop = feats.select(pl.col("order_count", "avg_order_value", "return_rate").mean()).row(0, named=True)
    by = feats.group_by("cluster_label").agg(
        pl.col("order_count").median().alias("median_orders"),
        pl.col("order_count", "avg_order_value", "return_rate").mean(),
    )
    for row in by.iter_rows(named=True):
        words = row["cluster_label"].split()
        if "one-timers" in words:
            assert row["median_orders"] <= 1
        if "regulars" in words:
            assert row["order_count"] > pop["order_count"]
        if "big-basket" in words:
            assert row["avg_order_value"] > pop["avg_order_value"]
        if "small-basket" in words:
            assert row["avg_order_value"] < pop["avg_order_value"]
        if "high-return" in words:
            assert row["return_rate"] > pop["return_rate"]


def test_labels_stable_from_day_to_day(days: tuple[pl.DataFrame, pl.DataFrame], model1: ClusterModel) -> None:
    model2 = fit_clusters(days[1], previous=model1, seed=0)
    assert model2.trained_as_of == DAY1 + timedelta(days=1)
    assert set(model2.labels) == set(model1.labels)
    share = label_keep_share(_labels(model1, days[0]), _labels(model2, days[1]))
    assert share >= 0.9


def test_hungarian_matching_ignores_centroid_order(
    days: tuple[pl.DataFrame, pl.DataFrame], model1: ClusterModel
) -> None:
    perm = np.random.default_rng(0).permutation(model1.k)
    shuffled = replace(
        model1,
        centroids=tuple(model1.centroids[i] for i in perm),
        labels=tuple(model1.labels[i] for i in perm),
    )
    a = fit_clusters(days[1], previous=model1, seed=0).predict_labels(days[1])
    b = fit_clusters(days[1], previous=shuffled, seed=0).predict_labels(days[1])
    assert a.to_list() == b.to_list()


def test_new_clusters_get_fresh_unique_names(days: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    small = fit_clusters(days[0], k_range=(3, 3), seed=0)
    big = fit_clusters(days[1], previous=small, k_range=(6, 6), seed=0)
    assert big.k == 6 and len(set(big.labels)) == 6
    assert len(set(big.labels) & set(small.labels)) >= 1


def test_sample_size_and_model_store_round_trip(days: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path) -> None:
    model = fit_clusters(days[0], sample_size=1500, seed=5)
    registry = ModelStore(WorkingStore(tmp_path / "store"))
    registry.save("clusters", model.content_hash(), model, DAY1, {}, "inputs")
    loaded = registry.load(registry.in_force("clusters", DAY1))
    assert loaded == model and loaded.content_hash() == model.content_hash()
    assert loaded.predict_labels(days[0]).to_list() == model.predict_labels(days[0]).to_list()


def test_label_keep_share() -> None:
    p1 = "prospect individuals, members, signed up < 30 days ago"
    p2 = "prospect individuals, members, signed up 30-179 days ago"
    prev = pl.DataFrame({"customer_id": ["a", "b", "c", "d", "p"], "cluster_label": ["x", "y", "x", "y", p1]})
    new = pl.DataFrame({"customer_id": ["a", "b", "c", "e", "p"], "cluster_label": ["x", "x", "x", "y", p2]})
    assert label_keep_share(prev, new) == pytest.approx(2 / 3)
    assert np.isnan(label_keep_share(prev.head(0), new))


def test_tiny_customer_bases_get_fewer_clusters_or_one() -> None:
    """Fewer distinct customers than k_range allows: fewer clusters (k < distinct customers), or one."""
    feats = pl.DataFrame(
        {"customer_id": ["a", "b", "c"], "frequency": [1, 2, 5], "order_count": [2, 3, 6],
         "avg_order_value": [1.0, 2.0, 40.0], "days_since_last_order": [1, 2, 30],
         "days_since_first_order": [5, 6, 90], "spend_trend_90d": [0.0, 0.0, 0.5],
         "items_per_order": [1.0, 1.0, 3.0], "return_rate": [0.0, 0.0, 0.5], "cancel_rate": [0.0, 0.0, 0.0],
         "mean_days_between_purchases": [5.0, 3.0, 18.0]}
    )  # fmt: skip
    assert fit_clusters(feats).k == 2
    for tiny in (feats.head(2), feats.head(1)):
        model = fit_clusters(tiny)
        assert model.k == 1 and model.predict_labels(tiny).n_unique() == 1
        assert fit_clusters(tiny, model).labels == model.labels  # refitted against itself: the label stays
    with pytest.raises(ValueError, match="no customer"):
        fit_clusters(feats.clear())


# planted personas: (name, customers, channel, category, orders per customer, amount, quantity, returned share)
PLANTED = (
    ("app electronics", 300, ["app"], ["electronics"], (3, 6), (60.0, 90.0), (1, 2), 0.0),
    ("store grocery", 300, ["store"], ["grocery"], (14, 22), (15.0, 25.0), (3, 6), 0.0),
    ("returning fashion", 250, ["web", "app", "store", "marketplace"], ["fashion"], (4, 8), (40.0, 60.0), (1, 3), 0.4),
    ("mixed", 700, ["web", "app", "store", "marketplace"], ["home", "books", "toys", "sports"], (1, 5), (20.0, 80.0),
     (1, 3), 0.05),
)  # fmt: skip


def planted_orders(end: date, seed: int = 7) -> tuple[pl.DataFrame, dict[str, str]]:
    """Orders over the year before ``end`` of the PLANTED groups (a customer's group: the id's prefix)."""
    rng = np.random.default_rng(seed)
    rows, group_of = [], {}
    for g, (name, n, channels, categories, (lo, hi), (amin, amax), (qmin, qmax), returned) in enumerate(PLANTED):
        for c in range(n):
            customer = f"G{g}-{c:04d}"
            group_of[customer] = name
            for _ in range(rng.integers(lo, hi + 1)):
                rows.append({
                    "order_id": f"o{len(rows)}", "customer_id": customer,
                    "order_day": end - timedelta(days=int(rng.integers(0, 365))),
                    "amount": float(rng.uniform(amin, amax)), "currency": "USD",
                    "status": "returned" if rng.random() < returned else "completed",
                    "channel": str(rng.choice(channels)), "category": str(rng.choice(categories)),
                    "quantity": int(rng.integers(qmin, qmax + 1)),
                })  # fmt: skip
    orders = pl.DataFrame(rows).with_columns(
        pl.col("order_day").cast(pl.Datetime("us")).alias("order_ts")
    ).select(list(ORDER_SCHEMA)).cast(ORDER_SCHEMA)  # fmt: skip
    return orders, group_of


@pytest.fixture(scope="module")
def planted() -> tuple[list[pl.DataFrame], dict[str, str]]:
    orders, group_of = planted_orders(DAY1 + timedelta(days=1))
    days = [compute_customer_features(orders, None, DAY1 + timedelta(days=d)) for d in (0, 1)]
    return days, group_of


def _members(features: pl.DataFrame, model: ClusterModel, group_of: dict[str, str]) -> pl.DataFrame:
    labelled = features.select("customer_id", model.predict_labels(features))
    return labelled.with_columns(pl.col("customer_id").replace_strict(group_of).alias("group"))


def test_planted_personas_are_found_and_named_after_their_members(planted) -> None:
    (day, _), group_of = planted
    model, metrics = clusters.fit_clusters(day)
    members = _members(day, model, group_of)
    expected = {"app electronics": {"app-first", "electronics"}, "store grocery": {"grocery", "regulars"},
                "returning fashion": {"high-return", "fashion"}}  # fmt: skip
    for group, words in expected.items():
        top = members.filter(pl.col("group") == group)["cluster_label"].value_counts(sort=True).row(0, named=True)
        assert top["count"] >= 0.9 * members.filter(pl.col("group") == group).height, (group, top)
        assert words <= set(top["cluster_label"].split()), (group, top["cluster_label"])
        # the persona holds (nearly) only that group: the name is about its members
        in_label = members.filter(pl.col("cluster_label") == top["cluster_label"])
        assert (in_label["group"] == group).mean() >= 0.9, (group, top["cluster_label"])
    assert f"k={model.k}:" in metrics["choice"] and model.k >= 4
    assert metrics["traits"] and set(metrics["traits"]) == set(model.labels)


def test_planted_personas_keep_their_names_the_next_day(planted) -> None:
    (day1, day2), group_of = planted
    first = fit_clusters(day1)
    second = fit_clusters(day2, previous=first)
    share = label_keep_share(_members(day1, first, group_of), _members(day2, second, group_of))
    assert share >= 0.95


@pytest.mark.parametrize("which", ["ml_synth", "planted"])
def test_no_word_is_shared_by_every_name_and_status_words_hold(which, days, planted) -> None:
    """'new' only when the median member's first purchase is < 90 days old; 'active'/'lapsed' never."""
    features = days[0] if which == "ml_synth" else planted[0][0]
    model = fit_clusters(features)
    assert model.k >= 2
    assert not set.intersection(*(set(label.split()) for label in model.labels)), model.labels
    labelled = features.with_columns(model.predict_labels(features)).filter(pl.col("frequency").is_not_null())
    medians = labelled.group_by("cluster_label").agg(pl.col("days_since_first_order").median())
    for label, median_tenure in medians.iter_rows():
        words = set(label.split())
        assert not words & {"active", "lapsed"}, label
        if "new" in words:
            assert median_tenure < clusters.NEW_DAYS, (label, median_tenure)


def test_new_is_said_only_while_the_median_member_is_new() -> None:
    """A cohort that joined a month ago is 'new'; the same cohort a year on keeps its persona without 'new'."""
    orders, _ = planted_orders(DAY1)
    recent = orders.filter(pl.col("customer_id").str.starts_with("G3")).with_columns(
        (pl.lit(DAY1) - pl.duration(days=pl.col("order_id").str.slice(1).cast(pl.Int64) % 30)).alias("order_day")
    ).with_columns(pl.col("order_day").cast(pl.Datetime("us")).alias("order_ts"))  # fmt: skip
    orders = pl.concat([orders.filter(~pl.col("customer_id").str.starts_with("G3")), recent])
    young = compute_customer_features(orders, None, DAY1)
    model = fit_clusters(young)
    young_label = young.with_columns(model.predict_labels(young)).filter(
        pl.col("customer_id").str.starts_with("G3")
    )["cluster_label"].mode()[0]  # fmt: skip
    assert "new" in young_label.split(), model.labels
    later = compute_customer_features(orders, None, DAY1 + timedelta(days=200))
    aged = fit_clusters(later, previous=model)
    assert not any("new" in label.split() for label in aged.labels), aged.labels
