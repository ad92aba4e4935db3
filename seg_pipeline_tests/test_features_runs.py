"""customer_features through real Dagster runs: rolled forward day to day, recomputed when history changes."""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
from polars.testing import assert_frame_equal

from seg_pipeline.core.features import changed_day_ranges, compute_customer_features
from seg_pipeline.core.shards import shard_of
from seg_pipeline.defs.features import feature_assets
from seg_pipeline.defs.ingestion import ingestion_assets
from seg_pipeline.defs.partitions import daily_partitions
from seg_pipeline.defs.resources import build_resources
from seg_pipeline.services.inputs import orders_until, profiles_at
from seg_pipeline.storage.store import WorkingStore
from seg_pipeline_tests.conftest import END, make_settings


def features_run(settings, instance, day) -> str:
    """Materialize ingestion and features for partition `day`; how the features were computed."""
    partitions = daily_partitions(settings.partition_start)
    result = dg.materialize(
        [*ingestion_assets(partitions), *feature_assets(partitions, settings.customer_shards)],
        partition_key=day.isoformat(),
        resources=build_resources(settings),
        instance=instance,
    )
    assert result.success
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("customer_features")]
    return event.materialization.metadata["computed"].value


def assert_equals_full_computation(settings, day) -> None:
    store = WorkingStore(settings.store_uri)
    stored = store.frame("select * from customer_features where as_of = ? order by customer_id", [day])
    scratch = compute_customer_features(orders_until(store, day), profiles_at(store, day), day)
    assert_frame_equal(stored, scratch, check_dtypes=False)


def test_features_roll_forward_until_an_old_day_is_redelivered(settings, instance):
    assert features_run(settings, instance, END - timedelta(days=1)) == "from all orders"
    assert features_run(settings, instance, END).startswith(f"rolled forward from {END - timedelta(days=1)}")
    assert_equals_full_computation(settings, END)

    path = Path(settings.landing_dir) / "orders" / f"{END - timedelta(days=20)}.csv"
    changed = pl.read_csv(path, infer_schema=False).with_columns(pl.lit("999.5").alias("amount"))
    changed.write_csv(path)  # a corrected file for an old day: the earlier versions' orders are stale now
    assert features_run(settings, instance, END) == "from all orders"
    assert_equals_full_computation(settings, END)


def test_a_backfill_reports_every_as_of_date(settings, instance):
    partitions = daily_partitions(settings.partition_start)
    first, last = END - timedelta(days=2), END
    result = dg.materialize(
        [*ingestion_assets(partitions), *feature_assets(partitions)],
        resources=build_resources(settings),
        instance=instance,
        tags={"dagster/asset_partition_range_start": first.isoformat(),
              "dagster/asset_partition_range_end": last.isoformat()},
    )  # fmt: skip
    assert result.success and len(instance.get_run_records()) == 1
    # one materialization per partition, each with the run's metadata
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("customer_features")]
    assert len(events) == 3
    table = events[-1].materialization.metadata["per as-of date"].value
    rows = table.splitlines()[2:]
    days = [(first + timedelta(days=i)).isoformat() for i in range(3)]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == days
    assert "from all orders" in rows[0] and all("rolled forward" in row for row in rows[1:])


def test_features_made_shard_by_shard_equal_the_whole_table_and_roll_forward_across_shard_counts(
    tmp_path, landing, instance
):
    whole = make_settings(tmp_path, landing)
    sharded = make_settings(tmp_path, landing, SEG_CUSTOMER_SHARDS="3")
    first, second = END - timedelta(days=2), END - timedelta(days=1)
    assert features_run(whole, instance, first) == "from all orders"
    # rolled forward from a version made in one piece, then from one made in shards
    assert features_run(sharded, instance, second) == (
        f"rolled forward from {first}, {_touched(whole, first, second):,} customers recomputed, in 3 customer shards"
    )
    assert features_run(sharded, instance, END).startswith(f"rolled forward from {second}, ")
    for day in (second, END):
        assert_equals_full_computation(sharded, day)
    store = WorkingStore(sharded.store_uri)
    files = pl.DataFrame(store.delta("customer_features").get_add_actions(flatten=True))
    per_day = files.group_by(pl.col("min.as_of").alias("as_of")).len().sort("as_of")
    assert per_day.rows() == [(first, 1), (second, 3), (END, 3)]  # a file per shard
    for path in files.filter(pl.col("min.as_of") == END)["path"]:
        ids = pl.read_parquet(Path(store.table_uri("customer_features")) / path)["customer_id"]
        assert ids.is_sorted() and shard_of(ids, 3).n_unique() == 1  # each of one shard's customers only


def test_customer_features_commits_only_shards_made_from_the_orders_stored_now(tmp_path, landing, instance):
    """The commit step refuses in one line, without retries, a shard not staged, made from other orders, or whose
    file is gone; the shard steps' files then stay out of the table."""
    settings = make_settings(tmp_path, landing, SEG_CUSTOMER_SHARDS="2")
    partitions = daily_partitions(settings.partition_start)
    assets = [*ingestion_assets(partitions), *feature_assets(partitions, 2)]

    def run(*keys: str) -> dg.ExecuteInProcessResult:
        selection = dg.AssetSelection.assets(*keys).required_multi_asset_neighbors()
        return dg.materialize(assets, selection=selection, partition_key=END.isoformat(),
                              resources=build_resources(settings), instance=instance, raise_on_error=False)  # fmt: skip

    def refusal(result: dg.ExecuteInProcessResult) -> str:
        [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        return failure.step_failure_data.error.message.strip()

    assert run("orders", "profiles").success
    assert refusal(run("customer_features")).endswith(
        f"shard 0 of 2 of the features of {END} is not staged: materialize features_shard_0 for it first"
    )
    assert run("features_shard_0", "features_shard_1").success
    store = WorkingStore(settings.store_uri)
    assert store.read_parts("customer_features", ["customer_id"]).is_empty()  # made, not committed
    path = Path(settings.landing_dir) / "orders" / f"{END}.csv"
    pl.read_csv(path, infer_schema=False).with_columns(pl.lit("1.5").alias("amount")).write_csv(path)
    assert run("orders").success  # the orders the shards were made from are replaced
    assert refusal(run("customer_features")).endswith(
        f"features_shard_0 of {END} cannot be committed (it was made from other orders than stored now): "
        f"materialize the feature shards of {END} again"
    )
    assert run("features_shard_0", "features_shard_1").success
    for made in Path(store.table_uri("customer_features")).glob("*-shard1of2-*.parquet"):
        made.unlink()  # e.g. deleted by a VACUUM long after the shard step
    assert refusal(run("customer_features")).endswith(
        f"features_shard_1 of {END} cannot be committed (its file is gone): materialize the feature shards of "
        f"{END} again"
    )
    assert run("features_shard_1", "customer_features").success
    assert_equals_full_computation(settings, END)


def _touched(settings, previous_as_of, as_of) -> int:
    store = WorkingStore(settings.store_uri)
    return store.customers_ordering(changed_day_ranges(previous_as_of, as_of)).height
