"""The landing contract (CONTRACT §1): where files land, how they are named and read.

`orders/YYYY-MM-DD*.csv|.csv.gz|.parquet` hold the orders placed on that UTC day;
`profiles/YYYY-MM-DD*.csv|.csv.gz|.parquet` hold full profile snapshots as known on that day;
any other file there is listed by `unused_files` with the reason it cannot be used.
Files are read as text, column for column, so the raw layer keeps exactly what arrived;
typing is validation's job. A CSV row with more or fewer fields than the header keeps its
fields by position and says so in `row_error` (validation quarantines it); the rest of its
file is read as usual.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from seg_pipeline.core.schemas import DAY_COLUMN, LANDING, Kind
from seg_pipeline.core.schemas import PERSONAL_COLUMNS as PERSONAL_COLUMNS  # the landing contract's names

#: the landed columns of each kind, in order, and the ones a file must have (from the schema registry)
COLUMNS: dict[Kind, tuple[str, ...]] = {kind: table.names for kind, table in LANDING.items()}
REQUIRED: dict[Kind, tuple[str, ...]] = {kind: table.required for kind, table in LANDING.items()}

SUFFIXES = (".csv", ".csv.gz", ".parquet")
_DAY_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}")


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
    days: dict[date, list[LandingFile]] = {}
    for path, day in _landed(landing_dir, kind):
        if isinstance(day, date) and (until is None or day <= until):
            stat = path.stat()
            days.setdefault(day, []).append(LandingFile(kind, day, path, stat.st_size, stat.st_mtime_ns))
    return days


def unused_files(landing_dir: str | Path, kind: Kind) -> list[tuple[str, str]]:
    """(name, why) of every entry of the `kind` folder that `scan` cannot use, sorted by name."""
    return [(f"{kind}/{path.name}", why) for path, why in _landed(landing_dir, kind) if isinstance(why, str)]


def _landed(landing_dir: str | Path, kind: Kind) -> list[tuple[Path, date | str]]:
    """Every entry of the `kind` folder by name, with its day or the reason it has none."""
    folder = Path(landing_dir) / kind
    return [(path, _day_of(path)) for path in sorted(folder.iterdir())] if folder.is_dir() else []


def _day_of(path: Path) -> date | str:
    """The day a landed file is for, or why it cannot be used (from its name; one stat for folders)."""
    prefix = _DAY_PREFIX.match(path.name)
    if not path.name.endswith(SUFFIXES):
        return "a folder, not a file" if path.is_dir() else "not .csv, .csv.gz or .parquet"
    if not prefix:
        return "no date in the name"
    try:
        return date.fromisoformat(prefix.group())
    except ValueError:
        return f"{prefix.group()} is not a date"


def fingerprint(path: Path) -> str:
    """Content fingerprint of a file (BLAKE2b, 128 bits)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def read_raw(file: LandingFile) -> pl.DataFrame:
    """Read one landed file as text columns plus the day, `source_file`, `source_row`, `extra`, `row_error`.

    Known columns missing from the file come back all null; unknown ones are packed into
    `extra` (JSON; nested Parquet values stay nested there). A CSV file polars cannot parse is
    read again row by row, so a ragged row fails alone (`row_error`). Raises `LandingFileError`
    for an unreadable file or missing required columns.
    """
    row_errors = None
    try:
        if file.path.suffix == ".parquet":
            frame = _text_columns(file.kind, pl.read_parquet(file.path))
        else:
            frame = pl.read_csv(file.path, infer_schema=False, raise_if_empty=False)
    except Exception as error:  # noqa: BLE001 - any reader failure is a file-level failure, unless rows explain it
        try:
            frame, row_errors = _read_csv_rows(file.path) if file.path.suffix != ".parquet" else (None, None)
        except (csv.Error, UnicodeDecodeError, OSError):
            frame = None
        if frame is None:
            raise LandingFileError(file.name, f"unreadable {_format(file)} ({_first_line(error)})") from None
    bookkeeping = frame.with_row_index("source_row", offset=1).select(
        pl.lit(file.day).alias(DAY_COLUMN[file.kind]),
        pl.lit(file.name).alias("source_file"),
        "source_row",
        pl.Series("row_error", row_errors, pl.Utf8) if row_errors else pl.lit(None, pl.Utf8).alias("row_error"),
    )
    return _conform(file.kind, file.name, frame, bookkeeping)


def _format(file: LandingFile) -> str:
    return next(suffix for suffix in SUFFIXES[::-1] if file.path.name.endswith(suffix))[1:]


def _text_columns(kind: Kind, frame: pl.DataFrame) -> pl.DataFrame:
    """Parquet columns as text; nested ones (struct, list) as they are for `extra`'s JSON, or as JSON text
    where the contract expects a plain value."""

    def text(column: str, dtype: pl.DataType) -> pl.Expr:
        if not dtype.is_nested():
            return pl.col(column).cast(pl.Utf8)
        if column.strip().lower() not in COLUMNS[kind]:
            return pl.col(column)
        return pl.struct(pl.col(column).alias("v")).struct.json_encode().str.json_path_match("$.v").alias(column)

    return frame.select(text(c, t) for c, t in frame.schema.items())


def _read_csv_rows(path: Path) -> tuple[pl.DataFrame, list[str | None]]:
    """A CSV file row by row: fields by position under the header, surplus ones in `fields_beyond_header`,
    and per row None or why it is ragged ("line 17: 10 fields, the header has 9")."""
    with (gzip.open if path.name.endswith(".gz") else open)(path, "rt", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        header = next(reader, [])
        width = len(header)
        rows, surplus, errors = [], [], []
        line = reader.line_num + 1
        for fields in reader:
            if fields:  # polars skips empty lines too
                rows.append([field or None for field in (fields + [""] * width)[:width]])
                surplus.append(fields[width:] or None)
                errors.append(
                    None if len(fields) == width else f"line {line}: {len(fields)} fields, the header has {width}"
                )
            line = reader.line_num + 1
    frame = pl.DataFrame(rows, schema=dict.fromkeys(header, pl.Utf8), orient="row")
    if any(surplus):
        frame = frame.with_columns(pl.Series("fields_beyond_header", surplus, pl.List(pl.Utf8)))
    return frame, errors


def row_count(file: LandingFile) -> int:
    """Data rows of a landed file, without reading its values where the format allows."""
    try:
        if file.path.suffix == ".parquet":
            return pl.scan_parquet(file.path).select(pl.len()).collect().item()
        return pl.scan_csv(file.path, infer_schema=False, raise_if_empty=False).select(pl.len()).collect().item()
    except pl.exceptions.PolarsError:
        return read_raw(file).height


def read_many(files: Sequence[LandingFile]) -> tuple[list[pl.DataFrame], list[LandingFileError]]:
    """Read landed files as `read_raw` does, one frame per group, and the errors of the files that failed.

    CSV files with the same header line are parsed in one multi-threaded scan: reading ~700 small
    daily files one by one costs about twice as much. If that scan fails, the group's files are
    read one by one, so each error names its file.
    """
    groups: dict[bytes | None, list[LandingFile]] = {}
    for file in files:
        groups.setdefault(_header(file) if file.path.suffix != ".parquet" else None, []).append(file)
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
    with (gzip.open if file.path.suffix == ".gz" else open)(file.path, "rb") as handle:
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
        "_path",
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("_path").alias("source_row"),
        pl.lit(None, pl.Utf8).alias("row_error"),
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
            bookkeeping.select("row_error"),
        ],
        how="horizontal",
    )


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
