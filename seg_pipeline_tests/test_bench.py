"""Smoke run of the benchmark on tiny data: it completes and reports every stage and the floor (no timings)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from seg_pipeline.cli import main
from seg_pipeline.devtools import bench
from seg_pipeline.devtools.bench import STAGES, format_report, run_benchmark
from seg_pipeline.storage.store import WorkingStore


def test_tiny_benchmark_reports_every_stage_and_the_floor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    messages: list[str] = []
    result = run_benchmark(tmp_path, orders=10_000, customers=1_500, days=300, progress=messages.append)

    assert result["landing"]["orders"] > 9_000
    assert result["floor"]["seconds"] > 0 and result["floor"]["customers"] > 300
    cold, next_day = result["runs"]["cold"], result["runs"]["next_day"]
    assert (cold["as_of"], next_day["as_of"]) == ("2026-11-20", "2026-11-21")
    for run in (cold, next_day):
        assert run["peak_rss_mb"] > 0 and run["summary"].startswith("published ")
        assert set(run["stages"]) == set(STAGES)
        assert all(run["stages"][stage]["peak_rss_mb"] for stage in STAGES)
        assert run["stages"]["validate"]["seconds"] > 0 and run["stages"]["ingest"]["seconds"] > 0
        steps = {step for stage in run["stages"].values() for step in stage["steps"]}
        assert {"ingest_orders", "ingest_profiles", "customer_features", "churn_model", "cluster_model",
                "customer_segments", "segment_summary", "current_segments"} <= steps  # fmt: skip
        # the segments step reports issue 18's share of it from inside the real step
        parts = run["stages"]["segments"]["parts"]
        assert 0 < parts["predictions"] < run["stages"]["segments"]["seconds"] and parts["rest"] > 0
        assert parts["predictions_share_of_rest"] == pytest.approx(parts["predictions"] / parts["rest"], abs=1e-3)
    # weekly retraining (the default): the next day reused the cold run's models
    store = WorkingStore(tmp_path / "run" / "segments_store", create=False)
    trained = store.frame("select kind, trained_as_of::varchar from model_registry order by kind").rows()
    assert trained == [("churn", "2026-11-20"), ("clusters", "2026-11-20")]
    assert set(result["targets"]) == {"cold total", "cold peak memory", "next-day total", "cold features vs floor"}
    report = format_report(result)
    assert all(stage in report for stage in STAGES) and "floor" in report
    assert "issue 18's predictions" in report
    assert cold["largest_step"]["peak_rss_mb"] == max(cold["step_peak_rss_mb"].values()) > 0
    json.dumps(result)

    # the CLI passes its sizes on and writes the JSON file (a second real run would double the test's time)
    calls = []
    monkeypatch.setattr(bench, "run_benchmark", lambda work_dir, **kwargs: calls.append(kwargs) or result)
    out = tmp_path / "result.json"
    assert main(["bench", "--work-dir", str(tmp_path), "--quick", "--orders", "6000", "--out", str(out)]) == 0
    assert main(["bench", "--work-dir", str(tmp_path), "--shards", "4", "--executor", "multiprocess"]) == 0
    assert calls == [
        {"days": 730, "quick": True, "orders": 6000, "retrain_every_days": 7, "shards": 1, "executor": "in_process"},
        {"days": 730, "quick": False, "retrain_every_days": 7, "shards": 4, "executor": "multiprocess"},
    ]
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))


ALLOCATES = """
import subprocess, sys
code = "import time; block = bytearray(300 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(1.5)"
sys.exit(subprocess.run([sys.executable, "-c", code]).returncode)
"""


def test_memory_is_sampled_per_process_and_a_step_run_in_its_own_process_gets_that_process_peak(tmp_path) -> None:
    child = bench._run([sys.executable, "-c", ALLOCATES], tmp_path / "log", tmp_path, None)
    assert child.returncode == 0
    others = {pid for _, pid, _ in child.samples} - {child.pid}
    assert len(others) == 1 and max(rss for _, rss in child.own()) < 200  # the parent never held the 300 MB
    [worker] = others
    whole = (child.started, child.ended)
    pids = {"own": worker, "in_run": child.pid}  # a step in a process of its own; one in the run's process
    events = bench._RunEvents("run", spans={"own": whole, "in_run": whole}, pids=pids, validating={}, composing={})
    peaks = bench._step_peaks(child, events, child.own())
    assert peaks["own"] > 300 > peaks["in_run"]


def test_the_steps_of_a_sharded_version_count_as_the_features_and_segments_stages(tmp_path) -> None:
    env = {"SEG_LANDING_DIR": str(tmp_path), "SEG_WAREHOUSE_PATH": str(tmp_path / "segments.duckdb")}
    stages = bench._step_stages({**env, "SEG_CUSTOMER_SHARDS": "3"})
    assert {step for step, stage in stages.items() if stage == "segments"} == {
        "customer_segments", "segments_population", "segments_shard_0", "segments_shard_1", "segments_shard_2"
    }  # fmt: skip
    assert {step for step, stage in stages.items() if stage == "features"} == {
        "customer_features", "features_shard_0", "features_shard_1", "features_shard_2"
    }  # fmt: skip
