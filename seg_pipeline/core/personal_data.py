"""Personal data by value: what looks like an email address or a phone number, and how it is removed.

The landing contract keeps name, email and phone in their own columns, but people type them
anywhere: into a region, a channel, an id. Free text that is published (attributes, quarantined
raw values, reasons, great-expectations samples, previews) is scrubbed: each email or phone
number in it is replaced by a marker saying what was removed. Ids are keys, not text: an id that
is an email or a formatted phone number is not scrubbed into a broken key but rejected
(`id_looks_personal`), while a bare run of digits stays a valid (numeric) id.

A phone number is 7 to 15 digits, optionally led by '+', with spaces, dashes, dots or parentheses
between them. ISO dates and timestamps, decimal numbers (amounts), years, 5-digit zip codes and
ids such as 'O123' are not phones: the separators of dates and of single-dot decimals are hidden
from the phone pattern while it runs. The patterns are Rust-regex (polars) and Python-`re`
compatible.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from seg_pipeline.core.schemas import LANDING, PERSONAL_COLUMNS, Kind

EMAIL_RE = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
PHONE_RE = r"(?:\+\(?|\(|\b)[0-9](?:[ .()\-]{0,2}[0-9]){6,14}\b"
EMAIL_MARK = "[removed: email]"
PHONE_MARK = "[removed: phone]"

#: while phones are sought, ISO dates and single-dot decimals are wrapped in letters (word characters, so a
#: phone can neither start nor end beside them); the letters are taken out again afterwards
_DATE_HIDER, _DECIMAL_HIDER = "\u01c2", "\u01c1"
_DATE_RE = r"\b([0-9]{4})-([0-9]{2})-([0-9]{2})"
_DECIMAL_RE = r"(^|[^0-9.])([0-9]+)\.([0-9]+)($|[^0-9.])"
#: a whole id that is a phone number: 7-15 digits with '+' or separators; a bare digit run, a decimal
#: or an ISO date is not one
_ID_PHONE_RE = r"^(?:\+\(?|\()?[0-9](?:[ .()\-]{0,2}[0-9]){6,14}$"
_NOT_ID_PHONE_RE = r"^(?:[0-9]+|[0-9]+\.[0-9]+|[0-9]{4}-[0-9]{2}-[0-9]{2})$"
_KEYS = ("order_id", "customer_id")
#: text without '@' or a digit holds neither: most values are skipped with this one cheap test
_CANDIDATE_CHARS = ["@", *"0123456789"]
#: likewise for ids: only those starting like a phone number or holding '@' can look personal
_ID_CANDIDATE_RE = r"^(?:[+(0-9]|[^@]*@)"


def scrub(text: pl.Expr) -> pl.Expr:
    """`text` with every email address and phone number replaced by EMAIL_MARK / PHONE_MARK."""
    d, m = _DATE_HIDER, _DECIMAL_HIDER
    hidden = (
        text.str.replace_all(EMAIL_RE, EMAIL_MARK)
        .str.replace_all(_DATE_RE, f"{d}${{1}}{d}${{2}}{d}${{3}}{d}")
        .str.replace_all(_DECIMAL_RE, f"${{1}}{m}${{2}}{m}${{3}}{m}${{4}}")
        .str.replace_all(PHONE_RE, PHONE_MARK)
    )
    dates = hidden.str.replace_all(f"{d}([0-9]+){d}([0-9]+){d}([0-9]+){d}", "${1}-${2}-${3}")
    return dates.str.replace_all(f"{m}([0-9]+){m}([0-9]+){m}", "${1}.${2}")


def id_looks_personal(key: pl.Expr) -> pl.Expr:
    """'email' or 'phone' where a (trimmed) id is or holds an email address or is a phone number, else null."""
    phone = key.str.contains(_ID_PHONE_RE) & ~key.str.contains(_NOT_ID_PHONE_RE)
    return pl.when(key.str.contains(EMAIL_RE)).then(pl.lit("email")).when(phone).then(pl.lit("phone"))


def scrub_id(key: pl.Expr) -> pl.Expr:
    """An id as published: the marker in place of an id that looks personal (see `id_looks_personal`)."""
    kind = id_looks_personal(key.str.strip_chars())
    return pl.when(kind.is_not_null()).then(pl.format("[removed: {}]", kind)).otherwise(key)


def id_kinds(ids: pl.Series) -> pl.Series:
    """`id_looks_personal` of each (trimmed) id; only ids starting like a phone or holding '@' are examined."""
    candidates = ids.str.contains(_ID_CANDIDATE_RE)
    kinds = pl.repeat(None, len(ids), dtype=pl.String, eager=True).alias(ids.name)
    if not candidates.any():
        return kinds
    rows = candidates.arg_true()
    return kinds.scatter(rows, pl.select(id_looks_personal(pl.lit(ids.gather(rows)))).to_series())


def scrub_columns(frame: pl.DataFrame, text: Sequence[str] = (), keys: Sequence[str] = ()) -> pl.DataFrame:
    """`frame` with its `text` columns scrubbed and the personal-looking ids of its `keys` columns replaced.

    Cheap on millions of rows: one parallel pass finds the columns holding '@' or a digit at all, then
    only their distinct such values are examined, and a column is rewritten only when one of them changes.
    """
    scrubbers = {**dict.fromkeys(text, scrub), **dict.fromkeys(keys, scrub_id)}
    if not scrubbers:
        return frame
    candidate = pl.col(list(scrubbers)).str.contains_any(_CANDIDATE_CHARS)
    flagged = [column for column, found in frame.select(candidate.any()).row(0, named=True).items() if found]
    for column in flagged:
        values = frame.get_column(column)
        values = values.filter(values.str.contains_any(_CANDIDATE_CHARS)).unique()
        new = pl.select(scrubbers[column](pl.lit(values))).to_series()
        changed = values != new
        if changed.any():
            frame = frame.with_columns(pl.col(column).replace(values.filter(changed), new.filter(changed)))
    return frame


def scrub_text(values: Sequence[object]) -> list[object]:
    """A few values (samples, messages) with strings scrubbed; other values as they are."""
    strings = pl.Series([v for v in values if isinstance(v, str)], dtype=pl.String)
    scrubbed = iter(pl.select(scrub(pl.lit(strings))).to_series().to_list())
    return [next(scrubbed) if isinstance(v, str) else v for v in values]


def publishable(frame: pl.DataFrame, kind: Kind) -> pl.DataFrame:
    """Rows of a `kind` table as they may be shown outside the working store (previews, the analyst file).

    The personal columns and the `extra` JSON are dropped; landed text and reasons are scrubbed,
    and ids that look personal replaced.
    """
    frame = frame.drop(*PERSONAL_COLUMNS, "extra", strict=False)
    text = [c for c in (*LANDING[kind].names, "reason") if frame.schema.get(c) == pl.String]
    return scrub_columns(frame, text=[c for c in text if c not in _KEYS], keys=[c for c in text if c in _KEYS])
