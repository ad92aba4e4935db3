"""The segments service: read a version's inputs from the store, compose it (`core.segments`), store it."""

import json
from datetime import UTC, date, datetime, timedelta
from functools import partial

import polars as pl

from seg_pipeline import __version__
from seg_pipeline.core import predictions, prospects
from seg_pipeline.core.features import profile_snapshot
from seg_pipeline.core.schemas import SEGMENT_VERSIONS
from seg_pipeline.core.segments import ModelInForce, Policy, Version, compose_version
from seg_pipeline.services.inputs import features_at, profiles_at
from seg_pipeline.services.prediction_checks import window_checks
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage.model_store import ModelStore
from seg_pipeline.storage.store import WorkingStore


class ModelsMissing(LookupError):
    """No churn or cluster model is registered for the as-of date."""


def policy(settings: PipelineSettings) -> Policy:
    """The settings that shape a version."""
    return Policy(
        churn_horizon_days=settings.churn_horizon_days, value_tier_cuts=tuple(settings.value_tier_cuts),
        clv_monthly_discount=settings.clv_monthly_discount, currency=settings.currency,
        contact_cost=settings.contact_cost, control_share=settings.control_share, control_salt=settings.control_salt,
    )  # fmt: skip


def build_version(
    store: WorkingStore, settings: PipelineSettings, as_of: date, run_id: str
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, float]]:
    """The customer_segments rows and the segment_versions row of version `as_of` (not yet stored), and the
    seconds its composition took (`core.segments.Version.seconds`)."""
    registry = ModelStore(store)
    churn_entry, cluster_entry = (_in_force(registry, kind, as_of) for kind in ("churn", "clusters"))
    features = features_at(store, as_of)
    previous_as_of = store.previous_version(as_of)
    previous_labels = (
        store.read_parts("customer_segments", ["customer_id", "cluster_label"], day=previous_as_of)
        if previous_as_of is not None
        else pl.DataFrame(schema={"customer_id": pl.String, "cluster_label": pl.String})
    )
    version = compose_version(
        as_of, features, churn_entry, cluster_entry, policy(settings),
        data_key=store.landed_fingerprint(as_of),
        past_prospects=_past_prospects(store, features, as_of, settings.churn_horizon_days),
        previous_labels=previous_labels,
        prediction_checks=partial(_prediction_checks, store, settings, as_of, churn_entry.version, previous_as_of),
    )  # fmt: skip
    return version.segments, _version_row(store, version, as_of, run_id, churn_entry, cluster_entry), version.seconds


def _in_force(registry: ModelStore, kind: str, as_of: date) -> ModelInForce:
    entry = registry.in_force(kind, as_of)
    if entry is None:
        raise ModelsMissing(
            f"no {kind} model registered for {as_of}: materialize churn_model and cluster_model first"
        )
    return ModelInForce(entry["version"], registry.load(entry), entry["metrics"])


def _version_row(
    store: WorkingStore, version: Version, as_of: date, run_id: str, churn: ModelInForce, clusters: ModelInForce
) -> pl.DataFrame:
    """The segment_versions row of a composed version."""
    segments = version.segments
    row = {
        "as_of": as_of, "segment_version": version.segment_version, "run_id": run_id, "code_version": __version__,
        "churn_model_version": churn.version, "cluster_model_version": clusters.version,
        "metrics": json.dumps(version.metrics, default=float), "customers": segments.height,
        "prospects": segments.filter(pl.col("lifecycle_stage") == "prospect").height,
        "orders_accepted": int(store.day_rows("orders", until=as_of)["rows"].sum()),
        "orders_quarantined": store.quarantined_rows("orders", as_of),
        "created_at": datetime.now(UTC).replace(tzinfo=None), "churn_method": churn.churn_method,
        "data_through": store.landed_through("orders", as_of),
    }  # fmt: skip
    return pl.DataFrame({k: [v] for k, v in row.items()}, schema=SEGMENT_VERSIONS.polars)


def _prediction_checks(
    store: WorkingStore, settings: PipelineSettings, as_of: date, churn_version: str, previous_as_of: date | None,
    buyers: pl.DataFrame, penalizer: float,
) -> dict:  # fmt: skip
    """{"windows": the predictions' window checks, "checked_as_of": the version they were made at}.

    The checks (`services.prediction_checks`, several seconds at 1M customers) are made when the churn model in
    force changes (a retrain: weekly by default), or when the previous version's are missing, too old or cover
    too few windows (`core.predictions.carried_checks`); in between, a version carries the previous version's.
    """
    previous = None if previous_as_of is None else store.version_metrics(previous_as_of, churn_version)
    tenure = int(buyers["T"].max()) if buyers.height else None
    carried = predictions.carried_checks(previous, as_of, tenure, settings.retrain_every_days)
    if carried is not None:
        return carried
    return {"windows": window_checks(store, settings, as_of, buyers, penalizer), "checked_as_of": as_of.isoformat()}


def _past_prospects(store: WorkingStore, features: pl.DataFrame, as_of: date, horizon: int) -> pl.DataFrame | None:
    """The prospects of the profile snapshot in force h days before `as_of`, labelled by conversion since (or None)."""
    past = as_of - timedelta(days=horizon)
    profiles = profiles_at(store, past)
    if profiles is None:
        return None
    return prospects.training_frame(profile_snapshot(profiles, past), features, horizon)
