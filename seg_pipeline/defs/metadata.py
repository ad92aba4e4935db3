"""Helpers that turn frames into the metadata operators see on each asset in the UI."""

from collections.abc import Iterable, Sequence

import dagster as dg
import polars as pl

_DAGSTER_TYPES = {pl.Utf8: "string", pl.Boolean: "bool", pl.Date: "date", pl.Datetime: "timestamp"}


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A small markdown table; floats rounded for reading."""
    def cell(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def column_schema(frame: pl.DataFrame, descriptions: dict[str, str] | None = None) -> dg.TableSchema:
    """The frame's columns as a Dagster table schema, with their documented meaning."""
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name, _DAGSTER_TYPES.get(dtype.base_type(), str(dtype).lower()), description=descriptions.get(name)
            )
            for name, dtype in frame.schema.items()
        ]
    )


def frame_metadata(frame: pl.DataFrame, descriptions: dict[str, str] | None = None, preview_rows: int = 5) -> dict:
    """Row count, column schema and a markdown preview: what every table asset reports."""
    preview = frame.head(preview_rows)
    return {
        "dagster/row_count": frame.height,
        "dagster/column_schema": column_schema(frame, descriptions),
        "preview": dg.MetadataValue.md(markdown_table(preview.columns, preview.rows())),
    }


def per_partition(header: Sequence[str], rows: Sequence[Sequence[object]]) -> dict:
    """A metadata table of a backfill's as-of dates, one row (as_of, *values) each (nothing for one partition):
    a single-run backfill reports once for all its partitions."""
    if len(rows) < 2:
        return {}
    return {"per as-of date": dg.MetadataValue.md(markdown_table(["as_of", *header], rows))}
