"""The one partitioning of the pipeline: a daily as-of date (UTC)."""

from datetime import date

import dagster as dg


def daily_partitions(start: str) -> dg.DailyPartitionsDefinition:
    """Partition D = everything known up to the end of UTC day D (CONTRACT §2)."""
    return dg.DailyPartitionsDefinition(start_date=start, timezone="UTC")


def as_of_dates(context: dg.AssetExecutionContext) -> list[date]:
    """The as-of dates of the run's partitions, oldest first (a single-run backfill has several)."""
    return [date.fromisoformat(key) for key in context.partition_keys]
