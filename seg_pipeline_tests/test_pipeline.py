"""The whole pipeline through real Dagster runs, the CLI and the published analyst file."""

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

import seg_pipeline
from seg_pipeline.core.actions import ASSUMED_SAVE_RATE, NO_ACTION
from seg_pipeline.core.clusters import label_keep_share
from seg_pipeline.core.rfm import ACTIVE_SEGMENTS
from seg_pipeline.core.schemas import CUSTOMER_SEGMENTS
from seg_pipeline.defs import build_definitions
from seg_pipeline.launch.runs import materialize_as_of
from seg_pipeline.storage.store import PART_TABLES, WorkingStore
from seg_pipeline.storage.warehouse import personal_columns_in
from seg_pipeline_tests.conftest import END, make_settings

ASSET_KEYS = [
    "action_lift", "audiences", "churn_model", "churn_watchlist", "cluster_model", "cluster_profiles",
    "current_segments", "customer_features", "customer_segments", "orders", "profiles", "quarantine_orders",
    "quarantine_profiles",
    "raw_orders", "raw_profiles", "segment_migration", "segment_report", "segment_summary", "tier_pareto",
]  # fmt: skip
CONTRACT_TABLES = {
    "customer_features": ["as_of", "customer_id", "frequency", "recency", "T", "monetary_value",
                          "days_since_last_order", "order_count", "total_spend"],
    "customer_segments": ["as_of", "customer_id", "segment_version", "rfm_score", "rfm_segment", "cluster_label",
                          "value_tier", "lifecycle_stage", "churn_risk", "purchase_propensity", "clv",
                          "recommended_action", "p_alive", "expected_purchases_30d", "expected_purchases_90d",
                          "expected_purchases_365d", "next_order_date", "clv_low", "clv_high", "churn_reasons",
                          "in_control_group"],
    "current_segments": ["as_of", "customer_id", "segment_version", "rfm_segment", "churn_risk"],
    "segment_versions": ["as_of", "run_id", "churn_model_version", "cluster_model_version", "metrics",
                         "customers", "created_at", "churn_method", "data_through"],
    "segment_summary": ["as_of"], "segment_migration": ["as_of"],
    "action_lift": ["as_of", "recommended_action", "treated_customers", "control_customers", "treated_rate",
                    "control_rate", "lift", "lift_low", "lift_high", "treated_spend", "control_spend", "spend_lift",
                    "spend_lift_low", "spend_lift_high"],
    "cluster_profiles": ["as_of", "cluster_label", "customers", "revenue_share", "distinguishing_features"],
    "quarantine_orders": ["source_file", "reason", "order_id", "amount"],
    "quarantine_profiles": ["source_file", "reason", "customer_id"],
}  # fmt: skip


def analyst(path: str, sql: str) -> list[tuple]:
    with duckdb.connect(path, read_only=True) as con:
        return con.execute(sql).fetchall()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seg_pipeline.cli", *args], env={**os.environ, **env},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def cli_env(settings, home: Path) -> dict[str, str]:
    return {
        "SEG_LANDING_DIR": settings.landing_dir,
        "SEG_WAREHOUSE_PATH": settings.warehouse_path,
        "SEG_PARTITION_START": settings.partition_start,
        "SEG_CUSTOMER_SHARDS": str(settings.customer_shards),
        "SEG_RETRAIN_EVERY_DAYS": str(settings.retrain_every_days),
        "DAGSTER_HOME": str(home),
    }


def test_definitions_load_with_the_expected_graph(settings):
    defs = build_definitions(settings)
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert sorted(key.to_user_string() for key in graph.get_all_asset_keys()) == ASSET_KEYS
    assert {k.to_user_string() for k in graph.get(dg.AssetKey("customer_segments")).parent_keys} == {
        "churn_model", "cluster_model", "customer_features",
    }  # fmt: skip
    assert [s.name for s in defs.schedules] == ["daily_segments"]
    assert sorted(s.name for s in defs.sensors) == ["dead_runs", "landing_files", "run_failure_summary"]
    assert defs.resolve_job_def("segments_job").partitions_def is not None


def test_segment_parts_are_stored_with_every_documented_column_in_order():
    assert list(PART_TABLES["customer_segments"][1]) == list(CUSTOMER_SEGMENTS.names)


def test_version_holds_every_contract_table_and_one_row_per_customer(published):
    settings, _ = published
    path = settings.warehouse_path
    for table, columns in CONTRACT_TABLES.items():
        present = {row[0] for row in analyst(path, f"describe {table}")}
        assert set(columns) <= present, (table, set(columns) - present)
    per_version = analyst(
        path, "select as_of, count(*), count(distinct customer_id) from customer_segments group by 1 order by 1"
    )
    assert [row[0] for row in per_version] == [END - timedelta(days=1), END]
    assert all(n == distinct for _, n, distinct in per_version)
    features = analyst(path, f"select count(*) from customer_features where as_of = '{END}'")[0][0]
    assert per_version[-1][1] == features
    assert analyst(path, "select distinct as_of from current_segments") == [(END,)]
    assert analyst(path, "select count(*) from customer_segments where recommended_action is null") == [(0,)]


def test_each_version_reports_how_many_cluster_labels_the_previous_one_kept(published):
    settings, _ = published
    path = settings.warehouse_path
    shares = [
        json.loads(metrics)["cluster_label_keep_share"]
        for (metrics,) in analyst(path, "select metrics from segment_versions order by as_of")
    ]
    labels = [
        pl.DataFrame(analyst(path, f"select customer_id, cluster_label from customer_segments where as_of = '{day}'"),
                     schema=["customer_id", "cluster_label"], orient="row")
        for day in (END - timedelta(days=1), END)
    ]  # fmt: skip
    assert shares[0] is None  # the first version has no previous one
    assert shares[1] == pytest.approx(label_keep_share(*labels))


def test_predictions_are_published_with_their_checks(published):
    settings, _ = published
    rows = pl.DataFrame(
        analyst(settings.warehouse_path, "select churn_risk, p_alive, expected_purchases_30d, expected_purchases_90d, "
                "expected_purchases_365d, next_order_date, clv_low, clv, clv_high, churn_reasons, lifecycle_stage "
                f"from customer_segments where as_of = '{END}'"),
        schema=["risk", "p_alive", "e30", "e90", "e365", "next", "low", "clv", "high", "reasons", "stage"],
        orient="row",
    )  # fmt: skip
    buyers, prospects = rows.filter(pl.col("stage") != "prospect"), rows.filter(pl.col("stage") == "prospect")
    assert prospects.drop("stage").null_count().row(0) == (prospects.height,) * (rows.width - 1)
    assert buyers.select("p_alive", "e30", "low", "clv", "high").null_count().sum_horizontal().item() == 0
    assert buyers.filter(~pl.col("p_alive").is_between(0, 1) | (pl.col("e30") > pl.col("e90"))
                         | (pl.col("e90") > pl.col("e365")) | (pl.col("low") > pl.col("clv"))
                         | (pl.col("clv") > pl.col("high"))).is_empty()  # fmt: skip
    assert buyers.filter(pl.col("next") <= END).is_empty() and buyers["next"].null_count() < buyers.height
    assert buyers.filter(pl.col("risk") >= 0.5)["reasons"].null_count() == 0
    (metrics,) = analyst(settings.warehouse_path, f"select metrics from segment_versions where as_of = '{END}'")[0]
    checks = json.loads(metrics)["predictions"]
    assert [w["window_days"] for w in checks["windows"]] == [30, 90, 365][: len(checks["windows"])]
    assert len(checks["windows"]) >= 2 and checks["churn_drivers"]
    for window in checks["windows"]:
        assert window["actual_purchase_days"] > 0 and 0.5 < window["purchase_ratio"] < 2
        assert window["next_order_mae_days"] >= 0 and window["rhythm_baseline_mae_days"] >= 0
        assert 0 <= window["clv_interval_coverage"] <= 1


def test_published_segments_keep_their_names_and_actions_their_cost_rule(published):
    settings, _ = published
    path = settings.warehouse_path
    lapsed_active = analyst(path, f"select count(*) from customer_segments where lifecycle_stage = 'lapsed' "
                                  f"and rfm_segment in {tuple(ACTIVE_SEGMENTS)}")  # fmt: skip
    assert lapsed_active == [(0,)]
    split = analyst(path, "select count(*) from (select s.as_of from customer_segments s join customer_features f "
                          "using (as_of, customer_id) where s.rfm_score is not null group by s.as_of, "
                          "f.days_since_last_order, f.order_count, f.total_spend having count(distinct rfm_score) > 1)")
    assert split == [(0,)]  # identical inputs, one score
    costly = analyst(path, f"select count(*) from customer_segments where recommended_action = '{NO_ACTION}' "
                           f"and not {ASSUMED_SAVE_RATE} * churn_risk * clv < {settings.contact_cost}")
    assert costly == [(0,)]
    idle = analyst(path, f"select count(*) from customer_segments where recommended_action = '{NO_ACTION}'")
    assert idle[0][0] > 0  # the rule is exercised: the small base has lapsed customers not worth a contact
    for as_of, metrics in analyst(path, "select as_of, metrics from segment_versions order by as_of"):
        by_action = json.loads(metrics)["actions"]["by_action"]
        counts = dict(analyst(path, f"select recommended_action, count(*) from customer_segments "
                                    f"where as_of = '{as_of}' group by 1"))  # fmt: skip
        assert {a: v["customers"] for a, v in by_action.items()} == counts
        assert sum(v["customer_share"] for v in by_action.values()) == pytest.approx(1.0)
        assert sum(v["clv_share"] for v in by_action.values()) == pytest.approx(1.0)


def test_analyst_file_has_no_personal_data_and_explains_itself(published):
    settings, _ = published
    assert personal_columns_in(settings.warehouse_path) == []
    undocumented = analyst(
        settings.warehouse_path,
        "select table_name, column_name from duckdb_columns() where table_name in "
        "('customer_features', 'customer_segments') and comment is null",
    )
    assert undocumented == []
    sql = "select table_name, comment from duckdb_tables() union all select view_name, comment from duckdb_views()"
    tables = dict(analyst(settings.warehouse_path, sql))
    assert all(tables[t] for t in ("customer_features", "customer_segments", "current_segments", "segment_summary"))


def test_rematerializing_a_version_is_identical_and_adds_no_rows(published):
    settings, instance = published
    sql = f"select * exclude (segment_version) from customer_segments where as_of = '{END}' order by customer_id"
    before = analyst(settings.warehouse_path, sql)
    total = analyst(settings.warehouse_path, "select count(*) from customer_segments")
    materialize_as_of(settings, END, instance)
    assert analyst(settings.warehouse_path, sql) == before
    assert analyst(settings.warehouse_path, "select count(*) from customer_segments") == total
    assert analyst(settings.warehouse_path, "select count(*) from segment_versions") == [(2,)]


def test_rollback_puts_the_previous_file_back(published, tmp_path):
    settings, _ = published
    latest = "select max(created_at) from segment_versions"
    current, previous = analyst(settings.warehouse_path, latest), analyst(f"{settings.warehouse_path}.previous", latest)
    assert current != previous
    env = cli_env(settings, tmp_path / "home")
    run = cli(env, "rollback")
    assert run.returncode == 0, run.stderr
    try:
        assert analyst(settings.warehouse_path, latest) == previous
    finally:
        assert cli(env, "rollback").returncode == 0
    assert analyst(settings.warehouse_path, latest) == current


def test_assets_tell_the_operator_what_they_did(published):
    _, instance = published

    def metadata(key: str) -> dict:
        return instance.get_latest_materialization_event(dg.AssetKey(key)).asset_materialization.metadata

    for key in (
        "raw_orders",
        "orders",
        "quarantine_orders",
        "customer_features",
        "customer_segments",
        "segment_summary",
    ):
        assert {"dagster/row_count", "dagster/column_schema", "preview"} <= set(metadata(key)), key
    assert "reasons" in metadata("quarantine_orders")
    for key in ("raw_profiles", "profiles", "quarantine_profiles"):  # previews never show personal data
        shown = {c.name for c in metadata(key)["dagster/column_schema"].value.columns}
        assert "customer_id" in shown and not shown & {"name", "email", "phone"}, key
    holdout = metadata("churn_model")["holdout"].value
    assert all(name in holdout for name in ("churn model", "recency-only baseline", "BG/NBD baseline"))
    assert metadata("customer_segments")["top 20% revenue share"].value > 0.5
    history = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("orders"), "expectations"), limit=10
    )
    evaluations = [r.event.dagster_event.event_specific_data for r in history]
    results = [e.metadata["results"].value for e in evaluations if isinstance(e, dg.AssetCheckEvaluation)]
    validated = [r for r in results if r]  # runs that ingested nothing new validated nothing
    assert {"expectation", "column", "unexpected_count", "partial_unexpected_list"} <= set(validated[0][0])
    # a healthy run's checks all pass: none teaches on-call to ignore it
    for asset, check in [("raw_orders", "landing_files"), ("orders", "expectations"), ("profiles", "snapshot_size")]:
        record = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(asset), check), limit=1
        )[0]
        evaluation = record.event.dagster_event.event_specific_data
        assert evaluation.passed, (check, evaluation.description)


READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
q = "select count(*), count(distinct as_of), min(segment_version) from customer_segments"
print(con.execute(q).fetchone(), flush=True)
sys.stdin.readline()
print(con.execute(q).fetchone(), flush=True)
"""


def test_held_analyst_connection_neither_blocks_nor_sees_half_a_version(tmp_path, landing):
    settings = make_settings(tmp_path, landing)
    env = cli_env(settings, tmp_path / "home")
    assert cli(env, "materialize", "--as-of", str(END - timedelta(days=1))).returncode == 0
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, settings.warehouse_path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    before = reader.stdout.readline().strip()
    run = cli({**env, "SEG_KEEP_VERSIONS": "1"}, "materialize", "--as-of", str(END))
    assert run.returncode == 0, run.stderr
    held = reader.communicate("go\n", timeout=60)[0].strip()
    assert held == before  # the held connection still sees the whole old file
    # a new connection sees the new version whole, and only it: SEG_KEEP_VERSIONS=1 dropped the older one,
    # from the analyst file and from the working store (whose customer_segments keeps the versions action_lift
    # has yet to measure, those of the last SEG_CHURN_HORIZON_DAYS)
    assert analyst(settings.warehouse_path, "select min(as_of), max(as_of) from customer_segments") == [(END, END)]
    assert analyst(settings.warehouse_path, "select count(*) from segment_versions") == [(2,)]
    working = WorkingStore(settings.store_uri)
    assert working.day_rows("customer_features")["day"].to_list() == [END]
    assert sorted(working.day_rows("customer_segments")["day"]) == [END - timedelta(days=1), END]
    assert working.frame("select as_of from feature_sources")["as_of"].to_list() == [END]


def test_two_runs_launched_together_both_succeed(tmp_path, landing):
    settings = make_settings(tmp_path, landing)
    env = cli_env(settings, tmp_path / "home")
    runs = [
        subprocess.Popen([sys.executable, "-m", "seg_pipeline.cli", "materialize", "--as-of", str(day)],
                         env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for day in (END - timedelta(days=1), END)
    ]  # fmt: skip
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
    assert len(analyst(settings.warehouse_path, "select * from segment_versions")) == 2


def test_commands_started_together_on_a_new_dagster_home_all_get_an_instance(tmp_path):
    """Four processes, imports done, set up one new DAGSTER_HOME at the same moment."""
    home, go = tmp_path / "new_home", tmp_path / "go"
    code = (
        "import pathlib, sys, time\n"
        "from seg_pipeline.cli import dagster_instance\n"
        "pathlib.Path(sys.argv[2]).touch()\n"
        "while not pathlib.Path(sys.argv[1]).exists(): time.sleep(0.001)\n"
        "print(type(dagster_instance()).__name__)"
    )
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    ready = [tmp_path / f"ready{i}" for i in range(4)]
    starts = [subprocess.Popen([sys.executable, "-c", code, str(go), str(r)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for r in ready]  # fmt: skip
    while not all(r.exists() for r in ready):
        time.sleep(0.01)
    go.touch()
    for process in starts:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0 and out.strip() == "DagsterInstance", err
    assert (home / "dagster.yaml").read_text() == (Path(seg_pipeline.__file__).parent / "dagster.yaml").read_text()


def test_cli_reports_a_broken_file_in_one_line_and_keeps_the_last_version(tmp_path, landing):
    settings = make_settings(tmp_path, landing)
    env = cli_env(settings, tmp_path / "home")
    assert cli(env, "materialize", "--as-of", str(END - timedelta(days=1))).returncode == 0
    (landing / "orders" / f"{END}.csv").write_text("order_id;customer_id;order_ts;amount\nX;C;2026-06-30T01:00:00;1\n")
    run = cli(env, "materialize", "--as-of", str(END))
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert f"orders/{END}.csv" in lines[-1] and "missing required column" in lines[-1]
    assert lines[-1].startswith("seg-pipeline: ")
    assert analyst(settings.warehouse_path, "select distinct as_of from current_segments") == [
        (END - timedelta(days=1),)
    ]


def test_cli_rejects_bad_settings_and_dates_in_one_line(tmp_path, landing):
    env = cli_env(make_settings(tmp_path, landing), tmp_path / "home")
    bad = cli({**env, "SEG_CHURN_HORIZON_DAYS": "soon"}, "materialize", "--as-of", str(END))
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith(
        "seg-pipeline: SEG_CHURN_HORIZON_DAYS"
    )
    early = cli(env, "materialize", "--as-of", "2020-01-01")
    assert early.returncode != 0 and "SEG_PARTITION_START" in early.stderr.strip().splitlines()[-1]


def test_a_version_composed_again_equals_the_published_one_and_times_its_predictions_apart(published):
    """The predictions run on threads beside the rest of the version: composing it again gives the very rows
    and metrics the job published, and the wait for the predictions is timed as their part."""
    from seg_pipeline.core.segments import PREDICTIONS
    from seg_pipeline.services.segments import build_version

    settings, _ = published
    store = WorkingStore.open_existing(settings.store_uri)
    rows, version_row, seconds = build_version(store, settings, END, "again")
    stored = store.read_parts("customer_segments", ["*"], day=END).select(rows.columns)
    key = ["customer_id"]
    assert rows.sort(key).equals(stored.sort(key))  # every column, bit for bit
    (metrics,) = store.read("segment_versions", pl.col("as_of") == END)["metrics"]
    assert json.loads(version_row["metrics"][0]) == json.loads(metrics)
    assert 0 < seconds[PREDICTIONS] < seconds["composing"]


def test_the_code_location_loads_without_the_model_libraries():
    """scikit-learn and SciPy's optimisers are imported by the steps that use them, not at code-location load."""
    code = (
        "import sys; from seg_pipeline.definitions import defs; defs(); import seg_pipeline.cli; "
        "import seg_pipeline.launch.runs; "
        "print(sorted(m for m in ('sklearn', 'scipy.optimize', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.split()[-1] == "[]"
