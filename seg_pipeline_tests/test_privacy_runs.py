"""Personal data and padded keys through real runs: landed files carry emails and phones in unexpected places."""

import os
import re
import stat
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from seg_pipeline.defs.report import report_dir
from seg_pipeline.launch.runs import RunFailed, materialize_as_of
from seg_pipeline.storage import warehouse
from seg_pipeline.storage.store import WorkingStore
from seg_pipeline_tests.conftest import END, make_settings

EMAIL = "jane.doe@example.com"
PHONE = "+1 555 123 4567"
#: an independent check (not the pipeline's own patterns): any email, the planted phone and the demo data's phones
#: ('+1-680-555-0133')
_PHONES = rb"555[ .-]?123[ .-]?4567|[0-9]{3}-555-01[0-9]{2}"
LEAK = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z]{2,}|" + _PHONES)
#: the report embeds plotly.js, whose licence names its authors' emails: there, the landed (example.*) emails
DATA_LEAK = re.compile(rb"@(?:[A-Za-z0-9-]+\.)*example\.(?:com|org)|" + _PHONES)


def edit_csv(path: Path, change) -> None:
    change(pl.read_csv(path, infer_schema=False)).write_csv(path)


def plant_personal_data(landing: Path) -> None:
    """The last day's orders and profile snapshot with emails and phones where nobody expects them."""

    def orders(frame: pl.DataFrame) -> pl.DataFrame:
        row = pl.int_range(pl.len())
        return frame.with_columns(
            pl.lit(EMAIL).alias("contact_email"),  # an unknown column: kept in `extra`, in the store only
            pl.when(row == 0).then(pl.lit(PHONE)).otherwise("channel").alias("channel"),
            pl.when(row == 1).then(pl.lit(f"gift for {EMAIL}")).otherwise("category").alias("category"),
            pl.when(row == 2).then(pl.lit(EMAIL)).otherwise("status").alias("status"),  # rejected: raw value, reason
            pl.when(row == 3).then(pl.lit("555-123-4567")).otherwise("amount").alias("amount"),
            pl.when(row == 4).then(pl.lit("john.roe@example.org")).otherwise("customer_id").alias("customer_id"),
        )

    def profiles(frame: pl.DataFrame) -> pl.DataFrame:
        row = pl.int_range(pl.len())
        return frame.with_columns(
            pl.when(row == 0).then(pl.lit(EMAIL)).otherwise("region").alias("region"),
            pl.when(row == 1).then(pl.lit(PHONE)).otherwise("gender").alias("gender"),
            pl.when(row == 2).then(pl.lit(f"call {PHONE}")).otherwise("customer_type").alias("customer_type"),
            pl.when(row == 3).then(pl.lit("(555) 123-4567")).otherwise("customer_id").alias("customer_id"),
        )

    edit_csv(landing / "orders" / f"{END}.csv", orders)
    edit_csv(sorted((landing / "profiles").iterdir())[-1], profiles)


def text_values(path: Path) -> dict[str, list[str]]:
    """Every text value of every table and view column of a DuckDB file, by `table.column`."""
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            "select table_name, column_name from information_schema.columns "
            "where data_type in ('VARCHAR', 'JSON') order by all"
        ).fetchall()
        return {
            f"{t}.{c}": [v for (v,) in con.execute(f'select distinct "{c}"::varchar from "{t}"').fetchall() if v]
            for t, c in columns
        }


def test_personal_data_reaches_no_output_and_personal_files_are_owner_only(tmp_path, landing, instance):
    plant_personal_data(landing)
    settings = make_settings(tmp_path, landing)
    umask = os.umask(0o022)
    try:
        materialize_as_of(settings, END, instance)
    finally:
        os.umask(umask)

    values = text_values(Path(settings.warehouse_path))
    leaks = {column: [v for v in vs if LEAK.search(v.encode())] for column, vs in values.items()}
    assert not {column: found for column, found in leaks.items() if found}
    assert not [column for column in values if column.split(".")[1] in ("extra", "name", "email", "phone")]
    # scrubbed, not dropped: the values are there with a marker in place of the personal part
    assert "[removed: email]" in values["customer_features.region"]
    assert "[removed: phone]" in values["customer_features.gender"]
    reasons = values["quarantine_orders.reason"] + values["quarantine_profiles.reason"]
    assert "status '[removed: email]' is not one of completed/cancelled/returned" in reasons
    assert "amount '[removed: phone]' is not a decimal number" in reasons
    opaque = [r for r in reasons if r.startswith("customer_id looks like personal data")]
    assert len(opaque) == 2 and all("ids must be opaque keys" in r for r in opaque)
    assert "[removed: email]" in values["quarantine_orders.customer_id"]
    assert "[removed: phone]" in values["quarantine_profiles.customer_id"]

    reports = list(report_dir(settings).rglob("*.html"))
    assert reports
    for report in reports:
        assert not DATA_LEAK.search(report.read_bytes()), report

    # the Dagster instance: event log (metadata, previews, GX results, logs) and compute logs, as stored
    stored = [p for p in Path(instance.root_directory).rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in stored)
    assert not [str(p) for p in stored if LEAK.search(p.read_bytes())]

    # the working store keeps what landed (for matching), readable only by its owner
    store = WorkingStore(settings.store_uri)
    assert store.scalar("select count(*) from raw_orders where extra like '%contact_email%'") > 0
    private = [Path(store.uri), *Path(store.uri).rglob("*")]
    assert any(p.suffix == ".parquet" for p in private) and any(p.parent.name == "model_files" for p in private)
    modes = {str(p): stat.S_IMODE(p.stat().st_mode) for p in private}
    assert {p: m for p, m in modes.items() if m != (0o700 if Path(p).is_dir() else 0o600)} == {}
    # ...while the analyst file, its version files (read through its views above) and the report follow the umask
    assert stat.S_IMODE(Path(settings.warehouse_path).stat().st_mode) == 0o644
    versions = warehouse.versions_dir(settings.warehouse_path)
    shared = {str(p): stat.S_IMODE(p.stat().st_mode) for p in [versions, *versions.rglob("*")]}
    assert any(p.endswith(".parquet") for p in shared)
    assert {p: m for p, m in shared.items() if m != (0o755 if Path(p).is_dir() else 0o644)} == {}
    assert stat.S_IMODE(reports[0].stat().st_mode) == 0o644


def test_a_padded_order_id_is_the_same_order(tmp_path, landing, instance):
    """' O123 ' and 'O123' are one order: on another day (already stored) and within a day."""
    settings = make_settings(tmp_path, landing)
    materialize_as_of(settings, END - timedelta(days=1), instance)
    earlier = pl.read_csv(landing / "orders" / f"{END - timedelta(days=1)}.csv", infer_schema=False)
    earlier_id = earlier.filter(pl.col("status") == "completed")["order_id"][0]

    def pad(frame: pl.DataFrame) -> pl.DataFrame:
        same_day = frame.filter(pl.col("status") == "completed").head(1)
        copies = pl.concat([same_day, same_day.with_columns(pl.lit(earlier_id).alias("order_id"))])
        return pl.concat([frame, copies.with_columns((" " + pl.col("order_id") + " ").alias("order_id"))])

    edit_csv(landing / "orders" / f"{END}.csv", pad)
    materialize_as_of(settings, END, instance)
    store = WorkingStore(settings.store_uri)
    counts = store.frame("select order_id, count(*) from orders group by 1 having count(*) > 1").rows()
    quarantined = store.frame("select reason from quarantine_orders where order_day = ?", [END]).rows()
    reasons = [reason for (reason,) in quarantined]
    assert counts == []
    note = " (order_ids are compared without surrounding spaces)"
    assert f"order_id already accepted on {END - timedelta(days=1)}{note}" in reasons
    assert any(r.startswith("exact duplicate of row") and r.endswith(note) for r in reasons)


def test_a_padded_duplicate_customer_id_in_a_snapshot_is_quarantined(tmp_path, landing, instance):
    """It used to be accepted beside the unpadded row, and every version from then on failed in customer_features."""
    snapshot = sorted((landing / "profiles").iterdir())[-1]

    def pad(frame: pl.DataFrame) -> pl.DataFrame:
        padded = frame.head(1).with_columns(customer_id=" " + pl.col("customer_id") + " ", region=pl.lit("west"))
        return pl.concat([frame, padded])

    edit_csv(snapshot, pad)
    settings = make_settings(tmp_path, landing)
    materialize_as_of(settings, END, instance)
    with duckdb.connect(settings.warehouse_path, read_only=True) as con:
        [(reason,)] = con.execute(
            "select reason from quarantine_profiles where reason like 'duplicate customer_id%'"
            " and reason like '%compared without surrounding spaces)'"
        ).fetchall()
    assert f"in {snapshot.parent.name}/{snapshot.name}" in reason


def test_a_duplicate_profile_that_reaches_features_names_its_file_and_rows(tmp_path, landing, instance):
    """A store holding a duplicate accepted profile (ingested by an older version) fails in one line saying where."""
    settings = make_settings(tmp_path, landing)
    materialize_as_of(settings, END - timedelta(days=1), instance)
    store = WorkingStore(settings.store_uri)
    profiles = store.read_parts("profiles", ["*"])
    duplicate = profiles.head(1).with_columns(source_row=pl.lit(999_999, pl.Int64))
    store.replace_days("profiles", profiles["snapshot_date"].unique().to_list(), pl.concat([profiles, duplicate]))
    with pytest.raises(RunFailed) as failed:
        materialize_as_of(settings, END - timedelta(days=1), instance)
    source_file, customer_id = profiles.select("source_file", "customer_id").row(0)
    assert f"customer_id '{customer_id}' more than once: {source_file} row " in str(failed.value)
    assert str(failed.value).endswith(f"{source_file} row 999999")
