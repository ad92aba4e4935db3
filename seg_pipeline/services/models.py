"""The models service: train the churn and cluster models for an as-of date, or reuse the one in force.

Models are saved under their content hash and registered with the as-of date they were trained for
(`ModelStore`), so a version can be rebuilt with exactly its models.
"""

from datetime import date
from functools import partial

from seg_pipeline import __version__
from seg_pipeline.core import churn, churn_fallback, clusters
from seg_pipeline.core.segments import digest
from seg_pipeline.services.inputs import features_at, orders_until, profiles_at
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage.model_store import ModelStore
from seg_pipeline.storage.store import WorkingStore


class NothingToSegment(ValueError):
    """No completed order on or before the as-of date: nothing to train on or segment yet."""


def train_or_reuse(store: WorkingStore, settings: PipelineSettings, kind: str, as_of: date) -> tuple[str, dict, bool]:
    """(version, metrics, reused) of the `kind` model ("churn" or "clusters") for `as_of`.

    The model in force is reused while younger than SEG_RETRAIN_EVERY_DAYS, while it is no stand-in for a
    short history, and while what it depends on (`model_inputs` of its trained_as_of) is what it was trained
    from; otherwise one is trained, saved under its content hash and registered.
    """
    registry = ModelStore(store)
    inputs = partial(model_inputs, store, settings, kind)
    entry = registry.in_force(kind, as_of)
    if (
        entry
        and (as_of - entry["trained_as_of"]).days < settings.retrain_every_days
        and not _stand_in(entry["metrics"])
        and entry["inputs"] == inputs(entry["trained_as_of"])
    ):
        return entry["version"], entry["metrics"], True
    model, metrics = (_train_churn if kind == "churn" else _train_clusters)(store, settings, as_of)
    version = model.content_hash()
    registry.save(kind, version, model, as_of, metrics, inputs(as_of))
    return version, metrics, False


def model_inputs(store: WorkingStore, settings: PipelineSettings, kind: str, trained_as_of: date) -> str:
    """A key of what the `kind` model trained for `trained_as_of` depends on: the landed data up to that day,
    the settings that shape its training data or labels, and the code version."""
    depends = {"code": __version__, "data": store.landed_fingerprint(trained_as_of), "currency": settings.currency}
    if kind == "churn":
        depends["churn_horizon_days"] = settings.churn_horizon_days
    return digest(depends)


def _stand_in(metrics: dict) -> bool:
    """Whether a registered model only stands in for a short history (a churn fallback, fewer clusters than
    k_range asks): never reused, so the full model takes over as soon as the history allows."""
    fewer_clusters = metrics.get("k", clusters.K_RANGE[0]) < clusters.K_RANGE[0]
    return churn_fallback.churn_method(metrics) != "model" or fewer_clusters


def _train_churn(store: WorkingStore, settings: PipelineSettings, as_of: date) -> tuple[object, dict]:
    """Train on a customer sample drawn in the store, loading only the sampled customers' orders.

    While the history is too short, the first applicable `core.churn_fallback` method stands in.
    """
    buyers = store.completed_buyers(as_of)
    if buyers.is_empty():
        raise NothingToSegment(f"no completed order on or before {as_of}: nothing to segment yet")
    sample = churn.training_sample(buyers)
    orders, profiles = orders_until(store, as_of, sample.customers), profiles_at(store, as_of, sample.customers)
    try:
        result = churn.train_churn_model(orders, profiles, as_of, settings.churn_horizon_days, sample=sample)
    except churn.InsufficientHistoryError as error:
        fallback = churn_fallback.fallback_churn(features_at(store, as_of), as_of, settings.churn_horizon_days)
        metrics = {"method": fallback.method, "reason": str(error), "buyers": buyers.len()}
        return fallback, {**metrics, "bgnbd_params": None if fallback.bgnbd is None else fallback.bgnbd.to_dict()}
    return result.model, {"method": "model", **result.metrics}


def _train_clusters(store: WorkingStore, settings: PipelineSettings, as_of: date) -> tuple[object, dict]:
    """Personas fitted on the features of `as_of`, named after the previous model's where they still fit."""
    registry = ModelStore(store)
    previous = registry.in_force("clusters", as_of, before=True)
    return clusters.fit_clusters(features_at(store, as_of), registry.load(previous) if previous else None)
