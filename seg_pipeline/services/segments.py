"""The segments service: read a version's inputs from the store, compose it (`core.segments`), store it.

In one step (`build_version`), or, with customer shards, in the steps of `stage_population`, `stage_shard` for
each shard and `publish_shards`, which hand each other their results through `storage.staging`.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from functools import partial

import polars as pl

from seg_pipeline import __version__
from seg_pipeline.core import predictions, prospects
from seg_pipeline.core.features import profile_snapshot
from seg_pipeline.core.schemas import SEGMENT_VERSIONS
from seg_pipeline.core.segments import (
    POPULATION_COLUMNS,
    ModelInForce,
    Policy,
    Population,
    Shard,
    Version,
    bgnbd_penalizer,
    compose_version,
    population,
    reference_sample,
    score_shard,
    version_id,
    version_of,
)
from seg_pipeline.core.shards import CustomerShard, shard_asset
from seg_pipeline.services.inputs import features_at, profiles_at
from seg_pipeline.services.prediction_checks import window_checks
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage.model_store import ModelStore
from seg_pipeline.storage.staging import Staging, StagingMissing
from seg_pipeline.storage.store import WorkingStore


class ModelsMissing(LookupError):
    """No churn or cluster model is registered for the as-of date."""


class StaleStaging(RuntimeError):
    """What a sharded version's steps staged was made from other inputs than the step's own."""


#: what a segments step refuses with one line (a Dagster failure without retries)
REFUSALS = (ModelsMissing, StaleStaging, StagingMissing)


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
    seconds its composition took (`core.segments.Version.seconds`), all in this process."""
    entries = models_in_force(store, as_of)
    features = features_at(store, as_of)
    previous_as_of = store.previous_version(as_of)
    version = compose_version(
        as_of, features, *entries, policy(settings),
        data_key=store.landed_fingerprint(as_of),
        past_prospects=_past_prospects(store, features, as_of, settings.churn_horizon_days),
        previous_labels=_labels(store, previous_as_of),
        prediction_checks=partial(_prediction_checks, store, settings, as_of, entries[0].version, previous_as_of),
    )  # fmt: skip
    return version.segments, _version_row(store, version, as_of, run_id, entries), version.seconds


def stage_population(store: WorkingStore, settings: PipelineSettings, as_of: date) -> Population:
    """Stage what the shard steps of version `as_of` score with (`core.segments.population`, from a few columns of
    every customer) and the predictions' window checks."""
    entries = models_in_force(store, as_of)
    features = features_at(store, as_of, columns=POPULATION_COLUMNS)
    previous_as_of = store.previous_version(as_of)
    past = _past_prospects(store, features, as_of, settings.churn_horizon_days)
    reference_rows = features_at(store, as_of, reference_sample(features).to_frame())
    data_key = store.landed_fingerprint(as_of)
    buyers = features.filter(pl.col("frequency").is_not_null())
    with ThreadPoolExecutor(max_workers=1) as pool:  # the window checks meanwhile, as in compose_version
        checked = pool.submit(_prediction_checks, store, settings, as_of, entries[0].version, previous_as_of, buyers,
                              bgnbd_penalizer(entries[0]))  # fmt: skip
        base = population(as_of, features, entries, policy(settings), data_key=data_key, past_prospects=past,
                          reference_rows=reference_rows)  # fmt: skip
        checks = checked.result()
    staging = Staging(store)
    staging.put(f"{as_of}/population", (base, checks))
    return base


def stage_shard(store: WorkingStore, settings: PipelineSettings, as_of: date, shard: int, shards: int) -> Shard:
    """Score and stage the customers of shard `shard` of `shards` of version `as_of` (`core.segments.score_shard`),
    from the population its population step staged; refused when that was made from other inputs than today's."""
    staging = Staging(store)
    base, _ = _population(staging, as_of)
    entries = models_in_force(store, as_of)
    current = version_id(as_of, *entries, policy(settings), store.landed_fingerprint(as_of))
    if current != base.segment_version:
        raise StaleStaging(
            f"segments_population of {as_of} was made from other inputs (version {base.segment_version}, now "
            f"{current}): materialize segments_population and its shards for {as_of} again"
        )
    features = features_at(store, as_of, shard=CustomerShard(shard, shards))
    scored = score_shard(as_of, features, entries, policy(settings), base)
    staging.put(_scored(as_of, shard, shards), scored)
    return scored


def publish_shards(
    store: WorkingStore, settings: PipelineSettings, as_of: date, shards: int, run_id: str
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, float]]:
    """`build_version`'s result from the staged shards of version `as_of` (`core.segments.version_of`); refused
    when a shard is missing or was scored for another version than the staged population's."""
    staging = Staging(store)
    base, checks = _population(staging, as_of)
    parts = []
    for k in range(shards):
        part = staging.get(_scored(as_of, k, shards), f"shard {k} of {shards} of {as_of} is not staged: materialize "
                           f"{shard_asset(k)} for it first")  # fmt: skip
        if part.segments.height and part.segments["segment_version"][0] != base.segment_version:
            raise StaleStaging(
                f"{shard_asset(k)} of {as_of} scored version {part.segments['segment_version'][0]}, not the staged "
                f"population's {base.segment_version}: materialize {shard_asset(k)} for {as_of} again"
            )
        parts.append(part)
    entries = models_in_force(store, as_of)
    previous = _labels(store, store.previous_version(as_of))
    version = version_of(parts, base, entries, policy(settings), previous, checks)
    return version.segments, _version_row(store, version, as_of, run_id, entries), version.seconds


def drop_staged(store: WorkingStore, as_of: date) -> None:
    """Remove what the steps of version `as_of` staged (once it is published)."""
    Staging(store).drop(str(as_of))


def _population(staging: Staging, as_of: date) -> tuple[Population, dict]:
    return staging.get(f"{as_of}/population", f"nothing is staged for version {as_of}: materialize "
                       "segments_population for it first")  # fmt: skip


def _scored(as_of: date, shard: int, shards: int) -> str:
    return f"{as_of}/shard_{shard}_of_{shards}"


def models_in_force(store: WorkingStore, as_of: date) -> tuple[ModelInForce, ModelInForce]:
    """The (churn, clusters) models in force at `as_of`; `ModelsMissing` when one is not registered."""
    registry = ModelStore(store)
    churn, clusters = (_in_force(registry, kind, as_of) for kind in ("churn", "clusters"))
    return churn, clusters


def _labels(store: WorkingStore, as_of: date | None) -> pl.DataFrame:
    """(customer_id, cluster_label) of version `as_of` (none for None)."""
    if as_of is None:
        return pl.DataFrame(schema={"customer_id": pl.String, "cluster_label": pl.String})
    return store.read_parts("customer_segments", ["customer_id", "cluster_label"], day=as_of)


def _in_force(registry: ModelStore, kind: str, as_of: date) -> ModelInForce:
    entry = registry.in_force(kind, as_of)
    if entry is None:
        raise ModelsMissing(
            f"no {kind} model registered for {as_of}: materialize churn_model and cluster_model first"
        )
    return ModelInForce(entry["version"], registry.load(entry), entry["metrics"])


def _version_row(
    store: WorkingStore, version: Version, as_of: date, run_id: str, entries: tuple[ModelInForce, ModelInForce]
) -> pl.DataFrame:
    """The segment_versions row of a composed version."""
    segments, (churn, clusters) = version.segments, entries
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
