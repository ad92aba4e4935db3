"""Shared fixtures: small generated landing data, settings on temp paths, a Dagster instance."""

import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from seg_pipeline.devtools.demo_data import generate_landing
from seg_pipeline.settings import PipelineSettings

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

END = date(2026, 6, 30)
#: the accepted-orders frame the features and models read (INTERFACES: validation's output)
ORDER_SCHEMA = {
    "order_id": pl.Utf8,
    "customer_id": pl.Utf8,
    "order_ts": pl.Datetime("us"),
    "order_day": pl.Date,
    "amount": pl.Float64,
    "currency": pl.Utf8,
    "status": pl.Utf8,
    "channel": pl.Utf8,
    "category": pl.Utf8,
    "quantity": pl.Int32,
}
SMALL = dict(customers=700, days=330, seed=7, end_date=END)


@pytest.fixture(scope="session")
def small_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeded landing data shared read-only by the tests (copy it before changing files)."""
    folder = tmp_path_factory.mktemp("landing")
    generate_landing(folder, **SMALL)
    return folder


@pytest.fixture
def landing(small_landing: Path, tmp_path: Path) -> Path:
    """A private copy of the small landing data that a test may change."""
    return Path(shutil.copytree(small_landing, tmp_path / "landing"))


def make_settings(tmp_path: Path, landing: Path, **env: str) -> PipelineSettings:
    return PipelineSettings.from_env(
        {
            "SEG_LANDING_DIR": str(landing),
            "SEG_WAREHOUSE_PATH": str(tmp_path / "out" / "segments.duckdb"),
            "SEG_PARTITION_START": "2025-01-01",
            **env,
        }
    )


@pytest.fixture
def settings(tmp_path: Path, landing: Path) -> PipelineSettings:
    return make_settings(tmp_path, landing)


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory, small_landing: Path):
    """Two consecutive versions (END - 1 day, END) made by the segments job, and their Dagster instance."""
    from seg_pipeline.launch.runs import materialize_as_of

    tmp = tmp_path_factory.mktemp("published")
    # daily retraining: the second version's cluster model is fitted against the first one's labels
    settings = make_settings(tmp, Path(shutil.copytree(small_landing, tmp / "landing")), SEG_RETRAIN_EVERY_DAYS="1")
    (tmp / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp / "home")) as instance:
        for day in (END - timedelta(days=1), END):
            materialize_as_of(settings, day, instance)
        yield settings, instance


@pytest.fixture
def instance(tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance
