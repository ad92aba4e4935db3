"""Ingestion through real Dagster runs on a temp landing directory and a real DuckDB store."""

import gzip
import os
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from seg_pipeline.core.shards import shard_of
from seg_pipeline.defs.ingestion import ingestion_assets, rows_accounted_for, snapshot_size
from seg_pipeline.defs.partitions import daily_partitions
from seg_pipeline.defs.resources import build_resources
from seg_pipeline.launch.runs import RunFailed, failure_line, materialize_as_of
from seg_pipeline.services import ingest
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage import landing
from seg_pipeline.storage.landing import scan
from seg_pipeline.storage.store import WorkingStore
from seg_pipeline_tests.conftest import END, make_settings


def ingest_orders(settings: PipelineSettings, instance: dg.DagsterInstance, first: date, last: date, **config):
    """Materialize the orders ingestion for the partition range [first, last] in one run.

    Like every partition D, it ingests all landed days <= `last` that are new or changed.
    """
    assets = ingestion_assets(daily_partitions(settings.partition_start))
    return dg.materialize(
        [assets[0]],
        instance=instance,
        resources=build_resources(settings),
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
        run_config={"ops": {"ingest_orders": {"config": config}}} if config else None,
        raise_on_error=False,
    )


def stored(settings: PipelineSettings, sql: str, params=()) -> pl.DataFrame:
    return WorkingStore(settings.store_uri).frame(sql, list(params))


def day_file(landing: Path, day: date) -> Path:
    return landing / "orders" / f"{day.isoformat()}.csv"


def test_reingesting_a_day_gives_the_same_rows(settings, instance):
    day = END - timedelta(days=3)
    assert ingest_orders(settings, instance, day, day).success
    raw_sql = "select * exclude (ingested_at, run_id) from raw_orders order by order_day, source_row"
    first = stored(settings, raw_sql)
    accepted = stored(settings, "select * from orders order by order_id")
    assert ingest_orders(settings, instance, day, day, force=True).success
    assert stored(settings, raw_sql).equals(first)
    assert stored(settings, "select * from orders order by order_id").equals(accepted)
    day_rows = first.filter(pl.col("order_day") == day).height
    assert day_rows == pl.read_csv(day_file(Path(settings.landing_dir), day), infer_schema=False).height


def test_unchanged_days_are_skipped_and_redelivered_file_replaces_rows(settings, instance):
    day = END - timedelta(days=2)
    assert ingest_orders(settings, instance, day, day).success
    before = stored(settings, "select run_id, order_day from raw_orders where order_day < ?", [day])
    path = day_file(Path(settings.landing_dir), day)
    original = pl.read_csv(path, infer_schema=False)
    corrected = original.head(5).with_columns(pl.lit("1.00").alias("amount"))
    corrected.write_csv(path)
    assert day in ingest.stale_days(WorkingStore(settings.store_uri), settings.landing_dir, "orders", day)
    assert ingest_orders(settings, instance, day, day).success
    rows = stored(settings, "select order_id, amount from raw_orders where order_day = ?", [day])
    assert rows.height == 5 and set(rows["amount"]) == {"1.00"}
    assert stored(settings, "select count(*) n from orders where order_day = ?", [day])["n"][0] <= 5
    assert ingest.stale_days(WorkingStore(settings.store_uri), settings.landing_dir, "orders", day) == []
    # the other days were unchanged: not re-ingested by the second run
    assert stored(settings, "select run_id, order_day from raw_orders where order_day < ?", [day]).equals(before)


def test_a_touched_file_is_not_stale_and_a_second_file_for_a_day_is_ingested_with_the_first(settings, instance):
    day = END - timedelta(days=2)
    assert ingest_orders(settings, instance, day, day).success
    store = WorkingStore(settings.store_uri)
    path = day_file(Path(settings.landing_dir), day)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # same bytes, new mtime
    assert ingest.stale_days(store, settings.landing_dir, "orders", day) == []

    extra = path.with_name(f"{day.isoformat()}-late.csv")
    late = pl.read_csv(path, infer_schema=False).head(3).with_columns(("late-" + pl.col("order_id")).alias("order_id"))
    late.write_csv(extra)
    assert ingest.stale_days(store, settings.landing_dir, "orders", day) == [day]
    assert ingest_orders(settings, instance, day, day).success
    files = stored(settings, "select source_file, fingerprint from landing_files where day = ? order by 1", [day])
    expected = sorted((f"orders/{file.name}", landing.fingerprint(file)) for file in (path, extra))
    assert files.rows() == expected
    assert stored(settings, "select count(*) n from orders where order_id like 'late-%'")["n"][0] == 3
    assert ingest.stale_days(store, settings.landing_dir, "orders", day) == []


def test_csv_and_parquet_days_ingest_alike(settings, instance):
    day = END - timedelta(days=5)
    columns = (
        "order_day, source_row, order_id, customer_id, order_ts, amount, currency, status, channel, category, quantity"
    )
    same_day = f"select {columns} from raw_orders where order_day = ? order by source_row"
    assert ingest_orders(settings, instance, day, day).success
    from_csv = stored(settings, same_day, [day])
    accepted_csv = stored(
        settings, "select * exclude (source_file) from orders where order_day = ? order by order_id", [day]
    )
    csv_path = day_file(Path(settings.landing_dir), day)
    pl.read_csv(csv_path, infer_schema=False).write_parquet(csv_path.with_suffix(".parquet"))
    csv_path.unlink()
    assert ingest_orders(settings, instance, day, day).success
    assert stored(settings, same_day, [day]).equals(from_csv)
    assert stored(
        settings, "select * exclude (source_file) from orders where order_day = ? order by order_id", [day]
    ).equals(accepted_csv)
    files = stored(settings, "select distinct source_file from raw_orders where order_day = ?", [day])["source_file"]
    assert files.to_list() == [f"orders/{day.isoformat()}.parquet"]


def test_a_day_without_files_is_an_empty_partition(settings, instance):
    day = END - timedelta(days=1)
    day_file(Path(settings.landing_dir), day).unlink()
    result = ingest_orders(settings, instance, day, day)
    assert result.success
    assert stored(settings, "select count(*) n from raw_orders where order_day = ?", [day])["n"][0] == 0
    assert stored(settings, "select count(*) n from raw_orders where order_day < ?", [day])["n"][0] > 0


def test_every_raw_row_is_accepted_or_quarantined(settings, instance):
    assert ingest_orders(settings, instance, END, END).success
    landed = sorted(scan(settings.landing_dir, "orders"))
    counts = ingest.day_counts(WorkingStore(settings.store_uri), "orders", landed)
    assert counts.height == len(landed)
    files_rows = sum(
        pl.read_csv(f.path, infer_schema=False).height
        for fs in scan(settings.landing_dir, "orders").values()
        for f in fs
    )
    assert counts["raw_rows"].sum() == files_rows
    assert (counts["raw_rows"] == counts["accepted_rows"] + counts["quarantined_rows"]).all()
    assert counts["quarantined_rows"].sum() > 0  # the demo data carries dirty rows
    reasons = stored(settings, "select reason from quarantine_orders")["reason"]
    assert reasons.str.len_chars().min() > 5


def test_range_backfill_is_one_run(settings, instance):
    first, last = END - timedelta(days=9), END - timedelta(days=5)
    result = ingest_orders(settings, instance, first, last)
    assert result.success
    assert len(instance.get_run_records()) == 1
    days = stored(settings, "select distinct order_day from raw_orders order by 1")["order_day"].to_list()
    assert days == sorted(scan(settings.landing_dir, "orders", last))
    materialized = instance.get_materialized_partitions(dg.AssetKey("orders"))
    assert materialized == {(first + timedelta(days=i)).isoformat() for i in range(5)}


def test_broken_file_fails_its_day_with_one_line_and_keeps_the_others(settings, instance):
    good, bad = END - timedelta(days=1), END
    day_file(Path(settings.landing_dir), bad).write_text(
        "order_id;customer_id;order_ts;amount\nX1;C1;2026-06-30T10:00:00;5\n"
    )
    result = ingest_orders(settings, instance, good, bad)
    assert not result.success
    line = failure_line(result)
    assert "\n" not in line
    assert f"orders/{bad.isoformat()}.csv" in line and "missing required column" in line
    days = set(stored(settings, "select distinct order_day from raw_orders")["order_day"].to_list())
    assert good in days and bad not in days


def test_invariant_check_fails_when_a_row_goes_missing(settings, instance):
    day = END - timedelta(days=4)
    assert ingest_orders(settings, instance, day, day).success
    store = WorkingStore(settings.store_uri)
    assert rows_accounted_for("orders", ingest.day_counts(store, "orders", [day])).passed
    accepted = store.frame("select * from orders where order_day = ? order by order_id", [day])
    store.replace_days("orders", [day], accepted.slice(1))
    check = rows_accounted_for("orders", ingest.day_counts(store, "orders", [day]))
    assert not check.passed
    assert str(day) in check.description


@pytest.mark.parametrize("threshold, passed", [("0.5", True), ("0.0001", False)])
def test_quarantine_share_check_blocks_over_threshold(tmp_path, landing, instance, threshold, passed):
    settings = make_settings(tmp_path, landing, SEG_QUARANTINE_THRESHOLD=threshold, SEG_QUARANTINE_MIN_ROWS="1")
    result = ingest_orders(settings, instance, END, END)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["quarantine_share"] is passed
    assert checks["rows_accounted_for"] is True
    assert result.success is passed


def test_tolerated_file_quirks_are_accepted_and_extra_columns_kept_raw(settings, instance):
    day = END - timedelta(days=6)
    path = day_file(Path(settings.landing_dir), day)
    text = (
        "order_id,customer_id,order_ts,amount,status,gift_note\r\n"
        f'Q1,C1,{day}T10:00:00,12.50,completed,"hello, world"\r\n'
        f"Q2,C2,{day}T23:30:00-01:00,7,cancelled,\r\n"  # 00:30 UTC the next day: on the wrong day
        f"Q3,C3,{day}T12:00:00Z,3.00,,x\r\n"
    )
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert ingest_orders(settings, instance, day, day).success
    accepted = stored(settings, "select order_id, status, currency from orders where order_day = ? order by 1", [day])
    assert accepted.rows() == [("Q1", "completed", "USD"), ("Q3", "completed", "USD")]
    reasons = stored(settings, "select order_id, reason from quarantine_orders where order_day = ?", [day])
    assert reasons["order_id"].to_list() == ["Q2"] and "not on the file's day" in reasons["reason"][0]
    extra = stored(settings, "select extra from raw_orders where order_id = 'Q1'")["extra"][0]
    assert '"gift_note":"hello, world"' in extra


def test_an_order_id_accepted_on_another_day_is_quarantined_across_batches_and_runs(tmp_path, monkeypatch):
    """Earlier runs (the store) and earlier batches of the same run both count as 'accepted elsewhere'."""
    landing = tmp_path / "landing"
    (landing / "orders").mkdir(parents=True)
    day = [date(2026, 3, 1) + timedelta(days=i) for i in range(4)]

    def land(d: date, *order_ids: str) -> None:
        lines = [f"{oid},c-{oid},{d}T10:00:00,5.0" for oid in order_ids]
        (landing / "orders" / f"{d}.csv").write_text("order_id,customer_id,order_ts,amount\n" + "\n".join(lines) + "\n")

    store = WorkingStore(tmp_path / "store")
    land(day[0], "x", "a")
    ingest.ingest(store, str(landing), "orders", day[0], run_id="first", currency="USD")
    land(day[1], "x", "b")  # x was accepted by the first run
    land(day[2], "y")
    land(day[3], "y", "c")  # y is accepted by an earlier batch of this run
    monkeypatch.setattr(ingest, "BATCH_BYTES", 1)  # one day per batch
    report = ingest.ingest(store, str(landing), "orders", day[3], run_id="second", currency="USD")
    assert report.days == day[1:]
    quarantined = store.frame("select order_id, order_day, reason from quarantine_orders order by order_day")
    assert quarantined.rows() == [
        ("x", day[1], f"order_id already accepted on {day[0]}"),
        ("y", day[3], f"order_id already accepted on {day[2]}"),
    ]
    accepted = store.frame("select order_id from orders order by order_id")["order_id"].to_list()
    assert accepted == ["a", "b", "c", "x", "y"]


def test_ingestion_in_customer_shards_stores_each_batch_as_a_file_per_shard(tmp_path, landing, monkeypatch):
    """SEG_CUSTOMER_SHARDS = 3: each batch's accepted orders and profiles are three files, each of one shard's
    customers (named so), holding exactly the rows an unsharded ingest accepts."""
    monkeypatch.setattr(ingest, "BATCH_BYTES", 200_000)  # several batches
    stores = {n: WorkingStore(tmp_path / f"store-{n}") for n in (1, 3)}
    for n, store in stores.items():
        for kind in ("orders", "profiles"):
            ingest.ingest(store, str(landing), kind, END, run_id="r", currency="USD", shards=n)
    for table in ("orders", "profiles"):
        snapshot = stores[3].delta(table)
        files = pl.DataFrame(snapshot.get_add_actions(flatten=True))["path"].to_list()
        tags = pl.Series(files).str.extract(r"-shard(\d)of3-").cast(pl.UInt32)
        assert tags.null_count() == 0 and len(files) % 3 == 0 and len(files) >= (6 if table == "orders" else 3)
        for path, tag in zip(files, tags, strict=True):
            assert (shard_of(pl.read_parquet(Path(stores[3].table_uri(table)) / path)["customer_id"], 3) == tag).all()
        rows = {n: store.read_parts(table, ["*"]) for n, store in stores.items()}
        assert rows[3].sort(rows[3].columns).equals(rows[1].sort(rows[1].columns))
    quarantined = [store.frame("select count(*) n from quarantine_orders")["n"][0] for store in stores.values()]
    assert quarantined[0] == quarantined[1] > 0


def test_a_great_expectations_failure_leaves_its_batch_stale(tmp_path, monkeypatch):
    """GX validates a batch while its rows are written; its landing_files rows are written only after GX is done
    with it, so after a failure the next run ingests the batch again."""
    from seg_pipeline.core.validation import engine

    landing = tmp_path / "landing"
    (landing / "orders").mkdir(parents=True)
    day = date(2026, 3, 1)
    (landing / "orders" / f"{day}.csv").write_text("order_id,customer_id,order_ts,amount\na,c1,2026-03-01T10:00:00,5\n")
    store = WorkingStore(tmp_path / "store")

    def broken(*args, **kwargs):
        raise RuntimeError("great-expectations broke")

    with monkeypatch.context() as patch:
        patch.setattr(engine, "run_suite", broken)
        with pytest.raises(RuntimeError, match="great-expectations broke"):
            ingest.ingest(store, str(landing), "orders", day, run_id="first", currency="USD")
    assert store.scalar("select count(*) from landing_files") == 0
    assert ingest.stale_days(store, str(landing), "orders", day) == [day]
    report = ingest.ingest(store, str(landing), "orders", day, run_id="second", currency="USD")
    assert report.days == [day] and report.accepted_rows == 1 and report.expectations


def check(result, name: str) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def test_unusable_landed_files_are_reported_by_a_warning_check_and_gzipped_csv_is_read(settings, instance):
    orders = Path(settings.landing_dir) / "orders"
    day = END - timedelta(days=1)
    gzipped = orders / f"{day}.csv.gz"
    gzipped.write_bytes(gzip.compress(day_file(Path(settings.landing_dir), day).read_bytes()))
    day_file(Path(settings.landing_dir), day).unlink()
    for name in ("latest.csv", "2025-13-45.csv", f"{END}.json"):
        (orders / name).write_text("order_id,customer_id,order_ts,amount\n")

    result = ingest_orders(settings, instance, END, END)

    assert result.success
    landing_files = check(result, "landing_files")
    assert not landing_files.passed and landing_files.severity == dg.AssetCheckSeverity.WARN
    assert landing_files.description == (
        f"3 landed file(s) not used: orders/2025-13-45.csv (2025-13-45 is not a date), "
        f"orders/{END}.json (not .csv, .csv.gz or .parquet), orders/latest.csv (no date in the name)"
    )
    metadata = result.asset_materializations_for_node("ingest_orders")[0].metadata
    assert "orders/latest.csv" in metadata["files_not_used"].value
    rows = stored(settings, "select count(*) n, min(source_file) f from raw_orders where order_day = ?", [day])
    assert rows.row(0) == (pl.read_csv(gzipped, infer_schema=False).height, f"orders/{day}.csv.gz")


def test_a_ragged_row_is_quarantined_with_its_line_and_the_rest_of_its_file_is_accepted(settings, instance):
    day = END - timedelta(days=2)
    path = day_file(Path(settings.landing_dir), day)
    lines = path.read_text().splitlines(keepends=True)
    landed = len(lines) - 1
    lines[3] = lines[3].rstrip("\n") + ",surplus\n"  # line 4 of the file
    path.write_text("".join(lines))

    result = ingest_orders(settings, instance, day, day)

    assert result.success and check(result, "rows_accounted_for").passed
    raw = stored(settings, "select source_row, extra from raw_orders where order_day = ? order by 1", [day])
    assert raw.height == landed and raw["extra"][2] == '{"fields_beyond_header":["surplus"]}'
    quarantined = stored(settings, "select source_row, reason from quarantine_orders where order_day = ?", [day])
    width = lines[0].count(",") + 1
    assert (3, f"line 4: {width + 1} fields, the header has {width}") in quarantined.rows()
    accepted = stored(settings, "select count(*) n from orders where order_day = ?", [day])["n"][0]
    assert accepted + quarantined.height == landed and accepted >= landed - quarantined.height


def test_the_expectations_check_passes_on_a_healthy_day_and_warns_over_the_warn_share(tmp_path, landing, instance):
    settings = make_settings(tmp_path, landing, SEG_QUARANTINE_THRESHOLD="0.9")  # quarantine_share stays out of it
    healthy = ingest_orders(settings, instance, END - timedelta(days=1), END - timedelta(days=1))
    expectations = check(healthy, "expectations")
    assert expectations.passed, expectations.description
    assert "expectations saw bad rows, every one quarantined" in expectations.description
    assert expectations.metadata["results"].value  # GX's details either way

    path = day_file(landing, END)
    frame = pl.read_csv(path, infer_schema=False)
    negative = frame.head(1).select(pl.exclude("order_id"))
    extra = pl.DataFrame({"order_id": [f"neg-{i}" for i in range(10)]}).join(negative, how="cross")
    pl.concat([frame, extra.select(frame.columns).with_columns(pl.lit("-1").alias("amount"))]).write_csv(path)
    dirty = ingest_orders(settings, instance, END, END)
    assert dirty.success  # the blocking quarantine_share check keeps its own threshold
    expectations = check(dirty, "expectations")
    assert not expectations.passed and expectations.severity == dg.AssetCheckSeverity.WARN
    assert expectations.description.startswith(f"1 day(s) over SEG_QUARANTINE_WARN_SHARE 1.0%: {END} (")
    assert expectations.metadata["results"].value


def test_a_shrinking_profile_snapshot_blocks_the_version_naming_the_file_and_both_counts(settings, instance):
    previous, latest = sorted(scan(settings.landing_dir, "profiles", END))[-2:]
    path = scan(settings.landing_dir, "profiles", END)[latest][0].path
    landed = pl.read_csv(path, infer_schema=False).height
    before = pl.read_csv(scan(settings.landing_dir, "profiles")[previous][0].path, infer_schema=False).height
    path.write_text(path.read_text().splitlines()[0] + "\n")  # header only

    with pytest.raises(RunFailed) as failed:
        materialize_as_of(settings, END, instance)

    assert landed > 0
    assert str(failed.value).endswith(
        f"profiles check snapshot_size failed: profiles/{path.name} has 0 rows, fewer than SEG_PROFILE_MIN_SHARE 50% "
        f"of the previous snapshot profiles/{previous}.csv ({before:,} rows)"
    )
    assert not WorkingStore(settings.store_uri).scalar("select count(*) from segment_versions")
    store = WorkingStore(settings.store_uri)
    snapshots = ingest.latest_snapshots(store, settings.landing_dir, END)
    assert [(s.day, s.rows) for s in snapshots] == [(latest, 0), (previous, before)]
    off = make_settings(Path(settings.store_path).parent.parent, Path(settings.landing_dir), SEG_PROFILE_MIN_SHARE="0")
    assert snapshot_size(off, *snapshots).passed
    assert snapshot_size(settings, snapshots[1], snapshots[1]).passed  # an unchanged size passes
