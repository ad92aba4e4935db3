"""Mart assets: every `.sql` file of the SQL folder becomes one partitioned asset.

The logic lives in `seg_pipeline.storage.sql_models`; this module only wraps each model as an
asset (key = file stem, deps = the tables it reads, description = its header comment,
code version = a hash of its SQL), so a new `.sql` file is a new asset with no Python change.
Each materialization shows the model's newest version; `action_lift` adds its lifts as a table.
"""

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg
import polars as pl

from seg_pipeline.defs.metadata import frame_metadata, markdown_table
from seg_pipeline.defs.partitions import as_of_dates
from seg_pipeline.defs.policy import STORE_POOL, TRANSIENT_RETRY
from seg_pipeline.defs.resources import StoreResource
from seg_pipeline.storage.sql_models import SqlModel, SqlModelError, load_sql_models, run_sql_model


def _sql_markdown(model: SqlModel) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"```sql\n{model.sql.strip()}\n```")


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    return "" if value is None else f"{value:+.4g}" + ("" if low is None else f" [{low:+.4g}, {high:+.4g}]")


def _lift_metadata(latest: pl.DataFrame) -> dict:
    """The newest measured version's lift per action, with its 95% intervals."""
    if latest.is_empty():
        return {"lifts measured": "no mature version yet (as_of at least SEG_CHURN_HORIZON_DAYS back)"}
    rows = [
        (r["recommended_action"], r["treated_customers"], r["control_customers"],
         _interval(r["lift"], r["lift_low"], r["lift_high"]),
         _interval(r["spend_lift"], r["spend_lift_low"], r["spend_lift_high"]))
        for r in latest.iter_rows(named=True)
    ]  # fmt: skip
    header = ["action", "treated", "control", "lift in purchase rate [95%]", "lift in spend [95%]"]
    return {"lifts of as_of": str(latest["as_of"][0]), "lifts": dg.MetadataValue.md(markdown_table(header, rows))}


#: extra metadata of a mart's newest version, by model name
_SUMMARIES = {"action_lift": _lift_metadata}


def _mart_asset(
    model: SqlModel, partitions: dg.PartitionsDefinition, variables: Mapping[str, int]
) -> dg.AssetsDefinition:
    @dg.asset(
        name=model.name,
        deps=[dg.AssetKey(dep) for dep in model.deps],
        description=model.description or None,
        group_name="marts",
        partitions_def=partitions,
        pool=STORE_POOL,
        retry_policy=TRANSIENT_RETRY,
        code_version=hashlib.sha256(model.sql.encode()).hexdigest()[:16],
        metadata={"sql_file": model.label, "sql": _sql_markdown(model)},
    )
    def _mart(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        written = 0
        with store.open() as working:
            for as_of in as_of_dates(context):
                try:
                    rows, latest = run_sql_model(working, model, as_of, variables)
                except SqlModelError as error:
                    raise dg.Failure(description=str(error), allow_retries=False) from None
                written += rows
                context.log.info(f"{model.name} as_of {as_of}: {latest.height} rows")
        # One result covers every partition of the run: the latest version's shape and preview.
        return dg.MaterializeResult(
            metadata={
                **frame_metadata(latest),
                **_SUMMARIES.get(model.name, lambda _: {})(latest),
                "versions built": len(context.partition_keys),
                "rows written": written,
                "sql": _sql_markdown(model),
            }
        )

    return _mart


def mart_assets(
    partitions: dg.PartitionsDefinition, sql_dir: Path, variables: Mapping[str, int] | None = None,
    models: Sequence[SqlModel] | None = None,
) -> list[dg.AssetsDefinition]:  # fmt: skip
    """One asset per SQL model of `sql_dir`, in dependency order, on the daily partitions; `variables`:
    the settings the SQL reads with getvariable() (e.g. churn_horizon_days); `models`: `load_sql_models(sql_dir)`
    when already at hand (parsing them costs a tenth of a second)."""
    return [_mart_asset(model, partitions, variables or {}) for model in models or load_sql_models(sql_dir)]
