"""Prospects (a profile, no completed order) segmented by who they are, and their purchase propensity.

Persona (their ``cluster_label``): ``prospect <customer type>s, <members | non-members>, signed up <band>``
from the profile, e.g. 'prospect businesses, members, signed up 30-179 days ago'; unknown values say 'unknown'.

``purchase_propensity``: P(first completed order within the horizon h after D). Trained point-in-time on the
prospects of the profile snapshot in force at D - h (their profile columns as of D - h), labelled by whether
their first completed order fell in (D - h, D]: a logistic regression on customer type, region, age band,
membership (one-hot, unknown as its own level) and log1p(days since signup); a log-loss fit is calibrated
in the large (its mean prediction is the training conversion rate), which the holdout checks.
Evaluated like the churn model: a seeded 25% holdout of those prospects (by ``shards.in_key_share``), AUC, Brier and log
loss against a baseline on signup recency alone. With fewer than ``MIN_TRAIN`` past prospects or fewer than
``MIN_CLASS`` in either class, the fallback ``prior`` scores everyone with the smoothed conversion rate of the
past prospects, (converted + 1) / (prospects + 2) (0.5 with no past snapshot). Null for buyers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from seg_pipeline.core import shards

PROSPECT_PREFIX = "prospect "
SIGNUP_BANDS = ((30, "< 30 days ago"), (180, "30-179 days ago"), (365, "180-364 days ago"))
CATEGORICAL = ("customer_type", "region", "age_band", "is_member")
MIN_TRAIN, MIN_CLASS = 200, 20
HOLDOUT_SHARE = 0.25
_P_MIN, _P_MAX = 1e-4, 1 - 1e-4


def persona_expr() -> pl.Expr:
    """``cluster_label`` of a prospect from the profile columns of ``customer_features``."""
    kind = (
        pl.col("customer_type")
        .replace_strict(
            {"individual": "individuals", "business": "businesses", "government": "government bodies"},
            default=None,
        )
        .fill_null("unknown types")
    )
    member = pl.when(pl.col("is_member")).then(pl.lit("members")).when(~pl.col("is_member")).then(pl.lit("non-members"))
    days = pl.col("days_since_signup")
    band = pl.when(days.is_null() | (days < 0)).then(pl.lit("at an unknown date"))
    for upper, text in SIGNUP_BANDS:
        band = band.when(days < upper).then(pl.lit(text))
    band = band.otherwise(pl.lit("a year ago or more"))
    return pl.concat_str(
        pl.lit(PROSPECT_PREFIX),
        kind,
        pl.lit(", "),
        member.fill_null(pl.lit("membership unknown")),
        pl.lit(", signed up "),
        band,
    ).alias("cluster_label")


def with_personas(labels: pl.Series, features: pl.DataFrame) -> pl.Series:
    """``labels`` (aligned with ``features``) with each null, a prospect's, filled with its persona
    (``persona_expr``), phrased on the prospects' rows only."""
    missing = np.flatnonzero(labels.is_null().to_numpy())
    if not missing.size:
        return labels
    return labels.clone().scatter(missing, features[missing].select(persona_expr()).to_series())


def _design(frame: pl.DataFrame, levels: dict[str, list[str]]) -> np.ndarray:
    """One-hot profile columns (levels as given) and log1p(days_since_signup) with a missing flag."""
    cols = [
        (pl.col(c).cast(pl.String).fill_null("unknown") == level).cast(pl.Float64).alias(f"{c}={level}")
        for c in CATEGORICAL
        for level in levels[c]
    ]
    return frame.select(*cols, *_recency_columns()).to_numpy()


def _recency_columns() -> list[pl.Expr]:
    """log1p(days since signup) and a missing flag: the baseline's only inputs."""
    days = pl.col("days_since_signup").cast(pl.Float64)
    return [
        days.clip(lower_bound=0).log1p().fill_null(0.0).alias("_log_days"),
        days.is_null().cast(pl.Float64).alias("_no_days"),
    ]


def _fit(x: np.ndarray, y: np.ndarray) -> LogisticRegression:
    with threadpool_limits(limits=1):
        return LogisticRegression(C=1.0, max_iter=1000).fit(x, y)


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    p = np.clip(p, _P_MIN, _P_MAX)
    return {"auc": float(roc_auc_score(y, p)), "brier": float(brier_score_loss(y, p)), "logloss": float(log_loss(y, p))}


def training_frame(past: pl.DataFrame, now: pl.DataFrame, horizon_days: int) -> pl.DataFrame:
    """The prospects of ``past`` (profile columns at D - h) with ``converted``: a first completed order in (D - h, D].

    ``now`` is customer_features at D; a customer whose first purchase day is <= D - h was no prospect then.
    """
    first = now.select("customer_id", "frequency", "days_since_first_order")
    return (
        past.select("customer_id", *CATEGORICAL, "days_since_signup")
        .join(first, on="customer_id", how="left")
        .filter(pl.col("frequency").is_null() | (pl.col("days_since_first_order") < horizon_days))
        .select("customer_id", *CATEGORICAL, "days_since_signup", pl.col("frequency").is_not_null().alias("converted"))
        .sort("customer_id")
    )


@dataclass(frozen=True)
class PropensityModel:
    """The fitted propensity: the logistic regression and the levels of its one-hot columns, or the prior's rate."""

    rate: float
    levels: dict[str, list[str]] | None = None
    model: LogisticRegression | None = None

    def score(self, features: pl.DataFrame) -> pl.Series:
        """``purchase_propensity`` per row of `features`: null for buyers."""
        if self.model is None:
            p = np.full(features.height, self.rate)
        else:
            p = self.model.predict_proba(_design(features, self.levels))[:, 1]
        propensity = pl.Series("purchase_propensity", np.clip(p, _P_MIN, _P_MAX), dtype=pl.Float64)
        prospects = features["frequency"].is_null()
        return pl.select(pl.when(prospects).then(propensity)).to_series().alias("purchase_propensity")


def fit_propensity(train: pl.DataFrame | None, *, seed: int = 0) -> tuple[PropensityModel, dict]:
    """(the ``PropensityModel`` of the past prospects `train` (``training_frame``, or None), its metrics with
    ``method`` model/prior)."""
    n = 0 if train is None else train.height
    positives = 0 if train is None else int(train["converted"].sum())
    metrics: dict = {"train_prospects": n, "converted": positives}
    if n < MIN_TRAIN or min(positives, n - positives) < MIN_CLASS:
        rate = (positives + 1) / (n + 2) if n else 0.5
        reason = f"{n} past prospects, {positives} converted (needs >= {MIN_TRAIN} and >= {MIN_CLASS} per class)"
        return PropensityModel(rate), metrics | {"method": "prior", "reason": reason, "rate": rate}
    levels = {c: sorted(set(train[c].cast(pl.String).fill_null("unknown").to_list())) for c in CATEGORICAL}
    y = train["converted"].to_numpy().astype(int)
    holdout = shards.in_key_share(train["customer_id"], HOLDOUT_SHARE, f"prospect_holdout:{seed}:")
    if min(y[holdout].sum(), (1 - y[holdout]).sum(), y[~holdout].sum(), (1 - y[~holdout]).sum()) < 3:
        holdout = np.zeros(len(y), dtype=bool)
    x, base = _design(train, levels), train.select(_recency_columns()).to_numpy()
    if holdout.any():
        model = _fit(x[~holdout], y[~holdout]).predict_proba(x[holdout])[:, 1]
        baseline = _fit(base[~holdout], y[~holdout]).predict_proba(base[holdout])[:, 1]
        metrics |= {
            "n_holdout": int(holdout.sum()), "holdout_conversion_rate": float(y[holdout].mean()),
            "holdout_mean_predicted": float(model.mean()),
            "model": _scores(y[holdout], model), "signup_recency": _scores(y[holdout], baseline),
        }  # fmt: skip
    return PropensityModel(float(y.mean()), levels, _fit(x, y)), metrics | {"method": "model"}


def score_prospects(features: pl.DataFrame, train: pl.DataFrame | None, *, seed: int = 0) -> tuple[pl.Series, dict]:
    """(``purchase_propensity`` per row of ``features``, null for buyers; metrics with ``method`` model/prior)."""
    model, metrics = fit_propensity(train, seed=seed)
    return model.score(features), metrics
