"""One segment version composed from a feature version and the models in force: a pure function.

`compose_version` scores every known customer (churn risk and its reasons, persona, purchase propensity,
lifecycle stage, RFM, value tier, CLV with its interval, the predictions, the recommended action and the
control group), names the version after everything it was made from, and gathers the version's metrics.
It reads nothing and writes nothing: the segments service hands it its inputs and stores what it returns.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from seg_pipeline import __version__
from seg_pipeline.core import (
    actions,
    bgnbd,
    churn,
    churn_fallback,
    churn_reasons,
    clusters,
    clv,
    control_group,
    lifecycle,
    predictions,
    prospects,
    rfm,
    shards,
    value_tiers,
)  # fmt: skip
from seg_pipeline.core.schemas import CUSTOMER_SEGMENTS
from seg_pipeline.core.stopwatch import Stopwatch

BTYD_SAMPLE = 100_000  # buyers BG/NBD is fitted on: those of smallest shards.sample_key under BTYD_SALT
BTYD_SALT = "btyd_sample:"
#: the work of issue 18's columns only (p_alive, expected purchases per window, next_order_date, the CLV interval,
#: churn_reasons with the churn model's contributions, their checks), timed apart from the rest of a version
PREDICTIONS = "predictions"
#: the scored features' columns a version's rows keep
_SCORED = ("as_of", "customer_id", "churn_risk", "purchase_propensity", "cluster_label", "lifecycle_stage",
           "spend_365d")  # fmt: skip


@dataclass(frozen=True)
class Policy:
    """The settings that shape a version's rows (each of them is part of its version id)."""

    churn_horizon_days: int
    value_tier_cuts: tuple[float, ...]
    clv_monthly_discount: float
    currency: str
    contact_cost: float
    control_share: float
    control_salt: str


@dataclass(frozen=True)
class ModelInForce:
    """A registered model (or churn fallback) as a version uses it."""

    version: str
    model: object
    metrics: dict

    @property
    def churn_method(self) -> str:
        """'model', 'bgnbd' or 'prior': where churn scores of this entry come from."""
        return churn_fallback.churn_method(self.metrics)


@dataclass(frozen=True)
class Version:
    """A composed version: its customer_segments rows, its id, its metrics and what the checks need."""

    segments: pl.DataFrame
    segment_version: str
    metrics: dict
    buyers: pl.DataFrame
    penalizer: float
    seconds: dict[str, float]  # "composing": the whole of compose_version; PREDICTIONS: the part of it they took


def compose_version(
    as_of: date,
    features: pl.DataFrame,
    churn_entry: ModelInForce,
    cluster_entry: ModelInForce,
    policy: Policy,
    *,
    data_key: str,
    past_prospects: pl.DataFrame | None,
    previous_labels: pl.DataFrame,
    prediction_checks: Callable[[pl.DataFrame, float], dict],
) -> Version:
    """Compose version `as_of` from its `features` (``customer_features``) and the models in force.

    `data_key` identifies the landed data it was made from; `past_prospects` is ``prospects.training_frame``
    of the snapshot one horizon back (or None); `previous_labels` the previous version's (customer_id,
    cluster_label); `prediction_checks(buyers, bgnbd_penalizer)` gives the predictions' window checks.
    The work done only for the predictions (``PREDICTIONS``) is timed apart: ``Version.seconds``.
    """
    started, watch = time.perf_counter(), Stopwatch()
    buyers = features.filter(pl.col("frequency").is_not_null())
    horizon = policy.churn_horizon_days
    scorer = churn_entry.model
    # a history too short for the churn model cannot pin BG/NBD down either: the fallback's penalised fit keeps
    # the parameters (and so the CLV) finite
    penalizer = churn_fallback.BGNBD_PENALIZER if churn_entry.churn_method != "model" else 0.0
    # the predictions run on two threads beside the rest of the version (numpy and Polars release the GIL): the
    # window checks from the start, the columns once churn risk, BG/NBD and CLV are known; only the waits for
    # them at the end are the predictions' part of the time
    with ThreadPoolExecutor(max_workers=2) as pool:
        checked = pool.submit(prediction_checks, buyers, penalizer)
        explain = None  # the churn model's own contributions, for the reasons
        if isinstance(scorer, churn.ChurnModel):
            risk, explain = scorer.risk_and_explainer(features, churn_reasons.reason_of)
        else:
            risk = scorer.predict_risk(features)
        btyd = _btyd_sample(buyers)
        params = bgnbd.fit_bgnbd(*btyd, penalizer=penalizer)
        value, interval = clv.clv_and_interval(
            features, params, risk, monthly_discount=policy.clv_monthly_discount, churn_horizon_days=horizon
        )
        predicting = pool.submit(
            _predictions, features, as_of, horizon, risk, (btyd, params, penalizer), interval, (scorer, explain)
        )
        propensity, prospect_metrics = prospects.score_prospects(features, past_prospects)
        scored = features.with_columns(
            pl.Series("churn_risk", risk, dtype=pl.Float64).fill_nan(None),
            propensity,
            prospects.with_personas(cluster_entry.model.predict_labels(features), features).alias("cluster_label"),
        )
        scored = scored.with_columns(lifecycle.assign_lifecycle(scored, horizon))
        tiers = value_tiers.assign_value_tiers(features, "spend_365d", tuple(policy.value_tier_cuts))
        rfm_scores = rfm.score_rfm(features, horizon)
        with watch.part(PREDICTIONS):
            predicted, reasons, drivers = predicting.result()
        # every part is in the row order of `features`, so they line up side by side without a join
        segments = pl.concat(
            [
                scored.select(_SCORED),
                *(part.drop("customer_id") for part in (rfm_scores, tiers, value)),
                predicted,
                reasons.to_frame(),
            ],
            how="horizontal",
        )
        action = actions.recommend_actions(segments, policy.contact_cost).alias("recommended_action")
        segment_version = version_id(as_of, churn_entry, cluster_entry, policy, data_key)
        segments = segments.with_columns(
            action,
            pl.lit(segment_version).alias("segment_version"),
            control_group.control_flags(segments["customer_id"], policy.control_share, policy.control_salt),
        ).select(CUSTOMER_SEGMENTS.names)
        with watch.part(PREDICTIONS):
            checks = {**checked.result(), "churn_drivers": drivers}
    metrics = _metrics(segments, features, tiers, (churn_entry, cluster_entry), policy, previous_labels,
                       {"prospects": prospect_metrics, "bgnbd": params.to_dict(), "predictions": checks})  # fmt: skip
    seconds = {"composing": time.perf_counter() - started, **watch.seconds}
    return Version(segments, segment_version, metrics, buyers, penalizer, seconds)


def _predictions(
    features: pl.DataFrame, as_of: date, horizon: int, risk: np.ndarray,
    btyd: tuple[tuple[np.ndarray, ...], bgnbd.BgNbdParams, float],
    interval: Callable[[predictions.ParamDraws | None], pl.DataFrame], churn_scorer: tuple[object, Callable | None],
) -> tuple[pl.DataFrame, pl.Series, list[dict]]:  # fmt: skip
    """(the CLV interval beside p_alive, the windows and next_order_date; churn_reasons; churn drivers) in the row
    order of `features`: the reasons (from the churn model's contributions, `churn_scorer` = (scorer, a function
    giving them or None)) are worked out on a second thread while the bootstrap fits, the interval and the
    predictions are on this one."""
    (frequency, recency, T), params, penalizer = btyd
    scorer, explain = churn_scorer
    with ThreadPoolExecutor(max_workers=1) as pool:
        reasons = pool.submit(
            lambda: churn_reasons.churn_reasons(scorer, features, risk, None if explain is None else explain())
        )
        draws = predictions.bootstrap_params(frequency, recency, T, penalizer, start=params)
        predicted = pl.concat(
            [interval(draws), predictions.predict(features, params, risk, as_of, horizon).drop("customer_id")],
            how="horizontal",
        )
        phrased, drivers = reasons.result()
    return predicted, phrased, drivers


def _metrics(
    segments: pl.DataFrame, features: pl.DataFrame, tiers: pl.DataFrame, entries: tuple[ModelInForce, ModelInForce],
    policy: Policy, previous_labels: pl.DataFrame, fitted: dict,
) -> dict:  # fmt: skip
    """The version's metrics (segment_versions.metrics): the models' (`entries`: churn, clusters), what was
    fitted and checked for the version (`fitted`: prospects, bgnbd, predictions) and the segments' shares."""
    churn_entry, cluster_entry = entries
    keep_share = clusters.label_keep_share(previous_labels, segments.select("customer_id", "cluster_label"))
    return {
        "churn": churn_entry.metrics,
        "clusters": cluster_entry.metrics,
        "prospects": fitted["prospects"],
        "cluster_label_keep_share": None if np.isnan(keep_share) else keep_share,
        # tiers are in the row order of features: side by side, no join
        "value_tiers": value_tiers.tier_revenue_shares(tiers.with_columns(features["spend_365d"]), "spend_365d"),
        "bgnbd": fitted["bgnbd"],
        "predictions": fitted["predictions"],
        "rfm": {"churn_horizon_days": policy.churn_horizon_days},
        "actions": {"contact_cost": policy.contact_cost, "save_rate": actions.ASSUMED_SAVE_RATE,
                    "by_action": actions.action_shares(segments)},
        "control_group": control_group.settings_key(policy.control_share, policy.control_salt),
    }  # fmt: skip


def version_id(
    as_of: date, churn_entry: ModelInForce, cluster_entry: ModelInForce, policy: Policy, data_key: str
) -> str:
    """as_of + a hash of everything the rows depend on: the models, the code, the landed data and the settings."""
    made_from = {
        "models": [churn_entry.version, cluster_entry.version], "code": __version__, "data": data_key,
        "churn_horizon_days": policy.churn_horizon_days, "value_tier_cuts": list(policy.value_tier_cuts),
        "clv_monthly_discount": policy.clv_monthly_discount, "currency": policy.currency,
        "contact_cost": policy.contact_cost,
        "control_group": control_group.settings_key(policy.control_share, policy.control_salt),
    }  # fmt: skip
    return f"{as_of.isoformat()}+{digest(made_from)[:8]}"


def digest(value: dict) -> str:
    """sha256 of `value` as canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _btyd_sample(buyers: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequency, recency, T) of the ``BTYD_SAMPLE`` buyers BG/NBD is fitted on quickly, in (key, id) order
    (``shards.bottom_k``): the same sample, in the same order for the bootstrap, for any number of shards.

    Fitting on all buyers' merged (frequency, recency, T) counts would need no sample, but at 1M buyers it has
    ~5x the distinct rows and takes ~3 s instead of ~0.5 s."""
    sample = shards.bottom_k(buyers.select("customer_id", "frequency", "recency", "T"), BTYD_SAMPLE, BTYD_SALT)
    return tuple(sample[c].to_numpy() for c in ("frequency", "recency", "T"))
