"""Tests for the seeded demo landing-data generator (small sizes; timing is not tested)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from seg_pipeline.devtools.demo_data import (
    DIRTY_ORDER_KINDS,
    ORDER_COLUMNS,
    PROFILE_COLUMNS,
    GenerateSummary,
    generate_landing,
)

SMALL = {"customers": 800, "days": 120}
END = date(2026, 11, 21)
TS_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|\+00:00)?$"


def _generate(root: Path, name: str, **kwargs: object) -> tuple[Path, GenerateSummary]:
    out = root / name
    return out, generate_landing(out, **{**SMALL, **kwargs})


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateSummary]:
    return _generate(tmp_path_factory.mktemp("landing"), "default")


@pytest.fixture(scope="module")
def very_dirty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateSummary]:
    return _generate(tmp_path_factory.mktemp("landing"), "dirty", dirty_share=0.05)


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file())


def _read_orders(out: Path, ext: str = "csv") -> pl.DataFrame:
    """All order rows as strings, in file order, with the file's day and a row number."""
    frames = []
    for path in _files(out / "orders"):
        frame = pl.read_csv(path, infer_schema=False) if ext == "csv" else pl.read_parquet(path)
        frames.append(frame.with_columns(file_day=pl.lit(date.fromisoformat(path.stem))))
    return pl.concat(frames).with_row_index("row")


def _flag_orders(orders: pl.DataFrame) -> pl.DataFrame:
    """One boolean column per dirty kind, computed with simple polars checks."""
    exact_dup = ~pl.struct(*ORDER_COLUMNS, "file_day").is_first_distinct()
    ts_ok = pl.col("order_ts").str.contains(TS_PATTERN).fill_null(False)
    ts_day = pl.col("order_ts").str.slice(0, 10).str.to_date(strict=False)
    amount = pl.col("amount").cast(pl.Float64, strict=False)
    flags = orders.with_columns(
        null_order_id=pl.col("order_id").is_null(),
        null_customer_id=pl.col("customer_id").is_null(),
        unparseable_order_ts=~ts_ok,
        order_ts_other_day=ts_ok & (ts_day != pl.col("file_day")),
        negative_amount=(amount < 0).fill_null(False),
        non_numeric_amount=amount.is_null(),
        unknown_status=~pl.col("status").is_in(["completed", "cancelled", "returned"]).fill_null(False),
        zero_quantity=(pl.col("quantity").cast(pl.Int64) < 1).fill_null(False),
        bad_currency=~pl.col("currency").str.contains(r"^[A-Z]{3}$").fill_null(False),
        duplicate_row=exact_dup,
    )
    # An order_id seen on an earlier day (exact duplicates are counted above).
    first_day = (
        flags.filter(~pl.col("duplicate_row") & pl.col("order_id").is_not_null())
        .group_by("order_id").agg(first_row=pl.col("row").min())
    )
    flags = flags.join(first_day, on="order_id", how="left").sort("row").with_columns(
        repeated_order_id=(pl.col("row") != pl.col("first_row")).fill_null(False) & ~pl.col("duplicate_row")
    )
    return flags.with_columns(dirty=pl.any_horizontal(*DIRTY_ORDER_KINDS))


def _completed_clean(out: Path) -> pl.DataFrame:
    flags = _flag_orders(_read_orders(out))
    return flags.filter(~pl.col("dirty") & (pl.col("status") == "completed")).with_columns(
        amount=pl.col("amount").cast(pl.Float64)
    )


def test_same_seed_gives_byte_identical_files(landing: tuple[Path, GenerateSummary], tmp_path: Path) -> None:
    out, summary = landing
    again, summary_again = _generate(tmp_path, "again")
    names = [p.relative_to(out) for p in _files(out / "orders") + _files(out / "profiles")]
    assert names == [p.relative_to(again) for p in _files(again / "orders") + _files(again / "profiles")]
    assert all((out / n).read_bytes() == (again / n).read_bytes() for n in names)
    assert summary_again == GenerateSummary(**{**summary.__dict__, "out_dir": again})


def test_different_seed_gives_different_files(landing: tuple[Path, GenerateSummary], tmp_path: Path) -> None:
    out, _ = landing
    other, _ = _generate(tmp_path, "other", seed=43)
    last = f"{END}.csv"
    assert (out / "orders" / last).read_bytes() != (other / "orders" / last).read_bytes()
    assert (out / "profiles" / last).read_bytes() != (other / "profiles" / last).read_bytes()


def test_layout_columns_and_summary(landing: tuple[Path, GenerateSummary]) -> None:
    out, summary = landing
    start = END - timedelta(days=SMALL["days"] - 1)
    assert (summary.start_date, summary.end_date, summary.days) == (start, END, SMALL["days"])
    order_files = _files(out / "orders")
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}\.csv", p.name) for p in order_files)
    assert all(start <= date.fromisoformat(p.stem) <= END for p in order_files)
    assert len(order_files) == summary.order_files > 0.9 * SMALL["days"]
    snapshot_days = {start + timedelta(days=d) for d in range(0, SMALL["days"], 7)} | {END}
    assert [date.fromisoformat(p.stem) for p in _files(out / "profiles")] == sorted(snapshot_days)
    assert summary.profile_files == len(snapshot_days)
    assert summary.files_written == summary.order_files + summary.profile_files

    assert all(pl.read_csv(p, n_rows=0).columns == list(ORDER_COLUMNS) for p in order_files)
    assert all(pl.read_csv(p, n_rows=0).columns == list(PROFILE_COLUMNS) for p in _files(out / "profiles"))
    orders = _read_orders(out)
    assert orders.height == summary.orders
    assert orders["customer_id"].drop_nulls().str.contains(r"^C\d{7}$").all()
    assert orders["order_id"].drop_nulls().str.contains(r"^O\d{10}$").all()
    assert set(orders["channel"].drop_nulls()) == {"web", "app", "store", "marketplace"}
    assert orders["category"].drop_nulls().n_unique() == 8
    clean = _flag_orders(orders).filter(~pl.col("dirty"))
    assert clean["amount"].str.contains(r"^\d+\.\d{2}$").all()
    assert set(clean["quantity"].cast(pl.Int64)) <= set(range(1, 7))
    status_share = clean["status"].value_counts(normalize=True)
    shares = dict(zip(status_share["status"], status_share["proportion"], strict=True))
    assert 0.02 < shares["cancelled"] < 0.09 and 0.01 < shares["returned"] < 0.08
    suffixes = clean["order_ts"].str.extract(r"(Z|\+00:00)$")
    assert {"Z", "+00:00"} <= set(suffixes.drop_nulls()) and suffixes.null_count() > 0.9 * clean.height


def test_profile_snapshots_grow_from_signup(landing: tuple[Path, GenerateSummary]) -> None:
    out, _ = landing
    previous: set[str] = set()
    for path in _files(out / "profiles"):
        snapshot = pl.read_csv(path, try_parse_dates=True)
        assert (snapshot["signup_date"] <= date.fromisoformat(path.stem)).all()
        ids = set(snapshot["customer_id"])
        assert previous <= ids
        previous = ids
    last = pl.read_csv(out / "profiles" / f"{END}.csv", infer_schema=False)
    assert set(last["customer_type"]) >= {"individual", "business"}
    assert set(last["is_member"]) == {"true", "false"}
    assert last["email"].drop_nulls().str.contains(r"^[a-z]+\.[a-z]+\d+@[a-z.]+$").all()
    assert last["phone"].drop_nulls().str.contains(r"^\+1-\d{3}-555-01\d{2}$").all()


def test_order_ids_unique_among_clean_rows(landing: tuple[Path, GenerateSummary], tmp_path: Path) -> None:
    out, summary = landing
    flags = _flag_orders(_read_orders(out))
    clean = flags.filter(~pl.col("dirty"))
    assert clean["order_id"].is_unique().all()
    # The only repeats are deliberate: an id from an earlier day, never the same day.
    repeats = flags.filter(pl.col("repeated_order_id")).join(
        flags.select("row", earlier_day="file_day"), left_on="first_row", right_on="row"
    )
    assert (repeats["earlier_day"] < repeats["file_day"]).all()
    assert 0 < repeats.height <= summary.dirty_orders / len(DIRTY_ORDER_KINDS) + 2

    spotless, _ = _generate(tmp_path, "clean", dirty_share=0.0)
    assert _read_orders(spotless)["order_id"].is_unique().all()


def test_top_customers_bring_most_revenue(landing: tuple[Path, GenerateSummary]) -> None:
    out, _ = landing
    revenue = _completed_clean(out).group_by("customer_id").agg(pl.col("amount").sum()).sort("amount", descending=True)
    top_share = revenue.head(revenue.height // 5)["amount"].sum() / revenue["amount"].sum()
    assert 0.55 <= top_share <= 0.85


def test_prospects_and_customers_without_profile(landing: tuple[Path, GenerateSummary]) -> None:
    out, summary = landing
    buyers = set(_read_orders(out)["customer_id"].drop_nulls())
    profiled = set(pl.read_csv(out / "profiles" / f"{END}.csv", infer_schema=False)["customer_id"])
    prospects, unprofiled = profiled - buyers, buyers - profiled
    assert summary.prospects > 0 and len(prospects) >= summary.prospects
    assert 0.04 < len(prospects) / len(profiled) < 0.2
    assert 0 < len(unprofiled) <= summary.customers_without_profile  # some may not order in the window
    assert len(buyers | profiled) <= summary.customers


def test_dirty_share_is_roughly_as_asked(landing: tuple[Path, GenerateSummary], tmp_path: Path) -> None:
    out, summary = landing
    flags = _flag_orders(_read_orders(out))
    assert summary.dirty_orders == pytest.approx(0.005 * summary.orders, abs=2)
    assert flags["dirty"].sum() == summary.dirty_orders  # every dirty row is caught, no clean row is
    spotless, summary_clean = _generate(tmp_path, "clean", dirty_share=0.0)
    assert summary_clean.dirty_orders == 0
    assert not _flag_orders(_read_orders(spotless))["dirty"].any()


def test_every_dirty_kind_occurs(very_dirty: tuple[Path, GenerateSummary]) -> None:
    out, summary = very_dirty
    flags = _flag_orders(_read_orders(out))
    counts = flags.select(pl.col(DIRTY_ORDER_KINDS).sum()).row(0, named=True)
    assert all(n > 0 for n in counts.values()), counts
    assert flags["dirty"].sum() / flags.height == pytest.approx(0.05, rel=0.2)
    assert flags.filter(pl.col("dirty")).select(pl.col("file_day").n_unique()).item() > SMALL["days"] // 2

    profiles = pl.read_csv(out / "profiles" / f"{END}.csv")
    assert profiles["customer_id"].is_duplicated().any()
    assert profiles["birth_year"].is_in([1800, 2090]).any()
    assert (profiles["customer_type"] == "alien").any()


def test_parquet_holds_the_same_values(landing: tuple[Path, GenerateSummary], tmp_path: Path) -> None:
    out, summary = landing
    parquet, summary_parquet = _generate(tmp_path, "parquet", file_format="parquet")
    assert summary_parquet == GenerateSummary(**{**summary.__dict__, "out_dir": parquet})
    assert {p.suffix for p in _files(parquet / "orders") + _files(parquet / "profiles")} == {".parquet"}
    from_parquet = _read_orders(parquet, "parquet")
    assert from_parquet.schema["quantity"] == pl.Int64
    assert from_parquet.with_columns(pl.col("quantity").cast(pl.Utf8)).equals(_read_orders(out))
    profiles = pl.read_parquet(parquet / "profiles" / f"{END}.parquet")
    assert profiles.schema["signup_date"] == pl.Date and profiles.schema["is_member"] == pl.Boolean
    as_text = profiles.select(pl.all().cast(pl.Utf8))
    assert as_text.equals(pl.read_csv(out / "profiles" / f"{END}.csv", infer_schema=False))


def test_weekly_and_yearly_seasonality(tmp_path: Path) -> None:
    out, _ = _generate(tmp_path, "year", customers=5_000, days=730, dirty_share=0.0)
    per_day = _read_orders(out).group_by("file_day").len()
    weekend = per_day.filter(pl.col("file_day").dt.weekday() >= 6)["len"].mean()
    weekday = per_day.filter(pl.col("file_day").dt.weekday() <= 3)["len"].mean()
    assert weekend > 1.1 * weekday
    by_month = per_day.group_by(month=pl.col("file_day").dt.truncate("1mo")).agg(pl.col("len").mean())
    month = dict(zip(by_month["month"], by_month["len"], strict=True))
    assert month[date(2025, 12, 1)] > 1.25 * month[date(2026, 1, 1)]


@pytest.mark.parametrize("target", [4_000, 40_000])
def test_orders_target_scales_the_purchase_rates(tmp_path: Path, target: int) -> None:
    out, summary = _generate(tmp_path, f"orders{target}", customers=1_000, days=200, orders=target)
    assert summary.orders == pytest.approx(target, rel=0.05)
    assert _read_orders(out).height == summary.orders
    assert summary.customers == 1_000


@pytest.mark.parametrize(
    "kwargs", [{"customers": 0}, {"days": 0}, {"orders": 0}, {"dirty_share": 1.0}, {"file_format": "json"},
               {"profile_snapshot_every_days": 0}]
)
def test_invalid_arguments_are_rejected(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        generate_landing(tmp_path, **kwargs)


def test_generate_command_writes_the_landing_layout(tmp_path):
    from seg_pipeline.cli import main

    assert main(["generate", "--out", str(tmp_path), "--customers", "150", "--days", "20", "--seed", "3"]) == 0
    assert len(list((tmp_path / "orders").glob("*.csv"))) > 0 and (tmp_path / "profiles").is_dir()
