"""The working store on object storage: the whole pipeline against an S3 API served on the loopback address."""

import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import boto3
import dagster as dg
import duckdb
import pytest
from botocore.exceptions import EndpointConnectionError

from seg_pipeline.launch.runs import materialize_as_of
from seg_pipeline.storage.staging import Staging, StagingMissing
from seg_pipeline.storage.store import WorkingStore
from seg_pipeline_tests.conftest import END, make_settings

BUCKET = "seg-store"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3(monkeypatch) -> str:
    """An S3 API (moto in server mode, its own process) on 127.0.0.1 with an empty bucket; the AWS_* variables
    delta-rs and Polars read point at it."""
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    deadline = time.monotonic() + 60
    while True:
        try:
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
            break
        except EndpointConnectionError:
            assert time.monotonic() < deadline and server.poll() is None, "moto_server did not start"
            time.sleep(0.2)
    yield endpoint
    server.terminate()
    server.wait(timeout=30)


def _segments(path: str) -> list[tuple]:
    with duckdb.connect(path, read_only=True) as con:
        return con.execute("select * from customer_segments order by as_of, customer_id").fetchall()


def test_a_run_in_customer_shards_with_the_store_on_s3_publishes_what_a_local_store_does(
    s3, published, small_landing, tmp_path
):
    """In two shards, so the shard-tagged files, the uncommitted feature shards and the staging are on S3 too."""
    local, _ = published  # the same two versions, made in one piece with the store on a local path
    landing = Path(shutil.copytree(small_landing, tmp_path / "landing"))
    settings = make_settings(
        tmp_path, landing, SEG_RETRAIN_EVERY_DAYS="1", SEG_STORE_URI=f"s3://{BUCKET}/seg/store",
        SEG_CUSTOMER_SHARDS="2",
    )  # fmt: skip
    assert settings.store_uri == f"s3://{BUCKET}/seg/store"
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        for day in (END - timedelta(days=1), END):
            materialize_as_of(settings, day, instance)
    on_s3 = _segments(settings.warehouse_path)
    assert len(on_s3) > 700 and on_s3 == _segments(local.warehouse_path)
    # the store is on S3 only: its tables are listed there, nothing of it was written beside the analyst file
    store = WorkingStore.open_existing(settings.store_uri)
    assert {"raw_orders", "orders", "customer_segments", "landing_files", "model_files", "segment_summary"} <= set(
        store.table_names()
    )
    assert store.version_summary(END)["customers"] == len([r for r in on_s3 if r[0] == END])
    assert sorted(p.name for p in Path(settings.warehouse_path).parent.iterdir() if "store" in p.name) == []
    objects = boto3.client("s3", endpoint_url=s3, region_name="us-east-1").list_objects_v2(Bucket=BUCKET)
    keys = [o["Key"] for o in objects["Contents"]]
    assert objects["KeyCount"] > 0 and all(key.startswith("seg/store/") for key in keys)
    for table in ("orders", "profiles", "customer_features"):  # stored by shard; the staging is gone once published
        assert {f"shard{k}of2" for k in (0, 1)} <= {key.split("-")[3] for key in keys if f"/{table}/20" in key}
    assert not [key for key in keys if "/_staging/" in key]


def test_what_sharded_steps_stage_round_trips_through_s3(s3):
    store = WorkingStore(f"s3://{BUCKET}/seg/store")
    staging = Staging(store)
    staging.put("2026-06-30/population", {"rows": list(range(1000))})
    assert staging.get("2026-06-30/population", "missing") == {"rows": list(range(1000))}
    staging.drop("2026-06-30")
    with pytest.raises(StagingMissing, match="^not staged$"):
        staging.get("2026-06-30/population", "not staged")
