"""Ingestion assets: each landed day becomes raw rows, accepted rows and quarantined rows.

One multi-asset per landing kind writes its three tables in one transaction (validate
before writing: bad rows never reach the accepted tables, even when a check blocks).
Its checks show great-expectations' results, the no-loss invariant and the quarantine share.
"""

from datetime import date, timedelta

import dagster as dg

from seg_pipeline import ingest
from seg_pipeline.defs.metadata import markdown_table
from seg_pipeline.defs.resources import StoreResource
from seg_pipeline.landing import Kind, scan
from seg_pipeline.settings import PipelineSettings

STORE_POOL = "seg_store"  # every asset writing the working store; dagster.yaml limits it to 1
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


class IngestConfig(dg.Config):
    force: bool = False  # re-ingest days whose landed files are unchanged


def _specs(kind: Kind, description: str) -> list[dg.AssetSpec]:
    raw, accepted, quarantine = ingest.TABLES[kind]
    group = "ingestion"
    return [
        dg.AssetSpec(raw, group_name=group, description=f"Raw {kind} as landed, all text, every row ({description})."),
        dg.AssetSpec(accepted, deps=[raw], group_name=group, description=f"Validated, typed {kind}."),
        dg.AssetSpec(quarantine, deps=[raw], group_name=group, description=f"Rejected raw {kind} with their reason."),
    ]


def _check_specs(kind: Kind) -> list[dg.AssetCheckSpec]:
    accepted = ingest.TABLES[kind][1]
    return [
        dg.AssetCheckSpec("expectations", asset=accepted, description="great-expectations suite on the raw batch"),
        dg.AssetCheckSpec(
            "rows_accounted_for", asset=accepted, blocking=True, description="raw rows = accepted + quarantined, per day"
        ),
        dg.AssetCheckSpec(
            "quarantine_share", asset=accepted, blocking=True, description="quarantined share <= SEG_QUARANTINE_THRESHOLD"
        ),
    ]


def _run_ingest(
    context: dg.AssetExecutionContext,
    kind: Kind,
    days: list[date],
    settings: PipelineSettings,
    store: StoreResource,
    force: bool,
):
    working = store.open()
    report = ingest.ingest(
        working, settings.landing_dir, kind, days, run_id=context.run.run_id, currency=settings.currency, force=force
    )
    raw, accepted, quarantine = ingest.TABLES[kind]
    counts = ingest.day_counts(working, kind, report.days)
    context.log.info(
        f"{kind}: ingested {len(report.days)} day(s), skipped {len(report.skipped)} unchanged; "
        f"{report.accepted_rows} accepted, {report.quarantined_rows} quarantined"
    )
    summary = {"days ingested": len(report.days), "days unchanged": len(report.skipped), "files": len(report.files)}
    yield dg.MaterializeResult(
        asset_key=raw, metadata={"dagster/row_count": report.raw_rows, **summary, "files_ingested": report.files[:50]}
    )
    yield dg.MaterializeResult(
        asset_key=accepted,
        metadata={"dagster/row_count": report.accepted_rows, **summary},
    )
    reasons = sorted(report.reasons.items(), key=lambda item: -item[1])
    yield dg.MaterializeResult(
        asset_key=quarantine,
        metadata={
            "dagster/row_count": report.quarantined_rows,
            "reasons": dg.MetadataValue.md(markdown_table(["reason", "rows"], reasons[:20]) if reasons else "none"),
        },
    )
    yield from _checks(kind, report, counts, settings.quarantine_threshold)
    if report.errors:
        raise dg.Failure(
            description=f"{len(report.errors)} landed file(s) rejected; first: {report.errors[0]}",
            metadata={"errors": report.errors},
            allow_retries=False,
        )


def _checks(kind: Kind, report: ingest.IngestReport, counts, threshold: float):
    accepted = ingest.TABLES[kind][1]
    failed = [e for e in report.expectations if not e.get("success")]
    yield dg.AssetCheckResult(
        asset_key=accepted,
        check_name="expectations",
        passed=not failed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "failed expectations": len(failed),
            "results": dg.MetadataValue.json(report.expectations),
            "summary": dg.MetadataValue.md(
                markdown_table(
                    ["expectation", "column", "success", "unexpected"],
                    [(e.get("expectation"), e.get("column"), e.get("success"), e.get("unexpected_count")) for e in report.expectations],
                )
            ),
        },
    )
    lost = counts.filter(counts["raw_rows"] != counts["accepted_rows"] + counts["quarantined_rows"])
    yield dg.AssetCheckResult(
        asset_key=accepted,
        check_name="rows_accounted_for",
        passed=lost.height == 0,
        metadata={"days checked": counts.height, "days with lost rows": lost.height,
                  "mismatches": dg.MetadataValue.md(markdown_table(lost.columns, lost.head(10).rows()))},
    )  # fmt: skip
    shares = counts.with_columns((counts["quarantined_rows"] / counts["raw_rows"]).alias("share"))
    over = shares.filter(shares["share"] > threshold)
    yield dg.AssetCheckResult(
        asset_key=accepted,
        check_name="quarantine_share",
        passed=over.height == 0,
        metadata={
            "threshold": threshold,
            "max share": float(shares["share"].max() or 0.0),
            "days over threshold": dg.MetadataValue.md(markdown_table(over.columns, over.head(10).rows())),
        },
    )


def ingestion_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The orders and profiles ingestion multi-assets on the daily partitions."""
    common = dict(
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=STORE_POOL,
        retry_policy=TRANSIENT_RETRY,
        can_subset=False,
    )

    @dg.multi_asset(specs=_specs("orders", "one partition per order day"), check_specs=_check_specs("orders"), **common)
    def ingest_orders(context: dg.AssetExecutionContext, config: IngestConfig, settings: PipelineSettings, store: StoreResource):
        """Landed order files of each partition day -> raw_orders, orders, quarantine_orders."""
        days = [date.fromisoformat(key) for key in context.partition_keys]
        yield from _run_ingest(context, "orders", days, settings, store, config.force)

    @dg.multi_asset(specs=_specs("profiles", "latest snapshot <= D"), check_specs=_check_specs("profiles"), **common)
    def ingest_profiles(context: dg.AssetExecutionContext, config: IngestConfig, settings: PipelineSettings, store: StoreResource):
        """The latest profile snapshot <= each partition day -> raw_profiles, profiles, quarantine_profiles."""
        window = context.partition_time_window
        until = window.end.date() - timedelta(days=1)
        snapshots = sorted(scan(settings.landing_dir, "profiles", until))
        first = date.fromisoformat(context.partition_keys[0])
        in_force_at_first = [d for d in snapshots if d <= first][-1:]
        later = [d for d in snapshots if d > first]
        yield from _run_ingest(context, "profiles", in_force_at_first + later, settings, store, config.force)

    return [ingest_orders, ingest_profiles]
