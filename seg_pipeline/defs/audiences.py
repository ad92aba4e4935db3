"""The audiences asset: each version's treated customers per action as files (see seg_pipeline.storage.audiences)."""


import dagster as dg

from seg_pipeline.core.schemas import CUSTOMER_SEGMENTS
from seg_pipeline.defs.metadata import markdown_table, per_partition
from seg_pipeline.defs.partitions import as_of_dates
from seg_pipeline.defs.policy import STORE_POOL
from seg_pipeline.defs.resources import StoreResource
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage import audiences


def audience_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name="audiences",
        partitions_def=partitions,
        pool=STORE_POOL,
        deps=["customer_segments"],
        group_name="warehouse",
        kinds={"csv", "parquet"},
    )
    def _audiences(context: dg.AssetExecutionContext, settings: PipelineSettings, store: StoreResource):
        """Audience files of each version, `SEG_EXPORT_DIR/<as_of>/`: per action but "No action" its treated
        customers (not the control group) as CSV and Parquet, ids and scores only, and `manifest.json`."""
        columns = [c for c in (*audiences.READ_COLUMNS, *audiences.OPTIONAL_COLUMNS) if c in CUSTOMER_SEGMENTS.names]
        written = []
        with store.open() as working:
            for as_of in as_of_dates(context):
                segments = working.read_parts("customer_segments", columns, day=as_of)
                manifest = audiences.write_audiences(segments, settings.export_dir, as_of)
                treated = sum(n["treated"] for n in manifest["actions"].values())
                written.append((as_of, treated))
                context.log.info(f"audiences {as_of}: {settings.export_dir}/{as_of}")
        rows = [(action, n["treated"], n["control"]) for action, n in manifest["actions"].items()]
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(f"{settings.export_dir}/{as_of}"),
                "treated customers": treated,
                "audiences": dg.MetadataValue.md(markdown_table(["action", "treated", "control"], rows)),
                **per_partition(["treated customers"], written),
            }
        )

    return [_audiences]
