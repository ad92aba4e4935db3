"""The validation rules of landed orders and profiles: one table per kind.

Each `Rule` is defined once: its name, the great-expectations expectation(s) reporting it,
the vectorized polars predicate deciding each row, and the reason template written to the
quarantine table. Predicates and expectations both read the *prepared* frame built by
`prepare_orders` / `prepare_profiles`:

- landing columns trimmed, empty -> null; `status`, `customer_type`, `is_member` lower-cased,
  `currency` upper-cased (so "value in set" rules are case-insensitive for both engines);
- typed `<column>__<what>` columns computed by polars: the parsed value, null when the raw
  value is missing or invalid (GX checks value rules on those, so nulls are never counted twice);
- `row_error`: why landing found the row ragged ("line 17: 10 fields, the header has 9"), else null;
- `<key>__exact_duplicate` / `<key>__conflicting_duplicate` / `order_id__accepted_elsewhere`:
  the key where the row is such a duplicate, else null (relational rules GX cannot express);
  keys are compared trimmed, so an id with surrounding spaces is the same id (`<key>__padding`, added
  to the quarantined rows only, says so in their reason);
- `customer_id__looks_personal`: 'email' or 'phone' where the id looks like one (ids must be opaque).

Reasons quote landed values scrubbed of emails and phone numbers (`core.personal_data`), so they
can be shown anywhere.

Format rules are regular expressions that GX (pandas: RE2 or `re`) and polars (Rust regex)
evaluate identically: only `[0-9]`-style classes and non-capturing groups, anchored, on
trimmed strings. The date pattern is calendar-exact (month lengths, leap years), so "matches"
equals "parses".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from string import Formatter

import polars as pl

from seg_pipeline.core.personal_data import id_kinds, scrub
from seg_pipeline.core.schemas import INGESTED, LANDING, Kind

ORDER_COLUMNS = LANDING["orders"].names
PROFILE_COLUMNS = LANDING["profiles"].names
REQUIRED: dict[Kind, tuple[str, ...]] = {kind: table.required for kind, table in LANDING.items()}
_LANDED = frozenset(ORDER_COLUMNS + PROFILE_COLUMNS)
STATUSES = ("completed", "cancelled", "returned")
DEFAULT_STATUS = "completed"
CUSTOMER_TYPES = ("individual", "business", "government")
TRUE_VALUES = ("true", "1", "yes")
FALSE_VALUES = ("false", "0", "no")
MIN_BIRTH_YEAR = 1900
MIN_AGE_YEARS = 10

_D31 = "(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
_D30 = "(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
_D28 = "02-(?:0[1-9]|1[0-9]|2[0-8])"
_LEAP_DAY = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29"
_DATE = f"(?:[0-9]{{4}}-(?:{_D31}|{_D30}|{_D28})|{_LEAP_DAY})"
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:[.,][0-9]{1,9})?)?"
_OFFSET = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)"
#: ISO 8601 timestamp: date, 'T' or ' ', HH:MM[:SS[.fraction]], optional Z / +HH[:MM] offset
TIMESTAMP_RE = f"^{_DATE}[T ]{_TIME}{_OFFSET}?$"
#: ISO 8601 date, optionally followed by a time (which is ignored)
DATE_RE = f"^{_DATE}(?:[T ]{_TIME}{_OFFSET}?)?$"
#: plain decimal number: optional sign, at most 15 integer digits, optional fraction
DECIMAL_RE = r"^[+-]?(?:[0-9]{1,15}(?:\.[0-9]*)?|\.[0-9]+)$"
#: integer >= 1 below 10^9 (fits Int32); '3.0' accepted
POSITIVE_INT_RE = r"^\+?0*[1-9][0-9]{0,8}(?:\.0+)?$"
#: any integer below 10^9 in magnitude; '1980.0' accepted
INT_RE = r"^[+-]?[0-9]{1,9}(?:\.0+)?$"
CURRENCY_RE = "^[A-Z]{3}$"

#: GX kwargs may be callables of the validation settings (e.g. the configured currency)
Settings = Mapping[str, object]


@dataclass(frozen=True)
class Expect:
    """One GX expectation: class name in `great_expectations.expectations` and its kwargs."""

    type: str
    kwargs: Mapping[str, object] = field(default_factory=dict)

    def resolve(self, settings: Settings) -> dict[str, object]:
        """The kwargs with settings-dependent values filled in."""
        return {k: v(settings) if callable(v) else v for k, v in self.kwargs.items()}

    @property
    def columns(self) -> tuple[str, ...]:
        """The prepared-frame columns this expectation reads."""
        return tuple(str(self.kwargs[k]) for k in ("column", "column_A", "column_B") if k in self.kwargs)


@dataclass(frozen=True)
class Rule:
    """One validation rule.

    `fails` is the row-level failure predicate over the prepared frame (None: a file-level
    rule, enforced by `check_columns`). `reason` is the quarantine text; `{column}` placeholders
    are filled from the prepared frame. `after_row_rules` marks duplicate rules, which only
    look at rows passing every other rule.
    """

    name: str
    expectations: tuple[Expect, ...]
    fails: pl.Expr | None
    reason: str
    after_row_rules: bool = False

    def reason_expr(self) -> pl.Expr:
        """The reason as a polars expression over the prepared frame."""
        parts = list(Formatter().parse(self.reason))
        template = "".join(text + ("{}" if name is not None else "") for text, name, _, _ in parts)
        args = [_quoted(name).fill_null("null") for _, name, _, _ in parts if name is not None]
        return pl.format(template, *args) if args else pl.lit(self.reason)


def _c(name: str) -> pl.Expr:
    return pl.col(name)


def _quoted(name: str) -> pl.Expr:
    """A prepared column as a reason quotes it: landed text scrubbed of personal data."""
    text = _c(name).cast(pl.String)
    return scrub(text) if name in _LANDED else text


def _missing(column: str) -> pl.Expr:
    return _c(column).is_null()


def _mismatch(column: str, regex: str, parsed: str | None = None) -> pl.Expr:
    """Present but not matching `regex` (or, defensively, matching yet not parsed into `parsed`)."""
    bad = ~_c(column).str.contains(regex)
    return _c(column).is_not_null() & (bad | _c(parsed).is_null() if parsed else bad)


def _not_in(column: str, values: tuple[str, ...]) -> pl.Expr:
    return _c(column).is_not_null() & ~_c(column).is_in(list(values))


def _not_null(column: str) -> Expect:
    return Expect("ExpectColumnValuesToNotBeNull", {"column": column})


def _null(column: str) -> Expect:
    return Expect("ExpectColumnValuesToBeNull", {"column": column})


def _regex(column: str, regex: str) -> Expect:
    return Expect("ExpectColumnValuesToMatchRegex", {"column": column, "regex": regex})


def _in_set(column: str, values: tuple[str, ...] | Callable[[Settings], list[str]]) -> Expect:
    value_set = values if callable(values) else list(values)
    return Expect("ExpectColumnValuesToBeInSet", {"column": column, "value_set": value_set})


def _required(kind: Kind) -> Rule:
    return Rule(
        "required_columns",
        (Expect("ExpectTableColumnsToMatchSet", {"column_set": list(REQUIRED[kind]), "exact_match": False}),),
        None,
        "missing required column(s)",
    )


#: a CSV row with more or fewer fields than its header (`landing` says which line and how many)
_WELL_FORMED = Rule("row_well_formed", (_null("row_error"),), _c("row_error").is_not_null(), "{row_error}")


def _duplicate_rules(key: str, scope: str) -> tuple[Rule, Rule]:
    return (
        Rule(
            f"{key}_exact_duplicate",
            (_null(f"{key}__exact_duplicate"),),
            _c(f"{key}__exact_duplicate").is_not_null(),
            f"exact duplicate of row {{{key}__kept_row}} in {{{key}__kept_file}}{{{key}__padding}}",
            after_row_rules=True,
        ),
        Rule(
            f"{key}_unique",
            (_null(f"{key}__conflicting_duplicate"),),
            _c(f"{key}__conflicting_duplicate").is_not_null(),
            f"duplicate {key}{scope} with values differing from row {{{key}__kept_row}} in {{{key}__kept_file}}, "
            f"which is kept{{{key}__padding}}",
            after_row_rules=True,
        ),
    )


def _opaque_id(key: str) -> Rule:
    return Rule(
        f"{key}_opaque",
        (_null(f"{key}__looks_personal"),),
        _c(f"{key}__looks_personal").is_not_null(),
        f"{key} looks like personal data ({{{key}__looks_personal}}): ids must be opaque keys, "
        "not emails or phone numbers",
    )


ORDER_RULES: tuple[Rule, ...] = (
    _required("orders"),
    _WELL_FORMED,
    Rule("order_id_not_null", (_not_null("order_id"),), _missing("order_id"), "order_id is missing"),
    Rule("customer_id_not_null", (_not_null("customer_id"),), _missing("customer_id"), "customer_id is missing"),
    _opaque_id("customer_id"),
    Rule("order_ts_not_null", (_not_null("order_ts"),), _missing("order_ts"), "order_ts is missing"),
    Rule(
        "order_ts_iso8601",
        (_regex("order_ts", TIMESTAMP_RE),),
        _mismatch("order_ts", TIMESTAMP_RE, "order_ts__utc"),
        "order_ts '{order_ts}' is not an ISO 8601 timestamp",
    ),
    Rule(
        "order_ts_on_file_day",
        (
            Expect(
                "ExpectColumnPairValuesToBeEqual",
                {"column_A": "order_ts__utc_day", "column_B": "order_day", "ignore_row_if": "either_value_is_missing"},
            ),
        ),
        _c("order_ts__utc_day") != _c("order_day"),
        "order_ts '{order_ts}' is on {order_ts__utc_day} in UTC, not on the file's day {order_day}",
    ),
    Rule("amount_not_null", (_not_null("amount"),), _missing("amount"), "amount is missing"),
    Rule(
        "amount_numeric",
        (_regex("amount", DECIMAL_RE),),
        _mismatch("amount", DECIMAL_RE, "amount__value"),
        "amount '{amount}' is not a decimal number",
    ),
    Rule(
        "amount_non_negative",
        (Expect("ExpectColumnValuesToBeBetween", {"column": "amount__value", "min_value": 0}),),
        _c("amount__value") < 0,
        "amount '{amount}' is negative",
    ),
    Rule(
        "status_allowed",
        (_in_set("status", STATUSES),),
        _not_in("status", STATUSES),
        f"status '{{status}}' is not one of {'/'.join(STATUSES)}",
    ),
    Rule(
        "quantity_positive_integer",
        (_regex("quantity", POSITIVE_INT_RE),),
        _mismatch("quantity", POSITIVE_INT_RE, "quantity__value"),
        "quantity '{quantity}' is not an integer >= 1",
    ),
    Rule(
        "currency_code",
        (_regex("currency", CURRENCY_RE),),
        _mismatch("currency", CURRENCY_RE),
        "currency '{currency}' is not a 3-letter ISO 4217 code",
    ),
    Rule(
        "currency_configured",
        (_in_set("currency__code", lambda s: [str(s["currency"])]),),
        _c("currency__code") != _c("currency__configured"),
        "currency {currency__code} is not the configured {currency__configured}: no FX rates to convert it",
    ),
    Rule(
        "order_id_not_accepted_before",
        (_null("order_id__accepted_elsewhere"),),
        _c("order_id__accepted_elsewhere").is_not_null(),
        "order_id already accepted on {order_id__accepted_on}{order_id__padding}",
    ),
    *_duplicate_rules("order_id", ""),
)

PROFILE_RULES: tuple[Rule, ...] = (
    _required("profiles"),
    _WELL_FORMED,
    Rule("customer_id_not_null", (_not_null("customer_id"),), _missing("customer_id"), "customer_id is missing"),
    _opaque_id("customer_id"),
    Rule(
        "signup_date_iso8601",
        (_regex("signup_date", DATE_RE),),
        _mismatch("signup_date", DATE_RE, "signup_date__value"),
        "signup_date '{signup_date}' is not an ISO 8601 date (YYYY-MM-DD)",
    ),
    Rule(
        "birth_year_integer",
        (_regex("birth_year", INT_RE),),
        _mismatch("birth_year", INT_RE, "birth_year__value"),
        "birth_year '{birth_year}' is not an integer",
    ),
    Rule(
        "birth_year_not_before_1900",
        (Expect("ExpectColumnValuesToBeBetween", {"column": "birth_year__value", "min_value": MIN_BIRTH_YEAR}),),
        _c("birth_year__value") < MIN_BIRTH_YEAR,
        f"birth_year {{birth_year__value}} is before {MIN_BIRTH_YEAR}",
    ),
    Rule(
        "birth_year_at_least_10_years_before_snapshot",
        (
            Expect(
                "ExpectColumnPairValuesAToBeGreaterThanB",
                {
                    "column_A": "birth_year__max",
                    "column_B": "birth_year__value",
                    "or_equal": True,
                    "ignore_row_if": "either_value_is_missing",
                },
            ),
        ),
        _c("birth_year__value") > _c("birth_year__max"),
        f"birth_year {{birth_year__value}} is after {{birth_year__max}} (snapshot year - {MIN_AGE_YEARS})",
    ),
    Rule(
        "customer_type_allowed",
        (_in_set("customer_type", CUSTOMER_TYPES),),
        _not_in("customer_type", CUSTOMER_TYPES),
        f"customer_type '{{customer_type}}' is not one of {'/'.join(CUSTOMER_TYPES)}",
    ),
    Rule(
        "is_member_boolean",
        (_in_set("is_member", TRUE_VALUES + FALSE_VALUES),),
        _not_in("is_member", TRUE_VALUES + FALSE_VALUES),
        f"is_member '{{is_member}}' is not a boolean ({'/'.join(TRUE_VALUES + FALSE_VALUES)})",
    ),
    *_duplicate_rules("customer_id", " in snapshot {snapshot_date}"),
)

RULES: dict[Kind, tuple[Rule, ...]] = {"orders": ORDER_RULES, "profiles": PROFILE_RULES}


def _normalized(
    frame: pl.DataFrame, columns: tuple[str, ...], lower: tuple[str, ...] = (), upper: tuple[str, ...] = ()
) -> pl.DataFrame:
    """Landing text trimmed (tolerates CRLF leftovers and padding), empty -> null, case-folded."""
    frame = frame.with_columns(pl.col(columns).str.strip_chars())

    def folded(column: str) -> pl.Expr:
        text = _c(column)
        return text.str.to_lowercase() if column in lower else text.str.to_uppercase() if column in upper else text

    return frame.with_columns(pl.when(_c(c).str.len_bytes() > 0).then(folded(c)).alias(c) for c in columns)


def _matched(column: str, regex: str) -> pl.Expr:
    """The column where it matches `regex`, else null."""
    return pl.when(_c(column).str.contains(regex)).then(_c(column))


def _with_timestamp_utc(frame: pl.DataFrame, column: str, out: str) -> pl.DataFrame:
    """Add `out`: valid ISO 8601 text in `column` as naive UTC Datetime("us"), else null.

    The common 'YYYY-MM-DDTHH:MM:SS' (no offset) is parsed directly; the other valid forms go
    through `_parse_iso_timestamps`, which only sees those rows.
    """
    text = _c(column)
    canonical = text.str.contains(TIMESTAMP_RE) & (text.str.len_bytes() == 19) & (text.str.slice(10, 1) == "T")
    frame = frame.with_columns(
        pl.when(canonical).then(text.str.to_datetime("%Y-%m-%dT%H:%M:%S", time_unit="us", strict=False)).alias(out)
    )
    other = (pl.col(out).is_null() & text.is_not_null()).alias("_ts_other")
    if not frame.select(other.any()).item():
        return frame
    frame = frame.with_row_index("_ts_index")
    parsed = _parse_iso_timestamps(frame.filter(other).select("_ts_index", column), column, out)
    return frame.update(parsed, on="_ts_index").drop("_ts_index")


def _parse_iso_timestamps(frame: pl.DataFrame, column: str, out: str) -> pl.DataFrame:
    """Add `out` to `frame`: any valid ISO 8601 text in `column` as naive UTC, else null.

    Valid text is 'YYYY-MM-DD?HH:MM' + optional ':SS' + optional '.fraction' + optional offset,
    rebuilt as 'YYYY-MM-DD HH:MM:SS.f+HHMM' (naive -> +00:00) for one chrono parse.
    """
    rest, tail, tz = "_ts_rest", "_ts_tail", "_ts_tz"
    valid = _c(column).str.contains(TIMESTAMP_RE)
    frame = frame.with_columns(pl.when(valid).then(_c(column).str.slice(16)).alias(rest))
    has_seconds = _c(rest).str.starts_with(":")
    frame = frame.with_columns(pl.when(has_seconds).then(_c(rest).str.slice(3)).otherwise(_c(rest)).alias(tail))
    frame = frame.with_columns(_c(tail).str.strip_chars_start(".,0123456789").alias(tz))
    offset = (
        pl.when(_c(tz).is_in(["", "Z", "z"])).then(pl.lit("+00:00"))
        .when(_c(tz).str.len_bytes() == 3).then(_c(tz) + "00")
        .otherwise(_c(tz))
    )  # fmt: skip
    text = pl.concat_str(
        _c(column).str.slice(0, 10),
        pl.lit(" "),
        _c(column).str.slice(11, 5),
        pl.when(has_seconds).then(_c(rest).str.slice(0, 3)).otherwise(pl.lit(":00")),
        _c(tail).str.head(_c(tail).str.len_bytes() - _c(tz).str.len_bytes()).str.replace(",", ".", literal=True),
        offset,
    )
    parsed = text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%z", time_unit="us", strict=False)
    return frame.with_columns(parsed.dt.replace_time_zone(None).alias(out)).drop(rest, tail, tz)


def _integer(column: str, regex: str) -> pl.Expr:
    return _matched(column, regex).str.replace(r"\.0+$", "").cast(pl.Int32, strict=False)


def prepare_orders(df: pl.DataFrame, currency: str, already_accepted: pl.DataFrame | None) -> pl.DataFrame:
    """Normalized and typed order columns plus the derived columns the rules read.

    `df` holds the raw Utf8 landing columns and `order_day`, sorted; `already_accepted` the
    (order_id, order_day) accepted on days outside the batch (days inside it are ignored).
    """
    prepared = _normalized(
        df.select("_row", "source_file", "source_row", "order_day", "row_error", *ORDER_COLUMNS),
        ORDER_COLUMNS,
        lower=("status",),
        upper=("currency",),
    )
    prepared = _with_timestamp_utc(prepared, "order_ts", "order_ts__utc").with_columns(
        _c("order_ts__utc").dt.date().alias("order_ts__utc_day"),
        _matched("amount", DECIMAL_RE).cast(pl.Float64, strict=False).alias("amount__value"),
        _integer("quantity", POSITIVE_INT_RE).alias("quantity__value"),
        pl.when(_c("currency").is_null()).then(pl.lit(currency))
        .otherwise(_matched("currency", CURRENCY_RE)).alias("currency__code"),
        pl.lit(currency).alias("currency__configured"),
    )  # fmt: skip
    prepared = prepared.with_columns(_looks_personal(prepared))
    prior = _prior_acceptance(already_accepted, df.get_column("order_day").unique())
    prepared = prepared.join(prior, on="order_id", how="left", maintain_order="left")
    return prepared.with_columns(
        pl.when(_c("order_id__accepted_on").is_not_null()).then(_c("order_id")).alias("order_id__accepted_elsewhere")
    )


def _prior_acceptance(already_accepted: pl.DataFrame | None, batch_days: pl.Series) -> pl.DataFrame:
    """Earliest day each order_id was accepted on, outside the batch's days."""
    schema = {"order_id": pl.String, "order_id__accepted_on": pl.Date}
    if already_accepted is None or already_accepted.height == 0:
        return pl.DataFrame(schema=schema)
    return (
        already_accepted.select(_c("order_id").cast(pl.String), _c("order_day").cast(pl.Date))
        .filter(_c("order_id").is_not_null() & ~_c("order_day").is_in(batch_days.implode()))
        .group_by("order_id")
        .agg(_c("order_day").min().alias("order_id__accepted_on"))
    )


def prepare_profiles(df: pl.DataFrame) -> pl.DataFrame:
    """Normalized and typed profile columns plus the derived columns the rules read."""
    prepared = _normalized(
        df.select("_row", "source_file", "source_row", "snapshot_date", "row_error", *PROFILE_COLUMNS),
        PROFILE_COLUMNS,
        lower=("customer_type", "is_member"),
    ).with_columns(
        _matched("signup_date", DATE_RE).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
        .alias("signup_date__value"),
        _integer("birth_year", INT_RE).alias("birth_year__value"),
        (_c("snapshot_date").dt.year() - MIN_AGE_YEARS).cast(pl.Int32).alias("birth_year__max"),
        pl.when(_c("is_member").is_in(list(TRUE_VALUES))).then(True)
        .when(_c("is_member").is_in(list(FALSE_VALUES))).then(False)
        .alias("is_member__value"),
    )  # fmt: skip
    return prepared.with_columns(_looks_personal(prepared))


def _looks_personal(prepared: pl.DataFrame) -> pl.Series:
    return id_kinds(prepared.get_column("customer_id")).alias("customer_id__looks_personal")


#: accepted free-text attributes, scrubbed of emails and phone numbers (ids are opaque by rule, the
#: personal columns never leave the working store)
FREE_TEXT: dict[Kind, tuple[str, ...]] = {"orders": ("channel", "category"), "profiles": ("gender", "region")}

#: typed accepted values: column of the accepted table -> expression over the prepared frame
_ACCEPTED_VALUES: dict[Kind, dict[str, pl.Expr]] = {
    "orders": {
        "order_id": _c("order_id"),
        "customer_id": _c("customer_id"),
        "order_ts": _c("order_ts__utc"),
        "order_day": _c("order_day"),
        "amount": _c("amount__value"),
        "currency": _c("currency__code"),
        "status": _c("status").fill_null(DEFAULT_STATUS),
        "channel": _c("channel"),
        "category": _c("category"),
        "quantity": _c("quantity__value"),
        "source_file": _c("source_file"),
        "source_row": _c("source_row"),
    },
    "profiles": {
        "snapshot_date": _c("snapshot_date"),
        "customer_id": _c("customer_id"),
        "signup_date": _c("signup_date__value"),
        "birth_year": _c("birth_year__value"),
        "gender": _c("gender"),
        "region": _c("region"),
        "customer_type": _c("customer_type"),
        "is_member": _c("is_member__value"),
        "name": _c("name"),
        "email": _c("email"),
        "phone": _c("phone"),
        "source_file": _c("source_file"),
        "source_row": _c("source_row"),
    },
}
#: the accepted tables' columns in the registry's order, each with its expression
ACCEPTED: dict[Kind, dict[str, pl.Expr]] = {
    kind: {c: values[c] for c in INGESTED[kind][1].names} for kind, values in _ACCEPTED_VALUES.items()
}
