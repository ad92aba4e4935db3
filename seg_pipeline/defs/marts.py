"""Mart assets: every `.sql` file of the SQL folder becomes one partitioned asset.

The logic lives in `seg_pipeline.sql_models`; this module only wraps each model as an
asset (key = file stem, deps = the tables it reads, description = its header comment,
code version = a hash of its SQL), so a new `.sql` file is a new asset with no Python change.
"""

import hashlib
from datetime import date
from pathlib import Path

import dagster as dg

from seg_pipeline.defs.metadata import frame_metadata
from seg_pipeline.defs.policy import STORE_POOL, TRANSIENT_RETRY
from seg_pipeline.defs.resources import StoreResource
from seg_pipeline.sql_models import SqlModel, SqlModelError, build_sql_model, load_sql_models


def _sql_markdown(model: SqlModel) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"```sql\n{model.sql.strip()}\n```")


def _mart_asset(model: SqlModel, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
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
        with store.open() as working:
            written = 0
            for key in context.partition_keys:
                as_of = date.fromisoformat(key)
                with working.transaction() as con:
                    try:
                        written += build_sql_model(con, model, as_of)
                    except SqlModelError as error:
                        raise dg.Failure(description=str(error), allow_retries=False) from None
                    latest = con.sql(f"select * from {model.name} where as_of = ?", params=[as_of]).pl()
                context.log.info(f"{model.name} as_of {as_of}: {latest.height} rows")
        # One result covers every partition of the run: the latest version's shape and preview.
        return dg.MaterializeResult(
            metadata={
                **frame_metadata(latest),
                "versions built": len(context.partition_keys),
                "rows written": written,
                "sql": _sql_markdown(model),
            }
        )

    return _mart


def mart_assets(partitions: dg.PartitionsDefinition, sql_dir: Path) -> list[dg.AssetsDefinition]:
    """One asset per SQL model of `sql_dir`, in dependency order, on the daily partitions."""
    return [_mart_asset(model, partitions) for model in load_sql_models(sql_dir)]
