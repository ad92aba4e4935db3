"""The HTML report of one segment version (being split into data, figures and page)."""

from seg_pipeline.report.page import (
    CHART_IDS,
    LIFT_CHART_ID,
    ReportError,
    VersionData,
    load_version,
    metadata_images,
    published_versions,
    render_report,
    report_html,
    sizes_markdown,
    write_html,
    write_report,
)

__all__ = [
    "CHART_IDS",
    "LIFT_CHART_ID",
    "ReportError",
    "VersionData",
    "load_version",
    "metadata_images",
    "published_versions",
    "render_report",
    "report_html",
    "sizes_markdown",
    "write_html",
    "write_report",
]
