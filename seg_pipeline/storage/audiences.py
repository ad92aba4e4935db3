"""Audience files: per version, the treated customers of each action, for the CRM or email tool that acts.

`$SEG_EXPORT_DIR/<as_of>/` holds `<action>.csv` (UTF-8, header, one row per customer) and `<action>.parquet`
for every action but "No action", with ids and scores only, plus `manifest.json`. Control customers
(`in_control_group`) are in no file; the manifest counts them per action. Ids are written as they are: one
that looks like an email or a phone number never gets past validation (`core.personal_data`). A version's
folder is written whole beside its final place and renamed into it (the old one renamed aside first, then
removed), so a re-run replaces it whole and no reader sees half a folder.
"""

import json
import re
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path

import polars as pl

from seg_pipeline.core.personal_data import scrub_columns

NO_ACTION = "No action"
#: the columns of an audience file, in order; the optional ones when customer_segments has them
COLUMNS = ("customer_id", "recommended_action", "value_tier", "lifecycle_stage", "churn_risk", "clv")
OPTIONAL_COLUMNS = ("next_order_date", "churn_reasons")
#: what audiences read of customer_segments besides the file columns
READ_COLUMNS = (*COLUMNS, "segment_version", "in_control_group")


def file_stem(action: str) -> str:
    """An action's file name without extension: 'Win-back offer' -> 'win_back_offer'."""
    return re.sub(r"[^a-z0-9]+", "_", action.lower()).strip("_")


def write_audiences(segments: pl.DataFrame, export_dir: str | Path, as_of: date) -> dict:
    """Write version `as_of`'s audience folder from its customer_segments rows; return its manifest."""
    columns = [*COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in segments.columns)]
    treated = segments.filter(~pl.col("in_control_group") & (pl.col("recommended_action") != NO_ACTION))
    treated = treated.select(columns)
    # by customer_id (customer_segments is written so: checked, sorted only if not)
    treated = treated if treated.get_column("customer_id").is_sorted() else treated.sort("customer_id")
    # one text cell per customer (a list of reasons is joined), with anything personal-looking scrubbed
    treated = treated.with_columns(pl.col(c).list.join("; ") for c in columns if isinstance(treated.schema[c], pl.List))
    treated = scrub_columns(treated, text=[c for c in OPTIONAL_COLUMNS if treated.schema.get(c) == pl.String])
    counts = segments.group_by("recommended_action").agg(
        treated=(~pl.col("in_control_group")).sum(), control=pl.col("in_control_group").sum()
    )
    final = Path(export_dir) / as_of.isoformat()
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{final.name}-{uuid.uuid4().hex[:12]}")
    staging.mkdir()  # the umask's permissions, like the analyst file
    try:
        files, writes = {}, []
        for (action,), rows in treated.partition_by("recommended_action", as_dict=True, maintain_order=True).items():
            files[action] = stem = file_stem(action)
            writes += [
                partial(rows.write_csv, staging / f"{stem}.csv"),
                # snappy: half zstd's cost, and every Parquet reader takes it
                partial(rows.write_parquet, staging / f"{stem}.parquet", compression="snappy"),
            ]
        with ThreadPoolExecutor(max_workers=2) as pool:  # Polars writes outside the GIL
            list(pool.map(lambda write: write(), writes))
        manifest = {
            "as_of": as_of.isoformat(),
            "segment_version": segments["segment_version"][0] if segments.height else None,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "columns": columns,
            "actions": {
                action: {
                    "treated": treated_n, "control": control_n,
                    "files": [f"{files[action]}.csv", f"{files[action]}.parquet"] if action in files else [],
                }
                for action, treated_n, control_n in counts.sort("recommended_action").iter_rows()
                if action != NO_ACTION
            },
        }  # fmt: skip
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _replace(staging: Path, final: Path) -> None:
    """Put `staging` in `final`'s place: the old folder is renamed aside first, then removed."""
    if final.exists():
        old = final.with_name(f".{final.name}-old-{staging.name}")
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old)
    else:
        staging.rename(final)
