"""Personal data by value: which text holds an email or a phone number, and what is left once it is removed."""

import re

import polars as pl
import pytest

from seg_pipeline.core import personal_data as P

EMAILS = ["jane.doe@example.com", "j+tag@mail.example.co.uk", "X_Y%z@sub-domain.example.org"]
PHONES = [
    "+1 555 123 4567", "(555) 123-4567", "555-123-4567", "555.123.4567", "+44 (0)20 7946 0958",
    "+33 6 12 34 56 78", "0612345678", "+15551234567", "+1-680-555-0133",
]  # fmt: skip
NOT_PERSONAL = [
    "north", "web", "2026-06-30", "2026-06-30T10:00:00", "2026-06-30 10:00:00", "2026-06-30T10:00:00.123456+02:00",
    "2026-01-02T00:30:00Z", "12345.67", "1234567.89", "-12.50", "0.99", "O123", "O0000012345", "C0000039", "90210",
    "1987", "12,5x", "v1.2.3", "1.5 2.5", "3 x 2", "1b39e28d-f1ed-48c0-a82e-469574bc3cac", "orders/2026-06-30.csv",
    "exact duplicate of row 123 in orders/2026-06-30.csv",
    "order_ts '2026-06-30 10:00:00' is on 2026-06-30 in UTC, not on the file's day 2026-06-29",
]  # fmt: skip


def scrubbed(values: list[str]) -> list[str]:
    return pl.select(P.scrub(pl.lit(pl.Series(values, dtype=pl.String)))).to_series().to_list()


def kinds(values: list[str]) -> list[str | None]:
    return P.id_kinds(pl.Series(values, dtype=pl.String)).to_list()


def test_emails_and_phones_are_replaced_by_a_marker() -> None:
    assert scrubbed(EMAILS) == [P.EMAIL_MARK] * len(EMAILS)
    assert scrubbed(PHONES) == [P.PHONE_MARK] * len(PHONES)


def test_dates_amounts_ids_zip_codes_and_years_are_left_alone() -> None:
    assert scrubbed(NOT_PERSONAL) == NOT_PERSONAL


def test_only_the_personal_part_of_a_text_is_replaced() -> None:
    text = "call 555-123-4567 on 2026-06-30 or mail jane@example.com about order O123 (12.50)"
    assert scrubbed([text]) == [
        f"call {P.PHONE_MARK} on 2026-06-30 or mail {P.EMAIL_MARK} about order O123 (12.50)"
    ]
    assert scrubbed(["status 'jane@example.com' is not one of completed/cancelled/returned"]) == [
        f"status '{P.EMAIL_MARK}' is not one of completed/cancelled/returned"
    ]


def test_patterns_mean_the_same_in_python() -> None:
    """great-expectations (pandas) and anyone checking output with `re` read the patterns alike."""
    for text in EMAILS:
        assert re.fullmatch(P.EMAIL_RE, text)
    for text in PHONES:
        assert re.search(P.PHONE_RE, text)


def test_ids_that_are_emails_or_formatted_phones_are_personal_bare_numbers_are_not() -> None:
    assert kinds(EMAILS) == ["email"] * len(EMAILS)
    formatted = [p for p in PHONES if not p.isdigit()]
    assert kinds(formatted) == ["phone"] * len(formatted)
    opaque = ["C0000039", "O123", "10023456", "0612345678", "2026-06-30", "12345.67", "CUST-2024-000123", None]
    assert kinds(opaque) == [None] * len(opaque)


def test_scrub_columns_rewrites_only_what_changes_and_publishable_drops_personal_columns() -> None:
    frame = pl.DataFrame(
        {
            "customer_id": ["C1", "jane@example.com", "C3"],
            "region": ["north", "mail jane@example.com", None],
            "gender": ["f", "+1 555 123 4567", "m"],
            "name": ["Jane", "Jane", "Joe"],
            "email": ["a@b.com"] * 3,
            "phone": ["555-123-4567"] * 3,
            "extra": ['{"contact_email": "a@b.com"}'] * 3,
            "reason": ["x", "customer_id looks like personal data (email)", "call 555-123-4567"],
        }
    )
    out = P.publishable(frame, "profiles")
    assert out.columns == ["customer_id", "region", "gender", "reason"]
    assert out.to_dict(as_series=False) == {
        "customer_id": ["C1", "[removed: email]", "C3"],
        "region": ["north", f"mail {P.EMAIL_MARK}", None],
        "gender": ["f", P.PHONE_MARK, "m"],
        "reason": ["x", "customer_id looks like personal data (email)", f"call {P.PHONE_MARK}"],
    }
    clean = frame.select("region").with_columns(pl.col("region").fill_null("south"))
    assert P.scrub_columns(clean.head(1), text=["region"]).equals(clean.head(1))


@pytest.mark.parametrize("values", [["a@b.com", 3, None, "2026-06-30"], []])
def test_scrub_text_leaves_non_strings(values: list) -> None:
    assert P.scrub_text(values) == [P.EMAIL_MARK if v == "a@b.com" else v for v in values]
