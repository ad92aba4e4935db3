"""Churn model vs baselines on a real public transaction log: CDNOW (not part of the test suite: it downloads).

CDNOW (Fader & Hardie): every purchase from 1997-01 to 1998-06 of the 23,570 customers who first bought at
the CD retailer CDNOW in 1997-Q1. The master file ships inside the `lifetimes` wheel on PyPI; this script
fetches that wheel with `pip download --no-deps` (nothing is installed), extracts
`lifetimes/datasets/CDNOW_master.txt` into a cache folder outside the repo, converts it into the accepted-
orders frame (INTERFACES.md) and trains the churn model at an as-of date per horizon, printing AUC, log loss
and Brier of the model and of the recency-only and BG/NBD baselines on the time-based holdout, plus the
calibration error. The numbers are written to JSON.

    python bench/real_data_check.py [--cache-dir ~/.cache/seg_pipeline] [--as-of 1998-06-30]
        [--horizons 90 180] [--out <cache-dir>/cdnow_churn_metrics.json]

CDNOW has no profiles, channels or categories: the profile, mix and channel features are null or constant,
so this checks the behavioural part of the model only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
import zipfile
from datetime import date
from pathlib import Path

import polars as pl

from seg_pipeline.core.churn import train_churn_model

LIFETIMES_REQUIREMENT = "lifetimes==0.11.3"  # the last release; pinned so the data file never changes
MEMBER = "lifetimes/datasets/CDNOW_master.txt"
DEFAULT_CACHE = Path("~/.cache/seg_pipeline").expanduser()
_LINE = r"^\s*(\S+)\s+(\d{8})\s+(-?\d+)\s+(-?\d+(?:\.\d*)?)\s*$"


def fetch_cdnow(cache_dir: Path) -> Path:
    """Path of CDNOW_master.txt in ``cache_dir``, downloading the lifetimes wheel (no install) if needed."""
    target = cache_dir / "CDNOW_master.txt"
    if target.exists():
        return target
    wheels = cache_dir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    if not list(wheels.glob("[Ll]ifetimes-*.whl")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                LIFETIMES_REQUIREMENT,
                "-d",
                str(wheels),
            ],
            check=True,
        )
    wheel = sorted(wheels.glob("[Ll]ifetimes-*.whl"))[-1]
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(MEMBER)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def cdnow_to_orders(text: str) -> pl.DataFrame:
    """CDNOW lines ``customer_id YYYYMMDD number_of_cds dollar_value`` (whitespace separated, optional header
    line) as the accepted-orders frame: one completed USD order per line, ``order_id`` = ``CDNOW-<line number>``
    (1-based, header excluded), ``order_ts`` = midnight of the date, channel and category null."""
    lines = pl.Series("line", [ln for ln in text.splitlines() if ln.strip()], dtype=pl.Utf8)
    fields = lines.str.extract_groups(_LINE).struct.rename_fields(["customer_id", "day", "quantity", "amount"])
    parsed = pl.DataFrame({"line": lines, "f": fields}).unnest("f")
    if parsed.height and parsed["customer_id"][0] is None:  # header line
        parsed = parsed.slice(1)
    bad = parsed.filter(pl.col("customer_id").is_null())
    if bad.height:
        raise ValueError(f"{bad.height} line(s) not in CDNOW format, first: {bad['line'][0]!r}")
    day = pl.col("day").str.strptime(pl.Date, "%Y%m%d")
    return parsed.with_row_index("n", offset=1).select(
        pl.format("CDNOW-{}", pl.col("n")).alias("order_id"),
        pl.col("customer_id"),
        day.cast(pl.Datetime("us")).alias("order_ts"),
        day.alias("order_day"),
        pl.col("amount").cast(pl.Float64),
        pl.lit("USD").alias("currency"),
        pl.lit("completed").alias("status"),
        pl.lit(None, dtype=pl.Utf8).alias("channel"),
        pl.lit(None, dtype=pl.Utf8).alias("category"),
        pl.col("quantity").cast(pl.Int32),
    )


def run(cache_dir: Path, as_of: date, horizons: list[int], seed: int = 0) -> dict:
    """Train and evaluate per horizon; returns the JSON-ready report."""
    path = fetch_cdnow(cache_dir)
    raw = path.read_bytes()
    orders = cdnow_to_orders(raw.decode("ascii"))
    report: dict = {
        "dataset": "CDNOW master (lifetimes 0.11.3 wheel, lifetimes/datasets/CDNOW_master.txt)",
        "sha256": hashlib.sha256(raw).hexdigest(),
        "orders": orders.height,
        "customers": orders["customer_id"].n_unique(),
        "first_day": orders["order_day"].min().isoformat(),
        "last_day": orders["order_day"].max().isoformat(),
        "as_of": as_of.isoformat(),
        "runs": [],
    }
    for horizon in horizons:
        start = time.perf_counter()
        metrics = train_churn_model(orders, None, as_of, horizon, seed=seed).metrics
        keep = (
            "holdout_as_of",
            "eval_snapshots",
            "n_train",
            "n_holdout",
            "holdout_churn_rate",
            "holdout_mean_predicted",
            "calibration_error",
            "max_decile_error",
            "model",
            "recency",
            "bgnbd",
            "calibration_deciles",
            "bgnbd_params",
            "booster_iterations",
        )
        run_report = {"horizon_days": horizon, "seconds": round(time.perf_counter() - start, 2)}
        run_report |= {k: metrics[k] for k in keep if k in metrics}
        report["runs"].append(run_report)
    return report


def _print(report: dict) -> None:
    print(
        f"CDNOW: {report['orders']:,} orders, {report['customers']:,} customers, "
        f"{report['first_day']} .. {report['last_day']}, as of {report['as_of']}"
    )
    for r in report["runs"]:
        print(
            f"\nhorizon {r['horizon_days']} days: holdout {r['holdout_as_of']} ({r['n_holdout']:,} customers, "
            f"churn rate {r['holdout_churn_rate']:.3f}), {r['n_train']:,} training rows, {r['seconds']} s"
        )
        print(f"  {'':<8} {'AUC':>7} {'logloss':>8} {'Brier':>7}")
        for name in ("model", "recency", "bgnbd"):
            m = r[name]
            print(f"  {name:<8} {m['auc']:7.4f} {m['logloss']:8.4f} {m['brier']:7.4f}")
        print(
            f"  calibration error |mean predicted - observed| = {r['calibration_error']:.4f}, "
            f"max decile error = {r['max_decile_error']:.4f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="download/extract folder")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(1998, 6, 30))
    parser.add_argument("--horizons", type=int, nargs="+", default=[90, 180])
    parser.add_argument("--out", type=Path, help="JSON path (default <cache-dir>/cdnow_churn_metrics.json)")
    args = parser.parse_args(argv)
    cache_dir = args.cache_dir.expanduser()
    report = run(cache_dir, args.as_of, args.horizons)
    out = args.out or cache_dir / "cdnow_churn_metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    _print(report)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
