"""Validation core: rule verdicts (polars), GX report agreement, no-loss invariant."""

from __future__ import annotations

import json
import random
import re
from datetime import date, datetime

import polars as pl
import pytest

from seg_pipeline.core import validation as V
from seg_pipeline.core.validation import rules as R

DAY = date(2026, 1, 2)
FILE = "orders/2026-01-02.csv"
PFILE = "profiles/2026-01-02.csv"
GOOD_ORDER = {
    "order_id": "o1", "customer_id": "c1", "order_ts": "2026-01-02T10:00:00", "amount": "12.50",
    "currency": "USD", "status": "completed", "channel": "web", "category": "books", "quantity": "1",
}  # fmt: skip
GOOD_PROFILE = {
    "customer_id": "c1", "signup_date": "2024-05-01", "birth_year": "1980", "gender": "f", "region": "north",
    "customer_type": "individual", "is_member": "true", "name": "Ann", "email": "a@x.org", "phone": "1",
}  # fmt: skip


def orders(*rows: dict, day: date = DAY, file: str = FILE) -> pl.DataFrame:
    """A raw orders batch of one file: each row is GOOD_ORDER with overrides."""
    data = [{**GOOD_ORDER, **row} for row in rows]
    return pl.DataFrame(data, schema={c: pl.String for c in (*R.ORDER_COLUMNS, "row_error")}).with_columns(
        pl.lit(file).alias("source_file"),
        pl.int_range(1, len(data) + 1, dtype=pl.Int64).alias("source_row"),
        pl.lit(day).alias("order_day"),
        pl.lit(None, pl.String).alias("extra"),
    )


def profiles(*rows: dict, day: date = DAY, file: str = PFILE) -> pl.DataFrame:
    data = [{**GOOD_PROFILE, **row} for row in rows]
    return pl.DataFrame(data, schema={c: pl.String for c in (*R.PROFILE_COLUMNS, "row_error")}).with_columns(
        pl.lit(file).alias("source_file"),
        pl.int_range(1, len(data) + 1, dtype=pl.Int64).alias("source_row"),
        pl.lit(day).alias("snapshot_date"),
        pl.lit(None, pl.String).alias("extra"),
    )


def reasons(result: V.ValidationResult) -> list[str]:
    return result.quarantined.get_column("reason").to_list()


# --- accepted input variants -------------------------------------------------------------------


TIMESTAMPS = [
        ("2026-01-02T10:00:00", datetime(2026, 1, 2, 10)),
        ("2026-01-02 10:00:00", datetime(2026, 1, 2, 10)),
        ("2026-01-02T10:00:00Z", datetime(2026, 1, 2, 10)),
        ("2026-01-02T12:00:00+02:00", datetime(2026, 1, 2, 10)),
        ("2026-01-02T04:30:00-0530", datetime(2026, 1, 2, 10)),
        ("2026-01-02T13:00+03", datetime(2026, 1, 2, 10)),
        ("2026-01-02T10:00", datetime(2026, 1, 2, 10)),
        ("2026-01-02T10:00:00.123456789", datetime(2026, 1, 2, 10, 0, 0, 123456)),
        ("2026-01-02 10:00:00,5+00:00", datetime(2026, 1, 2, 10, 0, 0, 500000)),
        ("2026-01-02 10:00:00.000000+00:00", datetime(2026, 1, 2, 10)),  # polars/pyarrow text of tz-aware ts
]


@pytest.mark.parametrize(("text", "utc"), TIMESTAMPS)
def test_timestamps_are_parsed_and_converted_to_utc(text: str, utc: datetime) -> None:
    result = V.validate_orders(orders({"order_ts": text}), run_gx=False)
    assert reasons(result) == []
    assert result.accepted.get_column("order_ts").to_list() == [utc]


def test_canonical_and_other_timestamp_forms_in_one_batch_keep_their_rows() -> None:
    """The canonical form takes a fast path and the others a slower one; each row keeps its own value."""
    forms = [*TIMESTAMPS, ("not-a-date", None), *reversed(TIMESTAMPS)]
    rows = [{"order_id": f"o{i}", "order_ts": text} for i, (text, _) in enumerate(forms)]
    result = V.validate_orders(orders(*rows), run_gx=False)
    assert reasons(result) == ["order_ts 'not-a-date' is not an ISO 8601 timestamp"]
    parsed = dict(result.accepted.select("order_id", "order_ts").iter_rows())
    assert parsed == {f"o{i}": utc for i, (_, utc) in enumerate(forms) if utc is not None}


def test_offset_conversion_decides_the_day() -> None:
    raw = orders(
        {"order_id": "a", "order_ts": "2026-01-02T01:30:00+02:00"},  # 2026-01-01 23:30 UTC
        {"order_id": "b", "order_ts": "2026-01-01T23:30:00-01:00"},  # 2026-01-02 00:30 UTC
        {"order_id": "c", "order_ts": "2026-01-02T23:30:00-01:00"},  # 2026-01-03 00:30 UTC
    )
    result = V.validate_orders(raw, run_gx=False)
    assert result.accepted.get_column("order_id").to_list() == ["b"]
    assert result.accepted.get_column("order_ts").to_list() == [datetime(2026, 1, 2, 0, 30)]
    assert reasons(result) == [
        "order_ts '2026-01-02T01:30:00+02:00' is on 2026-01-01 in UTC, not on the file's day 2026-01-02",
        "order_ts '2026-01-02T23:30:00-01:00' is on 2026-01-03 in UTC, not on the file's day 2026-01-02",
    ]


def test_defaults_normalisation_and_accepted_schema() -> None:
    raw = orders(
        {"order_id": "a", "currency": None, "status": None, "amount": "12", "quantity": None},
        {"order_id": "b", "currency": " usd ", "status": " Cancelled\r", "quantity": "3.0", "channel": ""},
    )
    result = V.validate_orders(raw)
    assert result.quarantined.height == 0
    assert dict(result.accepted.schema) == {
        "order_id": pl.String, "customer_id": pl.String, "order_ts": pl.Datetime("us"), "order_day": pl.Date,
        "amount": pl.Float64, "currency": pl.String, "status": pl.String, "channel": pl.String,
        "category": pl.String, "quantity": pl.Int32, "source_file": pl.String, "source_row": pl.Int64,
    }  # fmt: skip
    rows = result.accepted.select("currency", "status", "amount", "quantity", "channel").rows()
    assert rows == [("USD", "completed", 12.0, None, "web"), ("USD", "cancelled", 12.5, 3, None)]


def test_default_currency_is_the_configured_one() -> None:
    raw = orders({"order_id": "a", "currency": None}, {"order_id": "b", "currency": "USD"})
    result = V.validate_orders(raw, currency="eur", run_gx=False)
    assert result.accepted.select("order_id", "currency").rows() == [("a", "EUR")]
    assert reasons(result) == ["currency USD is not the configured EUR: no FX rates to convert it"]


# --- one test per kind of bad input ------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"order_id": None}, "order_id is missing"),
        ({"order_id": "  "}, "order_id is missing"),
        ({"customer_id": ""}, "customer_id is missing"),
        ({"order_ts": None}, "order_ts is missing"),
        ({"order_ts": "02/01/2026 10:00"}, "order_ts '02/01/2026 10:00' is not an ISO 8601 timestamp"),
        ({"order_ts": "2026-02-30T10:00:00"}, "order_ts '2026-02-30T10:00:00' is not an ISO 8601 timestamp"),
        ({"order_ts": "2026-01-02"}, "order_ts '2026-01-02' is not an ISO 8601 timestamp"),
        ({"order_ts": "2026-01-02T24:00:00"}, "order_ts '2026-01-02T24:00:00' is not an ISO 8601 timestamp"),
        (
            {"order_ts": "2026-01-03T00:00:00"},
            "order_ts '2026-01-03T00:00:00' is on 2026-01-03 in UTC, not on the file's day 2026-01-02",
        ),
        ({"amount": None}, "amount is missing"),
        ({"amount": "12,50"}, "amount '12,50' is not a decimal number"),
        ({"amount": "nan"}, "amount 'nan' is not a decimal number"),
        ({"amount": "-0.01"}, "amount '-0.01' is negative"),
        ({"status": "shipped"}, "status 'shipped' is not one of completed/cancelled/returned"),
        ({"quantity": "0"}, "quantity '0' is not an integer >= 1"),
        ({"quantity": "1.5"}, "quantity '1.5' is not an integer >= 1"),
        ({"quantity": "-2"}, "quantity '-2' is not an integer >= 1"),
        ({"currency": "dollar"}, "currency 'DOLLAR' is not a 3-letter ISO 4217 code"),
        ({"currency": "eur"}, "currency EUR is not the configured USD: no FX rates to convert it"),
    ],
)
def test_bad_order_is_quarantined_with_its_reason(override: dict, reason: str) -> None:
    raw = orders({"order_id": "ok"}, {"order_id": "bad", **override})
    result = V.validate_orders(raw, run_gx=False)
    assert (result.accepted.height, result.quarantined.height) == (1, 1)
    assert reasons(result) == [reason]
    assert result.quarantined.get_column("source_row").to_list() == [2]


def test_all_failed_rules_are_reported_and_raw_values_kept() -> None:
    raw = orders({"order_id": " x ", "customer_id": None, "amount": "-3", "status": "Lost"})
    raw = raw.with_columns(pl.lit('{"note": "hi"}').alias("extra"))
    result = V.validate_orders(raw, run_gx=False)
    assert reasons(result) == [
        "customer_id is missing; amount '-3' is negative; status 'lost' is not one of completed/cancelled/returned"
    ]
    row = result.quarantined.row(0, named=True)
    assert (row["order_id"], row["status"], row["extra"], row["order_day"]) == (" x ", "Lost", '{"note": "hi"}', DAY)


# --- duplicates --------------------------------------------------------------------------------


def test_exact_duplicate_is_accepted_once_and_quarantined_once() -> None:
    result = V.validate_orders(orders({}, {}), run_gx=False)
    assert result.accepted.select("order_id", "source_row").rows() == [("o1", 1)]
    assert result.quarantined.get_column("source_row").to_list() == [2]
    assert reasons(result) == [f"exact duplicate of row 1 in {FILE}"]


def test_conflicting_duplicate_first_by_day_file_row_wins() -> None:
    raw = pl.concat(
        [
            orders({"amount": "5"}, file="orders/2026-01-02_b.csv"),
            orders({"order_id": "x"}, {"amount": "7"}, file="orders/2026-01-02_a.csv"),
        ]
    )
    result = V.validate_orders(raw, run_gx=False)
    assert result.accepted.select("source_file", "source_row", "amount").rows() == [
        ("orders/2026-01-02_a.csv", 1, 12.5),
        ("orders/2026-01-02_a.csv", 2, 7.0),
    ]
    assert reasons(result) == [
        "duplicate order_id with values differing from row 2 in orders/2026-01-02_a.csv, which is kept"
    ]


def test_duplicate_of_an_invalid_row_does_not_block_the_valid_one() -> None:
    result = V.validate_orders(orders({"amount": "oops"}, {}), run_gx=False)
    assert result.accepted.get_column("source_row").to_list() == [2]
    assert reasons(result) == ["amount 'oops' is not a decimal number"]


def test_duplicate_order_id_across_days_of_one_batch() -> None:
    day2 = date(2026, 1, 3)
    raw = pl.concat(
        [
            orders({"order_ts": "2026-01-03T09:00:00"}, day=day2, file="orders/2026-01-03.csv"),
            orders({}),
        ]
    )
    result = V.validate_orders(raw, run_gx=False)
    assert result.accepted.select("order_day", "order_id").rows() == [(DAY, "o1")]
    assert result.quarantined.get_column("order_day").to_list() == [day2]
    assert reasons(result) == [f"duplicate order_id with values differing from row 1 in {FILE}, which is kept"]


def test_order_id_already_accepted_on_another_day() -> None:
    already = pl.DataFrame(
        {"order_id": ["o1", "o1", "o2", "o3"], "order_day": [date(2025, 12, 31), date(2025, 12, 30), DAY, DAY]}
    )
    raw = orders({"order_id": "o1"}, {"order_id": "o2"}, {"order_id": "o4"})
    result = V.validate_orders(raw, already_accepted=already, run_gx=False)
    # o2 on the batch's own day is being re-ingested: not a conflict
    assert result.accepted.get_column("order_id").to_list() == ["o2", "o4"]
    assert reasons(result) == ["order_id already accepted on 2025-12-30"]


def test_profile_duplicates_are_per_snapshot() -> None:
    raw = pl.concat(
        [
            profiles({}, {}, {"region": "south"}),
            profiles({}, day=date(2026, 1, 3), file="profiles/2026-01-03.csv"),
        ]
    )
    result = V.validate_profiles(raw, run_gx=False)
    assert result.accepted.select("snapshot_date", "customer_id").rows() == [(DAY, "c1"), (date(2026, 1, 3), "c1")]
    assert reasons(result) == [
        f"exact duplicate of row 1 in {PFILE}",
        f"duplicate customer_id in snapshot 2026-01-02 with values differing from row 1 in {PFILE}, which is kept",
    ]


def test_ids_with_surrounding_spaces_are_the_same_id_and_the_reason_says_so() -> None:
    result = V.validate_orders(orders({}, {"order_id": " o1 "}, {"order_id": "o1\t", "amount": "3"}), run_gx=False)
    assert result.accepted.select("order_id", "source_row").rows() == [("o1", 1)]
    note = " (order_ids are compared without surrounding spaces)"
    assert reasons(result) == [
        f"exact duplicate of row 1 in {FILE}{note}",
        f"duplicate order_id with values differing from row 1 in {FILE}, which is kept{note}",
    ]
    already = pl.DataFrame({"order_id": ["o9"], "order_day": [date(2025, 12, 31)]})
    again = V.validate_orders(orders({"order_id": " o9"}), already_accepted=already, run_gx=False)
    assert reasons(again) == [f"order_id already accepted on 2025-12-31{note}"]
    snapshot = V.validate_profiles(profiles({}, {"customer_id": " c1 ", "region": "south"}), run_gx=False)
    assert snapshot.accepted.get_column("customer_id").to_list() == ["c1"]
    assert reasons(snapshot) == [
        f"duplicate customer_id in snapshot 2026-01-02 with values differing from row 1 in {PFILE}, which is kept"
        " (customer_ids are compared without surrounding spaces)"
    ]


def test_a_customer_id_that_is_an_email_or_phone_is_quarantined_numeric_ids_are_not() -> None:
    result = V.validate_orders(
        orders(
            {"order_id": "o1", "customer_id": "jane@example.com"},
            {"order_id": "o2", "customer_id": "+1 555 123 4567"},
            {"order_id": "o3", "customer_id": "10023456"},
        ),
        run_gx=False,
    )
    assert result.accepted.get_column("customer_id").to_list() == ["10023456"]
    assert reasons(result) == [
        "customer_id looks like personal data (email): ids must be opaque keys, not emails or phone numbers",
        "customer_id looks like personal data (phone): ids must be opaque keys, not emails or phone numbers",
    ]
    snapshot = V.validate_profiles(profiles({"customer_id": "(555) 123-4567"}), run_gx=False)
    assert snapshot.accepted.is_empty() and "ids must be opaque" in reasons(snapshot)[0]


def test_accepted_free_text_and_reasons_are_scrubbed_of_emails_and_phones() -> None:
    result = V.validate_orders(
        orders(
            {"channel": "+1 555 123 4567", "category": "for jane@example.com"},
            {"order_id": "o2", "status": "a@b.co"},
        ),
        run_gx=False,
    )
    assert result.accepted.select("channel", "category").rows() == [("[removed: phone]", "for [removed: email]")]
    assert reasons(result) == ["status '[removed: email]' is not one of completed/cancelled/returned"]
    snapshot = V.validate_profiles(profiles({"region": "jane@example.com", "gender": "555-123-4567"}), run_gx=False)
    assert snapshot.accepted.select("region", "gender", "email").rows() == [
        ("[removed: email]", "[removed: phone]", "a@x.org")  # the personal columns stay for matching
    ]


# --- profiles ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"customer_id": None}, "customer_id is missing"),
        ({"signup_date": "2023-02-29"}, "signup_date '2023-02-29' is not an ISO 8601 date (YYYY-MM-DD)"),
        ({"birth_year": "nineteen"}, "birth_year 'nineteen' is not an integer"),
        ({"birth_year": "1899"}, "birth_year 1899 is before 1900"),
        ({"birth_year": "2017"}, "birth_year 2017 is after 2016 (snapshot year - 10)"),
        ({"customer_type": "alien"}, "customer_type 'alien' is not one of individual/business/government"),
        ({"is_member": "maybe"}, "is_member 'maybe' is not a boolean (true/1/yes/false/0/no)"),
    ],
)
def test_bad_profile_is_quarantined_with_its_reason(override: dict, reason: str) -> None:
    bad = {"customer_id": "bad", **override}
    result = V.validate_profiles(profiles({"customer_id": "ok"}, bad), run_gx=False)
    assert (result.accepted.height, result.quarantined.height) == (1, 1)
    assert reasons(result) == [reason]


def test_profile_values_are_typed_and_optional_fields_may_be_null() -> None:
    raw = profiles(
        {"customer_id": "a", "is_member": "YES", "customer_type": " Business ", "birth_year": "2016.0"},
        {"customer_id": "b", "is_member": "0", "signup_date": "2024-02-29T08:00:00", "birth_year": None,
         "customer_type": None, "name": None},
    )  # fmt: skip
    result = V.validate_profiles(raw)
    assert result.quarantined.height == 0
    assert result.accepted.select("customer_id", "is_member", "customer_type", "birth_year", "signup_date").rows() == [
        ("a", True, "business", 2016, date(2024, 5, 1)),
        ("b", False, None, None, date(2024, 2, 29)),
    ]
    assert result.accepted.schema["birth_year"] == pl.Int32


# --- file-level schema -------------------------------------------------------------------------


def test_missing_required_column_names_the_file_and_column() -> None:
    with pytest.raises(V.LandingSchemaError) as error:
        V.check_columns("orders", ["\ufefforder_id", "customer_id", "order_ts", "currency"], "orders/2026-01-02.csv")
    message = str(error.value)
    assert message.startswith("orders/2026-01-02.csv: ") and "amount" in message and "\n" not in message
    assert error.value.source_file == "orders/2026-01-02.csv"
    V.check_columns("orders", ["\ufefforder_id", "customer_id", "order_ts", " amount "], "f.csv")  # BOM tolerated
    expected = r"^profiles/x\.csv: missing required profiles column\(s\): customer_id"
    with pytest.raises(V.LandingSchemaError, match=expected):
        V.check_columns("profiles", ["name"], "profiles/x.csv")


def test_validate_raises_schema_error_for_a_batch_lacking_a_required_column() -> None:
    with pytest.raises(V.LandingSchemaError, match=rf"^{FILE}: .*order_ts"):
        V.validate_orders(orders({}).drop("order_ts"))


# --- great-expectations report -----------------------------------------------------------------

DIRTY_ORDERS = [
    {"order_id": None},
    {"customer_id": None},
    {"order_ts": None},
    {"order_ts": "yesterday"},
    {"order_ts": "2024-02-30T00:00:00"},
    {"order_ts": "2026-01-01T23:00:00Z"},
    {"order_ts": "2026-01-02T00:30:00+01:00"},
    {"amount": None},
    {"amount": "1e3"},
    {"amount": "-1"},
    {"status": "open"},
    {"quantity": "0"},
    {"currency": "US"},
    {"currency": "GBP"},
    {"order_id": "seen"},
    {"order_id": "dup"},
    {"order_id": "dup"},
    {"order_id": "dup", "amount": "99"},
    {"order_id": "fine", "currency": None, "status": None, "quantity": None},
    {"row_error": "line 21: 10 fields, the header has 9"},  # a ragged CSV row, as landing marks it
    {"customer_id": "jane.doe@example.com"},
]


@pytest.fixture(scope="module")
def dirty_orders() -> V.ValidationResult:
    raw = orders(*[{"order_id": f"r{i}", **row} for i, row in enumerate(DIRTY_ORDERS)])
    already = pl.DataFrame({"order_id": ["seen"], "order_day": [date(2025, 6, 1)]})
    return V.validate_orders(raw, already_accepted=already)


def test_gx_counts_equal_polars_counts_for_every_rule(dirty_orders: V.ValidationResult) -> None:
    report = dirty_orders.expectations
    row_rules = [r.name for r in V.ORDER_RULES if r.fails is not None]
    assert [e["rule"] for e in report] == [r.name for r in V.ORDER_RULES for _ in r.expectations]
    counted = {e["rule"]: (e["unexpected_count"], e["failed_rows"]) for e in report if e["failed_rows"] is not None}
    assert set(counted) == set(row_rules)
    assert all(gx == pl_count for gx, pl_count in counted.values()), counted
    assert all(pl_count >= 1 for _, pl_count in counted.values()), "the dirty batch must break every rule"
    # each failing reason appears in the quarantine as often as polars counted it
    assert sum(n for _, n in counted.values()) == sum(r.count("; ") + 1 for r in reasons(dirty_orders))


def test_gx_report_has_observed_and_unexpected_details(dirty_orders: V.ValidationResult) -> None:
    by_rule = {e["rule"]: e for e in dirty_orders.expectations}
    json.dumps(dirty_orders.expectations)  # JSON-serialisable
    columns = by_rule["required_columns"]
    assert columns["success"] and set(R.REQUIRED["orders"]) <= set(columns["observed_value"])
    status = by_rule["status_allowed"]
    assert status["success"] is False and status["column"] == "status"
    assert status["partial_unexpected_list"] == ["open"] and status["unexpected_count"] == 1
    assert status["unexpected_percent"] == pytest.approx(100 / 20)  # of the 20 non-null statuses
    assert status["sample_rows"] == [f"{FILE}:11"]
    day = by_rule["order_ts_on_file_day"]
    assert day["partial_unexpected_list"] == [["2026-01-01", "2026-01-02"], ["2026-01-01", "2026-01-02"]]
    assert by_rule["order_id_unique"]["partial_unexpected_list"] == ["dup"]
    assert by_rule["order_id_not_null"]["success"] is False and by_rule["order_id_not_null"]["element_count"] == 21


def test_gx_counts_equal_polars_counts_for_profiles() -> None:
    dirty = [
        {"customer_id": None}, {"signup_date": "01/02/2024"}, {"birth_year": "x"}, {"birth_year": "1800"},
        {"birth_year": "2020"}, {"customer_type": "club"}, {"is_member": "y"},
        {"customer_id": "d"}, {"customer_id": "d"}, {"customer_id": "d", "phone": "2"},
        {"row_error": "line 12: 3 fields, the header has 10"},
        {"customer_id": "+1 555 123 4567"},
    ]  # fmt: skip
    result = V.validate_profiles(profiles(*[{"customer_id": f"p{i}", **row} for i, row in enumerate(dirty)]))
    report = result.expectations
    counted = [(e["rule"], e["unexpected_count"], e["failed_rows"]) for e in report if e["failed_rows"] is not None]
    assert len(counted) == len([r for r in V.PROFILE_RULES if r.fails is not None])
    assert all(gx == n and n >= 1 for _, gx, n in counted), counted


# --- regexes: calendar-exact and the same in polars and Python ---------------------------------

TRICKY = {
    "2024-02-29T00:00:00": True, "2023-02-29T00:00:00": False, "2000-02-29T00:00:00": True,
    "1900-02-29T00:00:00": False, "2100-02-29 00:00": False, "2400-02-29 00:00": True,
    "2026-04-31T00:00:00": False, "2026-04-30T23:59:59.999": True, "2026-12-31T23:59:59Z": True,
    "2026-13-01T00:00:00": False, "2026-00-10T00:00:00": False, "2026-01-00T00:00:00": False,
    "2026-01-01T00:60:00": False, "2026-01-01T00:00:60": False, "2026-01-01T10:00:00+24:00": False,
    "2026-01-01T10:00:00+23:59": True, "2026-01-01T10:00:00 +01:00": False, "2026-01-01t10:00:00": False,
    "2026-1-01T10:00:00": False, "\u0662\u0660\u0662\u0666-01-01T10:00:00": False,
}  # fmt: skip


def test_timestamp_regex_is_calendar_exact_and_engine_independent() -> None:
    texts = list(TRICKY)
    polars_says = pl.Series(texts).str.contains(R.TIMESTAMP_RE).to_list()
    assert polars_says == list(TRICKY.values())
    assert polars_says == [re.search(R.TIMESTAMP_RE, t) is not None for t in texts]  # GX's pandas engine
    for text, valid in TRICKY.items():
        if valid:
            datetime.fromisoformat(text)  # really a date and time
    raw = orders(*[{"order_id": str(i), "order_ts": t} for i, t in enumerate(texts)])
    result = V.validate_orders(raw, run_gx=False)
    not_iso = [r for r in reasons(result) if "is not an ISO 8601 timestamp" in r]
    assert len(not_iso) == sum(not v for v in TRICKY.values())  # every match parses


# --- invariant over random dirty batches -------------------------------------------------------

_CHOICES = {
    "order_id": ["o1", "o2", "o3", "o4", "o5", None, " o1 ", ""],
    "customer_id": ["c1", "c2", None, ""],
    "order_ts": ["2026-01-02T10:00:00", "2026-01-03 01:00:00+02:00", "2026-01-03T12:00:00Z", "bad",
                 "2026-02-30T00:00:00", None, "2026-01-02T23:59:59.5-00:30"],
    "amount": ["1", "12.50", "-1", "x", None, "0", ".5"],
    "currency": [None, "USD", "usd", "EUR", "U$"],
    "status": [None, "completed", "Returned", "lost"],
    "channel": [None, "web"],
    "category": [None, "a"],
    "quantity": [None, "1", "0", "2.0", "many"],
}  # fmt: skip


def _random_batch(rng: random.Random) -> pl.DataFrame:
    frames = []
    for file_no in range(rng.randint(1, 3)):
        day = date(2026, 1, rng.choice([2, 3]))
        rows = [{c: rng.choice(v) for c, v in _CHOICES.items()} for _ in range(rng.randint(0, 25))]
        rows += rng.sample(rows, k=min(len(rows), rng.randint(0, 3)))  # exact copies
        frames.append(orders(*rows, day=day, file=f"orders/{day}_{file_no}.csv") if rows else orders().head(0))
    return pl.concat(frames).sample(fraction=1.0, shuffle=True, seed=rng.randint(0, 10**6))


@pytest.mark.parametrize("seed", range(40))
def test_every_row_is_accepted_or_quarantined_exactly_once(seed: int) -> None:
    rng = random.Random(seed)
    raw = _random_batch(rng)
    already = pl.DataFrame({"order_id": ["o5"], "order_day": [date(2025, 1, 1)]})
    result = V.validate_orders(raw, already_accepted=already, run_gx=seed < 2)
    accepted, quarantined = result.accepted, result.quarantined
    assert accepted.height + quarantined.height == raw.height
    keys = pl.concat([accepted.select("source_file", "source_row"), quarantined.select("source_file", "source_row")])
    assert keys.sort(pl.all()).equals(raw.select("source_file", "source_row").sort(pl.all()))
    for frame, day in ((accepted, "order_day"), (quarantined, "order_day")):
        assert frame.equals(frame.sort(day, "source_file", "source_row"))
    assert accepted.get_column("order_id").is_unique().all()
    assert (accepted.get_column("order_ts").dt.date() == accepted.get_column("order_day")).all()
    assert (accepted.get_column("amount") >= 0).all() and accepted.get_column("currency").eq("USD").all()
    assert accepted.get_column("status").is_in(list(R.STATUSES)).all()
    assert quarantined.get_column("reason").str.len_chars().min() or quarantined.height == 0
    again = V.validate_orders(raw.reverse(), already_accepted=already, run_gx=False)
    assert again.accepted.equals(accepted) and again.quarantined.equals(quarantined)
    for item in result.expectations:
        assert item["failed_rows"] is None or item["unexpected_count"] == item["failed_rows"]


def test_large_batches_show_gx_every_failing_row_and_a_sample_of_the_rest(monkeypatch):
    from seg_pipeline.core.validation import engine

    monkeypatch.setattr(engine, "GX_MAX_PASSING_ROWS", 5)
    day = "2026-01-02"
    rows = [(f"O{i}", "C1", f"{day}T10:00:00", "-1" if i < 3 else "2.00") for i in range(40)]
    raw = pl.DataFrame(
        {
            "order_id": [r[0] for r in rows], "customer_id": [r[1] for r in rows],
            "order_ts": [r[2] for r in rows], "amount": [r[3] for r in rows],
            "currency": [None] * 40, "status": [None] * 40, "channel": [None] * 40,
            "category": [None] * 40, "quantity": [None] * 40,
            "source_file": ["orders/2026-01-02.csv"] * 40, "source_row": list(range(1, 41)),
            "order_day": [date.fromisoformat(day)] * 40, "extra": [None] * 40,
        },
        schema_overrides={c: pl.Utf8 for c in ("currency", "status", "channel", "category", "quantity", "extra")},
    )  # fmt: skip
    result = engine.validate_orders(raw)
    assert (result.accepted.height, result.quarantined.height) == (37, 3)
    negative = next(e for e in result.expectations if e["rule"] == "amount_non_negative")
    assert negative["element_count"] == 8 and negative["unexpected_count"] == negative["failed_rows"] == 3
