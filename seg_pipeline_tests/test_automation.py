"""The daily schedule, the landing sensor and a blocked validation stopping everything downstream."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from seg_pipeline.defs import build_definitions
from seg_pipeline.defs.automation import run_failure_summary
from seg_pipeline.launch.runs import RunFailed, materialize_as_of
from seg_pipeline_tests.conftest import END, make_settings


def sensor_tick(defs: dg.Definitions, instance: dg.DagsterInstance):
    sensor = defs.resolve_sensor_def("landing_files")
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))


def test_daily_schedule_requests_yesterdays_partition(settings):
    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def("daily_segments")
    assert schedule.cron_schedule == "0 6 * * *" and schedule.execution_timezone == "UTC"
    when = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
    with dg.build_schedule_context(scheduled_execution_time=when, repository_def=defs.get_repository_def()) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2026-06-30"]


def test_landing_sensor_runs_new_and_redelivered_days_once(settings, instance):
    defs = build_definitions(settings)
    first = sensor_tick(defs, instance)
    assert [r.partition_key for r in first.run_requests] == [END.isoformat()]
    materialize_as_of(settings, END, instance)
    assert sensor_tick(defs, instance).run_requests == []
    path = f"{settings.landing_dir}/orders/{END - timedelta(days=3)}.csv"
    pl.read_csv(path, infer_schema=False).head(3).write_csv(path)  # a corrected file is re-delivered
    again = sensor_tick(defs, instance).run_requests
    assert [r.partition_key for r in again] == [END.isoformat()]
    assert again[0].run_key != first.run_requests[0].run_key


def test_blocked_validation_stops_the_run_and_everything_downstream(tmp_path, landing, instance):
    settings = make_settings(tmp_path, landing, SEG_QUARANTINE_THRESHOLD="0.001", SEG_QUARANTINE_MIN_ROWS="1")
    with pytest.raises(RunFailed, match="orders check quarantine_share failed"):
        materialize_as_of(settings, END, instance)
    assert instance.get_latest_materialization_event(dg.AssetKey("orders")) is not None
    for downstream in ("customer_features", "customer_segments", "current_segments"):
        assert instance.get_latest_materialization_event(dg.AssetKey(downstream)) is None
    assert not (tmp_path / "out" / "segments.duckdb").exists()


def test_run_failure_summary_names_the_run_partition_step_and_error(tmp_path, landing, instance, capfd):
    settings = make_settings(tmp_path, landing)
    (landing / "orders" / f"{END}.csv").write_text("order_id;customer_id;order_ts;amount\nX;C;2026-06-30T01:00:00;1\n")
    with pytest.raises(RunFailed):
        materialize_as_of(settings, END, instance)
    run = instance.get_runs(limit=1)[0]
    [failure] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_summary",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=failure.dagster_event,
    ).for_run_failure()
    capfd.readouterr()
    run_failure_summary(context)
    [summary] = [line for line in capfd.readouterr().err.splitlines() if "failed in" in line]
    assert f"Run {run.run_id[:8]} of {run.job_name} for partition {END} failed in ingest_orders: " in summary
    assert f"ingest_orders: 1 landed file(s) rejected; first: orders/{END}.csv: missing required column(s)" in summary
    assert "seg-pipeline materialize --as-of" in summary
