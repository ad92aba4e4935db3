"""Models and segments: churn model, cluster model, and the versioned customer_segments table.

Models are trained per as-of date (or reused within `SEG_RETRAIN_EVERY_DAYS`), saved under
their content hash and registered, so a version can be rebuilt with exactly its models.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial

import dagster as dg
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
    value_tiers,
)  # fmt: skip
from seg_pipeline.core.features import profile_snapshot
from seg_pipeline.core.schemas import CUSTOMER_SEGMENTS
from seg_pipeline.defs.metadata import frame_metadata, markdown_table
from seg_pipeline.defs.policy import STORE_POOL
from seg_pipeline.defs.resources import StoreResource
from seg_pipeline.model_store import ModelStore
from seg_pipeline.services.inputs import features_at, orders_until, profiles_at
from seg_pipeline.services.prediction_checks import window_checks
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.store import WorkingStore, replace_rows


def _train_or_reuse(
    registry: ModelStore,
    kind: str,
    as_of: date,
    every_days: int,
    inputs: Callable[[date], str],
    train: Callable[[], tuple[object, dict]],
) -> tuple[str, dict, bool]:
    """(version, metrics, reused) of the `kind` model for `as_of`.

    The model in force is reused while younger than `every_days` (SEG_RETRAIN_EVERY_DAYS) and while
    `inputs(its trained_as_of)` (what it depends on) is still what it was trained from; otherwise
    `train()` makes one, which is saved under its content hash and registered.
    """
    entry = registry.in_force(kind, as_of)
    if (
        entry
        and (as_of - entry["trained_as_of"]).days < every_days
        and not _stand_in(entry["metrics"])
        and entry["inputs"] == inputs(entry["trained_as_of"])
    ):
        return entry["version"], entry["metrics"], True
    model, metrics = train()
    version = model.content_hash()
    registry.save(kind, version, model, as_of, metrics, inputs(as_of))
    return version, metrics, False


def model_inputs(store: WorkingStore, settings: PipelineSettings, kind: str, trained_as_of: date) -> str:
    """A key of what the `kind` model trained for `trained_as_of` depends on: the landed data up to that day,
    the settings that shape its training data or labels, and the code version."""
    depends = {"code": __version__, "data": store.landed_fingerprint(trained_as_of), "currency": settings.currency}
    if kind == "churn":
        depends["churn_horizon_days"] = settings.churn_horizon_days
    return _digest(depends)


def _models_for_run(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    store: StoreResource,
    kind: str,
    train: Callable[[WorkingStore, ModelStore, date], tuple[object, dict]],
) -> tuple[str, dict, bool]:
    """Train or reuse the `kind` model for each partition of the run; (version, metrics, reused) of the last."""
    with store.open() as working:
        registry = ModelStore(settings.model_dir, working)
        inputs = partial(model_inputs, working, settings, kind)
        for key in context.partition_keys:
            as_of = date.fromisoformat(key)
            result = _train_or_reuse(
                registry, kind, as_of, settings.retrain_every_days, inputs, partial(train, working, registry, as_of)
            )
    return result


def churn_method(metrics: dict) -> str:
    """'model', 'bgnbd' or 'prior': where the registered churn scores of `metrics` come from."""
    return metrics.get("method", "model")


def _stand_in(metrics: dict) -> bool:
    """Whether a registered model only stands in for a short history (a churn fallback, fewer clusters than
    k_range asks): never reused, so the full model takes over as soon as the history allows."""
    return churn_method(metrics) != "model" or metrics.get("k", clusters.K_RANGE[0]) < clusters.K_RANGE[0]


def _digest(value: dict) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _train_churn(store: WorkingStore, settings: PipelineSettings, as_of: date) -> tuple[object, dict]:
    """Train on a customer sample drawn in the store, loading only the sampled customers' orders.

    While the history is too short, the first applicable `core.churn_fallback` method stands in.
    """
    buyers = store.frame(
        "select distinct customer_id from orders where order_day <= ? and status = 'completed'", [as_of]
    ).to_series()
    if buyers.is_empty():
        raise dg.Failure(description=f"no completed order on or before {as_of}: nothing to segment yet",
                         allow_retries=False)  # fmt: skip
    sample = churn.training_sample(buyers)
    orders, profiles = orders_until(store, as_of, sample.customers), profiles_at(store, as_of, sample.customers)
    try:
        result = churn.train_churn_model(orders, profiles, as_of, settings.churn_horizon_days, sample=sample)
    except churn.InsufficientHistoryError as error:
        fallback = churn_fallback.fallback_churn(features_at(store, as_of), as_of, settings.churn_horizon_days)
        metrics = {"method": fallback.method, "reason": str(error), "buyers": buyers.len()}
        return fallback, {**metrics, "bgnbd_params": None if fallback.bgnbd is None else fallback.bgnbd.to_dict()}
    return result.model, {"method": "model", **result.metrics}


def _train_clusters(store: WorkingStore, registry: ModelStore, as_of: date) -> tuple[object, dict]:
    previous = registry.in_force("clusters", as_of, before=True)
    features = features_at(store, as_of)
    return clusters.fit_clusters(features, ModelStore.load(previous) if previous else None)


def model_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    common = dict(
        partitions_def=partitions,
        pool=STORE_POOL,
        group_name="models",
    )

    @dg.asset(
        deps=["customer_features"],
        check_specs=[dg.AssetCheckSpec("churn_method", asset="churn_model", description=_CHURN_CHECK)],
        **common,
    )
    def churn_model(context: dg.AssetExecutionContext, settings: PipelineSettings, store: StoreResource):
        """Calibrated churn classifier trained on point-in-time snapshots before each as-of date.

        While the history is too short to train it, a documented fallback (BG/NBD, else a recency prior) is
        registered in its place; the `churn_method` check warns while one is in force.
        """

        def train(working: WorkingStore, _registry: ModelStore, as_of: date) -> tuple[object, dict]:
            return _train_churn(working, settings, as_of)

        version, metrics, reused = _models_for_run(context, settings, store, "churn", train)
        method = churn_method(metrics)
        described = _churn_metadata(metrics) if method == "model" else {"fallback reason": metrics["reason"]}
        return dg.MaterializeResult(
            metadata={"model_version": version, "reused": reused, "churn method": method, **described},
            check_results=[
                dg.AssetCheckResult(
                    check_name="churn_method",
                    passed=method == "model",
                    severity=dg.AssetCheckSeverity.WARN,
                    description=(
                        "churn_risk comes from the trained churn model"
                        if method == "model"
                        else f"churn_risk of {context.partition_keys[-1]} comes from the '{method}' fallback, "
                        f"not the churn model: {metrics['reason']}"
                    ),
                    metadata={"churn method": method},
                )
            ],
        )

    @dg.asset(deps=["customer_features"], **common)
    def cluster_model(context: dg.AssetExecutionContext, settings: PipelineSettings, store: StoreResource):
        """K-means needs-based buyer personas with names matched to the previous version's."""
        version, metrics, reused = _models_for_run(context, settings, store, "clusters", _train_clusters)
        return dg.MaterializeResult(
            metadata={"model_version": version, "reused": reused, "k": metrics["k"], "why k": metrics.get("choice", ""),
                      "silhouette": metrics["silhouette"], "labels": ", ".join(metrics["labels"])}
        )  # fmt: skip

    @dg.asset(
        deps=["churn_model", "cluster_model", "customer_features"],
        check_specs=[dg.AssetCheckSpec("data_through", asset="customer_segments", description=_DATA_THROUGH_CHECK)],
        **common,
    )
    def customer_segments(context: dg.AssetExecutionContext, settings: PipelineSettings, store: StoreResource):
        """Exactly one row per known customer per version: RFM, cluster, tier, lifecycle, churn, CLV, action."""
        with store.open() as working:
            for key in context.partition_keys:
                as_of = date.fromisoformat(key)
                segments, version_row = build_segments(working, settings, as_of, context.run.run_id)
                with working.transaction() as con:
                    working.replace_parts(con, "customer_segments", [as_of], segments)
                    replace_rows(con, "segment_versions", "as_of = ?", [as_of], version_row)
                context.log.info(
                    f"customer_segments {as_of}: {segments.height} customers, "
                    f"version {version_row['segment_version'][0]}"
                )
        metrics = json.loads(version_row["metrics"][0])
        sizes = segments.group_by("rfm_segment").len().sort("len", descending=True)
        as_of, data_through = version_row["as_of"][0], version_row["data_through"][0]
        gap = (as_of - data_through).days
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name="data_through",
                    passed=gap <= settings.max_landing_gap_days,
                    severity=dg.AssetCheckSeverity.WARN,
                    description=(
                        f"version {as_of} sees orders landed through {data_through}, {gap} day(s) before it "
                        f"(allowed: SEG_MAX_LANDING_GAP_DAYS={settings.max_landing_gap_days})"
                        + ("" if gap <= settings.max_landing_gap_days else ": order files stopped arriving?")
                    ),
                    metadata={"data_through": str(data_through), "gap days": gap},
                )
            ],
            metadata={
                **frame_metadata(segments, CUSTOMER_SEGMENTS.docs),
                "segment_version": version_row["segment_version"][0],
                "rfm segments": dg.MetadataValue.md(markdown_table(["rfm_segment", "customers"], sizes.rows())),
                "tier revenue shares": dg.MetadataValue.md(_tier_table(metrics["value_tiers"])),
                "top 20% revenue share": metrics["value_tiers"]["top20_revenue_share"],
                "cluster label keep share": metrics["cluster_label_keep_share"],
            }
        )

    return [churn_model, cluster_model, customer_segments]


def build_segments(
    store: WorkingStore, settings: PipelineSettings, as_of: date, run_id: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The customer_segments rows and the segment_versions row of one as-of date."""
    registry = ModelStore(settings.model_dir, store)
    churn_entry = registry.in_force("churn", as_of)
    cluster_entry = registry.in_force("clusters", as_of)
    if churn_entry is None or cluster_entry is None:
        raise dg.Failure(
            f"no churn or cluster model registered for {as_of}: materialize churn_model and cluster_model first"
        )
    features = features_at(store, as_of)
    buyers = features.filter(pl.col("frequency").is_not_null())
    churn_scorer = ModelStore.load(churn_entry)
    contributions = None  # the churn model's own, worked out with its scores for the reasons
    if isinstance(churn_scorer, churn.ChurnModel):
        churn_risk, contributions = churn_scorer.risk_and_contributions(features, churn_reasons.reason_of)
    else:
        churn_risk = churn_scorer.predict_risk(features)
    cluster_model = ModelStore.load(cluster_entry)
    # a history too short for the churn model cannot pin BG/NBD down either: the fallback's penalised fit keeps
    # the parameters (and so the CLV) finite
    short = churn_method(churn_entry["metrics"]) != "model"
    penalizer = churn_fallback.BGNBD_PENALIZER if short else 0.0
    btyd = _btyd_sample(buyers)
    params = bgnbd.fit_bgnbd(*btyd, penalizer=penalizer)
    propensity, prospect_metrics = prospects.score_prospects(
        features, _past_prospects(store, features, as_of, settings.churn_horizon_days)
    )
    scored = features.with_columns(
        pl.Series("churn_risk", churn_risk, dtype=pl.Float64).fill_nan(None),
        propensity,
        pl.lit(cluster_model.predict_labels(features)).fill_null(prospects.persona_expr()).alias("cluster_label"),
    )
    scored = scored.with_columns(lifecycle.assign_lifecycle(scored, settings.churn_horizon_days))
    rfm_scores = rfm.score_rfm(features, settings.churn_horizon_days)
    tiers = value_tiers.assign_value_tiers(features, "spend_365d", tuple(settings.value_tier_cuts))
    value = clv.compute_clv(
        features, params, churn_risk,
        monthly_discount=settings.clv_monthly_discount, churn_horizon_days=settings.churn_horizon_days,
        param_draws=predictions.bootstrap_params(*btyd, penalizer, start=params),
    )  # fmt: skip
    predicted = predictions.predict(features, params, churn_risk, as_of, settings.churn_horizon_days)
    reasons, drivers = churn_reasons.churn_reasons(churn_scorer, features, churn_risk, contributions)
    # every part is in the row order of `features`, so they line up side by side without a join
    segments = pl.concat(
        [
            scored.select(
                "as_of", "customer_id", "churn_risk", "purchase_propensity", "cluster_label", "lifecycle_stage",
                "spend_365d",
            ),  # fmt: skip
            *(part.drop("customer_id") for part in (rfm_scores, tiers, value, predicted)),
            reasons.to_frame(),
        ],
        how="horizontal",
    )
    segments = segments.with_columns(
        actions.recommend_actions(segments, settings.contact_cost).alias("recommended_action")
    )
    # everything the rows depend on: models, code, the landed data and the settings that shape them
    control = control_group.settings_key(settings.control_share, settings.control_salt)
    made_from = {
        "models": [churn_entry["version"], cluster_entry["version"]], "code": __version__,
        "data": store.landed_fingerprint(as_of), "churn_horizon_days": settings.churn_horizon_days,
        "value_tier_cuts": settings.value_tier_cuts, "clv_monthly_discount": settings.clv_monthly_discount,
        "currency": settings.currency, "contact_cost": settings.contact_cost, "control_group": control,
    }  # fmt: skip
    segment_version = f"{as_of.isoformat()}+{_digest(made_from)[:8]}"
    previous_as_of = store.scalar("select max(as_of) from segment_versions where as_of < ?", [as_of])
    previous = (
        store.read_parts("customer_segments", ["customer_id", "cluster_label"], day=previous_as_of)
        if previous_as_of is not None
        else segments.clear().select("customer_id", "cluster_label")
    )
    segments = segments.with_columns(
        pl.lit(segment_version).alias("segment_version"),
        control_group.control_flags(segments["customer_id"], settings.control_share, settings.control_salt),
    ).select(CUSTOMER_SEGMENTS.names)
    tier_shares = value_tiers.tier_revenue_shares(
        tiers.join(features.select("customer_id", "spend_365d"), on="customer_id"), "spend_365d"
    )
    keep_share = clusters.label_keep_share(previous, segments.select("customer_id", "cluster_label"))
    metrics = {
        "churn": churn_entry["metrics"],
        "clusters": cluster_entry["metrics"],
        "prospects": prospect_metrics,
        "cluster_label_keep_share": None if np.isnan(keep_share) else keep_share,
        "value_tiers": tier_shares,
        "bgnbd": params.to_dict(),
        "predictions": {
            **_prediction_windows(store, settings, as_of, buyers, penalizer, churn_entry, previous_as_of),
            "churn_drivers": drivers,
        },
        "rfm": {"churn_horizon_days": settings.churn_horizon_days},
        "actions": {"contact_cost": settings.contact_cost, "save_rate": actions.ASSUMED_SAVE_RATE,
                    "by_action": actions.action_shares(segments)},
        "control_group": control,
    }  # fmt: skip
    accepted = store.day_rows("orders", until=as_of)["rows"].sum()
    data_through = store.scalar("select max(day) from landing_files where kind = 'orders' and day <= ?", [as_of])
    quarantined = store.scalar("select count(*) from quarantine_orders where order_day <= ?", [as_of])
    version_row = pl.DataFrame(
        {
            "as_of": [as_of],
            "segment_version": [segment_version],
            "run_id": [run_id],
            "code_version": [__version__],
            "churn_model_version": [churn_entry["version"]],
            "cluster_model_version": [cluster_entry["version"]],
            "metrics": [json.dumps(metrics, default=float)],
            "customers": [segments.height],
            "prospects": [segments.filter(pl.col("lifecycle_stage") == "prospect").height],
            "orders_accepted": [accepted],
            "orders_quarantined": [quarantined],
            "created_at": [datetime.now(UTC).replace(tzinfo=None)],
            "churn_method": [churn_method(churn_entry["metrics"])],
            "data_through": [data_through],
        }
    )
    return segments, version_row


def _prediction_windows(
    store: WorkingStore, settings: PipelineSettings, as_of: date, buyers: pl.DataFrame, penalizer: float,
    churn_entry: dict, previous_as_of: date | None,
) -> dict:  # fmt: skip
    """{"windows": the predictions' window checks, "checked_as_of": the version they were made at}.

    The checks (``services.prediction_checks``, several seconds at 1M customers) are made when the churn model in
    force changes (a retrain: weekly by default), or when the previous version's are missing, older than
    SEG_RETRAIN_EVERY_DAYS, or cover fewer windows than are complete now; in between, a version carries the
    previous version's checks (each window names its cut)."""
    complete = 0
    if buyers.height:
        first_day = as_of - timedelta(days=int(buyers["T"].max()))
        complete = sum(as_of - timedelta(days=w) >= first_day for w in predictions.WINDOWS)
    if previous_as_of is not None:
        stored = store.scalar(
            "select metrics from segment_versions where as_of = ? and churn_model_version = ?",
            [previous_as_of, churn_entry["version"]],
        )
        carried = json.loads(stored).get("predictions", {}) if stored else {}
        checked = carried.get("checked_as_of")
        if (
            checked and len(carried.get("windows", [])) >= complete
            and (as_of - date.fromisoformat(checked)).days < settings.retrain_every_days
        ):  # fmt: skip
            return {"windows": carried["windows"], "checked_as_of": checked}
    return {"windows": window_checks(store, settings, as_of, buyers, penalizer), "checked_as_of": as_of.isoformat()}


def _past_prospects(store: WorkingStore, features: pl.DataFrame, as_of: date, horizon: int) -> pl.DataFrame | None:
    """The prospects of the profile snapshot in force h days before `as_of`, labelled by conversion since (or None)."""
    past = as_of - timedelta(days=horizon)
    profiles = profiles_at(store, past)
    if profiles is None:
        return None
    return prospects.training_frame(profile_snapshot(profiles, past), features, horizon)


_CHURN_CHECK = "Warns while churn_risk comes from a fallback (BG/NBD or the recency prior), not the trained model"
_DATA_THROUGH_CHECK = "Warns when as_of is more than SEG_MAX_LANDING_GAP_DAYS past the last landed order day"


def _btyd_sample(buyers: pl.DataFrame, size: int = 100_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded sample of buyers' (frequency, recency, T) to fit BG/NBD on quickly."""
    btyd = buyers.select("frequency", "recency", "T")
    sample = btyd.sample(size, seed=0) if btyd.height > size else btyd
    return tuple(sample[c].to_numpy() for c in btyd.columns)


def _churn_metadata(metrics: dict) -> dict:
    names = {"model": "churn model", "recency": "recency-only baseline", "bgnbd": "BG/NBD baseline"}
    rows = [
        (label, metrics[key]["auc"], metrics[key]["logloss"], metrics[key]["brier"]) for key, label in names.items()
    ]
    deciles = [(d["mean_predicted"], d["observed_rate"], d["n"]) for d in metrics["calibration_deciles"]]
    return {
        "holdout": dg.MetadataValue.md(markdown_table(["model", "AUC", "log loss", "Brier"], rows)),
        "calibration by decile": dg.MetadataValue.md(
            markdown_table(["mean predicted", "observed", "customers"], deciles)
        ),
        "holdout as of": str(metrics["holdout_as_of"]),
        "auc": metrics["model"]["auc"],
        "metrics": dg.MetadataValue.json(metrics),
    }


def _tier_table(shares: dict) -> str:
    rows = [(tier, v["customers"], v["revenue_share"]) for tier, v in shares["tiers"].items()]
    return markdown_table(["tier", "customers", "revenue share"], rows)
