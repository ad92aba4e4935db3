"""Ingestion assets: landed files become raw rows, accepted rows and quarantined rows.

Partition D of an ingestion asset means "the store holds every file landed for days <= D":
it (re-)reads day D's files when they are new or changed and catches up on any earlier day
that is, so one run per as-of date replaces the per-day runs whose bookkeeping would cost
more than the ingest itself. Each landed day is written in one transaction together with its
quarantine (validate before writing: bad rows never reach the accepted tables, even when a
check blocks). The checks report the landed files that cannot be used, great-expectations'
results, the no-loss invariant, the quarantine share and, for profiles, a shrinking snapshot.
"""


import dagster as dg
import polars as pl

from seg_pipeline.core.personal_data import scrub_text
from seg_pipeline.defs.metadata import frame_metadata, markdown_table
from seg_pipeline.defs.partitions import as_of_dates
from seg_pipeline.defs.policy import STORE_POOL, TRANSIENT_RETRY
from seg_pipeline.defs.resources import StoreResource
from seg_pipeline.services import ingest
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage.landing import Kind, LandingFileError, unused_files


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
    raw, accepted, _ = ingest.TABLES[kind]
    specs = [
        dg.AssetCheckSpec(
            "landing_files", asset=raw, description=f"every file in {kind}/ is used (a name with a day, a known format)"
        ),
        dg.AssetCheckSpec(
            "expectations",
            asset=accepted,
            description="great-expectations suite on the raw batch: its bad rows are all quarantined and no day's "
            "quarantined share exceeds SEG_QUARANTINE_WARN_SHARE",
        ),
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
    if kind == "profiles":
        specs.append(
            dg.AssetCheckSpec(
                "snapshot_size",
                asset=accepted,
                blocking=True,
                description="the snapshot in force has >= SEG_PROFILE_MIN_SHARE of the previous snapshot's rows",
            )
        )
    return specs


def _run_ingest(
    context: dg.AssetExecutionContext,
    kind: Kind,
    settings: PipelineSettings,
    store: StoreResource,
    force: bool,
):
    partition_days = as_of_dates(context)
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
            shards=settings.customer_shards,
        )
        counts = ingest.day_counts(working, kind, report.days)
        try:
            snapshots = ingest.latest_snapshots(working, settings.landing_dir, partition_days[-1])
        except LandingFileError:  # the snapshot in force is unreadable: report.errors fails the step below
            snapshots = (None, None)
        latest = {key: ingest.latest_rows(working, key, kind) for key in (raw, accepted, quarantine)}
    context.log.info(
        f"{kind}: ingested {len(report.days)} new or changed day(s); "
        f"{report.accepted_rows} accepted, {report.quarantined_rows} quarantined"
    )
    unused = unused_files(settings.landing_dir, kind)
    summary = {"days ingested": len(report.days), "files": len(report.files)}
    reasons = sorted(report.reasons.items(), key=lambda item: -item[1])
    extra = {
        raw: {
            "files_ingested": report.files[:50],
            "files_not_used": dg.MetadataValue.md(markdown_table(["file", "why"], unused) if unused else "none"),
        },
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
    yield landing_files_check(kind, unused)
    yield from _checks(kind, report, counts, settings)
    if kind == "profiles":
        yield snapshot_size(settings, *snapshots)
    if report.errors:
        errors = scrub_text(report.errors)  # a reader's message may quote a landed value
        raise dg.Failure(
            description=f"{len(errors)} landed file(s) rejected; first: {errors[0]}",
            metadata={"errors": errors},
            allow_retries=False,
        )


def landing_files_check(kind: Kind, unused: list[tuple[str, str]]) -> dg.AssetCheckResult:
    """WARN about the files of the `kind` folder that the pipeline cannot use (see landing.unused_files)."""
    listed = ", ".join(f"{name} ({why})" for name, why in unused[:5]) + (", ..." if len(unused) > 5 else "")
    return dg.AssetCheckResult(
        asset_key=ingest.TABLES[kind][0],
        check_name="landing_files",
        passed=not unused,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(unused)} landed file(s) not used: {listed}" if unused else f"every file in {kind}/ is used",
        metadata={
            "files not used": len(unused),
            "files": dg.MetadataValue.md(markdown_table(["file", "why"], unused) if unused else "none"),
        },
    )


def _checks(kind: Kind, report: ingest.IngestReport, counts: pl.DataFrame, settings: PipelineSettings):
    accepted = ingest.TABLES[kind][1]
    shares = counts.with_columns((pl.col("quarantined_rows") / pl.col("raw_rows")).alias("share"))
    yield expectations_check(kind, report.expectations, shares, settings)
    yield rows_accounted_for(kind, counts)
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


def expectations_check(
    kind: Kind, expectations: list[dict], shares: pl.DataFrame, settings: PipelineSettings
) -> dg.AssetCheckResult:
    """great-expectations' results: passed when every row its expectations failed was quarantined (GX counts
    what the row rules count, no expectation errored) and no day's quarantined share is over
    SEG_QUARANTINE_WARN_SHARE (days with fewer than SEG_QUARANTINE_MIN_ROWS quarantined rows are noise)."""
    failed = [e for e in expectations if not e.get("success")]
    unaccounted = [
        e["rule"]
        for e in failed
        if e.get("exception") or (e.get("failed_rows") is not None and e.get("unexpected_count") != e["failed_rows"])
    ]
    over = shares.filter(
        (pl.col("share") > settings.quarantine_warn_share)
        & (pl.col("quarantined_rows") >= settings.quarantine_min_rows)
    )
    seen = f"{len(failed)} of {len(expectations)} expectations saw bad rows"
    if unaccounted:
        description = (
            f"{seen}; not all of them quarantined (great-expectations and the row rules disagree or errored): "
        )
        description += ", ".join(unaccounted[:5])
    elif not over.is_empty():
        description = f"{over.height} day(s) over SEG_QUARANTINE_WARN_SHARE {settings.quarantine_warn_share:.1%}: "
        description += ", ".join(
            f"{day} ({share:.1%})" for day, share in over.select("day", "share").head(5).iter_rows()
        )
    else:
        description = f"{seen}, every one quarantined; no day over SEG_QUARANTINE_WARN_SHARE "
        description += f"{settings.quarantine_warn_share:.1%}"
    return dg.AssetCheckResult(
        asset_key=ingest.TABLES[kind][1],
        check_name="expectations",
        passed=not unaccounted and over.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "failed expectations": len(failed),
            "warn share": settings.quarantine_warn_share,
            "max share": float(shares["share"].max() or 0.0),
            "results": dg.MetadataValue.json(expectations),
            "summary": dg.MetadataValue.md(
                markdown_table(
                    ["expectation", "column", "success", "unexpected", "sample"],
                    [(e.get("expectation"), e.get("column"), e.get("success"), e.get("unexpected_count"),
                      ", ".join(map(str, (e.get("partial_unexpected_list") or [])[:3]))) for e in expectations],
                )
            ),
        },
    )  # fmt: skip


def snapshot_size(
    settings: PipelineSettings, current: ingest.Snapshot | None, previous: ingest.Snapshot | None
) -> dg.AssetCheckResult:
    """Block a profile snapshot with fewer rows than SEG_PROFILE_MIN_SHARE of the previous snapshot's (0: off)."""
    share = settings.profile_min_share
    if current is None or previous is None or not share:
        passed, description = True, "no earlier snapshot to compare with" if share else "off (SEG_PROFILE_MIN_SHARE=0)"
    else:
        passed = current.rows >= share * previous.rows
        description = (
            f"{', '.join(current.files)} has {current.rows:,} rows, "
            f"{'at least' if passed else 'fewer than'} SEG_PROFILE_MIN_SHARE {share:.0%} of the previous snapshot "
            f"{', '.join(previous.files)} ({previous.rows:,} rows)"
        )
    return dg.AssetCheckResult(
        asset_key=ingest.TABLES["profiles"][1],
        check_name="snapshot_size",
        passed=passed,
        description=description,
        metadata={
            "min share": share,
            "rows": current.rows if current else 0,
            "previous rows": previous.rows if previous else 0,
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
