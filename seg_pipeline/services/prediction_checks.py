"""The version's predictions checked against what happened: for each window w of ``core.predictions.WINDOWS``
whose start D - w has buyers, the same predictions made at D - w (features, the churn scorer in force then,
BG/NBD refitted there) on a seeded sample of today's buyers, against their completed orders in (D - w, D].
The segments service makes them when the churn model in force changes and carries them to the versions in between.
"""

from datetime import date, timedelta

import polars as pl

from seg_pipeline.core import bgnbd, churn_fallback, clv, predictions, shards
from seg_pipeline.core.features import compute_customer_features
from seg_pipeline.services.inputs import orders_until, profiles_at
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage.model_store import ModelStore
from seg_pipeline.storage.store import WorkingStore

CHECK_SAMPLE = 20_000  # buyers: the sums and errors of a sample this size are within about 1% of the base's
CHECK_SALT = "check_sample:"  # the sample: the buyers of smallest shards.sample_key under this salt


def window_checks(
    store: WorkingStore, settings: PipelineSettings, as_of: date, buyers: pl.DataFrame, penalizer: float
) -> list[dict]:
    """``core.predictions.window_check`` of every complete window (module docstring), shortest window first."""
    ids = buyers.select("customer_id")
    sample = shards.bottom_k(ids, CHECK_SAMPLE, CHECK_SALT).sort("customer_id") if ids.height > CHECK_SAMPLE else ids
    orders = orders_until(store, as_of, sample)
    first_day = orders.filter(pl.col("status") == "completed")["order_day"].min()
    registry = ModelStore(store)
    horizon = settings.churn_horizon_days
    checks, scorers, snapshots = [], {}, {}  # a model or profile snapshot shared by several cuts is read once
    for window in predictions.WINDOWS:
        cut = as_of - timedelta(days=window)
        if first_day is None or cut < first_day:
            continue
        days = store.day_rows("profiles", until=cut)
        snapshot = None if days.is_empty() else days["day"].max()
        if snapshot not in snapshots:
            snapshots[snapshot] = profiles_at(store, cut, sample)
        features = compute_customer_features(orders, snapshots[snapshot], cut).filter(
            pl.col("frequency").is_not_null()
        )
        entry = registry.in_force("churn", cut)
        if entry and entry["path"] not in scorers:
            scorers[entry["path"]] = registry.load(entry)
        scorer = scorers[entry["path"]] if entry else churn_fallback.fallback_churn(features, cut, horizon)
        risk = scorer.predict_risk(features)
        x, tx, t_obs = (features[c].to_numpy() for c in ("frequency", "recency", "T"))
        try:
            params = bgnbd.fit_bgnbd(x, tx, t_obs, penalizer=penalizer)
        except (ValueError, RuntimeError):
            continue
        draws = predictions.bootstrap_params(x, tx, t_obs, penalizer, start=params)
        months = max(1, round(window / clv.DAYS_PER_MONTH))
        value = clv.compute_clv(features, params, risk, months, settings.clv_monthly_discount,
                                churn_horizon_days=horizon, param_draws=draws)  # fmt: skip
        scored = pl.concat(
            [predictions.predict(features, params, risk, cut, horizon), value.drop("customer_id")], how="horizontal"
        ).with_columns(
            (pl.col("next_order_date") - pl.lit(cut)).dt.total_days().cast(pl.Float64).alias("next_order_days"),
            pl.Series("baseline_days", predictions.rhythm_baseline_days(
                features["days_since_last_order"].cast(pl.Float64).to_numpy(),
                features["mean_days_between_purchases"].cast(pl.Float64).to_numpy(),
            )),
        )  # fmt: skip
        realized = predictions.outcomes(orders, cut, window, settings.clv_monthly_discount)
        checks.append({"cut": cut.isoformat(), **predictions.window_check(scored, realized, window)})
    return checks
