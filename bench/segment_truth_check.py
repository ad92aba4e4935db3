"""Do segment names keep their promise on a real, lapsing customer base? (not part of the test suite: it downloads)

On CDNOW (see real_data_check.py) at several as-of dates, the pipeline's own functions score every customer
as `build_segments` does (features, churn model, BG/NBD, CLV, lifecycle, RFM, value tier, action), and this
script measures, per as-of date:

- split ties: groups of customers with identical (days_since_last_order, order_count, total_spend) that carry
  more than one rfm_score, and values of each input that carry more than one score of its column;
- lapsed customers (`lifecycle_stage = 'lapsed'`) in an active RFM segment (Champions, Loyal customers,
  Potential loyalists, New customers, Promising; and in any R 3..5 segment);
- the "No action" group: its share of customers, of CLV, and of the completed revenue of the 90 days after
  the as-of date; and the same shares per action.

    python bench/segment_truth_check.py [--cache-dir ~/.cache/seg_pipeline] [--contact-cost 0.5]
        [--as-of 1997-06-30 1997-09-30 1997-12-31 1998-03-31] [--out <cache-dir>/cdnow_segment_truth.json]

With `--demo`, the same measures on the demo data (generated into <cache-dir>/demo if absent), from versions
made by real runs of the segments job (`materialize_as_of`, SEG_CONTACT_COST from --contact-cost); the last
landed day is materialized first, so the working store holds the orders after each as-of date.
"""

from __future__ import annotations

import argparse
import json
from datetime import date, timedelta
from pathlib import Path

import polars as pl
from real_data_check import DEFAULT_CACHE, cdnow_to_orders, fetch_cdnow

from seg_pipeline.core import actions, bgnbd, churn_fallback, clv, lifecycle, rfm, value_tiers
from seg_pipeline.core.churn import InsufficientHistoryError, train_churn_model
from seg_pipeline.core.features import compute_customer_features
from seg_pipeline.settings import SETTINGS_DOC

NAMED_ACTIVE = ("Champions", "Loyal customers", "Potential loyalists", "New customers", "Promising")
AS_OF = (date(1997, 6, 30), date(1997, 9, 30), date(1997, 12, 31), date(1998, 3, 31))
DEMO_AS_OF = (date(2025, 11, 30), date(2026, 5, 31), date(2026, 8, 23))  # the demo's orders end on 2026-11-21
NEXT_DAYS = 90


def segment(orders: pl.DataFrame, as_of: date, horizon: int, contact_cost: float) -> tuple[pl.DataFrame, str]:
    """Features plus the segment columns of `as_of`, made by the pipeline's core functions; and the churn method
    (the fallback stands in, as in the pipeline, while the history is too short for the model)."""
    features = compute_customer_features(orders, None, as_of)
    try:
        model, method = train_churn_model(orders, None, as_of, horizon).model, "model"
    except InsufficientHistoryError:
        model = churn_fallback.fallback_churn(features, as_of, horizon)
        method = model.method
    risk = model.predict_risk(features)
    buyers = features.filter(pl.col("frequency").is_not_null())
    penalizer = 0.0 if method == "model" else churn_fallback.BGNBD_PENALIZER
    params = bgnbd.fit_bgnbd(*(buyers[c].to_numpy() for c in ("frequency", "recency", "T")), penalizer=penalizer)
    scored = features.with_columns(pl.Series("churn_risk", risk, dtype=pl.Float64).fill_nan(None))
    scored = scored.with_columns(lifecycle.assign_lifecycle(scored, horizon))
    parts = (
        rfm.score_rfm(features, horizon),
        value_tiers.assign_value_tiers(features, "spend_365d", (0.01, 0.05, 0.20)),
        clv.compute_clv(features, params, risk, churn_horizon_days=horizon),
    )
    segments = pl.concat([scored, *(p.drop("customer_id") for p in parts)], how="horizontal")
    segments = segments.with_columns(actions.recommend_actions(segments, contact_cost).alias("recommended_action"))
    return segments, method


def truth(segments: pl.DataFrame, future: pl.DataFrame) -> dict:
    """The measures of one version; `future` = customer_id, revenue of the next NEXT_DAYS days."""
    inputs = [("days_since_last_order", "r_score"), ("order_count", "f_score"), ("total_spend", "m_score")]
    split = {
        score: segments.group_by(value).agg(pl.col(score).n_unique()).filter(pl.col(score) > 1).height
        for value, score in inputs
    }
    groups = segments.group_by([v for v, _ in inputs]).agg(pl.col("rfm_score").n_unique(), pl.len())
    lapsed = segments.filter(pl.col("lifecycle_stage") == "lapsed")
    with_future = segments.join(future, on="customer_id", how="left").with_columns(pl.col("revenue").fill_null(0.0))
    revenue = with_future["revenue"].sum()
    shares = actions.action_shares(segments)
    per_action = with_future.group_by("recommended_action").agg(pl.col("revenue").sum())
    for action, next_revenue in per_action.iter_rows():
        shares[action]["next_revenue_share"] = next_revenue / revenue if revenue else 0.0
    return {
        "customers": segments.height,
        "lapsed": lapsed.height,
        "tie_groups": groups.filter(pl.col("len") > 1).height,
        "split_tie_groups": groups.filter(pl.col("rfm_score") > 1).height,
        "split_values_per_score": split,
        "lapsed_in_named_active_segments": lapsed.filter(pl.col("rfm_segment").is_in(NAMED_ACTIVE)).height,
        "lapsed_in_r3_to_5_segments": lapsed.filter(pl.col("rfm_segment").is_in(rfm.ACTIVE_SEGMENTS)).height,
        "next_90d_revenue": revenue,
        "no_action": shares.get(actions.NO_ACTION, {"customer_share": 0.0, "clv_share": 0.0,
                                                    "next_revenue_share": 0.0}),
        "by_action": shares,
        "rfm_segments": dict(segments.group_by("rfm_segment").len().sort("rfm_segment").rows()),
    }  # fmt: skip


def future_revenue(orders: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Completed revenue per customer in the NEXT_DAYS days after `as_of`."""
    window = (pl.col("order_day") > as_of) & (pl.col("order_day") <= as_of + timedelta(days=NEXT_DAYS))
    completed = orders.filter(window & (pl.col("status") == "completed"))
    return completed.group_by("customer_id").agg(pl.col("amount").sum().alias("revenue"))


def cdnow_versions(cache_dir: Path, as_of: list[date], horizon: int, contact_cost: float):
    """(as_of, churn method, segments, future revenue) per as-of date on CDNOW, by the core functions."""
    orders = cdnow_to_orders(fetch_cdnow(cache_dir).read_text("ascii"))
    for day in as_of:
        segments, method = segment(orders, day, horizon, contact_cost)
        yield day, method, segments, future_revenue(orders, day)


def demo_versions(cache_dir: Path, as_of: list[date], horizon: int, contact_cost: float):
    """(as_of, churn method, segments, future revenue) per as-of date on the demo data, by real pipeline runs."""
    import dagster as dg
    import duckdb

    from seg_pipeline.devtools.demo_data import generate_landing
    from seg_pipeline.launch.runs import materialize_as_of
    from seg_pipeline.settings import PipelineSettings
    from seg_pipeline.storage.landing import scan
    from seg_pipeline.storage.store import WorkingStore

    landing, work = cache_dir / "demo" / "landing", cache_dir / "demo" / "work"
    if not (landing / "orders").exists():
        generate_landing(landing)
    (work / "home").mkdir(parents=True, exist_ok=True)  # a re-run replaces each version whole
    settings = PipelineSettings.from_env({
        "SEG_LANDING_DIR": str(landing), "SEG_WAREHOUSE_PATH": str(work / "segments.duckdb"),
        "SEG_CHURN_HORIZON_DAYS": str(horizon), "SEG_CONTACT_COST": str(contact_cost), "SEG_KEEP_VERSIONS": "0",
    })  # fmt: skip
    last = max(scan(landing, "orders"))
    with dg.instance_for_test(temp_dir=str(work / "home")) as instance:
        for day in [last, *as_of]:
            materialize_as_of(settings, day, instance)
    orders = WorkingStore(settings.store_path).read_parts("orders", ["customer_id", "order_day", "amount", "status"])
    with duckdb.connect(settings.warehouse_path, read_only=True) as con:
        for day in as_of:
            segments = con.sql(
                "select s.*, f.days_since_last_order, f.order_count, f.total_spend from customer_segments s "
                "join customer_features f using (as_of, customer_id) where as_of = ?", params=[day]
            ).pl()
            method = con.execute("select churn_method from segment_versions where as_of = ?", [day]).fetchall()[0][0]
            yield day, method, segments, future_revenue(orders, day)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="download/extract folder")
    parser.add_argument("--demo", action="store_true", help="the demo data through real runs, instead of CDNOW")
    parser.add_argument("--as-of", type=date.fromisoformat, nargs="+", help=f"default {AS_OF} / {DEMO_AS_OF}")
    parser.add_argument("--horizon", type=int, default=90)
    parser.add_argument("--contact-cost", type=float, default=float(SETTINGS_DOC["SEG_CONTACT_COST"][0]))
    parser.add_argument("--out", type=Path, help="JSON path (default <cache-dir>/<cdnow|demo>_segment_truth.json)")
    args = parser.parse_args(argv)
    cache_dir = args.cache_dir.expanduser()
    dataset = "demo" if args.demo else "CDNOW"
    as_of = args.as_of or list(DEMO_AS_OF if args.demo else AS_OF)
    versions = (demo_versions if args.demo else cdnow_versions)(cache_dir, as_of, args.horizon, args.contact_cost)
    report = {"dataset": dataset, "horizon_days": args.horizon, "contact_cost": args.contact_cost, "runs": {}}
    for as_of, method, segments, future in versions:
        result = {"churn_method": method, **truth(segments, future)}
        report["runs"][as_of.isoformat()] = result
        no_action = result["no_action"]
        print(
            f"{as_of} (churn {method}): {result['customers']:,} customers, {result['lapsed']:,} lapsed; split tie "
            f"groups {result['split_tie_groups']} of {result['tie_groups']}, split values "
            f"{result['split_values_per_score']};"
            f" lapsed in active segments {result['lapsed_in_named_active_segments']} (R 3..5: "
            f"{result['lapsed_in_r3_to_5_segments']}); No action: {no_action['customer_share']:.1%} of customers, "
            f"{no_action['clv_share']:.1%} of CLV, {no_action['next_revenue_share']:.1%} of the next "
            f"{NEXT_DAYS} days' revenue"
        )
    out = args.out or cache_dir / f"{dataset.lower()}_segment_truth.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
