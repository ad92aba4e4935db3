"""Every setting of the pipeline, read from the environment in this one module.

The CONTRACT's settings (`SEG_LANDING_DIR`, `SEG_WAREHOUSE_PATH`, `SEG_PARTITION_START`,
`SEG_CHURN_HORIZON_DAYS`, `SEG_CURRENCY`) plus the project's own tuning knobs. Each has a
default that works for the demo; relative paths resolve against the working directory.
A bad value fails at once with one line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

#: SEG_RETRAIN_EVERY_DAYS unset: weekly (the benchmark runs this cadence too)
RETRAIN_EVERY_DAYS = 7

MAX_SHARDS = 256  # SEG_CUSTOMER_SHARDS: each shard is an asset of its own in the UI
#: variable -> (default, one-line description); the README's settings table is generated from it.
SETTINGS_DOC: dict[str, tuple[str, str]] = {
    "SEG_LANDING_DIR": ("./data/landing", "landing directory with `orders/` and `profiles/`"),
    "SEG_WAREHOUSE_PATH": ("./data/segments.duckdb", "the analyst DuckDB file"),
    "SEG_PARTITION_START": (
        "first landed order day",
        "first daily partition (as-of date); unset: the first day in `orders/` (2024-01-01 while none has landed). "
        "Set it for your own data, so partitions stay put when older files land",
    ),
    "SEG_CHURN_HORIZON_DAYS": ("90", "churn = no completed order within this many days"),
    "SEG_CURRENCY": ("USD", "currency of amounts; orders in other currencies are quarantined"),
    "SEG_STORE_URI": (
        "<SEG_STORE_PATH without .duckdb>",
        "the pipeline's own working store, never opened by analysts: a folder of Delta Lake tables, local "
        "(`./data/segments_store`) or on object storage (`s3://bucket/prefix`, `gs://...`, `az://...`, credentials "
        "from the environment as delta-rs reads them, e.g. `AWS_*`)",
    ),
    "SEG_STORE_PATH": (
        "<warehouse>_store.duckdb",
        "where the working store of seg_pipeline before Delta Lake was (a DuckDB file): migrated into SEG_STORE_URI "
        "on the first run, then renamed `*.migrated`; also names the default SEG_STORE_URI",
    ),
    "SEG_QUARANTINE_THRESHOLD": ("0.05", "a day whose quarantined share exceeds this blocks downstream"),
    "SEG_QUARANTINE_MIN_ROWS": (
        "10",
        "...and has at least this many quarantined rows (small days are noisy; also for the `expectations` warning)",
    ),
    "SEG_QUARANTINE_WARN_SHARE": (
        "0.01",
        "the `expectations` check warns when a day's quarantined share exceeds this (every bad row is quarantined)",
    ),
    "SEG_PROFILE_MIN_SHARE": (
        "0.5",
        "a profile snapshot with fewer rows than this share of the previous snapshot blocks downstream (0: off)",
    ),
    "SEG_MAX_LANDING_GAP_DAYS": (
        "2",
        "a version more than this many days past the last landed order day still publishes, with a warning",
    ),
    "SEG_VALUE_TIER_CUTS": ("0.01,0.05,0.20", "cumulative top shares of platinum, gold, silver"),
    "SEG_CLV_MONTHLY_DISCOUNT": ("0.01", "monthly discount rate of the 12-month CLV"),
    "SEG_CONTACT_COST": (
        "0.5",
        "cost of one contact in currency units: a customer whose expected value of contact (0.1 x churn_risk x clv) "
        "is below it gets the action table's `below_cost_action` (\"No action\" for lapsed customers)",
    ),
    "SEG_RETRAIN_EVERY_DAYS": (
        str(RETRAIN_EVERY_DAYS),
        "retrain churn and cluster models when the last is this many days old (1: daily), "
        "or its training data or settings changed",
    ),
    "SEG_KEEP_VERSIONS": (
        "30",
        "versions of the per-customer tables (customer_features, customer_segments) kept, newest first, in the "
        "analyst file and the working store; 0 keeps every one. segment_versions and the marts keep every version",
    ),
    "SEG_CONTROL_SHARE": (
        "0.10",
        "share of customers held out of every audience as the control group (0: none), chosen by "
        "a stable hash of SEG_CONTROL_SALT + customer_id (FNV-1a 64 + fmix64, see Campaigns)",
    ),
    "SEG_CONTROL_SALT": ("seg_pipeline", "salt of the control group's hash; a new salt draws a new control group"),
    "SEG_EXPORT_DIR": ("./data/exports", "audience files, one folder per version: `<as_of>/<action>.csv|.parquet`"),
    "SEG_SCHEDULE_CRON": ("0 6 * * *", "when the daily schedule runs yesterday's partition"),
    "SEG_SCHEDULE_TIMEZONE": ("UTC", "timezone of the schedule"),
    "SEG_SQL_DIR": (
        "dbt_like_sql/ (shipped)",
        "folder of the SQL marts: each `.sql` file in it is one mart asset",
    ),
    "SEG_EXECUTOR": (
        "in_process",
        "how every job runs its steps: `in_process` (one process), `multiprocess` (a process per step, up to the "
        "cores at once), `celery` (dagster-celery workers, extra `[celery]`) or `k8s` (a Kubernetes Job per step, "
        "extra `[k8s]`); see Running on a cluster",
    ),
    "SEG_CUSTOMER_SHARDS": (
        "1",
        "customer shards: above 1, ingestion stores each batch's accepted orders and profiles as a file per shard, "
        "one step per shard makes customer_features from its own files and customer_features commits them, and a "
        "population step, one step per shard and a publish step make each version (the shard steps in parallel under "
        "the multiprocess, celery or k8s executor), the same as in one step; at most "
        f"{MAX_SHARDS}, see Customer shards",
    ),
    "SEG_EXECUTOR_CONFIG": (
        "(none)",
        "a YAML file whose `execution: config:` block configures the executor (the file `dagster-celery worker "
        "start -y` reads); examples in `deploy/`",
    ),
}

#: the values of SEG_EXECUTOR (`seg_pipeline.defs.executors` maps them to Dagster executors)
EXECUTORS = ("in_process", "multiprocess", "celery", "k8s")


class SettingsError(ValueError):
    """A setting has an unusable value; the message names the variable."""


class PipelineSettings(dg.ConfigurableResource):
    """The pipeline's settings as a Dagster resource, visible in the UI's resource tab."""

    landing_dir: str
    warehouse_path: str
    store_path: str
    store_uri: str
    partition_start: str
    churn_horizon_days: int
    currency: str
    quarantine_threshold: float
    quarantine_min_rows: int
    quarantine_warn_share: float
    profile_min_share: float
    max_landing_gap_days: int
    value_tier_cuts: list[float]
    clv_monthly_discount: float
    contact_cost: float
    retrain_every_days: int
    keep_versions: int
    control_share: float
    control_salt: str
    export_dir: str
    schedule_cron: str
    schedule_timezone: str
    sql_dir: str
    executor: str
    executor_config: str
    customer_shards: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipelineSettings:
        """Read and validate every setting; unset ones take their documented default."""
        env = os.environ if environ is None else environ

        def raw(name: str) -> str:
            return env.get(name) or SETTINGS_DOC[name][0]

        warehouse = _file_path("SEG_WAREHOUSE_PATH", raw("SEG_WAREHOUSE_PATH"))
        store = _file_path(
            "SEG_STORE_PATH", env.get("SEG_STORE_PATH") or str(warehouse.with_name(f"{warehouse.stem}_store.duckdb"))
        )
        if store == warehouse:
            raise SettingsError(f"SEG_STORE_PATH: {store} is the analyst file (SEG_WAREHOUSE_PATH); give it its own")
        store_uri = _store_uri(env.get("SEG_STORE_URI") or str(store.with_suffix("")), warehouse)
        cuts = [_number("SEG_VALUE_TIER_CUTS", part, float) for part in raw("SEG_VALUE_TIER_CUTS").split(",")]
        if len(cuts) != 3 or not 0 < cuts[0] < cuts[1] < cuts[2] < 1:
            raise SettingsError(
                f"SEG_VALUE_TIER_CUTS: expected three increasing shares in (0, 1), got {raw('SEG_VALUE_TIER_CUTS')!r}"
            )
        landing = Path(raw("SEG_LANDING_DIR")).expanduser().resolve()
        start = env.get("SEG_PARTITION_START") or _first_landed_day(landing)
        try:
            date.fromisoformat(start)
        except ValueError:
            raise SettingsError(f"SEG_PARTITION_START: expected a date YYYY-MM-DD, got {start!r}") from None
        currency = raw("SEG_CURRENCY").strip().upper()
        if len(currency) != 3 or not currency.isalpha():
            raise SettingsError(f"SEG_CURRENCY: expected a 3-letter ISO 4217 code, got {currency!r}")
        horizon = _number("SEG_CHURN_HORIZON_DAYS", raw("SEG_CHURN_HORIZON_DAYS"), int)
        retrain = _number("SEG_RETRAIN_EVERY_DAYS", raw("SEG_RETRAIN_EVERY_DAYS"), int)
        keep = _number("SEG_KEEP_VERSIONS", raw("SEG_KEEP_VERSIONS"), int)
        threshold = _number("SEG_QUARANTINE_THRESHOLD", raw("SEG_QUARANTINE_THRESHOLD"), float)
        min_rows = _number("SEG_QUARANTINE_MIN_ROWS", raw("SEG_QUARANTINE_MIN_ROWS"), int)
        discount = _number("SEG_CLV_MONTHLY_DISCOUNT", raw("SEG_CLV_MONTHLY_DISCOUNT"), float)
        contact_cost = _number("SEG_CONTACT_COST", raw("SEG_CONTACT_COST"), float)
        warn_share = _number("SEG_QUARANTINE_WARN_SHARE", raw("SEG_QUARANTINE_WARN_SHARE"), float)
        profile_share = _number("SEG_PROFILE_MIN_SHARE", raw("SEG_PROFILE_MIN_SHARE"), float)
        gap = _number("SEG_MAX_LANDING_GAP_DAYS", raw("SEG_MAX_LANDING_GAP_DAYS"), int)
        control = _number("SEG_CONTROL_SHARE", raw("SEG_CONTROL_SHARE"), float)
        shards = _number("SEG_CUSTOMER_SHARDS", raw("SEG_CUSTOMER_SHARDS"), int)
        for name, value, ok in [
            ("SEG_CHURN_HORIZON_DAYS", horizon, horizon >= 7),
            ("SEG_RETRAIN_EVERY_DAYS", retrain, retrain >= 1),
            ("SEG_KEEP_VERSIONS", keep, keep >= 0),
            ("SEG_QUARANTINE_THRESHOLD", threshold, 0 <= threshold <= 1),
            ("SEG_QUARANTINE_MIN_ROWS", min_rows, min_rows >= 1),
            ("SEG_CLV_MONTHLY_DISCOUNT", discount, 0 <= discount < 1),
            ("SEG_CONTACT_COST", contact_cost, contact_cost >= 0),
            ("SEG_QUARANTINE_WARN_SHARE", warn_share, 0 <= warn_share <= 1),
            ("SEG_PROFILE_MIN_SHARE", profile_share, 0 <= profile_share <= 1),
            ("SEG_MAX_LANDING_GAP_DAYS", gap, gap >= 0),
            ("SEG_CONTROL_SHARE", control, 0 <= control < 1),
            ("SEG_CUSTOMER_SHARDS", shards, 1 <= shards <= MAX_SHARDS),
        ]:
            if not ok:
                raise SettingsError(f"{name}: value {value} is out of range")
        return cls(
            landing_dir=str(landing), warehouse_path=str(warehouse), store_path=str(store), store_uri=store_uri,
            partition_start=start,
            churn_horizon_days=horizon,
            currency=currency,
            quarantine_threshold=threshold,
            quarantine_min_rows=min_rows,
            quarantine_warn_share=warn_share,
            profile_min_share=profile_share,
            max_landing_gap_days=gap, value_tier_cuts=cuts,
            clv_monthly_discount=discount,
            contact_cost=contact_cost,
            retrain_every_days=retrain,
            keep_versions=keep,
            control_share=control,
            control_salt=raw("SEG_CONTROL_SALT"),
            export_dir=str(Path(raw("SEG_EXPORT_DIR")).expanduser().resolve()),
            schedule_cron=_cron(raw("SEG_SCHEDULE_CRON")),
            schedule_timezone=_timezone(raw("SEG_SCHEDULE_TIMEZONE")),
            sql_dir=_sql_dir(env.get("SEG_SQL_DIR")),
            customer_shards=shards,
            **_executor(env),
        )


def _first_landed_day(landing: Path) -> str:
    from seg_pipeline.storage.landing import scan

    return min(scan(landing, "orders"), default=date(2024, 1, 1)).isoformat()


def _sql_dir(text: str | None) -> str:
    from seg_pipeline.storage.sql_models import SQL_DIR

    path = Path(text).expanduser().resolve() if text else SQL_DIR
    if not path.is_dir():
        raise SettingsError(f"SEG_SQL_DIR: {path} is not a folder of .sql marts")
    return str(path)


#: the object stores SEG_STORE_URI may name (delta-rs's schemes)
STORE_SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss")


def _store_uri(text: str, warehouse: Path) -> str:
    """SEG_STORE_URI as delta-rs takes it: `scheme://bucket/prefix`, or an absolute local folder."""
    scheme, sep, rest = text.partition("://")
    if sep and scheme != "file":
        bucket = rest.split("/", 1)[0]
        if scheme.lower() not in STORE_SCHEMES or not bucket:
            raise SettingsError(
                f"SEG_STORE_URI: expected a local folder or {', '.join(s + '://bucket/prefix' for s in STORE_SCHEMES)},"
                f" got {text!r}"
            )
        return f"{scheme.lower()}://{rest.rstrip('/')}"
    path = Path(rest if sep else text).expanduser().resolve()
    if path.exists() and not path.is_dir() or path == warehouse:
        raise SettingsError(f"SEG_STORE_URI: {path} is a file; expected a folder for the store's Delta tables")
    folder = next(p for p in path.parents if p.exists())
    if not path.exists() and (not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK)):
        raise SettingsError(f"SEG_STORE_URI: cannot create {path}: {folder} is not a writable folder")
    return str(path)


def _file_path(name: str, text: str) -> Path:
    """An absolute file path whose folder exists or can be made by this user."""
    path = Path(text).expanduser().resolve()
    if path.is_dir():
        raise SettingsError(f"{name}: {path} is a folder; expected a file path such as {path / 'segments.duckdb'}")
    folder = next(p for p in path.parents if p.exists())
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise SettingsError(f"{name}: cannot create {path}: {folder} is not a writable folder")
    return path


def _executor(env: Mapping[str, str]) -> dict[str, str]:
    """SEG_EXECUTOR (one of EXECUTORS) and SEG_EXECUTOR_CONFIG (an existing file's absolute path, or "")."""
    kind = (env.get("SEG_EXECUTOR") or SETTINGS_DOC["SEG_EXECUTOR"][0]).strip()
    if kind not in EXECUTORS:
        raise SettingsError(f"SEG_EXECUTOR: expected one of {', '.join(EXECUTORS)}, got {kind!r}")
    config = env.get("SEG_EXECUTOR_CONFIG") or ""
    if config and not (path := Path(config).expanduser().resolve()).is_file():
        raise SettingsError(f"SEG_EXECUTOR_CONFIG: {path} is not a file")
    return {"executor": kind, "executor_config": str(Path(config).expanduser().resolve()) if config else ""}


def _cron(text: str) -> str:
    from dagster._utils.schedules import is_valid_cron_string  # the parser the schedule itself uses

    if not is_valid_cron_string(text):
        raise SettingsError(f"SEG_SCHEDULE_CRON: expected a cron expression such as '0 6 * * *', got {text!r}")
    return text


def _timezone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ValueError, ZoneInfoNotFoundError):
        raise SettingsError(f"SEG_SCHEDULE_TIMEZONE: expected an IANA timezone such as 'UTC', got {text!r}") from None
    return text


def _number(name: str, text: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(text.strip())
    except ValueError:
        raise SettingsError(f"{name}: expected a {kind.__name__}, got {text!r}") from None
