"""Churn risk: P(a customer with >= 1 completed order places no completed order in the ``horizon_days`` after D).

Training reads nothing after D (orders are cut at ``order_day <= D`` first) and is point-in-time:

- Snapshot dates, h = horizon, s = spacing, n = ``n_snapshots``: holdout t_h = D - h (label window (t_h, D]);
  evaluation snapshots t_h - h - k*s (k = 0..n-1), whose label windows all end on or before t_h, so no
  holdout-period purchase is seen in training; final snapshots t_h - k*s (k = 0..n-1), the latest n complete
  windows, for the returned model.
- Rows: ``compute_customer_features`` at snapshot t for customers with >= 1 completed order by t; label 1 when
  the customer has no completed order with order_day in (t, t + h]. A seeded sample of customers keeps about
  ``max_train_rows`` training rows (features are computed on that sample only, which keeps this fast), with an
  exact seeded row cap on the training rows on top.
- Model: the numeric and categorical features plus two BG/NBD scores (P(alive) and P(no purchase in h), params
  fitted on the training rows) feed a seeded HistGradientBoostingClassifier (depth-2 trees, monotone in
  recency and the BG/NBD scores) trained on all but the latest of its snapshots. The latest snapshot (a
  time-based split) serves for early stopping and for the calibrator: a logistic regression on the logits of
  the boosted probability and of BG/NBD's P(no purchase) (Platt scaling plus a learned blend, so the model
  is never much worse than BG/NBD where BTYD dynamics dominate); it tracks the most recent base rate.
- Evaluation on the holdout: AUC, log loss, Brier and calibration deciles, against a recency-only baseline
  (isotonic regression on days_since_last_order) and a BG/NBD baseline (P(no purchase in h) from BG/NBD, with
  one-time buyers scored by their shrinking posterior rate because BG/NBD has P(alive) = 1 for them,
  isotonic-calibrated); both baselines are fitted on the same evaluation snapshots, so the comparison is fair.
- The returned model is refit the same way on the final snapshots; its metrics describe the procedure.
"""

import hashlib
import pickle
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy.special import logit
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from seg_pipeline.core.bgnbd import BgNbdParams, fit_bgnbd, probability_alive, probability_no_purchase
from seg_pipeline.core.features import compute_customer_features

LABEL = "churned"
CATEGORICAL_FEATURES = ("main_channel", "age_band", "gender", "region", "customer_type")
BGNBD_FEATURES = ("bgnbd_p_alive", "bgnbd_p_no_purchase")
# Shape constraints (+1: risk never falls as the feature grows): less variance on small data.
MONOTONE = {"days_since_last_order": 1, "bgnbd_p_no_purchase": 1, "bgnbd_p_alive": -1}
_MAX_ITER = 150
_PREDICT_CHUNK = 8192
_OMP_THREADS = 1  # HistGradientBoosting threads; oversubscribed OpenMP spin-waits are far slower than 1 thread
_NON_FEATURES = frozenset({"as_of", "customer_id", LABEL})
_MAX_CATEGORIES = 60
_P_MIN, _P_MAX = 1e-4, 1 - 1e-4


class InsufficientHistoryError(ValueError):
    """Not enough order history before D to build training and holdout snapshots."""


@dataclass(frozen=True)
class ChurnModel:
    """Calibrated gradient-boosting churn model over customer features."""

    numeric_features: tuple[str, ...]
    categories: tuple[tuple[str, tuple[str, ...]], ...]  # (column, vocabulary in code order)
    bgnbd: BgNbdParams
    classifier: HistGradientBoostingClassifier
    calibrator: LogisticRegression
    horizon_days: int
    trained_as_of: date

    @property
    def feature_names(self) -> list[str]:
        """Model inputs in matrix order (BG/NBD scores are derived from frequency/recency/T)."""
        return [*self.numeric_features, *BGNBD_FEATURES, *(c for c, _ in self.categories)]

    def _matrix(self, features: pl.DataFrame) -> np.ndarray:
        numeric = features.select(pl.col(c).cast(pl.Float64) for c in self.numeric_features).to_numpy()
        cats = features.select(
            pl.col(c).replace_strict({v: i for i, v in enumerate(vocab)}, default=None, return_dtype=pl.Float64)
            for c, vocab in self.categories
        ).to_numpy()
        return np.column_stack([numeric, self._bgnbd_scores(features), cats])

    def _bgnbd_scores(self, features: pl.DataFrame) -> np.ndarray:
        """(P(alive), P(no purchase in the horizon)) per row under the model's BG/NBD params."""
        x, tx, t_obs = (features[c].cast(pl.Float64).to_numpy() for c in ("frequency", "recency", "T"))
        return np.column_stack(
            [
                probability_alive(self.bgnbd, x, tx, t_obs),
                probability_no_purchase(self.bgnbd, self.horizon_days, x, tx, t_obs),
            ]
        )

    def _stack_inputs(self, features: pl.DataFrame) -> np.ndarray:
        """Calibrator inputs: logits of the boosted probability and of BG/NBD's P(no purchase)."""
        x = self._matrix(features)
        with threadpool_limits(limits=_OMP_THREADS, user_api="openmp"):  # row chunks stay in cache across trees
            chunks = [x[i : i + _PREDICT_CHUNK] for i in range(0, len(x), _PREDICT_CHUNK)]
            p = np.concatenate([self.classifier.predict_proba(c)[:, 1] for c in chunks])
        p_bg = self._bgnbd_scores(features)[:, 1]
        return logit(np.clip(np.column_stack([p, p_bg]), 1e-9, 1 - 1e-9))

    def predict_risk(self, features: pl.DataFrame) -> np.ndarray:
        """Churn probability per row; NaN for prospects (frequency null)."""
        out = np.full(features.height, np.nan)
        buyers = features["frequency"].is_not_null().to_numpy()
        if buyers.any():
            stacked = self._stack_inputs(features.filter(pl.Series(buyers)))
            out[buyers] = np.clip(self.calibrator.predict_proba(stacked)[:, 1], _P_MIN, _P_MAX)
        return out

    def content_hash(self) -> str:
        """sha256 of the pickled model: identical for identical data, settings and seed.

        A fresh estimator pickles differently from a loaded one (shared references inside sklearn objects),
        so the bytes hashed are those of the round-tripped copy, a fixed point of pickling.
        """
        canonical = pickle.loads(pickle.dumps(self, protocol=5))
        return hashlib.sha256(pickle.dumps(canonical, protocol=5)).hexdigest()

    def save(self, directory: str | Path) -> Path:
        """Write ``churn_model-<hash16>.pkl`` (pickle, so a loaded model keeps its hash) into ``directory``."""
        path = Path(directory) / f"churn_model-{self.content_hash()[:16]}.pkl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(self, protocol=5))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ChurnModel":
        """Load a model written by ``save``."""
        model = pickle.loads(Path(path).read_bytes())
        if not isinstance(model, cls):
            raise TypeError(f"{path} does not hold a {cls.__name__}")
        return model


@dataclass(frozen=True)
class ChurnTrainingResult:
    """The final model and JSON-serialisable evaluation metrics."""

    model: ChurnModel
    metrics: dict[str, Any]


def _snapshot(orders: pl.DataFrame, profiles: pl.DataFrame | None, t: date, horizon_days: int) -> pl.DataFrame:
    """Features at t for customers with a completed order by t, plus the churn label over (t, t + h]."""
    feats = compute_customer_features(orders, profiles, t).filter(pl.col("frequency").is_not_null())
    buyers = (
        orders.lazy()
        .filter(
            (pl.col("status") == "completed")
            & (pl.col("order_day") > t)
            & (pl.col("order_day") <= t + timedelta(days=horizon_days))
        )
        .select("customer_id")
        .unique()
        .with_columns(pl.lit(0, dtype=pl.Int8).alias(LABEL))
        .collect()
    )
    return feats.join(buyers, on="customer_id", how="left").with_columns(pl.col(LABEL).fill_null(1)).sort("customer_id")


def _vocabularies(rows: pl.DataFrame) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Most frequent values (ties by value) of each categorical feature present in ``rows``."""
    vocabs = []
    for c in CATEGORICAL_FEATURES:
        if c in rows.columns:
            counts = rows[c].drop_nulls().value_counts().sort(["count", c], descending=[True, False])
            vocabs.append((c, tuple(counts[c].head(_MAX_CATEGORIES).to_list())))
    return tuple(vocabs)


def _fit(snapshots: list[pl.DataFrame], horizon_days: int, as_of: date, seed: int) -> ChurnModel:
    """Gradient boosting on snapshots[1:], early-stopped on and calibrated/blended on snapshots[0] (the latest)."""
    calib = snapshots[0]
    train = pl.concat(snapshots[1:], how="vertical_relaxed")
    if calib.height == 0 or train.height == 0 or train[LABEL].n_unique() < 2 or calib[LABEL].n_unique() < 2:
        raise InsufficientHistoryError("need two snapshots with both churners and non-churners")
    numeric = tuple(
        c
        for c, dtype in train.schema.items()
        if c not in _NON_FEATURES and (dtype.is_numeric() or dtype == pl.Boolean)
    )
    bgnbd = fit_bgnbd(train["frequency"], train["recency"], train["T"], penalizer=1e-3)
    draft = ChurnModel(
        numeric, _vocabularies(train), bgnbd, HistGradientBoostingClassifier(), LogisticRegression(), horizon_days, as_of
    )
    names = draft.feature_names
    classifier = HistGradientBoostingClassifier(
        learning_rate=0.2,
        max_iter=_MAX_ITER,
        max_depth=2,
        min_samples_leaf=max(100, train.height // 1000),
        l2_regularization=1.0,
        monotonic_cst=[MONOTONE.get(c, 0) for c in names],
        categorical_features=[c in CATEGORICAL_FEATURES for c in names],
        early_stopping=True,
        n_iter_no_change=10,
        random_state=seed,
    )
    with threadpool_limits(limits=_OMP_THREADS, user_api="openmp"):
        classifier.fit(
            draft._matrix(train), train[LABEL].to_numpy(), X_val=draft._matrix(calib), y_val=calib[LABEL].to_numpy()
        )
    fitted = replace(draft, classifier=classifier)
    calibrator = LogisticRegression(C=1e6).fit(fitted._stack_inputs(calib), calib[LABEL].to_numpy())
    return replace(fitted, calibrator=calibrator)


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "auc": float(roc_auc_score(y, p)),
        "logloss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
    }


def _deciles(y: np.ndarray, p: np.ndarray) -> list[dict[str, float | int]]:
    order = np.argsort(p, kind="stable")
    return [
        {"mean_predicted": float(p[idx].mean()), "observed_rate": float(y[idx].mean()), "n": int(idx.size)}
        for idx in np.array_split(order, 10)
        if idx.size
    ]


def _isotonic(score_train: np.ndarray, y_train: np.ndarray, score_test: np.ndarray) -> np.ndarray:
    iso = IsotonicRegression(y_min=_P_MIN, y_max=_P_MAX, increasing="auto", out_of_bounds="clip")
    return iso.fit(score_train, y_train).predict(score_test)


def train_churn_model(
    orders: pl.DataFrame | pl.LazyFrame,
    profiles: pl.DataFrame | None,
    as_of: date,
    horizon_days: int = 90,
    *,
    n_snapshots: int = 4,
    snapshot_spacing_days: int = 30,
    max_train_rows: int = 200_000,
    seed: int = 0,
) -> ChurnTrainingResult:
    """Train, evaluate (holdout t_h = D - h) and refit the churn model; see the module docstring.

    Raises ``InsufficientHistoryError`` when the history before D is too short.
    """
    if n_snapshots < 2 or horizon_days < 1 or snapshot_spacing_days < 1 or max_train_rows < 1:
        raise ValueError("need n_snapshots >= 2 and positive horizon, spacing and max_train_rows")
    cut = orders.lazy().filter(pl.col("order_day") <= as_of)
    customers = (
        cut.filter(pl.col("status") == "completed").select("customer_id").unique().sort("customer_id").collect()
    )
    if customers.height == 0:
        raise InsufficientHistoryError(f"no completed orders on or before {as_of}")
    rng = np.random.default_rng(seed)
    fraction = min(1.0, max_train_rows / (n_snapshots * customers.height))
    sample = customers.filter(pl.Series(rng.random(customers.height) < fraction))
    # Canonical row order: results must not depend on how the input happens to be ordered.
    sample_orders = (
        cut.join(sample.lazy(), on="customer_id", how="semi").sort("customer_id", "order_ts", "order_id").collect()
    )
    sample_profiles = (
        None if profiles is None else profiles.join(sample, on="customer_id", how="semi").sort("customer_id")
    )

    h, s = timedelta(days=horizon_days), timedelta(days=snapshot_spacing_days)
    holdout_date = as_of - h
    eval_dates = [holdout_date - h - k * s for k in range(n_snapshots)]
    final_dates = [holdout_date - k * s for k in range(n_snapshots)]
    frames: dict[date, pl.DataFrame] = {}
    for t in sorted({holdout_date, *eval_dates, *final_dates}, reverse=True):
        frames[t] = _snapshot(sample_orders, sample_profiles, t, horizon_days)

    def rows(dates: list[date]) -> list[pl.DataFrame]:
        chosen = [frames[d] for d in dates]
        total = sum(f.height for f in chosen)
        if total <= max_train_rows:
            return chosen
        keep = max_train_rows / total
        return [f.sample(fraction=keep, seed=seed + i).sort("customer_id") for i, f in enumerate(chosen)]

    holdout = frames[holdout_date]
    if holdout.height == 0 or holdout[LABEL].n_unique() < 2:
        raise InsufficientHistoryError(f"holdout snapshot {holdout_date} needs churners and non-churners")
    eval_rows = rows(eval_dates)
    eval_model = _fit(eval_rows, horizon_days, as_of, seed)
    train = pl.concat(eval_rows, how="vertical_relaxed")
    y_train, y = train[LABEL].to_numpy(), holdout[LABEL].to_numpy()
    p_model = eval_model.predict_risk(holdout)
    p_recency = _isotonic(
        train["days_since_last_order"].to_numpy(), y_train, holdout["days_since_last_order"].to_numpy()
    )

    def bg_score(df: pl.DataFrame) -> np.ndarray:
        return probability_no_purchase(eval_model.bgnbd, horizon_days, df["frequency"], df["recency"], df["T"])

    p_bgnbd = _isotonic(bg_score(train), y_train, bg_score(holdout))
    final_rows = rows(final_dates)
    model = _fit(final_rows, horizon_days, as_of, seed)
    deciles = _deciles(y, p_model)
    metrics: dict[str, Any] = {
        "trained_as_of": as_of.isoformat(),
        "horizon_days": horizon_days,
        "holdout_as_of": holdout_date.isoformat(),
        "eval_snapshots": [d.isoformat() for d in eval_dates],
        "final_snapshots": [d.isoformat() for d in final_dates],
        "customer_sample_fraction": fraction,
        "n_train": train.height,
        "n_holdout": holdout.height,
        "n_final_train": sum(f.height for f in final_rows),
        "holdout_churn_rate": float(y.mean()),
        "holdout_mean_predicted": float(p_model.mean()),
        "calibration_error": float(abs(p_model.mean() - y.mean())),
        "max_decile_error": max(abs(d["mean_predicted"] - d["observed_rate"]) for d in deciles),
        "model": _scores(y, p_model),
        "recency": _scores(y, p_recency),
        "bgnbd": _scores(y, p_bgnbd),
        "calibration_deciles": deciles,
        "bgnbd_params": model.bgnbd.to_dict(),
        "model_hash": model.content_hash(),
    }
    return ChurnTrainingResult(model=model, metrics=metrics)
