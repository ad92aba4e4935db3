"""Settings: documented defaults, and a bad value fails in one line naming its variable."""

import pytest

from seg_pipeline.bench import RETRAIN_EVERY_DAYS
from seg_pipeline.settings import SETTINGS_DOC, PipelineSettings, SettingsError


def test_every_default_is_usable():
    settings = PipelineSettings.from_env({})
    assert settings.keep_versions == int(SETTINGS_DOC["SEG_KEEP_VERSIONS"][0])
    assert settings.retrain_every_days == RETRAIN_EVERY_DAYS  # the benchmark runs the default cadence
    assert settings.churn_horizon_days == int(SETTINGS_DOC["SEG_CHURN_HORIZON_DAYS"][0])


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
    ],
)
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(SettingsError, match=f"^{name}: ") as error:
        PipelineSettings.from_env({name: value})
    assert "\n" not in str(error.value)
