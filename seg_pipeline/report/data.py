"""What the report shows of one version: read from the analyst file (through its reader), shaped for the page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from seg_pipeline.core.rfm import PROSPECT_SEGMENT, RFM_SEGMENTS
from seg_pipeline.storage import analyst_file

RFM_ORDER = (*RFM_SEGMENTS, PROSPECT_SEGMENT)
CHURN_BIN = 0.05  # width of the churn-risk histogram bins
TOP_ROWS = 10  # rows of the watchlist, top CLV and common reasons tables


class ReportError(LookupError):
    """The analyst file has no such version (or none at all); the message is one line."""


@dataclass(frozen=True)
class VersionData:
    """Everything the report shows of one version, read from the analyst file."""

    as_of: date
    version: dict[str, Any]  # the segment_versions row, `metrics` parsed from JSON
    summary: pl.DataFrame  # segment_summary rows of the version
    pareto: pl.DataFrame  # tier_pareto rows, by percentile
    rfm_grid: pl.DataFrame  # r_score, f_score, rfm_segment, customers
    migration: pl.DataFrame  # rfm_segment rows of segment_migration
    churn_bins: pl.DataFrame  # bin (lower edge), customers
    tier_lifecycle: pl.DataFrame  # value_tier, lifecycle_stage, customers
    watchlist: pl.DataFrame  # top rows of churn_watchlist
    lift: pl.DataFrame  # action_lift rows of the versions measured by as_of, by as_of
    top_clv: pl.DataFrame  # the customers with the highest clv, with its interval
    common_reasons: pl.DataFrame  # reason (numbers as N), customers: over buyers with churn_risk >= 0.5
    mean_churn_risk: float | None  # over buyers
    personas: pl.DataFrame  # cluster_profiles rows of the buyers' personas, largest first
    prospects: pl.DataFrame  # cluster_label (prospect persona), customers, mean_propensity

    @property
    def metrics(self) -> dict[str, Any]:
        return self.version["metrics"]

    @property
    def previous_as_of(self) -> date | None:
        return None if self.migration.is_empty() else self.migration["previous_as_of"][0]


def load_version(warehouse_path: str | Path, as_of: date | None = None) -> VersionData:
    """Read version `as_of` (default: the latest) from the analyst file, read-only."""
    path = Path(warehouse_path)
    if not path.exists():
        raise ReportError(f"no analyst file at {path}: materialize a version first")
    with analyst_file.open_analyst_file(path) as reader:
        versions = reader.published_versions()
        if not versions:
            raise ReportError(f"{path} holds no segment version yet")
        day = as_of or versions[-1]
        if day not in versions:
            hint = " (older versions leave it: SEG_KEEP_VERSIONS)" if day < versions[0] else ""
            raise ReportError(f"{path} has no version {day}; it has {versions[0]} .. {versions[-1]}{hint}")
        frames = reader.version_frames(day, churn_bin=CHURN_BIN, top=TOP_ROWS)
    version = frames.pop("version").row(0, named=True)
    version["metrics"] = json.loads(version["metrics"]) if version.get("metrics") else {}
    # the versions measured by this one: at least the churn horizon before it
    horizon = int(version["metrics"].get("rfm", {}).get("churn_horizon_days", 0))
    lift = frames.pop("lift")
    if not lift.is_empty():
        lift = lift.filter(pl.col("as_of") <= day - timedelta(days=horizon))
    return VersionData(
        as_of=day, version=version, lift=lift, mean_churn_risk=frames.pop("mean_churn_risk").item(), **frames
    )


def published_versions(warehouse_path: str | Path) -> list[date]:
    """The versions a report can be made of, oldest first: those whose customers are in the analyst file."""
    return analyst_file.published_versions(warehouse_path)


def segment_rows(data: VersionData, segment_type: str, order: tuple[str, ...] | None) -> pl.DataFrame:
    """The segment_summary rows of `segment_type`, in `order` of segment (unknown ones last), else by customers
    descending."""
    rows = data.summary if data.summary.is_empty() else data.summary.filter(pl.col("segment_type") == segment_type)
    if rows.is_empty():
        return rows
    if order is None:
        return rows.sort(["customers", "segment"], descending=[True, False])
    rank = {name: i for i, name in enumerate(order)}
    return rows.with_columns(pl.col("segment").replace_strict(rank, default=len(rank)).alias("_rank")).sort(
        "_rank", "segment").drop("_rank")  # fmt: skip
