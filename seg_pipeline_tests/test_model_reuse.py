"""Models are reused within SEG_RETRAIN_EVERY_DAYS only while what they depend on is unchanged (real runs)."""

import shutil
from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from seg_pipeline.devtools.demo_data import generate_landing
from seg_pipeline.launch.runs import materialize_as_of
from seg_pipeline.storage.store import WorkingStore
from seg_pipeline_tests.conftest import END, make_settings


def registry(settings) -> list[tuple]:
    """(kind, trained_as_of, version, created_at) of every registered model."""
    return (
        WorkingStore(settings.store_uri)
        .frame("select kind, trained_as_of, version, created_at from model_registry order by kind, trained_as_of")
        .rows()
    )


def version(settings) -> tuple:
    """(segment_version, churn_model_version, cluster_model_version) of version END."""
    return (
        WorkingStore(settings.store_uri)
        .frame(
            "select segment_version, churn_model_version, cluster_model_version from segment_versions where as_of = ?",
            [END],
        )
        .row(0)
    )


def segments(settings) -> pl.DataFrame:
    return WorkingStore(settings.store_uri).read_parts("customer_segments", ["*"], day=END).sort("customer_id")


def test_a_changed_setting_retrains_what_depends_on_it_and_an_unchanged_rerun_reuses(tmp_path, instance):
    landing = tmp_path / "landing"  # history enough for a 180-day horizon (two horizons and the snapshots before D)
    generate_landing(landing, customers=400, days=520, seed=7, end_date=END)
    settings = make_settings(tmp_path, landing)
    materialize_as_of(settings, END, instance)
    trained = registry(settings)
    assert [row[:2] for row in trained] == [("churn", END), ("clusters", END)]
    first = version(settings)

    longer = make_settings(tmp_path, landing, SEG_CHURN_HORIZON_DAYS="180")
    materialize_as_of(longer, END, instance)  # within SEG_RETRAIN_EVERY_DAYS, but trained for another horizon
    retrained = registry(longer)
    assert retrained[0][:2] == ("churn", END) and retrained[0][2:] != trained[0][2:]  # a new model, a new version
    assert retrained[1] == trained[1]  # the clusters do not depend on the horizon: reused
    second = version(longer)
    assert second[0] != first[0] and second[1] != first[1] and second[2] == first[2]

    materialize_as_of(longer, END, instance)  # nothing changed: nothing trained, the same version id
    assert registry(longer) == retrained
    assert version(longer) == second

    cuts = make_settings(tmp_path, landing, SEG_CHURN_HORIZON_DAYS="180", SEG_VALUE_TIER_CUTS="0.02,0.10,0.30")
    materialize_as_of(cuts, END, instance)  # other tiers, the same models
    assert registry(cuts) == retrained
    assert version(cuts)[0] != second[0] and version(cuts)[1:] == second[1:]


def test_a_corrected_old_day_retrains_and_the_rerun_equals_a_clean_run(tmp_path, landing, instance):
    settings = make_settings(tmp_path, landing)
    materialize_as_of(settings, END, instance)
    before = registry(settings)

    path = landing / "orders" / f"{END - timedelta(days=30)}.csv"
    rows = pl.read_csv(path, infer_schema=False)
    rows.head(rows.height // 2).write_csv(path)  # a corrected delivery of a day inside the training window
    materialize_as_of(settings, END, instance)
    after = registry(settings)
    assert [row[:2] for row in after] == [row[:2] for row in before]  # retrained for END, both models
    assert all(new[3] > old[3] for new, old in zip(after, before, strict=True))

    clean_dir = tmp_path / "clean"
    clean = make_settings(clean_dir, Path(shutil.copytree(landing, clean_dir / "landing")))
    (clean_dir / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(clean_dir / "home")) as clean_instance:
        materialize_as_of(clean, END, clean_instance)
    assert [row[:3] for row in registry(clean)] == [row[:3] for row in after]
    assert version(clean) == version(settings)
    assert segments(clean).equals(segments(settings))
