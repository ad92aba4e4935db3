"""One segment version composed from a feature version and the models in force: pure functions.

A version is made in three parts, which customer shards (``SEG_CUSTOMER_SHARDS``) run as separate steps:

- ``population``: what needs the whole population, from a few columns of every customer or from a seeded
  sample that is the same for any number of shards: the version id, BG/NBD's parameters and their bootstrap,
  the spend model, the churn reasons' reference, the purchase propensity model, the RFM and value-tier cuts;
- ``score_shard``: every customer of a shard (churn risk and its reasons, persona, purchase propensity,
  lifecycle stage, RFM, value tier, CLV with its interval, the predictions, the recommended action and the
  control group), each row from its own customer and the population's part only;
- ``version_of``: the shards' rows together, with the version's metrics.

``compose_version`` is the three in one process. Since every row depends on its customer and the population's
part only, a version is the same for any number of shards. Nothing here reads or writes: the segments service
hands these functions their inputs and stores what they return.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
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
REFERENCE_SAMPLE = 20_000  # buyers the churn reasons are counted against (their mean), as BTYD_SAMPLE is drawn
REFERENCE_SALT = "reason_reference:"
#: the columns of every customer that ``population`` reads (the shards read whole rows of their own customers)
POPULATION_COLUMNS = ("customer_id", "frequency", "recency", "T", "monetary_value", "total_spend",
                      "days_since_first_order", "days_since_last_order", "order_count", "spend_365d")  # fmt: skip
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
    """A composed version: its customer_segments rows, its id and its metrics."""

    segments: pl.DataFrame
    segment_version: str
    metrics: dict
    seconds: dict[str, float]  # "composing": the whole of compose_version; PREDICTIONS: the part of it they took


@dataclass(frozen=True)
class Population:
    """What every customer of a version is scored with, worked out once from the whole population (or from a
    sample of it that is the same for any number of shards) and handed to each shard (``score_shard``)."""

    segment_version: str
    penalizer: float
    params: bgnbd.BgNbdParams
    draws: predictions.ParamDraws
    spend: clv.SpendFit
    churn_reference: churn.ContributionReference | None
    propensity: prospects.PropensityModel
    rfm_cuts: rfm.RfmCuts
    tier_cuts: value_tiers.TierCuts
    fitted: dict  # what the version's metrics report of the fits: "prospects", "bgnbd"
    seconds: dict[str, float]  # PREDICTIONS: the wait for the bootstrap, the predictions' part of it


@dataclass(frozen=True)
class Shard:
    """The customer_segments rows (and spend_365d) of one shard of customers, and how much each churn reason moved
    them."""

    segments: pl.DataFrame
    moved: churn_reasons.Moved
    seconds: dict[str, float]


def bgnbd_penalizer(churn_entry: ModelInForce) -> float:
    """BG/NBD's penalizer: a history too short for the churn model cannot pin BG/NBD down either, and the
    fallback's penalised fit keeps the parameters (and so the CLV) finite."""
    return churn_fallback.BGNBD_PENALIZER if churn_entry.churn_method != "model" else 0.0


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
    """Compose version `as_of` from its `features` (``customer_features``) and the models in force, in one process:
    ``population``, one ``score_shard`` of every customer, ``version_of``.

    `data_key` identifies the landed data it was made from; `past_prospects` is ``prospects.training_frame``
    of the snapshot one horizon back (or None); `previous_labels` the previous version's (customer_id,
    cluster_label); `prediction_checks(buyers, bgnbd_penalizer)` gives the predictions' window checks, worked out
    on a thread of their own meanwhile. The waits for the predictions' work (``PREDICTIONS``) are timed apart.
    """
    started, watch = time.perf_counter(), Stopwatch()
    entries = (churn_entry, cluster_entry)
    with ThreadPoolExecutor(max_workers=1) as pool:
        buyers = features.filter(pl.col("frequency").is_not_null())
        checked = pool.submit(prediction_checks, buyers, bgnbd_penalizer(churn_entry))
        reference_rows = features.filter(pl.col("customer_id").is_in(reference_sample(features).implode()))
        base = population(as_of, features, entries, policy, data_key=data_key, past_prospects=past_prospects,
                          reference_rows=reference_rows)  # fmt: skip
        shard = score_shard(as_of, features, entries, policy, base)
        with watch.part(PREDICTIONS):
            checks = checked.result()
    version = version_of([shard], base, entries, policy, previous_labels, checks)
    waits = (watch.seconds, base.seconds, shard.seconds)
    seconds = {"composing": time.perf_counter() - started, PREDICTIONS: sum(w.get(PREDICTIONS, 0.0) for w in waits)}
    return Version(version.segments, version.segment_version, version.metrics, seconds)


def population(
    as_of: date, features: pl.DataFrame, entries: tuple[ModelInForce, ModelInForce], policy: Policy, *,
    data_key: str, past_prospects: pl.DataFrame | None, reference_rows: pl.DataFrame,
) -> Population:  # fmt: skip
    """The ``Population`` of version `as_of` from the ``POPULATION_COLUMNS`` of every customer (`features`, in
    customer_id order), the landed data's key and the past prospects (as ``compose_version``); `reference_rows`:
    the whole feature rows of the ``reference_sample`` of `features`, in customer_id order."""
    churn_entry, cluster_entry = entries
    buyers = features.filter(pl.col("frequency").is_not_null())
    penalizer = bgnbd_penalizer(churn_entry)
    horizon = policy.churn_horizon_days
    btyd = _btyd_sample(buyers)
    params = bgnbd.fit_bgnbd(*btyd, penalizer=penalizer)
    watch = Stopwatch()
    with ThreadPoolExecutor(max_workers=1) as pool:  # the bootstrap fits meanwhile (SciPy releases the GIL)
        drawing = pool.submit(predictions.bootstrap_params, *btyd, penalizer, start=params)
        spend = clv.fit_spend(*(buyers[c].to_numpy() for c in ("frequency", "monetary_value", "total_spend")),
                              buyers["customer_id"])  # fmt: skip
        model = churn_entry.model
        reference = model.reference(reference_rows) if isinstance(model, churn.ChurnModel) else None
        propensity, prospect_metrics = prospects.fit_propensity(past_prospects)
        rfm_cuts = rfm.rfm_cuts([rfm.rfm_summary(features, horizon)])
        tier_cuts = value_tiers.own_cuts(features, "spend_365d", tuple(policy.value_tier_cuts))
        with watch.part(PREDICTIONS):
            draws = drawing.result()
    return Population(
        version_id(as_of, churn_entry, cluster_entry, policy, data_key), penalizer, params, draws, spend, reference,
        propensity, rfm_cuts, tier_cuts, {"prospects": prospect_metrics, "bgnbd": params.to_dict()}, watch.seconds,
    )  # fmt: skip


def reference_sample(features: pl.DataFrame) -> pl.Series:
    """The customer_ids (ascending) of the buyers churn reasons are counted against: the ``REFERENCE_SAMPLE`` of
    smallest ``shards.sample_key`` under ``REFERENCE_SALT``, the same for any number of shards."""
    buyers = features.filter(pl.col("frequency").is_not_null()).select("customer_id")
    return shards.bottom_k(buyers, REFERENCE_SAMPLE, REFERENCE_SALT)["customer_id"].sort()


def score_shard(
    as_of: date, features: pl.DataFrame, entries: tuple[ModelInForce, ModelInForce], policy: Policy,
    base: Population,
) -> Shard:  # fmt: skip
    """The customer_segments rows of the customers of `features` (whole ``customer_features`` rows, any subset of
    the version's customers, in customer_id order) scored with the population's `base`: each row depends on its
    customer and `base` only. The churn reasons and the predictions are worked out on two threads meanwhile."""
    started, watch = time.perf_counter(), Stopwatch()
    churn_entry, cluster_entry = entries
    horizon, scorer = policy.churn_horizon_days, churn_entry.model
    with ThreadPoolExecutor(max_workers=2) as pool:
        explain = None  # the churn model's own contributions, for the reasons
        if isinstance(scorer, churn.ChurnModel):
            risk, explain = scorer.risk_and_explainer(features, churn_reasons.reason_of, base.churn_reference)
        else:
            risk = scorer.predict_risk(features)
        reasons = pool.submit(
            lambda: churn_reasons.churn_reasons(scorer, features, risk, None if explain is None else explain())
        )
        value, interval = clv.clv_and_interval(
            features, base.params, risk, monthly_discount=policy.clv_monthly_discount, churn_horizon_days=horizon,
            spend_fit=base.spend,
        )
        predicting = pool.submit(
            lambda: pl.concat([interval(base.draws), predictions.predict(features, base.params, risk, as_of, horizon)
                               .drop("customer_id")], how="horizontal")  # fmt: skip
        )
        scored = features.with_columns(
            pl.Series("churn_risk", risk, dtype=pl.Float64).fill_nan(None),
            base.propensity.score(features),
            prospects.with_personas(cluster_entry.model.predict_labels(features), features).alias("cluster_label"),
        )
        scored = scored.with_columns(lifecycle.assign_lifecycle(scored, horizon))
        tiers = value_tiers.assign_value_tiers(features, "spend_365d", tiers=base.tier_cuts)
        rfm_scores = rfm.score_rfm(features, horizon, base.rfm_cuts)
        with watch.part(PREDICTIONS):
            predicted, (phrased, moved) = predicting.result(), reasons.result()
    # every part is in the row order of `features`, so they line up side by side without a join
    parts = [scored.select(_SCORED), *(p.drop("customer_id") for p in (rfm_scores, tiers, value)), predicted]
    segments = pl.concat([*parts, phrased.to_frame()], how="horizontal")
    segments = segments.with_columns(
        actions.recommend_actions(segments, policy.contact_cost).alias("recommended_action"),
        pl.lit(base.segment_version).alias("segment_version"),
        control_group.control_flags(segments["customer_id"], policy.control_share, policy.control_salt),
    ).select(*CUSTOMER_SEGMENTS.names, "spend_365d")  # the value the tiers' revenue shares are of
    return Shard(segments, moved, {"scoring": time.perf_counter() - started, **watch.seconds})


def version_of(
    parts: Sequence[Shard], base: Population, entries: tuple[ModelInForce, ModelInForce], policy: Policy,
    previous_labels: pl.DataFrame, checks: dict,
) -> Version:  # fmt: skip
    """The version whose customers are those of every shard of `parts` (scored with `base`), in customer_id order,
    with its metrics: `checks` are the predictions' window checks (``compose_version``'s `prediction_checks`)."""
    segments = parts[0].segments if len(parts) == 1 else pl.concat([p.segments for p in parts]).sort("customer_id")
    drivers = churn_reasons.churn_drivers(churn_reasons.merge_moved(p.moved for p in parts))
    fitted = {**base.fitted, "predictions": {**checks, "churn_drivers": drivers}}
    metrics = _metrics(segments, entries, policy, previous_labels, fitted)
    seconds = {part: sum(p.seconds.get(part, 0.0) for p in parts) for part in parts[0].seconds}
    return Version(segments.select(CUSTOMER_SEGMENTS.names), base.segment_version, metrics, seconds)


def _metrics(
    segments: pl.DataFrame, entries: tuple[ModelInForce, ModelInForce], policy: Policy, previous_labels: pl.DataFrame,
    fitted: dict,
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
        "value_tiers": value_tiers.tier_revenue_shares(segments.select("customer_id", "value_tier", "spend_365d")),
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
