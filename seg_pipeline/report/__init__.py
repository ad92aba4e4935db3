"""The HTML report of one segment version: who the customers are, what they are worth, how they move.

Reads only the analyst DuckDB file (read-only, like any analyst, through `seg_pipeline.storage.analyst_file`) and
writes ONE self-contained HTML file. `data` loads a version, `figures` draws its plotly charts, `page` lays out
the HTML around them; for the Dagster UI, which cannot run JavaScript, `images` draws the two headline charts
as small PNG data-URI markdown images.
"""

from seg_pipeline.report.data import ReportError, VersionData, load_version, published_versions
from seg_pipeline.report.images import metadata_images
from seg_pipeline.report.page import (
    CHART_IDS,
    LIFT_CHART_ID,
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
