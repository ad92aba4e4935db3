"""The per-customer predictions on real CDNOW data (not part of the test suite: it downloads), issue 18's check.

Calibration to ``--as-of`` (1997-09-30), the pipeline's own functions as ``build_segments`` composes them: the
churn model (or the fallback the pipeline would use), BG/NBD, ``core.predictions``, ``core.clv`` with its
bootstrap interval and ``core.churn_reasons``. Checked against the orders after it, to the end of the data
(1998-06-30, 39 weeks): AUC of ``p_alive`` for "any purchase in the holdout", ``expected_purchases_90d`` against
the purchase days of the next 90 days, the next-order error of ``next_order_date`` against the rhythm baseline
(capped at the holdout), the coverage of the CLV interval, and whether every buyer with churn_risk >= 0.5 has a
reason. Fetches the data as ``bench/real_data_check.py`` does.

    python bench/predictions_check.py [--cache-dir ~/.cache/seg_pipeline] [--as-of 1997-09-30]
"""

from __future__ import annotations

import argparse
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from real_data_check import DEFAULT_CACHE, cdnow_to_orders, fetch_cdnow
from sklearn.metrics import roc_auc_score

from seg_pipeline.core import bgnbd, churn, churn_fallback, churn_reasons, clv, predictions
from seg_pipeline.core.features import compute_customer_features

HORIZON = 90


def run(cache_dir: Path, as_of: date) -> dict:
    orders = cdnow_to_orders(fetch_cdnow(cache_dir).read_text("ascii"))
    holdout = (orders["order_day"].max() - as_of).days
    features = compute_customer_features(orders, None, as_of).filter(pl.col("frequency").is_not_null())
    try:
        scorer = churn.train_churn_model(orders, None, as_of, HORIZON).model
        method, penalizer = "model", 0.0
    except churn.InsufficientHistoryError:
        scorer = churn_fallback.fallback_churn(features, as_of, HORIZON)
        method, penalizer = scorer.method, churn_fallback.BGNBD_PENALIZER
    risk = scorer.predict_risk(features)
    x, tx, t_obs = (features[c].to_numpy() for c in ("frequency", "recency", "T"))
    params = bgnbd.fit_bgnbd(x, tx, t_obs, penalizer=penalizer)
    draws = predictions.bootstrap_params(x, tx, t_obs, penalizer)
    predicted = predictions.predict(features, params, risk, as_of, HORIZON)
    reasons, moved = churn_reasons.churn_reasons(scorer, features, risk)
    drivers = churn_reasons.churn_drivers(moved)
    p_alive = predicted["p_alive"].to_numpy()
    alive = predictions.implied_p_alive(params, risk, x, t_obs, HORIZON)
    baseline = predictions.rhythm_baseline_days(
        features["days_since_last_order"].cast(pl.Float64).to_numpy(),
        features["mean_days_between_purchases"].cast(pl.Float64).to_numpy(),
    )
    days_to_next = predicted.select((pl.col("next_order_date") - pl.lit(as_of)).dt.total_days().cast(pl.Float64))
    days_to_next = days_to_next.to_series()
    checks = []
    for window in (HORIZON, holdout):
        months = max(1, round(window / clv.DAYS_PER_MONTH))
        value = clv.compute_clv(features, params, risk, months, 0.01, churn_horizon_days=HORIZON, param_draws=draws)
        scored = pl.DataFrame({
            "customer_id": features["customer_id"],
            f"expected_purchases_{window}d": alive * bgnbd.expected_purchases_if_alive(params, window, x, t_obs),
            "next_order_days": days_to_next, "baseline_days": baseline,
        }).with_columns(value.select("clv", "clv_low", "clv_high"))  # fmt: skip
        realized = predictions.outcomes(orders, as_of, window, 0.01)
        checks.append(predictions.window_check(scored, realized, window))
    bought = features.select(
        pl.col("customer_id").is_in(
            orders.filter(pl.col("order_day") > as_of, pl.col("order_day") <= as_of + timedelta(days=holdout))[
                "customer_id"
            ].implode()
        )
    ).to_series()
    likely = risk >= 0.5
    return {
        "as_of": as_of.isoformat(),
        "holdout_days": holdout,
        "buyers": features.height,
        "churn_method": method,
        "bgnbd_params": params.to_dict(),
        "p_alive_auc_any_purchase_in_holdout": float(roc_auc_score(bought.to_numpy(), p_alive)),
        "windows": checks,
        "buyers_with_churn_risk_at_least_half": int(likely.sum()),
        "of_them_without_reason": int(reasons.filter(pl.Series(likely)).null_count()),
        "churn_drivers": drivers[:6],
        "example_reasons": reasons.filter(pl.Series(likely)).value_counts(sort=True).head(5).rows(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="download/extract folder")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(1997, 9, 30))
    args = parser.parse_args(argv)
    report = run(args.cache_dir.expanduser(), args.as_of)
    print(json.dumps(report, indent=2, default=str))
    return 0 if np.isfinite(report["p_alive_auc_any_purchase_in_holdout"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
