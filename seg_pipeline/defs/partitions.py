"""The one partitioning of the pipeline: a daily as-of date (UTC)."""

import dagster as dg


def daily_partitions(start: str) -> dg.DailyPartitionsDefinition:
    """Partition D = everything known up to the end of UTC day D (CONTRACT §2)."""
    return dg.DailyPartitionsDefinition(start_date=start, timezone="UTC")
