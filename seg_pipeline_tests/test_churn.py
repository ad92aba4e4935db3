import json
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seg_pipeline.core.booster_tables import BoosterTables
from seg_pipeline.core.churn import (
    ChurnTrainingResult,
    InsufficientHistoryError,
    train_churn_model,
    training_sample,
)
from seg_pipeline.core.features import compute_customer_features
from seg_pipeline.storage.model_store import ModelStore
from seg_pipeline.storage.store import WorkingStore
from seg_pipeline_tests.ml_synth import simulate_orders

AS_OF = date(2024, 6, 30)
N_CUSTOMERS, DAYS = 5000, 730


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, pl.DataFrame]:
    orders, profiles = simulate_orders(N_CUSTOMERS, DAYS, end_date=AS_OF, seed=0, extra_days=120)
    return orders.filter(pl.col("order_day") <= AS_OF), profiles


@pytest.fixture(scope="module")
def result(data: tuple[pl.DataFrame, pl.DataFrame]) -> ChurnTrainingResult:
    return train_churn_model(*data, AS_OF)


@pytest.fixture(scope="module")
def features_today(data: tuple[pl.DataFrame, pl.DataFrame]) -> pl.DataFrame:
    return compute_customer_features(*data, AS_OF)


def test_metrics_are_json_and_describe_the_split(result: ChurnTrainingResult) -> None:
    m = json.loads(json.dumps(result.metrics))
    assert m["trained_as_of"] == AS_OF.isoformat() and m["horizon_days"] == 90
    assert m["holdout_as_of"] == (AS_OF - timedelta(days=90)).isoformat()
    assert max(m["eval_snapshots"]) <= (AS_OF - timedelta(days=180)).isoformat()  # label windows end <= holdout date
    assert max(m["final_snapshots"]) == m["holdout_as_of"]
    assert m["n_train"] > 5000 and m["n_holdout"] > 2000
    assert m["model_hash"] == result.model.content_hash()
    assert len(m["calibration_deciles"]) == 10


def test_model_beats_baselines_on_holdout(result: ChurnTrainingResult) -> None:
    m = result.metrics
    for baseline in ("recency", "bgnbd"):
        assert m["model"]["auc"] > m[baseline]["auc"], baseline
        assert m["model"]["logloss"] < m[baseline]["logloss"], baseline
    assert m["model"]["auc"] > 0.85


def test_model_is_calibrated_on_holdout(result: ChurnTrainingResult) -> None:
    m = result.metrics
    assert abs(m["holdout_mean_predicted"] - m["holdout_churn_rate"]) < 0.03
    assert m["calibration_error"] < 0.03
    deciles = m["calibration_deciles"]
    assert all(abs(d["mean_predicted"] - d["observed_rate"]) < 0.1 for d in deciles)
    observed = [d["observed_rate"] for d in deciles]
    assert observed[-1] - observed[0] > 0.6  # deciles really separate risk


def test_scoring_tables_match_the_booster_and_a_mismatch_fails_loudly(
    result: ChurnTrainingResult, features_today: pl.DataFrame, monkeypatch
) -> None:
    from scipy.special import expit

    model = result.model
    buyers = features_today.filter(pl.col("frequency").is_not_null())
    stage_one = model.base.decision_function(model._base_inputs(buyers))
    walked = expit(stage_one + model.booster.predict(model._matrix(buyers)))  # every tree walked by sklearn
    risk = model.predict_risk(features_today)
    np.testing.assert_allclose(risk[~np.isnan(risk)], np.clip(walked, 1e-4, 1 - 1e-4), rtol=0, atol=1e-12)

    tabulate = BoosterTables.from_booster
    monkeypatch.setattr(
        BoosterTables, "from_booster", lambda booster, sizes: replace(tabulate(booster, sizes), baseline=0.5)
    )
    with pytest.raises(RuntimeError, match="disagree with the booster"):
        model.predict_risk(features_today)


def test_predict_risk_prospects_are_nan(result: ChurnTrainingResult, features_today: pl.DataFrame) -> None:
    risk = result.model.predict_risk(features_today)
    prospects = features_today["frequency"].is_null().to_numpy()
    assert prospects.any() and np.isnan(risk[prospects]).all()
    assert np.isfinite(risk[~prospects]).all()
    assert ((risk[~prospects] > 0) & (risk[~prospects] < 1)).all()
    # Long-silent customers are riskier than recent ones.
    dsl = features_today["days_since_last_order"].to_numpy()
    assert risk[~prospects & (dsl > 180)].mean() > risk[~prospects & (dsl < 30)].mean() + 0.3


def test_deterministic_and_no_leakage_after_as_of(
    data: tuple[pl.DataFrame, pl.DataFrame], result: ChurnTrainingResult, features_today: pl.DataFrame
) -> None:
    orders, profiles = data
    full, _ = simulate_orders(N_CUSTOMERS, DAYS, end_date=AS_OF, seed=0, extra_days=120)
    assert full.height > orders.height  # there really are later orders
    shuffled = full.sample(fraction=1.0, shuffle=True, seed=7)
    again = train_churn_model(shuffled, profiles, AS_OF)
    assert again.model.content_hash() == result.model.content_hash()
    np.testing.assert_array_equal(again.model.predict_risk(features_today), result.model.predict_risk(features_today))
    assert again.metrics == result.metrics


def test_training_on_the_sampled_customers_orders_only_gives_the_same_model(
    data: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    """The pipeline loads only the sample's orders from the store; the model must not notice."""
    orders, profiles = data
    small = {"max_train_rows": 4000}
    from_all = train_churn_model(orders, profiles, AS_OF, **small)
    buyers = orders.filter(pl.col("status") == "completed").get_column("customer_id")
    sample = training_sample(buyers, **small)
    assert 0 < from_all.metrics["customer_sample_fraction"] == sample.fraction < 0.5
    only = orders.join(sample.customers, on="customer_id", how="semi")
    their_profiles = profiles.join(sample.customers, on="customer_id", how="semi")
    from_sample = train_churn_model(only, their_profiles, AS_OF, **small, sample=sample)
    assert from_sample.model.content_hash() == from_all.model.content_hash()
    assert from_sample.metrics == from_all.metrics


def test_model_store_round_trip(result: ChurnTrainingResult, features_today: pl.DataFrame, tmp_path: Path) -> None:
    registry = ModelStore(WorkingStore(tmp_path / "store"))
    path = registry.save("churn", result.model.content_hash(), result.model, AS_OF, {}, "inputs")
    assert path == f"model_files/churn-{result.model.content_hash()}"
    loaded = registry.load(registry.in_force("churn", AS_OF))
    assert loaded.content_hash() == result.model.content_hash()
    np.testing.assert_array_equal(loaded.predict_risk(features_today), result.model.predict_risk(features_today))
    assert set(loaded.feature_names) >= {"frequency", "recency", "T", "days_since_last_order", "bgnbd_p_alive"}


def test_short_history_raises(data: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    orders, profiles = data
    first_day = orders["order_day"].min()
    with pytest.raises(InsufficientHistoryError):
        train_churn_model(orders, profiles, first_day + timedelta(days=60))
