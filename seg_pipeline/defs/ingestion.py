"""Ingestion assets: landed files become raw rows, accepted rows and quarantined rows.

Partition D of an ingestion asset means "the store holds every file landed for days <= D":
it (re-)reads day D's files when they are new or changed and catches up on any earlier day
that is, so one run per as-of date replaces the per-day runs whose bookkeeping would cost
more than the ingest itself. Each landed day is written in one transaction together with its
quarantine (validate before writing: bad rows never reach the accepted tables, even when a
check blocks). The checks show great-expectations' results, the no-loss invariant and the
quarantine share.
"""

from datetime import date

import dagster as dg
import polars as pl

from seg_pipeline import ingest
from seg_pipeline.core.personal_data import scrub_text
from seg_pipeline.defs.metadata import frame_metadata, markdown_table
from seg_pipeline.defs.resources import StoreResource
from seg_pipeline.landing import Kind
from seg_pipeline.settings import PipelineSettings

STORE_POOL = "seg_store"  # every asset writing the working store; dagster.yaml limits it to 1
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


class IngestConfig(dg.Config):
    force: bool = False  # also re-ingest the partition days whose landed files are unchanged


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
            "rows_accounted_for",
            asset=accepted,
            blocking=True,
            description="raw rows = accepted + quarantined, per day",
        ),
        dg.AssetCheckSpec(
            "quarantine_share",
            asset=accepted,
            blocking=True,
            description="quarantined share <= SEG_QUARANTINE_THRESHOLD",
        ),
    ]


def _run_ingest(
    context: dg.AssetExecutionContext,
    kind: Kind,
    settings: PipelineSettings,
    store: StoreResource,
    force: bool,
):
    partition_days = [date.fromisoformat(key) for key in context.partition_keys]
    raw, accepted, quarantine = ingest.TABLES[kind]
    with store.open() as working:
        report = ingest.ingest(
            working,
            settings.landing_dir,
            kind,
            partition_days[-1],
            run_id=context.run.run_id,
            currency=settings.currency,
            force_days=partition_days if force else (),
        )
        counts = ingest.day_counts(working, kind, report.days)
        latest = {key: ingest.latest_rows(working, key, kind) for key in (raw, accepted, quarantine)}
    context.log.info(
        f"{kind}: ingested {len(report.days)} new or changed day(s); "
        f"{report.accepted_rows} accepted, {report.quarantined_rows} quarantined"
    )
    summary = {"days ingested": len(report.days), "files": len(report.files)}
    reasons = sorted(report.reasons.items(), key=lambda item: -item[1])
    extra = {
        raw: {"files_ingested": report.files[:50]},
        # how long judging the rows and waiting for great-expectations took (the benchmark's validate stage)
        accepted: {
            "validation seconds": round(report.validation_seconds, 3),
            "validation spans": dg.MetadataValue.json([list(span) for span in report.validation_spans]),
        },
        quarantine: {
            "reasons": dg.MetadataValue.md(markdown_table(["reason", "rows"], reasons[:20]) if reasons else "none")
        },
    }
    for key, rows in [(raw, report.raw_rows), (accepted, report.accepted_rows), (quarantine, report.quarantined_rows)]:
        metadata = {**frame_metadata(latest[key]), "dagster/row_count": rows, **summary, **extra[key]}
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
    yield from _checks(kind, report, counts, settings)
    if report.errors:
        errors = scrub_text(report.errors)  # a reader's message may quote a landed value
        raise dg.Failure(
            description=f"{len(errors)} landed file(s) rejected; first: {errors[0]}",
            metadata={"errors": errors},
            allow_retries=False,
        )


def _checks(kind: Kind, report: ingest.IngestReport, counts: pl.DataFrame, settings: PipelineSettings):
    accepted = ingest.TABLES[kind][1]
    failed = [e for e in report.expectations if not e.get("success")]
    yield dg.AssetCheckResult(
        asset_key=accepted,
        check_name="expectations",
        passed=not failed,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(failed)} of {len(report.expectations)} expectations saw bad rows (quarantined)",
        metadata={
            "failed expectations": len(failed),
            "results": dg.MetadataValue.json(report.expectations),
            "summary": dg.MetadataValue.md(
                markdown_table(
                    ["expectation", "column", "success", "unexpected", "sample"],
                    [(e.get("expectation"), e.get("column"), e.get("success"), e.get("unexpected_count"),
                      ", ".join(map(str, (e.get("partial_unexpected_list") or [])[:3]))) for e in report.expectations],
                )
            ),
        },
    )  # fmt: skip
    yield rows_accounted_for(kind, counts)
    shares = counts.with_columns((pl.col("quarantined_rows") / pl.col("raw_rows")).alias("share"))
    over = shares.filter(
        (pl.col("share") > settings.quarantine_threshold) & (pl.col("quarantined_rows") >= settings.quarantine_min_rows)
    )
    yield dg.AssetCheckResult(
        asset_key=accepted,
        check_name="quarantine_share",
        passed=over.is_empty(),
        description=(
            f"{over.height} day(s) over SEG_QUARANTINE_THRESHOLD {settings.quarantine_threshold:.0%}: "
            + ", ".join(f"{day} ({share:.1%})" for day, share in over.select("day", "share").head(5).iter_rows())
        ),
        metadata={
            "threshold": settings.quarantine_threshold,
            "max share": float(shares["share"].max() or 0.0),
            "days over threshold": dg.MetadataValue.md(markdown_table(over.columns, over.head(10).rows())),
        },
    )


def rows_accounted_for(kind: Kind, counts: pl.DataFrame) -> dg.AssetCheckResult:
    """The no-loss invariant per landed day: raw rows = accepted + quarantined (see ingest.day_counts)."""
    lost = counts.filter(pl.col("raw_rows") != pl.col("accepted_rows") + pl.col("quarantined_rows"))
    return dg.AssetCheckResult(
        asset_key=ingest.TABLES[kind][1],
        check_name="rows_accounted_for",
        passed=lost.is_empty(),
        description=f"{lost.height} of {counts.height} day(s) lost rows: " + ", ".join(map(str, lost["day"].head(5))),
        metadata={"days checked": counts.height, "days with lost rows": lost.height,
                  "mismatches": dg.MetadataValue.md(markdown_table(lost.columns, lost.head(10).rows()))},
    )  # fmt: skip


def ingestion_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The orders and profiles ingestion multi-assets on the daily partitions."""
    common = dict(
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=STORE_POOL,
        retry_policy=TRANSIENT_RETRY,
        can_subset=False,
    )

    @dg.multi_asset(specs=_specs("orders", "new or changed days <= D"), check_specs=_check_specs("orders"), **common)
    def ingest_orders(
        context: dg.AssetExecutionContext, config: IngestConfig, settings: PipelineSettings, store: StoreResource
    ):
        """Landed order files of every day <= D that are new or changed -> raw_orders, orders, quarantine_orders."""
        yield from _run_ingest(context, "orders", settings, store, config.force)

    @dg.multi_asset(
        specs=_specs("profiles", "the snapshot in force at D"), check_specs=_check_specs("profiles"), **common
    )
    def ingest_profiles(
        context: dg.AssetExecutionContext, config: IngestConfig, settings: PipelineSettings, store: StoreResource
    ):
        """The latest profile snapshot <= D, if new or changed -> raw_profiles, profiles, quarantine_profiles."""
        yield from _run_ingest(context, "profiles", settings, store, config.force)

    return [ingest_orders, ingest_profiles]
