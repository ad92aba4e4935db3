"""Smoke run of the benchmark on tiny data: it completes and reports every stage and the floor (no timings)."""

from __future__ import annotations

import json
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
    json.dumps(result)

    # the CLI passes its sizes on and writes the JSON file (a second real run would double the test's time)
    calls = []
    monkeypatch.setattr(bench, "run_benchmark", lambda work_dir, **kwargs: calls.append(kwargs) or result)
    out = tmp_path / "result.json"
    assert main(["bench", "--work-dir", str(tmp_path), "--quick", "--orders", "6000", "--out", str(out)]) == 0
    assert calls == [{"days": 730, "quick": True, "orders": 6000, "retrain_every_days": 7}]
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
