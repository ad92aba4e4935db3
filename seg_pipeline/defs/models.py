"""Models and segments: churn model, cluster model, and the versioned customer_segments table.

Each asset is: its partitions -> one service call per as-of date (`services.models`, `services.segments`)
-> metadata and checks, with one row per as-of date in a backfill's metadata. The services (and with them
scikit-learn and SciPy, over two seconds of imports) are imported by the steps that call them, not when the
code location loads.
"""

import json
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import TypeVar

import dagster as dg

from seg_pipeline.core.schemas import CUSTOMER_SEGMENTS
from seg_pipeline.core.shards import SCHEME, shard_asset
from seg_pipeline.defs.metadata import frame_metadata, markdown_table, per_partition
from seg_pipeline.defs.partitions import as_of_dates
from seg_pipeline.defs.policy import SHARDS_GROUP, STORE_POOL, TRANSIENT_RETRY
from seg_pipeline.defs.resources import StoreResource
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage.store import WorkingStore

T = TypeVar("T")
#: metadata of customer_segments: seconds per part of composing its versions (core.segments.Version.seconds)
PART_SECONDS = "seconds composing"


def model_assets(partitions: dg.PartitionsDefinition, shards: int = 1) -> list[dg.AssetsDefinition]:
    """The models and customer_segments; with `shards` > 1 (SEG_CUSTOMER_SHARDS), customer_segments publishes what
    segments_population and one step per shard staged (README "Customer shards")."""
    common = dict(partitions_def=partitions, pool=STORE_POOL, group_name="models")
    models = [_churn_model_asset(common), _cluster_model_asset(common), _segments_asset(common, shards)]
    if shards == 1:
        return models
    sharded = dict(partitions_def=partitions, group_name=SHARDS_GROUP, retry_policy=TRANSIENT_RETRY)
    return [*models, _population_asset(sharded, shards), *(_shard_asset(sharded, k, shards) for k in range(shards))]


def _population_asset(common: dict, shards: int) -> dg.AssetsDefinition:
    @dg.asset(deps=["churn_model", "cluster_model", "customer_features"], **common)
    def segments_population(context: dg.AssetExecutionContext, settings: PipelineSettings, store: StoreResource):
        """What every customer shard of a version scores with (BG/NBD, spend model, reasons' reference, propensity
        model, RFM and tier cuts, from a few columns of every customer): staged."""
        from seg_pipeline.services import segments

        def stage(working: WorkingStore, as_of: date):
            return segments.stage_population(working, settings, as_of)

        base = _stage_each(context, store, stage)
        return dg.MaterializeResult(metadata={"segment_version": base.segment_version, "shards": shards,
                                              "shard hash": SCHEME})  # fmt: skip

    return segments_population


def _shard_asset(common: dict, shard: int, shards: int) -> dg.AssetsDefinition:
    @dg.asset(name=shard_asset(shard), deps=["segments_population"], **common)
    def customer_shard(context: dg.AssetExecutionContext, settings: PipelineSettings, store: StoreResource):
        """The customer_segments rows of one customer shard, scored with the staged population: staged."""
        from seg_pipeline.services import segments

        def stage(working: WorkingStore, as_of: date):
            return segments.stage_shard(working, settings, as_of, shard, shards)

        scored = _stage_each(context, store, stage)
        return dg.MaterializeResult(metadata={"customers": scored.segments.height, "shard": f"{shard} of {shards}"})

    return customer_shard


def _stage_each(
    context: dg.AssetExecutionContext, store: StoreResource, stage: Callable[[WorkingStore, date], T]
) -> T:
    """`stage(working store, as_of)` for each as-of date of the run, oldest first: the last one's result (each
    one's is staged, none kept here); a refusal of the segments service (`services.segments.REFUSALS`: missing
    models, missing or stale staging) fails the step without retries."""
    from seg_pipeline.services import segments

    with store.open() as working:
        try:
            for as_of in as_of_dates(context):
                staged = stage(working, as_of)
        except segments.REFUSALS as error:
            raise dg.Failure(str(error), allow_retries=False) from None
    return staged


def _churn_model_asset(common: dict) -> dg.AssetsDefinition:
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
        from seg_pipeline.core.churn_fallback import churn_method

        trained = _models_for_run(context, settings, store, "churn")
        version, metrics, reused = trained[-1][1]
        method = churn_method(metrics)
        fallbacks = [(day, m) for day, (_, m, _) in trained if churn_method(m) != "model"]
        described = _churn_metadata(metrics) if method == "model" else {"fallback reason": metrics["reason"]}
        return dg.MaterializeResult(
            metadata={"model_version": version, "reused": reused, "churn method": method, **described,
                      **per_partition(["model_version", "reused", "churn method"],
                                       [(day, v[:12], r, churn_method(m)) for day, (v, m, r) in trained])},
            check_results=[
                dg.AssetCheckResult(
                    check_name="churn_method",
                    passed=not fallbacks,
                    severity=dg.AssetCheckSeverity.WARN,
                    description="churn_risk comes from the trained churn model" if not fallbacks else "; ".join(
                        f"churn_risk of {day} comes from the '{churn_method(m)}' fallback, not the churn "
                        f"model: {m['reason']}" for day, m in fallbacks
                    ),
                    metadata={"churn method": method},
                )
            ],
        )  # fmt: skip

    return churn_model


def _cluster_model_asset(common: dict) -> dg.AssetsDefinition:
    @dg.asset(deps=["customer_features"], **common)
    def cluster_model(context: dg.AssetExecutionContext, settings: PipelineSettings, store: StoreResource):
        """K-means needs-based buyer personas with names matched to the previous version's."""
        trained = _models_for_run(context, settings, store, "clusters")
        version, metrics, reused = trained[-1][1]
        return dg.MaterializeResult(
            metadata={"model_version": version, "reused": reused, "k": metrics["k"], "why k": metrics.get("choice", ""),
                      "silhouette": metrics["silhouette"], "labels": ", ".join(metrics["labels"]),
                      **per_partition(["model_version", "reused", "k"],
                                       [(day, v[:12], r, m["k"]) for day, (v, m, r) in trained])}
        )  # fmt: skip

    return cluster_model


def _segments_asset(common: dict, shards: int) -> dg.AssetsDefinition:
    inputs = ["churn_model", "cluster_model", "customer_features"] if shards == 1 else [
        shard_asset(k) for k in range(shards)
    ]

    @dg.asset(
        deps=inputs,
        check_specs=[dg.AssetCheckSpec("data_through", asset="customer_segments", description=_DATA_THROUGH_CHECK)],
        **common,
    )
    def customer_segments(context: dg.AssetExecutionContext, settings: PipelineSettings, store: StoreResource):
        """Exactly one row per known customer per version: RFM, cluster, tier, lifecycle, churn, CLV, action."""
        from seg_pipeline.services import segments

        built, seconds = [], Counter()
        with store.open() as working:
            for as_of in as_of_dates(context):
                try:
                    rows, version_row, spent = (
                        segments.build_version(working, settings, as_of, context.run.run_id) if shards == 1
                        else segments.publish_shards(working, settings, as_of, shards, context.run.run_id)
                    )  # fmt: skip
                except segments.REFUSALS as error:
                    raise dg.Failure(str(error)) from None
                seconds.update(spent)
                working.replace_segment_version(as_of, rows, version_row)
                if shards > 1:
                    segments.drop_staged(working, as_of)
                built.append((as_of, version_row.row(0, named=True)))
                context.log.info(f"customer_segments {as_of}: {rows.height} customers, "
                                 f"version {version_row['segment_version'][0]}")  # fmt: skip
        metrics = json.loads(built[-1][1]["metrics"])
        sizes = rows.group_by("rfm_segment").len().sort("len", descending=True)
        return dg.MaterializeResult(
            check_results=[_data_through_check(built, settings.max_landing_gap_days)],
            metadata={
                **frame_metadata(rows, CUSTOMER_SEGMENTS.docs),
                "segment_version": built[-1][1]["segment_version"],
                "rfm segments": dg.MetadataValue.md(markdown_table(["rfm_segment", "customers"], sizes.rows())),
                "tier revenue shares": dg.MetadataValue.md(_tier_table(metrics["value_tiers"])),
                "top 20% revenue share": metrics["value_tiers"]["top20_revenue_share"],
                "cluster label keep share": metrics["cluster_label_keep_share"],
                # what the benchmark splits the step by (seconds, summed over the run's versions)
                PART_SECONDS: dg.MetadataValue.json({part: round(s, 3) for part, s in seconds.items()}),
                **per_partition(
                    ["segment_version", "customers", "data_through"],
                    [(day, row["segment_version"], row["customers"], row["data_through"]) for day, row in built],
                ),
            },
        )

    return customer_segments


def _models_for_run(
    context: dg.AssetExecutionContext, settings: PipelineSettings, store: StoreResource, kind: str
) -> list[tuple[date, tuple[str, dict, bool]]]:
    """(as_of, (version, metrics, reused)) of the `kind` model trained or reused for each partition of the run."""
    from seg_pipeline.services import models

    with store.open() as working:
        try:
            return [(day, models.train_or_reuse(working, settings, kind, day)) for day in as_of_dates(context)]
        except models.NothingToSegment as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None


def _data_through_check(built: list[tuple[date, dict]], allowed: int) -> dg.AssetCheckResult:
    """WARN when any version of the run is more than `allowed` days past its last landed order day."""
    gaps = [(as_of, row["data_through"], (as_of - row["data_through"]).days) for as_of, row in built]
    late = [(as_of, through, gap) for as_of, through, gap in gaps if gap > allowed]
    as_of, through, gap = late[0] if late else gaps[-1]
    return dg.AssetCheckResult(
        check_name="data_through",
        passed=not late,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"version {as_of} sees orders landed through {through}, {gap} day(s) before it "
            f"(allowed: SEG_MAX_LANDING_GAP_DAYS={allowed})" + (": order files stopped arriving?" if late else "")
        ),
        metadata={"data_through": str(through), "gap days": gap, "late versions": len(late)},
    )


_CHURN_CHECK = "Warns while churn_risk comes from a fallback (BG/NBD or the recency prior), not the trained model"
_DATA_THROUGH_CHECK = "Warns when as_of is more than SEG_MAX_LANDING_GAP_DAYS past the last landed order day"


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
