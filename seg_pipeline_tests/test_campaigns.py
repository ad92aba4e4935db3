"""Control groups, audience files and measured lift, through real Dagster runs on generated data.

Version D is materialized; a campaign for one action is planted into the later landing files (extra
completed orders for a share of exactly D's treated customers of that action, `plant_campaign`); the
version D + SEG_CHURN_HORIZON_DAYS then measures it in `action_lift`.
"""

import json
import shutil
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from seg_pipeline import cli, report
from seg_pipeline.defs import build_definitions
from seg_pipeline.devtools.demo_data import generate_landing, plant_campaign
from seg_pipeline.launch.runs import materialize_as_of
from seg_pipeline.storage.audiences import COLUMNS, OPTIONAL_COLUMNS, file_stem
from seg_pipeline_tests.conftest import END, make_settings
from seg_pipeline_tests.test_control_group import reference_hash

D = END - timedelta(days=120)
LATER = D + timedelta(days=90)
PLANTED = 0.3


def analyst(path: str, sql: str, params: list | None = None) -> pl.DataFrame:
    with duckdb.connect(path, read_only=True) as con:
        return con.sql(sql, params=params or []).pl()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory):
    """(settings, instance, planted action, unplanted action, D's segments) after versions D and LATER."""
    tmp = tmp_path_factory.mktemp("campaign")
    landing = tmp / "landing"
    generate_landing(landing, customers=2000, days=330, seed=11, end_date=END)
    # a large control group, so a few thousand customers give the lift a usable interval
    settings = make_settings(tmp, landing, SEG_CONTROL_SHARE="0.5", SEG_EXPORT_DIR=str(tmp / "exports"))
    (tmp / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp / "home")) as instance:
        materialize_as_of(settings, D, instance)
        segments = analyst(settings.warehouse_path, "select * from customer_segments where as_of = ?", [D])
        treated = segments.filter((pl.col("recommended_action") != "No action") & ~pl.col("in_control_group"))
        by_size = treated.group_by("recommended_action").len().sort("len", "recommended_action", descending=True)
        # the campaign goes to the largest audience with enough customers who would not have bought anyway
        for planted in by_size["recommended_action"]:
            audience = treated.filter(pl.col("recommended_action") == planted)["customer_id"]
            try:
                plant_campaign(landing, audience, D, PLANTED, horizon_days=settings.churn_horizon_days)
                break
            except ValueError:
                continue
        unplanted = by_size.filter(pl.col("recommended_action") != planted)["recommended_action"][0]
        materialize_as_of(settings, LATER, instance)
        yield settings, instance, planted, unplanted, segments


def test_control_group_is_the_documented_salted_hash_stable_across_versions(campaign):
    settings, _, _, _, first = campaign
    later = analyst(settings.warehouse_path, "select * from customer_segments where as_of = ?", [LATER])
    both = first.join(later, on="customer_id", suffix="_later")
    assert both.height == first.height and later.height > first.height  # new customers joined
    assert both.filter(pl.col("in_control_group") != pl.col("in_control_group_later")).is_empty()
    # the action changes for many customers; their membership does not
    assert both.filter(pl.col("recommended_action") != pl.col("recommended_action_later")).height > 50

    documented = [reference_hash(c, settings.control_salt) < 0.5 * 2**64 for c in later["customer_id"]]
    assert documented == later["in_control_group"].to_list()
    assert 0.4 < later["in_control_group"].mean() < 0.6
    # independent of the action: every action with enough customers has a control share near 0.5
    shares = first.group_by("recommended_action").agg(pl.len(), pl.col("in_control_group").mean())
    assert shares.filter(pl.col("len") >= 40)["in_control_group"].is_between(0.3, 0.7).all()


def test_audience_files_hold_exactly_the_treated_customers_of_each_action_and_no_personal_data(campaign):
    settings, _, _, _, segments = campaign
    folder = f"{settings.export_dir}/{D}"
    manifest = json.loads(open(f"{folder}/manifest.json", encoding="utf-8").read())
    assert manifest["as_of"] == str(D) and manifest["segment_version"] == segments["segment_version"][0]
    actions = segments.filter(pl.col("recommended_action") != "No action")["recommended_action"].unique().sort()
    assert sorted(manifest["actions"]) == actions.to_list()
    snapshots = sorted(Path(settings.landing_dir).glob("profiles/*.csv"))
    profiles = pl.concat([pl.read_csv(f, infer_schema=False) for f in snapshots])
    personal = {v for c in ("name", "email", "phone") for v in profiles[c].drop_nulls().unique()}
    files = set()
    for action in actions:
        members = segments.filter(pl.col("recommended_action") == action)
        treated = members.filter(~pl.col("in_control_group"))["customer_id"].sort()
        counts = manifest["actions"][action]
        assert (counts["treated"], counts["control"]) == (treated.len(), members.height - treated.len())
        stem = file_stem(action)
        if treated.is_empty():  # a small action wholly in the control group has no audience and no files
            assert counts["files"] == []
            continue
        csv = pl.read_csv(f"{folder}/{stem}.csv", schema_overrides={"customer_id": pl.String})
        parquet = pl.read_parquet(f"{folder}/{stem}.parquet")
        assert csv.columns == parquet.columns == [*COLUMNS, *OPTIONAL_COLUMNS]  # ids, scores and predictions only
        assert csv["customer_id"].to_list() == parquet["customer_id"].to_list() == treated.to_list()
        assert set(csv["recommended_action"]) == {action}
        text = open(f"{folder}/{stem}.csv", encoding="utf-8").read()
        assert not any(value in text for value in personal) and "@" not in text
        files |= {f"{stem}.csv", f"{stem}.parquet"}
    assert len(files) >= 6  # several audiences were written
    assert {p.name for p in Path(folder).iterdir()} == files | {"manifest.json"}


def test_rerunning_a_version_replaces_its_audience_folder_whole(campaign):
    settings, instance, _, _, _ = campaign
    folder = Path(settings.export_dir) / str(D)
    (folder / "stale.csv").write_text("customer_id\nC_gone\n")
    before = json.loads((folder / "manifest.json").read_text())
    defs = build_definitions(settings)
    result = dg.materialize(
        list(defs.assets), selection="audiences", partition_key=str(D), resources=defs.resources, instance=instance
    )
    assert result.success
    assert not (folder / "stale.csv").exists()
    after = json.loads((folder / "manifest.json").read_text())
    assert {k: v for k, v in after.items() if k != "created_at"} == {
        k: v for k, v in before.items() if k != "created_at"
    }
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_action_lift_finds_the_planted_effect_and_none_where_there_is_none(campaign):
    settings, instance, planted, unplanted, _ = campaign
    lift = analyst(settings.warehouse_path, "select * from action_lift order by as_of, recommended_action")
    assert lift["as_of"].unique().to_list() == [D]  # LATER is not mature yet: no rows of it
    rows = {r["recommended_action"]: r for r in lift.iter_rows(named=True)}
    effect, none = rows[planted], rows[unplanted]
    assert effect["lift_low"] > 0 and abs(effect["lift"] - PLANTED) < 0.12, effect
    assert none["lift_low"] < 0 < none["lift_high"], none
    assert none["spend_lift_low"] < 0 < none["spend_lift_high"], none
    # the interval is the documented normal approximation
    se = (
        effect["treated_rate"] * (1 - effect["treated_rate"]) / effect["treated_customers"]
        + effect["control_rate"] * (1 - effect["control_rate"]) / effect["control_customers"]
    ) ** 0.5
    assert effect["lift_high"] - effect["lift"] == pytest.approx(1.96 * se)
    metadata = instance.get_latest_materialization_event(dg.AssetKey("action_lift")).asset_materialization.metadata
    assert metadata["lifts of as_of"].value == str(D)
    assert planted in metadata["lifts"].value and f"{effect['lift']:+.4g}" in metadata["lifts"].value


def test_generate_campaign_lift_plants_orders_for_the_audience_of_a_version(campaign, tmp_path, monkeypatch, capsys):
    settings, _, _, unplanted, segments = campaign
    landing = Path(shutil.copytree(settings.landing_dir, tmp_path / "landing"))
    monkeypatch.setenv("SEG_LANDING_DIR", str(landing))
    monkeypatch.setenv("SEG_EXPORT_DIR", settings.export_dir)
    argv = ["generate", "--out", str(landing), "--campaign-lift", f"{unplanted}=0.2", "--campaign-as-of", str(D)]
    assert cli.main(argv) == 0
    planted = pl.concat([pl.read_csv(f, infer_schema=False) for f in landing.glob("orders/*-campaign-*.csv")])
    treated = segments.filter((pl.col("recommended_action") == unplanted) & ~pl.col("in_control_group"))
    assert planted.height == round(0.2 * treated.height) == planted["customer_id"].n_unique()
    assert set(planted["customer_id"]) <= set(treated["customer_id"])
    days = planted["order_ts"].str.slice(0, 10).str.to_date()
    assert days.min() > D and days.max() <= D + timedelta(days=settings.churn_horizon_days)
    assert f"planted {planted.height:,} campaign orders" in capsys.readouterr().out
    # again: the same orders, not twice as many
    assert cli.main(argv) == 0
    again = pl.concat([pl.read_csv(f, infer_schema=False) for f in landing.glob("orders/*-campaign-*.csv")])
    assert again.sort("order_id").equals(planted.sort("order_id"))
    with pytest.raises(SystemExit):
        cli.main([*argv[:3], "--campaign-lift", f"{unplanted}=lots", *argv[5:]])
    assert "ACTION=LIFT" in capsys.readouterr().err


def test_report_tracks_the_campaigns(campaign):
    settings, _, planted, _, _ = campaign
    html = report.render_report(settings.warehouse_path, LATER)
    assert "Campaign tracking" in html and f'id="{report.LIFT_CHART_ID}"' in html
    assert f"Version {D}" in html and planted in html.split("Campaign tracking")[1]
    early = report.render_report(settings.warehouse_path, D)
    assert "No version is mature yet" in early and report.LIFT_CHART_ID not in early
