"""Settings: documented defaults, and a bad value fails in one line naming its variable."""

import dagster as dg
import pytest

from seg_pipeline.devtools.bench import RETRAIN_EVERY_DAYS
from seg_pipeline.settings import SETTINGS_DOC, PipelineSettings, SettingsError


def test_every_default_is_usable():
    settings = PipelineSettings.from_env({})
    assert settings.keep_versions == int(SETTINGS_DOC["SEG_KEEP_VERSIONS"][0])
    assert settings.retrain_every_days == RETRAIN_EVERY_DAYS  # the benchmark runs the default cadence
    assert settings.churn_horizon_days == int(SETTINGS_DOC["SEG_CHURN_HORIZON_DAYS"][0])
    assert settings.contact_cost == float(SETTINGS_DOC["SEG_CONTACT_COST"][0])
    assert (settings.control_share, settings.control_salt) == (0.10, "seg_pipeline")
    assert settings.export_dir.endswith("/data/exports")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SEG_KEEP_VERSIONS", "-1"),
        ("SEG_KEEP_VERSIONS", "all"),
        ("SEG_RETRAIN_EVERY_DAYS", "0"),
        ("SEG_CHURN_HORIZON_DAYS", "3"),
        ("SEG_QUARANTINE_THRESHOLD", "1.5"),
        ("SEG_VALUE_TIER_CUTS", "0.2,0.1,0.3"),
        ("SEG_CURRENCY", "dollars"),
        ("SEG_PARTITION_START", "yesterday"),
        ("SEG_SCHEDULE_CRON", "every morning"),
        ("SEG_SCHEDULE_CRON", "61 6 * * *"),
        ("SEG_SCHEDULE_TIMEZONE", "Mars/Olympus"),
        ("SEG_WAREHOUSE_PATH", "/"),
        ("SEG_WAREHOUSE_PATH", "/proc/1/segments.duckdb"),
        ("SEG_QUARANTINE_WARN_SHARE", "2"),
        ("SEG_PROFILE_MIN_SHARE", "-0.5"),
        ("SEG_MAX_LANDING_GAP_DAYS", "-1"),
        ("SEG_CONTACT_COST", "-0.5"),
        ("SEG_CONTACT_COST", "free"),
        ("SEG_CONTROL_SHARE", "1"),
        ("SEG_CONTROL_SHARE", "ten percent"),
    ],
)
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(SettingsError, match=f"^{name}: ") as error:
        PipelineSettings.from_env({name: value})
    assert "\n" not in str(error.value)


def test_the_store_cannot_be_the_analyst_file(tmp_path):
    path = str(tmp_path / "segments.duckdb")
    with pytest.raises(SettingsError, match="^SEG_STORE_PATH: .* is the analyst file"):
        PipelineSettings.from_env({"SEG_WAREHOUSE_PATH": path, "SEG_STORE_PATH": path})


def test_the_store_uri_defaults_beside_the_old_store_file_and_takes_object_stores(tmp_path):
    warehouse = {"SEG_WAREHOUSE_PATH": str(tmp_path / "data" / "segments.duckdb")}
    assert PipelineSettings.from_env(warehouse).store_uri == str(tmp_path / "data" / "segments_store")
    custom = PipelineSettings.from_env({**warehouse, "SEG_STORE_PATH": str(tmp_path / "old" / "mine.duckdb")})
    assert custom.store_uri == str(tmp_path / "old" / "mine")
    for uri in ("s3://bucket/seg/store", "gs://bucket/store", "az://container/store"):
        assert PipelineSettings.from_env({**warehouse, "SEG_STORE_URI": uri + "/"}).store_uri == uri
    local = PipelineSettings.from_env({**warehouse, "SEG_STORE_URI": f"file://{tmp_path}/s"})
    assert local.store_uri == f"{tmp_path}/s"


@pytest.mark.parametrize("uri", ["ftp://host/store", "s3://", "s3:///prefix", "{file}"])
def test_a_bad_store_uri_names_the_setting_in_one_line(tmp_path, uri):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SettingsError, match="^SEG_STORE_URI: ") as error:
        PipelineSettings.from_env({"SEG_STORE_URI": uri.format(file=tmp_path / "a_file")})
    assert "\n" not in str(error.value)


def test_partitions_start_at_the_first_landed_order_day_unless_set(tmp_path):
    (tmp_path / "orders").mkdir()
    for name in ("2025-03-04.csv", "2025-03-02-late.csv.gz", "notes.txt"):
        (tmp_path / "orders" / name).write_text("")
    assert PipelineSettings.from_env({"SEG_LANDING_DIR": str(tmp_path)}).partition_start == "2025-03-02"
    pinned = {"SEG_LANDING_DIR": str(tmp_path), "SEG_PARTITION_START": "2025-01-01"}
    assert PipelineSettings.from_env(pinned).partition_start == "2025-01-01"


def test_a_missing_landing_directory_is_an_error_not_an_empty_success(tmp_path):
    from datetime import date

    from seg_pipeline.launch.runs import RunFailed, materialize_as_of

    settings = PipelineSettings.from_env({"SEG_LANDING_DIR": str(tmp_path / "nowhere"),
                                          "SEG_WAREHOUSE_PATH": str(tmp_path / "segments.duckdb")})  # fmt: skip
    with pytest.raises(RunFailed, match="^SEG_LANDING_DIR: .*nowhere does not exist"):
        materialize_as_of(settings, date(2025, 3, 2), dg.DagsterInstance.ephemeral())
    assert not (tmp_path / "segments.duckdb").exists()
