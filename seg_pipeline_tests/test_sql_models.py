from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from seg_pipeline.core.features import FEATURE_SCHEMA
from seg_pipeline.core.value_tiers import assign_value_tiers, tier_revenue_shares
from seg_pipeline.defs.marts import mart_assets
from seg_pipeline.defs.partitions import daily_partitions
from seg_pipeline.defs.resources import StoreResource
from seg_pipeline.storage.sql_models import (
    SQL_DIR,
    SqlModelError,
    build_sql_model,
    load_sql_models,
    run_sql_model,
    sql_dependencies,
)
from seg_pipeline.storage.store import PART_TABLES, WorkingStore

D1, D2 = date(2024, 3, 1), date(2024, 3, 2)

# customer -> (rfm_segment, value_tier, lifecycle_stage, churn_risk, clv, spend_365d) per version
VERSIONS = {
    D1: {
        "c1": ("Champions", "platinum", "stable", 0.1, 500.0, 100.0),
        "c2": ("Champions", "gold", "stable", 0.6, 300.0, 50.0),
        "c3": ("At Risk", "silver", "declining", 0.7, 40.0, 10.0),
        "c4": ("Prospect", None, "prospect", None, 0.0, None),
        "c6": ("Hibernating", "bronze", "lapsed", 0.9, 1.0, 0.0),
    },
    D2: {
        "c1": ("Champions", "platinum", "stable", 0.2, 510.0, 100.0),
        "c2": ("At Risk", "gold", "declining", 0.8, 250.0, 50.0),
        "c3": ("Hibernating", "silver", "declining", 0.9, 20.0, 10.0),
        "c4": ("New Customers", "bronze", "new", 0.3, 20.0, 5.0),
        "c5": ("New Customers", "bronze", "new", 0.4, 15.0, 5.0),
    },
}


def _segments(as_of: date, rows: dict) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "as_of": as_of, "customer_id": cid, "segment_version": f"v{as_of:%Y%m%d}",
                "r_score": None if rfm == "Prospect" else 3, "f_score": None if rfm == "Prospect" else 3,
                "m_score": None if rfm == "Prospect" else 3, "rfm_score": None if rfm == "Prospect" else "333",
                "rfm_segment": rfm, "cluster_label": "prospects" if rfm == "Prospect" else f"cluster_{tier}",
                "value_tier": tier, "lifecycle_stage": stage, "churn_risk": risk, "purchase_propensity": None,
                "expected_purchases_12m": 1.0, "clv": clv,
                "p_alive": None if risk is None else 1 - risk, "expected_purchases_30d": 0.1,
                "expected_purchases_90d": 0.3, "expected_purchases_365d": 1.0, "next_order_date": None,
                "clv_low": 0.0, "clv_high": 2 * clv,
                "churn_reasons": None if risk is None else f"no order for {round(risk * 100)} days",
                "recommended_action": "nurture",
                "in_control_group": cid == "c2",
            }
            for cid, (rfm, tier, stage, risk, clv, _) in rows.items()
        ],
        schema_overrides={"r_score": pl.Int8, "f_score": pl.Int8, "m_score": pl.Int8, "value_tier": pl.Utf8,
                          "churn_risk": pl.Float64, "rfm_score": pl.Utf8, "purchase_propensity": pl.Float64,
                          "p_alive": pl.Float64,
                          "next_order_date": pl.Date, "churn_reasons": pl.Utf8},
    )  # fmt: skip


def _features(as_of: date, spend: dict[str, float | None]) -> pl.DataFrame:
    """Feature rows with the columns the marts read set; the others null."""
    given = {
        "as_of": [as_of] * len(spend),
        "customer_id": list(spend),
        "spend_365d": list(spend.values()),
        "days_since_last_order": [None if v is None else 10 for v in spend.values()],
        "order_count": [None if v is None else 2 for v in spend.values()],
    }
    return pl.DataFrame({c: given.get(c, [None] * len(spend)) for c in FEATURE_SCHEMA}, schema=FEATURE_SCHEMA)


def _fill(store: WorkingStore, versions: dict = VERSIONS) -> None:
    for as_of, rows in versions.items():
        store.replace_days("customer_segments", [as_of], _segments(as_of, rows))
        spend = {cid: values[-1] for cid, values in rows.items()}
        store.replace_days("customer_features", [as_of], _features(as_of, spend))


@pytest.fixture
def store(tmp_path: Path) -> WorkingStore:
    working = WorkingStore(tmp_path / "store")
    _fill(working)
    return working


def _frame(store: WorkingStore, sql: str) -> pl.DataFrame:
    with store.connect() as con:
        return con.sql(sql).pl()


def _models() -> dict:
    return {model.name: model for model in load_sql_models(SQL_DIR)}


def _build_all(store: WorkingStore, *days: date) -> None:
    for day in days:
        for model in load_sql_models(SQL_DIR):
            run_sql_model(store, model, day)


def _write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.sql").write_text(sql)


# --- loading and dependencies -------------------------------------------------------------


def test_dependencies_ignore_ctes_and_find_joins_subqueries_and_set_operations():
    sql = """
        -- a comment mentioning from_comment
        with recent as (select * from orders where as_of = getvariable('as_of')),
             scored as (select r.*, s.score from recent r join scores s using (customer_id))
        select * from scored
        where customer_id in (select customer_id from vip_list)
          and exists (select 1 from main.blocklist b where b.id = scored.customer_id)
        union all
        select *, (select max(x) from lookups) from other_table, range(1, 10) t(i)
    """
    assert sql_dependencies(sql) == ("blocklist", "lookups", "orders", "other_table", "scores", "vip_list")


def test_cte_shadowing_a_table_name_is_not_a_dependency():
    assert sql_dependencies("with orders as (select 1 as x) select * from orders") == ()


def test_shipped_models_dependency_graph():
    models = _models()
    assert {name: model.deps for name, model in models.items()} == {
        "churn_watchlist": ("customer_features", "customer_segments"),
        "cluster_profiles": ("customer_features", "customer_segments"),
        "segment_migration": ("customer_segments",),
        "segment_summary": ("customer_features", "customer_segments"),
        "tier_pareto": ("customer_features",),
        "action_lift": ("customer_segments", "orders"),
    }
    for model in models.values():
        assert model.description and "Grain:" in model.description
        assert model.label == f"dbt_like_sql/{model.name}.sql"


def test_models_come_after_the_models_they_read(tmp_path: Path):
    folder = tmp_path / "sql"
    _write(folder, "a_top", "select * from m_middle join customer_segments using (customer_id)")
    _write(folder, "m_middle", "with x as (select * from z_base) select * from x")
    _write(folder, "z_base", "-- the base\nselect * from customer_features")
    models = load_sql_models(folder)
    assert [m.name for m in models] == ["z_base", "m_middle", "a_top"]
    assert models[0].description == "the base"
    assert models[2].deps == ("customer_segments", "m_middle")


def test_cycle_is_one_line_naming_the_files(tmp_path: Path):
    folder = tmp_path / "sql"
    _write(folder, "a", "select * from b")
    _write(folder, "b", "select * from a")
    with pytest.raises(SqlModelError, match=r"cycle.*sql/a\.sql.*sql/b\.sql|cycle.*sql/b\.sql.*sql/a\.sql") as info:
        load_sql_models(folder)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "name, sql, message",
    [
        (
            "broken",
            "select 1 as as_of\nform customer_segments",
            r"sql/broken\.sql: Parser Error: syntax error at or near .*\(line 2\)",
        ),
        ("two", "select 1; select 2", r"sql/two\.sql: expected exactly one SELECT"),
        ("ddl", "create table x (a int)", r"sql/ddl\.sql: expected exactly one SELECT"),
        ("Bad-Name", "select 1", r"sql/Bad-Name\.sql: the file name must be"),
    ],
)
def test_unloadable_files_fail_with_their_name(tmp_path: Path, name: str, sql: str, message: str):
    folder = tmp_path / "sql"
    _write(folder, name, sql)
    with pytest.raises(SqlModelError, match=message) as info:
        load_sql_models(folder)
    assert "\n" not in str(info.value)


# --- building -------------------------------------------------------------------------------


def test_unknown_column_fails_with_file_name_and_duckdb_message(tmp_path: Path, store: WorkingStore):
    folder = tmp_path / "sql"
    _write(folder, "bad_column", "-- header\nselect as_of, customer_id, no_such_column\nfrom customer_segments")
    [model] = load_sql_models(folder)
    with pytest.raises(SqlModelError) as info, store.connect() as con:
        build_sql_model(con, model, D1)
    text = str(info.value)
    assert text.startswith("sql/bad_column.sql: Binder Error: Referenced column")
    assert "no_such_column" in text and "(line 2)" in text and "\n" not in text
    assert "bad_column" not in store.table_names()


def test_select_without_matching_as_of_is_rejected(tmp_path: Path, store: WorkingStore):
    folder = tmp_path / "sql"
    _write(folder, "no_as_of", "select customer_id from customer_segments")
    _write(folder, "all_versions", "select as_of, customer_id from customer_segments")
    no_as_of, all_versions = sorted(load_sql_models(folder), key=lambda m: m.name, reverse=True)
    with pytest.raises(SqlModelError, match=r"sql/no_as_of\.sql: the SELECT must return an as_of column"):
        run_sql_model(store, no_as_of, D1)
    with pytest.raises(SqlModelError, match=r"sql/all_versions\.sql: 5 row\(s\) have as_of null or after"):
        run_sql_model(store, all_versions, D1)


def test_rebuilding_a_version_replaces_it_and_leaves_others(store: WorkingStore):
    _build_all(store, D1, D2)
    names = list(_models())
    before = {name: _frame(store, f"select * from {name} order by all") for name in names}
    assert before["segment_summary"]["as_of"].unique().sort().to_list() == [D1, D2]
    _build_all(store, D2)
    for name in names:
        after = _frame(store, f"select * from {name} order by all")
        assert after.equals(before[name]), name
        assert after.is_duplicated().sum() == 0, name


def test_rebuild_picks_up_changed_sources_for_that_version_only(store: WorkingStore):
    _build_all(store, D1, D2)
    changed = {D2: {**VERSIONS[D2], "c7": ("Champions", "platinum", "new", 0.1, 900.0, 400.0)}}
    _fill(store, changed)
    _build_all(store, D2)
    counts = dict(
        _frame(
            store, "select as_of, sum(customers) from segment_summary where segment_type = 'rfm_segment' group by 1"
        ).rows()
    )
    assert counts == {D1: 5, D2: 6}


def test_segment_summary_shares_and_values(store: WorkingStore):
    _build_all(store, D1, D2)
    summary = _frame(store, "select * from segment_summary")
    sums = summary.group_by("as_of", "segment_type").agg(pl.col("customer_share").sum(), pl.col("revenue_share").sum())
    assert sums.height == 8
    assert all(abs(v - 1) < 1e-12 for v in sums["customer_share"].to_list() + sums["revenue_share"].to_list())
    row = summary.filter((pl.col("as_of") == D1) & (pl.col("segment") == "Champions")).row(0, named=True)
    assert row["customers"] == 2 and row["revenue"] == 150.0
    assert row["customer_share"] == pytest.approx(2 / 5) and row["revenue_share"] == pytest.approx(150 / 160)
    assert row["mean_churn_risk"] == pytest.approx(0.35) and row["mean_clv"] == pytest.approx(400.0)
    prospects = summary.filter(
        (pl.col("as_of") == D1) & (pl.col("segment_type") == "value_tier") & (pl.col("segment") == "(none)")
    )
    assert prospects["customers"].to_list() == [1] and prospects["mean_churn_risk"].to_list() == [None]


def test_segment_migration_counts(store: WorkingStore):
    _build_all(store, D1, D2)
    migration = _frame(store, "select * from segment_migration")
    assert migration["as_of"].unique().to_list() == [D2]  # D1 has no previous version
    assert migration["previous_as_of"].unique().to_list() == [D1]
    rfm = migration.filter(pl.col("segment_type") == "rfm_segment")
    moves = {(r["from_segment"], r["to_segment"]): r["customers"] for r in rfm.iter_rows(named=True)}
    assert moves == {
        ("Champions", "Champions"): 1,
        ("Champions", "At Risk"): 1,
        ("At Risk", "Hibernating"): 1,
        ("Prospect", "New Customers"): 1,
        ("(new)", "New Customers"): 1,
        ("Hibernating", "(gone)"): 1,
    }
    champions = rfm.filter(pl.col("from_segment") == "Champions")
    assert champions["share_of_from"].to_list() == [0.5, 0.5]
    assert rfm.filter(pl.col("moved"))["customers"].sum() == 5
    tiers = migration.filter(pl.col("segment_type") == "value_tier")
    tier_moves = {(r["from_segment"], r["to_segment"]): r["customers"] for r in tiers.iter_rows(named=True)}
    assert tier_moves[("(none)", "bronze")] == 1 and tier_moves[("gold", "gold")] == 1
    assert set(migration["segment_type"]) == {"rfm_segment", "cluster_label", "value_tier", "lifecycle_stage"}
    for segment_type in ("rfm_segment", "value_tier"):
        part = migration.filter(pl.col("segment_type") == segment_type)
        assert part.filter(pl.col("from_segment") != "(new)")["customers"].sum() == len(VERSIONS[D1])
        assert part.filter(pl.col("to_segment") != "(gone)")["customers"].sum() == len(VERSIONS[D2])


def test_tier_pareto_top20_share_matches_value_tiers(tmp_path: Path):
    store = WorkingStore(tmp_path / "store")
    spend = [100.0, 50.0] + [10.0] * 7 + [0.0]  # ten buyers, one of them lapsed (0 spend)
    rows = {f"c{i:02d}": ("Loyal", "bronze", "stable", 0.5, 1.0, v) for i, v in enumerate(spend)}
    rows["p1"] = ("Prospect", None, "prospect", None, 0.0, None)
    _fill(store, {D1: rows})
    [pareto] = [m for m in load_sql_models(SQL_DIR) if m.name == "tier_pareto"]
    assert run_sql_model(store, pareto, D1)[0] == 100
    curve = _frame(store, "select * from tier_pareto order by percentile")
    assert curve["percentile"].to_list() == list(range(1, 101))
    assert curve["buyers"].unique().to_list() == [10]
    top20 = curve.filter(pl.col("percentile") == 20).row(0, named=True)
    assert top20["top_customers"] == 2 and top20["revenue_share"] == pytest.approx(150 / 220)
    assert curve["top20_revenue_share"].unique().to_list() == [pytest.approx(150 / 220)]
    assert curve["revenue_share"][-1] == pytest.approx(1.0)
    assert curve["revenue_share"].fill_null(0).is_sorted()
    values = _features(D1, {cid: v[-1] for cid, v in rows.items()}).filter(pl.col("spend_365d").is_not_null())
    tiers = values.join(assign_value_tiers(values, "spend_365d"), on="customer_id")
    assert tier_revenue_shares(tiers)["top20_revenue_share"] == pytest.approx(top20["revenue_share"])


def test_tier_pareto_is_empty_without_buyers(tmp_path: Path):
    store = WorkingStore(tmp_path / "store")
    _fill(store, {D1: {"p1": ("Prospect", None, "prospect", None, 0.0, None)}})
    [pareto] = [m for m in load_sql_models(SQL_DIR) if m.name == "tier_pareto"]
    assert run_sql_model(store, pareto, D1)[0] == 0
    assert "top20_revenue_share" in _frame(store, "select * from tier_pareto").columns


def test_churn_watchlist_keeps_risky_top_tier_customers_only(store: WorkingStore):
    _build_all(store, D2)
    watch = _frame(store, "select * from churn_watchlist order by watch_rank")
    assert watch["customer_id"].to_list() == ["c2"]  # c1 platinum but low risk, c3 risky but silver
    row = watch.row(0, named=True)
    assert row["revenue_at_risk"] == pytest.approx(0.8 * 50) and row["recommended_action"] == "nurture"
    assert row["churn_reasons"] == "no order for 80 days"
    assert not {"name", "email", "phone"} & set(watch.columns)


def test_new_file_is_picked_up_and_may_read_a_mart(tmp_path: Path, store: WorkingStore):
    folder = tmp_path / "sql"
    for model in load_sql_models(SQL_DIR):
        _write(folder, model.name, model.sql)
    _write(folder, "champion_count", "-- Champions per version.\nselect as_of, customers from segment_summary\n"
           "where as_of = getvariable('as_of') and segment = 'Champions'")  # fmt: skip
    models = load_sql_models(folder)
    names = [m.name for m in models]
    assert names.index("champion_count") > names.index("segment_summary")
    for model in models:
        run_sql_model(store, model, D1)
    assert _frame(store, "select * from champion_count").rows() == [(D1, 2)]


def test_adding_a_column_to_a_model_extends_its_table(tmp_path: Path, store: WorkingStore):
    folder = tmp_path / "sql"
    _write(
        folder,
        "sizes",
        "select as_of, count(*) as customers from customer_segments where as_of = getvariable('as_of') group by 1",
    )
    run_sql_model(store, load_sql_models(folder)[0], D1)
    _write(
        folder,
        "sizes",
        "select as_of, count(*) as customers, 'x' as note from customer_segments "
        "where as_of = getvariable('as_of') group by 1",
    )
    run_sql_model(store, load_sql_models(folder)[0], D2)
    assert _frame(store, "select * from sizes order by as_of").rows() == [(D1, 5, None), (D2, 5, "x")]


# --- Dagster ------------------------------------------------------------------------------------


def test_mart_assets_materialize(tmp_path: Path, store: WorkingStore):
    assets = mart_assets(daily_partitions("2024-03-01"), SQL_DIR)
    assert [a.key.to_user_string() for a in assets] == list(_models())
    summary = next(a for a in assets if a.key.to_user_string() == "segment_summary")
    assert summary.group_names_by_key[summary.key] == "marts"
    assert summary.specs_by_key[summary.key].deps[0].asset_key == dg.AssetKey("customer_features")
    result = dg.materialize(
        assets, partition_key="2024-03-02", resources={"store": StoreResource(uri=store.uri)}
    )
    assert result.success
    metadata = {
        event.asset_key.to_user_string(): event.step_materialization_data.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert metadata["segment_summary"]["dagster/row_count"].value == store.scalar(
        "select count(*) from segment_summary"
    )
    assert "```sql" in metadata["tier_pareto"]["sql"].value
    assert store.scalar("select count(*) from segment_migration where as_of = '2024-03-02'") > 0


def test_mart_asset_sql_error_is_a_failure_naming_the_file(tmp_path: Path, store: WorkingStore):
    folder = tmp_path / "sql"
    _write(folder, "bad_mart", "select as_of, nope from customer_segments")
    [asset] = mart_assets(daily_partitions("2024-03-01"), folder)
    result = dg.materialize(
        [asset],
        partition_key="2024-03-01",
        resources={"store": StoreResource(uri=store.uri)},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "sql/bad_mart.sql: Binder Error" in failure.step_failure_data.error.message


def test_mart_asset_builds_every_version_of_a_range_run(store: WorkingStore):
    assets = [
        a for a in mart_assets(daily_partitions("2024-03-01"), SQL_DIR) if a.key == dg.AssetKey("segment_summary")
    ]
    tags = {"dagster/asset_partition_range_start": "2024-03-01", "dagster/asset_partition_range_end": "2024-03-02"}
    result = dg.materialize(assets, tags=tags, resources={"store": StoreResource(uri=store.uri)})
    assert result.success
    assert _frame(store, "select distinct as_of from segment_summary order by 1")["as_of"].to_list() == [D1, D2]


def test_action_lift_measures_mature_versions_treated_against_control(tmp_path: Path):
    working = WorkingStore(tmp_path / "lift")
    v1, v3, built = date(2024, 1, 1), date(2024, 3, 1), date(2024, 4, 1)  # built - 90 days = 2024-01-02
    arms = {"a1": ("A", False), "a2": ("A", False), "a3": ("A", True), "a4": ("A", True),
            "b1": ("B", False), "b2": ("B", True)}  # fmt: skip
    # customer, day offset from v1, amount, status: a2 buys after the horizon, a3's order is cancelled,
    # a4 buys on the horizon's last day, b1 on v1 itself (not after it)
    orders = [("a1", 10, 10.0, "completed"), ("a2", 100, 5.0, "completed"), ("a3", 5, 8.0, "cancelled"),
              ("a4", 90, 20.0, "completed"), ("b1", 0, 7.0, "completed")]  # fmt: skip
    segments_schema, orders_schema = PART_TABLES["customer_segments"][1], PART_TABLES["orders"][1]
    for as_of in (v1, v3):
        rows = pl.DataFrame(
            {"as_of": as_of, "customer_id": list(arms), "recommended_action": [a for a, _ in arms.values()],
             "in_control_group": [c for _, c in arms.values()]}
        )  # fmt: skip
        working.replace_days("customer_segments", [as_of], pl.DataFrame(schema=segments_schema).vstack(
            rows.select(pl.col(c).cast(t) if c in rows.columns else pl.lit(None, t).alias(c)
                        for c, t in segments_schema.items())))  # fmt: skip
    frame = pl.DataFrame(
        {"order_id": [f"o{i}" for i in range(len(orders))], "customer_id": [o[0] for o in orders],
         "order_day": [v1 + timedelta(days=o[1]) for o in orders], "amount": [o[2] for o in orders],
         "status": [o[3] for o in orders]}
    )  # fmt: skip
    frame = frame.select(pl.col(c).cast(t) if c in frame.columns else pl.lit(None, t).alias(c)
                         for c, t in orders_schema.items())  # fmt: skip
    working.replace_days("orders", sorted(set(frame["order_day"])), frame)
    run_sql_model(working, _models()["action_lift"], built, {"churn_horizon_days": 90})
    lift = _frame(working, "select * from action_lift order by recommended_action")
    assert lift["as_of"].to_list() == [v1, v1]  # v3 is not mature: no rows
    a, b = lift.iter_rows(named=True)
    assert (a["treated_customers"], a["control_customers"], a["treated_rate"], a["control_rate"]) == (2, 2, 0.5, 0.5)
    assert (a["lift"], a["lift_low"], a["lift_high"]) == pytest.approx((0.0, -1.96 * 0.5, 1.96 * 0.5))
    assert (a["treated_spend"], a["control_spend"], a["spend_lift"]) == pytest.approx((5.0, 10.0, -5.0))
    assert a["spend_lift_high"] - a["spend_lift"] == pytest.approx(1.96 * (50 / 2 + 200 / 2) ** 0.5)
    assert (b["treated_rate"], b["control_rate"], b["lift"], b["lift_low"]) == (0.0, 0.0, 0.0, None)
    # a build after version v4 measures only the versions matured since v4 was built: none; v1 stays measured
    v4 = date(2024, 4, 5)
    working.replace_days("customer_segments", [v4], working.read_parts(
        "customer_segments", list(segments_schema), day=v3).with_columns(as_of=pl.lit(v4)))  # fmt: skip
    assert run_sql_model(working, _models()["action_lift"], date(2024, 4, 10), {"churn_horizon_days": 90})[0] == 0
    assert _frame(working, "select * from action_lift order by recommended_action").equals(lift)


def test_cluster_profiles_size_revenue_and_what_sets_each_persona_apart(tmp_path: Path):
    """Two planted personas: app electronics buyers with big baskets, store grocery buyers; and prospects."""
    store = WorkingStore(tmp_path / "store")
    people = {f"a{i}": ("app electronics", "app", "electronics", 90.0, 100.0) for i in range(4)}
    people |= {f"g{i}": ("store grocery", "store", "grocery", 20.0, 25.0) for i in range(6)}
    people |= {"p1": ("prospect individuals", None, None, None, None)}
    segments = _segments(D1, {cid: ("Prospect" if cid == "p1" else "Loyal", None, "stable", 0.5, 1.0, 0.0)
                              for cid in people})  # fmt: skip
    segments = segments.with_columns(pl.Series("cluster_label", [people[c][0] for c in segments["customer_id"]]))
    feats = _features(D1, {cid: v[4] for cid, v in people.items()}).with_columns(
        pl.Series("frequency", [None if v[3] is None else 1 for v in people.values()], dtype=pl.Int64),
        pl.Series("avg_order_value", [v[3] for v in people.values()], dtype=pl.Float64),
        pl.Series("main_channel", [v[1] for v in people.values()]),
        pl.Series("main_category", [v[2] for v in people.values()]),
    )
    store.replace_days("customer_segments", [D1], segments)
    store.replace_days("customer_features", [D1], feats)
    [profiles] = [m for m in load_sql_models(SQL_DIR) if m.name == "cluster_profiles"]
    assert run_sql_model(store, profiles, D1)[0] == 3
    rows = {r["cluster_label"]: r for r in _frame(store, "select * from cluster_profiles").iter_rows(named=True)}
    app, grocery, prospects = rows["app electronics"], rows["store grocery"], rows["prospect individuals"]
    assert (app["customers"], grocery["customers"], prospects["customers"]) == (4, 6, 1)
    assert app["revenue_share"] == pytest.approx(400 / 550) and sum(r["customer_share"] for r in rows.values()) == 1
    assert app["distinguishing_features"].startswith("main_category = electronics: 100% vs 40%")
    assert "main_channel = app: 100% vs 40%" in app["distinguishing_features"]
    assert "avg_order_value: 90.00 vs 48.00 (z +1.2)" in app["distinguishing_features"]
    assert "avg_order_value: 20.00 vs 48.00 (z -0.8)" in grocery["distinguishing_features"]
    assert prospects["distinguishing_features"] is None
