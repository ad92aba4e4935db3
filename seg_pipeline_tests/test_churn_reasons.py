"""Churn reasons: the churn model's exact per-feature contributions, phrased from the customer's values."""

import re
from datetime import date

import numpy as np
import polars as pl
import pytest
from scipy.special import logit

from seg_pipeline.core import churn_reasons
from seg_pipeline.core.booster_tables import BoosterTables
from seg_pipeline.core.churn import ChurnModel, train_churn_model
from seg_pipeline.core.churn_fallback import fallback_churn
from seg_pipeline.core.features import compute_customer_features
from seg_pipeline_tests.ml_synth import simulate_orders

AS_OF = date(2024, 6, 30)


@pytest.fixture(scope="module")
def scored() -> tuple[ChurnModel, pl.DataFrame, np.ndarray]:
    orders, profiles = simulate_orders(3000, 600, end_date=AS_OF, seed=0)
    model = train_churn_model(orders, profiles, AS_OF).model
    features = compute_customer_features(orders, profiles, AS_OF)
    return model, features, model.predict_risk(features)


def test_contributions_plus_base_are_the_models_score(scored) -> None:
    model, features, risk = scored
    buyers = features.filter(pl.col("frequency").is_not_null())
    base, names, contributions = model.contributions(buyers)
    score = base + contributions.sum(axis=1)
    np.testing.assert_allclose(score, model._logit(buyers), rtol=0, atol=1e-9)
    bought = risk[~np.isnan(risk)]
    inside = (bought > 1e-4) & (bought < 1 - 1e-4)  # predict_risk clips to [1e-4, 1 - 1e-4]
    np.testing.assert_allclose(score[inside], logit(bought[inside]), atol=1e-9)
    assert "days_since_last_order" in names and contributions.shape == (buyers.height, len(names))


def test_risk_and_explainer_scores_as_predict_risk_and_explains_as_contributions(scored) -> None:
    model, features, risk = scored
    scored_risk, explain = model.risk_and_explainer(features, churn_reasons.reason_of)
    np.testing.assert_array_equal(scored_risk, risk)  # the very numbers: the segments step publishes these
    base, names, summed = explain()
    expected = model.contributions(features.filter(pl.col("frequency").is_not_null()), churn_reasons.reason_of)
    assert (base, names) == expected[:2] and np.array_equal(summed, expected[2])


def test_booster_table_contributions_sum_to_its_prediction(scored) -> None:
    model, features, _ = scored
    buyers = features.filter(pl.col("frequency").is_not_null())
    tables = BoosterTables.from_booster(model.booster, model.input_sizes)
    codes = model._codes(buyers, None, tables.inputs)
    base, parts = tables.contributions(codes)
    assert any(len(columns) == 2 for columns, _ in tables.tables)  # the Shapley split of pair tables is exercised
    np.testing.assert_allclose(base + parts.sum(axis=1), tables.predict(codes), atol=1e-9)


def test_reasons_are_the_largest_contributions_phrased_from_the_customers_values(scored) -> None:
    model, features, risk = scored
    reasons, moved = churn_reasons.churn_reasons(model, features, risk)
    drivers = churn_reasons.churn_drivers(moved)
    frame = features.with_columns(reasons, pl.Series("risk", risk).fill_nan(None))
    assert frame.filter(pl.col("frequency").is_null())["churn_reasons"].null_count() == frame["frequency"].null_count()
    assert frame.filter(pl.col("risk") >= 0.5)["churn_reasons"].null_count() == 0  # every likely churner has one
    assert frame["churn_reasons"].drop_nulls().str.split("; ").list.len().max() <= churn_reasons.MAX_REASONS
    # the riskiest long-silent customer: the silence is named with their own number of days
    silent = frame.filter(pl.col("days_since_last_order") > 200).sort("risk", descending=True).row(0, named=True)
    assert f"no order for {silent['days_since_last_order']} days" in silent["churn_reasons"]
    # the first reason is the reason with the largest summed contribution for a customer above the base
    buyers = features.filter(pl.col("frequency").is_not_null())
    base, names, contributions = model.contributions(buyers)
    above = np.flatnonzero(contributions.sum(axis=1) > 0.5)[:50]
    of_feature = {f: r for r, (fs, _) in churn_reasons.REASONS.items() for f in fs}
    buyer_reasons = reasons.filter(features["frequency"].is_not_null().to_numpy())
    for row in above.tolist():
        summed: dict[str, float] = {}
        for column, name in enumerate(names):
            reason = of_feature.get(name, name)
            summed[reason] = summed.get(reason, 0.0) + contributions[row, column]
        strongest = max(summed, key=summed.__getitem__)
        expected = buyers[row].select(churn_reasons.REASONS[strongest][1]()).item()
        assert buyer_reasons[row].split("; ")[0] == expected
    assert drivers[0]["mean_abs_logit"] >= drivers[-1]["mean_abs_logit"]
    assert {"silence", "purchases"} <= {d["reason"] for d in drivers[:6]}


def test_every_model_feature_reads_as_a_listed_reason_basket_and_category_share_included(scored) -> None:
    model, _, _ = scored
    assert {"items_per_order", "main_category_share"} <= set(model.feature_names)
    listed = {f for features, _ in churn_reasons.REASONS.values() for f in features}
    assert set(model.feature_names) <= listed  # none reads as its bare name and value
    assert churn_reasons.reason_of("items_per_order") == "basket"
    assert churn_reasons.reason_of("main_category_share") == "categories"
    customers = pl.DataFrame({
        "items_per_order": [1.75, 3.0, None],
        "distinct_categories": [3, 1, 2],
        "main_category": ["books", "toys", None],
        "main_category_share": [0.6249, 1.0, None],
    })  # fmt: skip
    phrased = customers.select(
        churn_reasons.REASONS["basket"][1]().alias("basket"), churn_reasons.REASONS["categories"][1]().alias("mix")
    )
    assert phrased.rows() == [
        ("1.8 items per order on average", "bought from 3 categories, 62% of spend in books"),
        ("3.0 items per order on average", "bought from 1 category, 100% of spend in toys"),
        ("items per order unknown", "bought from 2 categories"),
    ]


def test_fallback_reasons_come_from_days_silent_and_one_time_buying(scored) -> None:
    _, features, _ = scored
    fallback = fallback_churn(features, AS_OF, 90)
    risk = fallback.predict_risk(features)
    reasons, moved = churn_reasons.churn_reasons(fallback, features, risk)
    drivers = churn_reasons.churn_drivers(moved)
    frame = features.with_columns(reasons).filter(pl.col("frequency") == 0, pl.col("days_since_last_order") > 0)
    row = frame.row(0, named=True)
    assert row["churn_reasons"] == f"no order for {row['days_since_last_order']} days; only one purchase day so far"
    assert [d["reason"] for d in drivers] == ["silence", "purchases"]
    assert all(re.fullmatch(r"[a-z0-9 ;,%.\-:]+", r) for r in reasons.drop_nulls().to_list()), reasons.unique()


def test_shards_explained_against_one_reference_have_the_whole_bases_reasons_and_drivers(scored) -> None:
    """A customer's reasons depend on its own row and the reference only, so shards reproduce the whole base."""
    from seg_pipeline.core.shards import shard_of

    model, features, risk = scored
    buyers = features.filter(pl.col("frequency").is_not_null())
    reference = model.reference(buyers.filter(pl.col("customer_id").str.ends_with("7")))  # a sample of the base
    base, _, parts = model.contributions(buyers, reference=reference)
    np.testing.assert_allclose(base + parts.sum(axis=1), model._logit(buyers), rtol=0, atol=1e-9)  # still exact
    whole, whole_moved = churn_reasons.churn_reasons(model, features, risk, reference=reference)
    shard = shard_of(features["customer_id"], 3).to_numpy()
    pieces = [churn_reasons.churn_reasons(model, features.filter(shard == k), risk[shard == k], reference=reference)
              for k in range(3)]  # fmt: skip
    by_id = dict(zip(features["customer_id"], whole, strict=True))
    for k, (reasons, _) in enumerate(pieces):
        assert reasons.to_list() == [by_id[c] for c in features.filter(shard == k)["customer_id"]]
    merged = churn_reasons.churn_drivers(churn_reasons.merge_moved(moved for _, moved in pieces))
    expected = churn_reasons.churn_drivers(whole_moved)
    assert [d["reason"] for d in merged] == [d["reason"] for d in expected]
    np.testing.assert_allclose([d["mean_abs_logit"] for d in merged], [d["mean_abs_logit"] for d in expected],
                               rtol=1e-12)  # fmt: skip
