"""Ingestion engine: landed files -> raw layer, accepted rows and quarantine, atomically.

Every batch of days is read, validated in memory, then written: one commit per table replaces
those days in `raw_*`, the accepted table and `quarantine_*`, and the batch's `landing_files`
rows are written last, so a failure in between leaves those days stale and the next run
ingests them again; a re-run gives the same rows. Orders are keyed by the day of
their file; profiles by the snapshot date. Files are fingerprinted by content; size and
mtime only decide whether a stored fingerprint can be reused without re-reading the file,
and a file new by name is hashed while it is parsed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import polars as pl

from seg_pipeline.core import schemas, validation
from seg_pipeline.core.personal_data import publishable
from seg_pipeline.storage import landing
from seg_pipeline.storage.landing import DAY_COLUMN, Kind, LandingFile
from seg_pipeline.storage.store import WorkingStore

#: a batch holds at most this many bytes of landed files (about 1.7M CSV order rows), which
#: bounds memory per batch (validation holds a few copies of it)
BATCH_BYTES = 128 * 2**20

#: kind -> the names of its (raw, accepted, quarantine) tables
TABLES: dict[Kind, tuple[str, str, str]] = {
    kind: tuple(t.name for t in tables)  # type: ignore[misc]
    for kind, tables in schemas.INGESTED.items()
}


@dataclass
class IngestReport:
    """What one ingestion did, for asset metadata and checks."""

    kind: Kind
    days: list[date] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    raw_rows: int = 0
    accepted_rows: int = 0
    quarantined_rows: int = 0
    expectations: list[dict] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: (start, end) epoch seconds spent validating: judging rows, then waiting for great-expectations
    validation_spans: list[tuple[float, float]] = field(default_factory=list)

    @property
    def validation_seconds(self) -> float:
        return sum(end - start for start, end in self.validation_spans)

    def add(self, result: validation.ValidationResult, raw_rows: int) -> None:
        self.raw_rows += raw_rows
        self.accepted_rows += result.accepted.height
        self.quarantined_rows += result.quarantined.height
        for reason, count in result.quarantined.group_by("reason").len().iter_rows():
            self.reasons[reason] = self.reasons.get(reason, 0) + count
        self.expectations = _merge_expectations(self.expectations, result.expectations)


def stored_files(store: WorkingStore, kind: Kind) -> dict[str, tuple[int, int, str]]:
    """source_file -> (size, mtime_ns, fingerprint) of every ingested file of `kind`."""
    rows = store.ingested_files(kind).select("source_file", "size", "mtime_ns", "fingerprint")
    return {name: (size, mtime, fp) for name, size, mtime, fp in rows.iter_rows()}


def fingerprints(files: Iterable[LandingFile], known: dict[str, tuple[int, int, str]]) -> dict[str, str]:
    """Content fingerprint per file, reusing a stored one when size and mtime are unchanged."""
    result = {}
    for file in files:
        size, mtime, fp = known.get(file.name, (-1, -1, ""))
        result[file.name] = fp if (size, mtime) == (file.size, file.mtime_ns) else landing.fingerprint(file.path)
    return result


def stale_days(store: WorkingStore, landing_dir: str, kind: Kind, until: date) -> list[date]:
    """Landed days <= `until` never ingested or whose files changed since their ingestion.

    For profiles only the snapshot in force at `until` (the latest <= `until`) matters.
    """
    return _landed(store, landing_dir, kind, until)[2]


def _landed(
    store: WorkingStore, landing_dir: str, kind: Kind, until: date
) -> tuple[dict[date, list[LandingFile]], dict[str, str], list[date]]:
    """Landed files <= `until`, the fingerprints of the ones that matter, and the stale days."""
    known = stored_files(store, kind)
    ingested_sets: dict[date, set[str]] = {}
    for day, name, fp in store.ingested_files(kind).select("day", "source_file", "fingerprint").iter_rows():
        ingested_sets.setdefault(day, set()).add(f"{name}={fp}")
    landed = landing.scan(landing_dir, kind, until)
    relevant = landed if kind == "orders" else {day: landed[day] for day in sorted(landed)[-1:]}
    # a file never ingested under its name makes its day stale as it is: it is hashed while being read
    prints = fingerprints((file for files in relevant.values() for file in files if file.name in known), known)
    stale = [
        day
        for day, files in relevant.items()
        if ingested_sets.get(day) != {f"{file.name}={prints.get(file.name)}" for file in files}
    ]
    return landed, prints, stale


def ingest(
    store: WorkingStore,
    landing_dir: str,
    kind: Kind,
    until: date,
    *,
    run_id: str,
    currency: str,
    force_days: Iterable[date] = (),
    shards: int = 1,
) -> IngestReport:
    """Bring the store up to date with the landing directory as of `until`.

    Ingests every landed day <= `until` that is new or changed, plus `force_days` even when
    unchanged. A file that cannot be read fails only its own day: the report lists the error
    and the other days are ingested. Days without files are empty, not errors. Each file is
    hashed at most once. With `shards` above 1 (SEG_CUSTOMER_SHARDS) each batch's accepted rows
    are stored in a file per customer shard, so a shard step reads only its customers' rows.
    """
    report = IngestReport(kind)
    scanned, known_prints, stale = _landed(store, landing_dir, kind, until)
    todo = sorted(set(stale) | {day for day in force_days if day in scanned})
    if todo:
        validation.warm_up()
    stored = stored_files(store, kind)
    accepted = _AcceptedOrders(store) if kind == "orders" and todo else None
    for batch in _batches(todo, scanned):
        files = [file for day in batch for file in scanned[day]]
        with ThreadPoolExecutor(1) as hasher:  # hashing and parsing both run outside the GIL
            hashed = hasher.submit(fingerprints, [file for file in files if file.name not in known_prints], stored)
            frames, errors = landing.read_many(files)
        report.errors.extend(str(error) for error in errors)
        failed = {error.path for error in errors}  # file names
        failed_days = {file.day for day in batch for file in scanned[day] if file.name in failed}
        batch_files = [file for day in batch if day not in failed_days for file in scanned[day]]
        if not batch_files:
            continue
        raw = pl.concat(frames, how="vertical_relaxed").filter(~pl.col(DAY_COLUMN[kind]).is_in(list(failed_days)))
        prints = {file.name: known_prints.get(file.name) for file in batch_files} | hashed.result()
        _write_batch(store, kind, raw, batch_files, prints, report, run_id=run_id, currency=currency,
                     accepted=accepted, shards=shards)  # fmt: skip
    return report


def _batches(days: list[date], scanned: dict[date, list[LandingFile]]) -> Iterator[list[date]]:
    batch: list[date] = []
    size = 0
    for day in days:
        day_size = sum(f.size for f in scanned[day])
        if batch and size + day_size > BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(day)
        size += day_size
    if batch:
        yield batch


def _write_batch(
    store: WorkingStore,
    kind: Kind,
    raw: pl.DataFrame,
    files: list[LandingFile],
    prints: dict[str, str],
    report: IngestReport,
    *,
    run_id: str,
    currency: str,
    accepted: _AcceptedOrders | None,
    shards: int,
) -> None:
    day_col = DAY_COLUMN[kind]
    days = sorted({f.day for f in files})
    now = datetime.now(UTC).replace(tzinfo=None)
    started = time.time()
    if kind == "orders":
        result = validation.validate_orders(raw, currency=currency, already_accepted=accepted.elsewhere(raw, days))
    else:
        result = validation.validate_profiles(raw)
    report.validation_spans.append((started, time.time()))
    rows_per_file = dict(raw.group_by("source_file").len().iter_rows())
    fingerprint_of = pl.DataFrame({"source_file": list(prints), "file_fingerprint": list(prints.values())})
    raw_rows = raw.join(fingerprint_of, on="source_file", how="left").with_columns(
        pl.lit(now).alias("ingested_at"), pl.lit(run_id).alias("run_id")
    )
    quarantined = result.quarantined.with_columns(
        pl.col(day_col).alias("as_of"), pl.lit(run_id).alias("run_id"), pl.lit(now).alias("quarantined_at")
    )
    file_rows = pl.DataFrame(
        {
            "kind": [kind] * len(files),
            "day": [f.day for f in files],
            "source_file": [f.name for f in files],
            "size": [f.size for f in files],
            "mtime_ns": [f.mtime_ns for f in files],
            "fingerprint": [prints[f.name] for f in files],
            "raw_rows": [rows_per_file.get(f.name, 0) for f in files],
            "ingested_at": [now] * len(files),
            "run_id": [run_id] * len(files),
        },
        schema=schemas.LANDING_FILES.polars,
    )
    with store.replace_day_batch(
        kind, days, raw=raw_rows, accepted=result.accepted, quarantined=quarantined, files=file_rows, shards=shards
    ):
        # great-expectations validated the batch while its rows were written: counting its results waits for
        # that run, so a failure of it leaves the batch's days stale (no landing_files rows)
        waiting = time.time()
        report.add(result, raw.height)
        report.validation_spans.append((waiting, time.time()))
    if accepted is not None:
        accepted.replace(days, result.accepted)
    report.days.extend(days)
    report.files.extend(f.name for f in files)


class _AcceptedOrders:
    """(order_id, order_day) of every accepted order, read once and kept current through one ingest.

    Each batch looks its order ids up here instead of re-reading every stored id per batch;
    the lookup joins 64-bit hashes of the ids first and compares the ids themselves only then.
    """

    def __init__(self, store: WorkingStore) -> None:
        self.rows = _with_hash(store.read_parts("orders", ["order_id", "order_day"]))
        self.days = set(self.rows.get_column("order_day").unique().to_list())

    def elsewhere(self, raw: pl.DataFrame, days: list[date]) -> pl.DataFrame:
        """The batch's order ids already accepted on days outside the batch, with that day."""
        ids = _with_hash(raw.select(pl.col("order_id").str.strip_chars()).drop_nulls())
        candidates = self.rows.join(ids.select("_hash"), on="_hash", how="semi")
        candidates = candidates.filter(~pl.col("order_day").is_in(days))
        matched = ids.join(candidates.select("_hash"), on="_hash", how="semi").select("order_id")
        return candidates.join(matched, on="order_id", how="semi").drop("_hash")

    def replace(self, days: list[date], accepted: pl.DataFrame) -> None:
        """The batch's days now hold `accepted`."""
        kept = self.rows.filter(~pl.col("order_day").is_in(days)) if self.days.intersection(days) else self.rows
        self.rows = pl.concat([kept, _with_hash(accepted.select("order_id", "order_day"))])
        self.days.update(days)


def _with_hash(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("order_id").hash(seed=0).alias("_hash"))


def day_counts(store: WorkingStore, kind: Kind, days: list[date]) -> pl.DataFrame:
    """Per landed day: raw, accepted and quarantined rows as stored (the no-loss invariant)."""
    raw_table, accepted_table, _ = TABLES[kind]
    raw, accepted = (store.day_rows(table, days=days) for table in (raw_table, accepted_table))
    return (
        raw.rename({"rows": "raw_rows"})
        .join(accepted.rename({"rows": "accepted_rows"}), on="day", how="left")
        .join(store.quarantined_per_day(kind, days=days), on="day", how="left")
        .with_columns(pl.col("accepted_rows", "quarantined_rows").fill_null(0))
        .sort("day")
    )


def latest_rows(store: WorkingStore, table: str, kind: Kind, limit: int = 5) -> pl.DataFrame:
    """A few rows of the latest landed day in `table`, for previews: without personal data (`publishable`)."""
    return publishable(store.latest_day_rows(table, limit), kind)


@dataclass(frozen=True)
class Snapshot:
    """A landed profile snapshot: its day, its files and their raw rows."""

    day: date
    files: list[str]
    rows: int


def latest_snapshots(store: WorkingStore, landing_dir: str, until: date) -> tuple[Snapshot | None, Snapshot | None]:
    """The profile snapshot in force at `until` and the one landed before it (None where there is none).

    Rows come from the ingested files' bookkeeping; a file never ingested (the previous snapshot of a
    cold run) is counted, not read.
    """
    stored = dict(store.ingested_files("profiles").select("source_file", "raw_rows").iter_rows())
    landed = landing.scan(landing_dir, "profiles", until)

    def snapshot(day: date) -> Snapshot:
        files = landed[day]
        rows = sum(stored[f.name] if f.name in stored else landing.row_count(f) for f in files)
        return Snapshot(day, [f.name for f in files], rows)

    days = sorted(landed)[-2:]
    current = snapshot(days[-1]) if days else None
    return current, snapshot(days[0]) if len(days) == 2 else None


def blocked_days(store: WorkingStore, kind: Kind, until: date, threshold: float, min_rows: int) -> pl.DataFrame:
    """Landed days <= `until` with more than `threshold` of their rows and >= `min_rows` rows quarantined."""
    raw = store.day_rows(TABLES[kind][0], until=until)
    return (
        raw.join(store.quarantined_per_day(kind, until=until), on="day")
        .select("day", (pl.col("quarantined_rows") / pl.col("rows")).alias("share"), "quarantined_rows")
        .filter((pl.col("share") > threshold) & (pl.col("quarantined_rows") >= min_rows))
        .select("day", "share")
        .sort("day")
    )


def _merge_expectations(total: list[dict], batch: list[dict]) -> list[dict]:
    """Add one batch's GX expectation results into the run's totals."""
    if not total:
        return [dict(e) for e in batch]
    merged = []
    for acc, new in zip(total, batch, strict=True):
        acc = dict(acc)
        acc["success"] = bool(acc.get("success")) and bool(new.get("success"))
        for key in ("unexpected_count", "element_count", "failed_rows"):
            if key in acc or key in new:
                acc[key] = (acc.get(key) or 0) + (new.get(key) or 0)
        sample = list(acc.get("partial_unexpected_list") or []) + list(new.get("partial_unexpected_list") or [])
        acc["partial_unexpected_list"] = sample[:20]
        merged.append(acc)
    return merged
