"""The HTML report of each version, written next to the analyst file after it is published."""

from pathlib import Path

import dagster as dg

from seg_pipeline import report
from seg_pipeline.defs.partitions import as_of_dates
from seg_pipeline.settings import PipelineSettings


def report_dir(settings: PipelineSettings) -> Path:
    """Where the reports go: `reports/` beside the analyst file."""
    return Path(settings.warehouse_path).parent / "reports"


def report_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions,
        deps=["current_segments"],
        group_name="warehouse",
        kinds={"html", "plotly"},
    )
    def segment_report(context: dg.AssetExecutionContext, settings: PipelineSettings):
        """One self-contained HTML file per version, `reports/segments-<as_of>.html` beside the analyst file.

        Segment sizes and value, the Pareto curve, the RFM grid, the migration from the previous
        version, churn risk with its calibration and scores, value tier x lifecycle. Read from the
        published analyst file only (read-only), so it shows exactly what analysts see.
        """
        published = set(report.published_versions(settings.warehouse_path))
        data = None
        for day in as_of_dates(context):
            if day not in published:
                context.log.warning(f"segment_report {day}: no report, an older version than SEG_KEEP_VERSIONS keeps")
                continue
            data = report.load_version(settings.warehouse_path, day)
            path = report.write_html(data, report_dir(settings))
            context.log.info(f"segment_report {day}: {path}")
        if data is None:
            return dg.MaterializeResult(metadata={"reports written": 0})
        return dg.MaterializeResult(
            metadata={
                "dagster/uri": path.as_uri(),
                "path": dg.MetadataValue.path(str(path)),
                "segment_version": data.version["segment_version"],
                "segment sizes": dg.MetadataValue.md(report.sizes_markdown(data)),
                **{name: dg.MetadataValue.md(image) for name, image in report.metadata_images(data).items()},
            }
        )

    return [segment_report]
