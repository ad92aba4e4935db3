"""Row verdicts from the rule tables (polars) and the GX report, for one raw batch.

A batch may hold several days (a backfill) and several files. Every raw row ends up either
accepted (typed) or quarantined (raw text plus every failed rule's reason); both outputs are
sorted by (day, source_file, source_row). Memory is a few copies of the batch plus a pandas
copy of the columns GX reads, so callers should pass batches of bounded size (e.g. <= ~2M rows).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import polars as pl

from seg_pipeline.core.personal_data import scrub_columns
from seg_pipeline.core.schemas import DAY_COLUMN
from seg_pipeline.core.validation import rules as R
from seg_pipeline.core.validation.gx_report import run_suite

log = logging.getLogger(__name__)

_COLUMNS: dict[R.Kind, tuple[str, ...]] = {"orders": R.ORDER_COLUMNS, "profiles": R.PROFILE_COLUMNS}
_KEY: dict[R.Kind, tuple[str, ...]] = {"orders": ("order_id",), "profiles": ("snapshot_date", "customer_id")}
#: great-expectations runs here, one batch at a time, while the caller types and writes the batch's rows
_GX_RUNS = ThreadPoolExecutor(1, thread_name_prefix="gx-suite")


class LandingSchemaError(ValueError):
    """A landed file lacks required columns; `str()` is one line: "<file>: <problem>"."""

    def __init__(self, source_file: str, problem: str) -> None:
        self.source_file = source_file
        self.problem = " ".join(problem.split())
        super().__init__(f"{source_file}: {self.problem}")


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of validating one raw batch; len(accepted) + len(quarantined) == len(raw)."""

    accepted: pl.DataFrame
    quarantined: pl.DataFrame
    gx_run: Future[list[dict[str, Any]]] | None = None  # great-expectations' run of the batch, maybe still going

    @property
    def expectations(self) -> list[dict[str, Any]]:
        """great-expectations' results, one JSON-ready dict per expectation (waits for its run; raises its error)."""
        return [] if self.gx_run is None else self.gx_run.result()


def normalize_column_name(name: str) -> str:
    """A landed header as the contract names it (BOM, padding and case removed)."""
    return name.replace("\ufeff", "").strip().lower()


def check_columns(kind: R.Kind, columns: Sequence[str], source_file: str) -> None:
    """Raise `LandingSchemaError` naming the file and the required columns it lacks."""
    present = {normalize_column_name(c) for c in columns}
    missing = [c for c in R.REQUIRED[kind] if c not in present]
    if missing:
        required = ", ".join(R.REQUIRED[kind])
        raise LandingSchemaError(
            source_file, f"missing required {kind} column(s): {', '.join(missing)} (required: {required})"
        )


def validate_orders(
    raw: pl.DataFrame,
    *,
    currency: str = "USD",
    already_accepted: pl.DataFrame | None = None,
    run_gx: bool = True,
) -> ValidationResult:
    """Validate a raw orders batch.

    `currency`: the configured currency (missing currencies default to it; others are
    quarantined, there are no FX rates). `already_accepted`: (order_id, order_day) accepted on
    days outside this batch; rows of the batch's own days in it are ignored, since those days
    are being re-ingested. `run_gx=False` skips the GX report (row verdicts are unchanged).
    """
    code = currency.strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise ValueError(f"currency must be a 3-letter ISO 4217 code, got {currency!r}")
    df = _conform("orders", raw)
    prepared = R.prepare_orders(df, code, already_accepted)
    return _validate("orders", df, prepared, {"currency": code}, run_gx)


def validate_profiles(raw: pl.DataFrame, *, run_gx: bool = True) -> ValidationResult:
    """Validate a raw profiles batch (one or more snapshots, each keyed by `snapshot_date`)."""
    df = _conform("profiles", raw)
    return _validate("profiles", df, R.prepare_profiles(df), {}, run_gx)


def _conform(kind: R.Kind, raw: pl.DataFrame) -> pl.DataFrame:
    """Raw batch with contract column names, Utf8 landing columns, sorted, with `_row`."""
    raw = raw.rename({c: normalize_column_name(c) for c in raw.columns if c != normalize_column_name(c)})
    day = DAY_COLUMN[kind]
    bookkeeping = ("source_file", "source_row", day)
    absent = [c for c in bookkeeping if c not in raw.columns]
    if absent:
        raise ValueError(f"raw {kind} batch lacks bookkeeping column(s): {', '.join(absent)}")
    if raw.select(pl.any_horizontal(pl.col(bookkeeping).is_null()).any()).item():
        raise ValueError(f"raw {kind} batch has null {'/'.join(bookkeeping)} values")
    files = sorted(raw.get_column("source_file").unique().to_list()) or ["<empty batch>"]
    check_columns(kind, raw.columns, ", ".join(files))
    return (
        raw.select(
            *[
                (pl.col(c) if c in raw.columns else pl.lit(None)).cast(pl.String).alias(c)
                for c in (*_COLUMNS[kind], "extra", "row_error")
            ],
            pl.col("source_file").cast(pl.String),
            pl.col("source_row").cast(pl.Int64),
            pl.col(day).cast(pl.Date),
        )
        .sort(day, "source_file", "source_row", maintain_order=True)
        .with_row_index("_row")
    )


def _mark_duplicates(kind: R.Kind, df: pl.DataFrame, prepared: pl.DataFrame) -> pl.DataFrame:
    """Add `<key>__exact_duplicate` / `__conflicting_duplicate` / `__kept_row` / `__kept_file`.

    Among rows passing every other rule (`_valid`), the first per trimmed key in batch order is kept;
    a later one is an exact duplicate when all its other raw landing columns equal the kept row's.
    Only keys occurring more than once are examined, so the cost is one hash pass.
    """
    key = list(_KEY[kind])
    name = key[-1]
    landing = [c for c in _COLUMNS[kind] if c not in key]
    valid = prepared.filter("_valid").select("_row", *key)
    rows = valid.filter(pl.struct(key).is_duplicated()).get_column("_row")
    group = pl.struct(f"_key_{c}" for c in key)
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).first().over(group)) for c in landing)
    repeated = pl.col("_row") != pl.col("_row").first().over(group)
    marks = (
        df[rows]
        .with_columns(prepared[rows].select(pl.col(key).name.prefix("_key_")))
        .select(
            "_row",
            pl.when(repeated & same).then(pl.col(f"_key_{name}")).alias(f"{name}__exact_duplicate"),
            pl.when(repeated & ~same).then(pl.col(f"_key_{name}")).alias(f"{name}__conflicting_duplicate"),
            pl.col("source_row").first().over(group).alias(f"{name}__kept_row"),
            pl.col("source_file").first().over(group).alias(f"{name}__kept_file"),
        )
    )
    return prepared.join(marks, on="_row", how="left", maintain_order="left")


def _padding(kind: R.Kind, raw: pl.DataFrame) -> pl.Expr:
    """`<key>__padding` of the reasons: a note where the landed key has surrounding spaces, else ''."""
    name = _KEY[kind][-1]
    landed = pl.lit(raw.get_column(name))
    note = pl.lit(f" ({name}s are compared without surrounding spaces)")
    return pl.when(landed != landed.str.strip_chars()).then(note).otherwise(pl.lit("")).alias(f"{name}__padding")


#: great-expectations sees every failing row of a batch but at most this many passing ones
#: (a seeded sample), so a multi-million-row backfill is not validated twice in full;
#: polars has already judged every row with the same rules
GX_MAX_PASSING_ROWS = 50_000


def _gx_rows(kind: R.Kind, prepared: pl.DataFrame, is_bad: pl.Series) -> pl.DataFrame:
    """The rows great-expectations validates: all failing rows plus (a sample of) the passing ones."""
    if prepared.height - int(is_bad.sum()) <= GX_MAX_PASSING_ROWS:
        return prepared
    passing = prepared.filter(~is_bad).sample(GX_MAX_PASSING_ROWS, seed=0)
    return pl.concat([prepared.filter(is_bad), passing]).sort(DAY_COLUMN[kind], "source_file", "source_row")


def _validate(
    kind: R.Kind, df: pl.DataFrame, prepared: pl.DataFrame, settings: dict[str, object], run_gx: bool
) -> ValidationResult:
    row_rules = [r for r in R.RULES[kind] if r.fails is not None]
    first, later = [r for r in row_rules if not r.after_row_rules], [r for r in row_rules if r.after_row_rules]

    def flags(rules: list[R.Rule]) -> list[pl.Expr]:
        return [r.fails.fill_null(False).alias(f"_fails_{r.name}") for r in rules]  # type: ignore[union-attr]

    prepared = prepared.with_columns(flags(first))
    prepared = prepared.with_columns(~pl.any_horizontal(pl.col(f"_fails_{r.name}") for r in first).alias("_valid"))
    prepared = _mark_duplicates(kind, df, prepared).with_columns(flags(later))
    failed = pl.any_horizontal(pl.col(f"_fails_{r.name}") for r in row_rules)
    reason = pl.concat_str(
        [pl.when(pl.col(f"_fails_{r.name}")).then(r.reason_expr()) for r in row_rules],
        separator="; ",
        ignore_nulls=True,
    )
    is_bad = prepared.select(failed).to_series()
    totals = prepared.select(pl.col(f"_fails_{r.name}").sum() for r in row_rules).row(0)
    counts = {r.name: int(n) for r, n in zip(row_rules, totals, strict=True)}
    gx_run = _GX_RUNS.submit(_expectations, kind, prepared, is_bad, settings, counts) if run_gx else None
    accepted = prepared.filter(~is_bad).select(e.alias(n) for n, e in R.ACCEPTED[kind].items())
    accepted = scrub_columns(accepted, text=R.FREE_TEXT[kind])
    quarantined = df.filter(is_bad).select(*_COLUMNS[kind], "extra", "source_file", "source_row", DAY_COLUMN[kind])
    bad = prepared.filter(is_bad).with_columns(_padding(kind, quarantined))
    quarantined = quarantined.with_columns(bad.select(reason.alias("reason")))
    return ValidationResult(accepted, quarantined, gx_run)


def _expectations(
    kind: R.Kind, prepared: pl.DataFrame, is_bad: pl.Series, settings: dict[str, object], counts: dict[str, int]
) -> list[dict[str, Any]]:
    """The GX suite's results on the batch; a rule where GX and polars count differently is logged."""
    expectations = run_suite(kind, _gx_rows(kind, prepared, is_bad), settings, counts)
    for item in expectations:
        if item["failed_rows"] is not None and item["unexpected_count"] != item["failed_rows"]:
            log.warning("GX and polars disagree on rule %s: %s", item["rule"], item)
    return expectations
