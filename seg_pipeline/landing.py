"""The landing contract (CONTRACT §1): where files land, how they are named and read.

`orders/YYYY-MM-DD*.csv|.parquet` hold the orders placed on that UTC day;
`profiles/YYYY-MM-DD*.csv|.parquet` hold full profile snapshots as known on that day.
Files are read as text, column for column, so the raw layer keeps exactly what arrived;
typing is validation's job.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import polars as pl

Kind = Literal["orders", "profiles"]

COLUMNS: dict[Kind, tuple[str, ...]] = {
    "orders": (
        "order_id", "customer_id", "order_ts", "amount", "currency",
        "status", "channel", "category", "quantity",
    ),
    "profiles": (
        "customer_id", "signup_date", "birth_year", "gender", "region",
        "customer_type", "is_member", "name", "email", "phone",
    ),
}  # fmt: skip
REQUIRED: dict[Kind, tuple[str, ...]] = {
    "orders": ("order_id", "customer_id", "order_ts", "amount"),
    "profiles": ("customer_id",),
}
#: personal data: kept in the working store for matching, never shown in previews or the analyst file
PERSONAL_COLUMNS = ("name", "email", "phone")
#: the column holding the day a file was landed for
DAY_COLUMN: dict[Kind, str] = {"orders": "order_day", "profiles": "snapshot_date"}

_FILE_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})[^/]*\.(csv|parquet)$")


class LandingFileError(ValueError):
    """A landed file cannot be used as a whole; `str()` is one line naming the file."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)


@dataclass(frozen=True)
class LandingFile:
    """One landed file and what identifies its content."""

    kind: Kind
    day: date
    path: Path
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.path.name}"


def scan(landing_dir: str | Path, kind: Kind, until: date | None = None) -> dict[date, list[LandingFile]]:
    """Landed files of `kind` by day (sorted by name), optionally only days <= `until`."""
    folder = Path(landing_dir) / kind
    days: dict[date, list[LandingFile]] = {}
    if not folder.is_dir():
        return days
    for path in sorted(folder.iterdir()):
        match = _FILE_NAME.match(path.name)
        if not match or not path.is_file():
            continue
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            continue
        if until is not None and day > until:
            continue
        stat = path.stat()
        days.setdefault(day, []).append(LandingFile(kind, day, path, stat.st_size, stat.st_mtime_ns))
    return days


def fingerprint(path: Path) -> str:
    """Content fingerprint of a file (BLAKE2b, 128 bits)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def read_raw(file: LandingFile) -> pl.DataFrame:
    """Read one landed file as text columns plus `source_file`, `source_row`, the day and `extra`.

    Known columns missing from the file come back all null; unknown ones are packed into
    `extra` (JSON). Raises `LandingFileError` for an unreadable file or missing required columns.
    """
    try:
        if file.path.suffix == ".parquet":
            frame = pl.read_parquet(file.path)
            frame = frame.select(pl.all().cast(pl.Utf8))
        else:
            frame = pl.read_csv(file.path, infer_schema=False, raise_if_empty=False)
    except Exception as error:  # noqa: BLE001 - any reader failure is a file-level failure
        raise LandingFileError(file.name, f"unreadable {file.path.suffix[1:]} ({_first_line(error)})") from None
    bookkeeping = frame.with_row_index("source_row", offset=1).select(
        pl.lit(file.day).alias(DAY_COLUMN[file.kind]), pl.lit(file.name).alias("source_file"), "source_row"
    )
    return _conform(file.kind, file.name, frame, bookkeeping)


def read_many(files: Sequence[LandingFile]) -> tuple[list[pl.DataFrame], list[LandingFileError]]:
    """Read landed files as `read_raw` does, one frame per group, and the errors of the files that failed.

    CSV files with the same header line are parsed in one multi-threaded scan: reading ~700 small
    daily files one by one costs about twice as much. If that scan fails, the group's files are
    read one by one, so each error names its file.
    """
    groups: dict[bytes | None, list[LandingFile]] = {}
    for file in files:
        groups.setdefault(_header(file) if file.path.suffix == ".csv" else None, []).append(file)
    frames, errors = [], []
    for header, group in groups.items():
        if header and len(group) > 1:
            try:
                frames.append(_read_csv_group(group))
                continue
            except (LandingFileError, pl.exceptions.PolarsError):
                pass  # one by one below: each failure is reported with its file
        for file in group:
            try:
                frames.append(read_raw(file))
            except LandingFileError as error:
                errors.append(error)
    return frames, errors


def _header(file: LandingFile) -> bytes:
    with file.path.open("rb") as handle:
        return handle.readline()


def _read_csv_group(files: list[LandingFile]) -> pl.DataFrame:
    """CSV files of one kind sharing a header, read in one scan."""
    kind = files[0].kind
    paths = pl.DataFrame(
        {
            "_path": [str(f.path) for f in files],
            DAY_COLUMN[kind]: [f.day for f in files],
            "source_file": [f.name for f in files],
        }
    )
    frame = pl.scan_csv(
        [f.path for f in files], infer_schema=False, raise_if_empty=False, include_file_paths="_path"
    ).collect()
    bookkeeping = frame.select(
        "_path", pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("_path").alias("source_row")
    ).join(paths, on="_path", how="left", maintain_order="left")
    return _conform(kind, files[0].name, frame.drop("_path"), bookkeeping.drop("_path"))


def _conform(kind: Kind, name: str, frame: pl.DataFrame, bookkeeping: pl.DataFrame) -> pl.DataFrame:
    """Landed text columns as the contract names them, after the bookkeeping columns, extras as JSON."""
    frame = frame.rename({c: c.strip().lower() for c in frame.columns})
    missing = [c for c in REQUIRED[kind] if c not in frame.columns]
    if missing:
        hint = " (is the delimiter a comma?)" if len(frame.columns) == 1 else ""
        raise LandingFileError(name, f"missing required column(s) {', '.join(missing)}{hint}")
    known = COLUMNS[kind]
    extras = [c for c in frame.columns if c not in known]
    extra = pl.struct(extras).struct.json_encode() if extras else pl.lit(None, pl.Utf8)
    return pl.concat(
        [
            bookkeeping.select(DAY_COLUMN[kind], "source_file", pl.col("source_row").cast(pl.Int64)),
            frame.select(
                *[pl.col(c) if c in frame.columns else pl.lit(None, pl.Utf8).alias(c) for c in known],
                extra.alias("extra"),
            ),
        ],
        how="horizontal",
    )


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
