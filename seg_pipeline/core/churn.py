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
- Model, in two stages (logit scale):
  1. A BTYD logistic regression (standardised inputs, C = 1) on all its snapshots: inputs are the logits of
     BG/NBD's P(no purchase in h) and P(alive) (params fitted on the same rows), log1p of
     days_since_last_order, frequency and T, and a one-time-buyer flag. Seven coefficients correct the shape
     of BG/NBD (drop-out only right after a purchase).
  2. A seeded HistGradientBoostingRegressor (depth-2 trees, monotone in recency and the BG/NBD scores) fitted
     to the Newton working response of stage 1, i.e. one Newton step of boosting that starts from the
     stage-1 logit instead of a constant: it learns only what the BTYD terms miss (profile, mix, rhythm and
     the BG/NBD scores themselves), so it adds little variance where BTYD dynamics dominate. It trains on all
     but the latest snapshot and early-stops on the latest (a time-based split). Numeric inputs are cut into
     at most 255 unweighted quantile bins first (see ``_bin_edges``).
  risk = expit(stage-1 logit + stage-2 correction). Numeric features that are null on every training row
  (e.g. profile columns without a profile snapshot) are left out. Scoring reads the depth-2 booster as
  lookup tables (``core.booster_tables``: the same numbers, several times faster than walking its trees).
- Evaluation on the holdout: AUC, log loss, Brier and calibration deciles, against a recency-only baseline
  (isotonic regression on days_since_last_order) and a BG/NBD baseline (P(no purchase in h) from BG/NBD, with
  one-time buyers scored by their shrinking posterior rate because BG/NBD has P(alive) = 1 for them,
  isotonic-calibrated); both baselines are fitted on the same evaluation snapshots, so the comparison is fair.
- The returned model is refit the same way on the final snapshots; its metrics describe the procedure.
- Too little history (fewer than ``MIN_CLASS_ROWS`` churners or non-churners in the holdout or in a snapshot
  set) raises ``InsufficientHistoryError``; the pipeline then scores with ``core.churn_fallback``.
"""

import hashlib
import pickle
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import partial
from typing import Any

import numpy as np
import polars as pl
import sklearn
from scipy.special import expit, logit
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from seg_pipeline.core import shards
from seg_pipeline.core.bgnbd import BgNbdParams, fit_bgnbd, probability_alive, probability_no_purchase
from seg_pipeline.core.booster_tables import BoosterTables
from seg_pipeline.core.features import compute_customer_features

LABEL = "churned"
CATEGORICAL_FEATURES = ("main_channel", "age_band", "gender", "region", "customer_type")
BGNBD_FEATURES = ("bgnbd_p_alive", "bgnbd_p_no_purchase")
# Shape constraints of the correction (+1: it never lowers the risk as the feature grows): less variance.
MONOTONE = {"days_since_last_order": 1, "bgnbd_p_no_purchase": 1, "bgnbd_p_alive": -1}
#: fewer churners or non-churners than this in a snapshot set: too little history to train on (a fallback scores)
MIN_CLASS_ROWS = 20
_MAX_ITER = 300
_MAX_BINS = 255
_CHECKED_ROWS = 256  # rows scored by the booster itself too, as a guard on its tables
_OMP_THREADS = 1  # HistGradientBoosting training threads; oversubscribed OpenMP spin-waits are far slower than 1 thread
#: the feature each stage-1 input is made of (in ``_base_inputs`` order), for per-feature contributions
_BASE_INPUT_FEATURES = (*BGNBD_FEATURES, "days_since_last_order", "frequency", "T", "frequency")
_NON_FEATURES = frozenset({"as_of", "customer_id", LABEL})
_MAX_CATEGORIES = 60
_P_MIN, _P_MAX = 1e-4, 1 - 1e-4
#: booster -> its lookup tables as checked against it on some rows (the check is paid once per loaded model)
_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_WORKING_P = 0.01  # stage-1 probabilities are clipped to [p, 1 - p] for the Newton working response
# Early stopping: boosting stops unless the validation loss (weighted half squared error of the working
# response, of order 1) improved by this much within 10 iterations; a correction must earn its variance.
_STOP_TOL = 1e-3


class InsufficientHistoryError(ValueError):
    """Not enough order history before D to build training and holdout snapshots."""


def _bin_codes(values: pl.Expr, edges: tuple[float, ...]) -> pl.Expr:
    """Bin index of each value among `edges` (numpy's searchsorted, side left); len(edges) + 1 for null or NaN."""
    index = pl.lit(pl.Series(edges, dtype=pl.Float64)).search_sorted(values, side="left").cast(pl.Int32)
    return pl.when(values.is_not_null() & values.is_not_nan()).then(index).otherwise(len(edges) + 1)


@dataclass(frozen=True)
class ContributionReference:
    """What contributions are counted against (``ChurnModel.reference``): stage 1's mean terms and the booster
    inputs' code frequencies over some buyers (a sample of the population, for rows explained shard by shard)."""

    term_means: np.ndarray
    frequencies: dict[int, np.ndarray]


@dataclass(frozen=True)
class ChurnModel:
    """BTYD logistic regression plus a gradient-boosted correction over customer features."""

    numeric_features: tuple[str, ...]
    categories: tuple[tuple[str, tuple[str, ...]], ...]  # (column, vocabulary in code order)
    bgnbd: BgNbdParams
    bin_edges: tuple[tuple[float, ...], ...]  # per numeric column of the booster input (see _bin_edges)
    base: Pipeline  # StandardScaler + LogisticRegression on _base_inputs
    booster: HistGradientBoostingRegressor
    horizon_days: int
    trained_as_of: date

    @property
    def feature_names(self) -> list[str]:
        """Booster inputs in matrix order (BG/NBD scores are derived from frequency/recency/T)."""
        return [*self.numeric_features, *BGNBD_FEATURES, *(c for c, _ in self.categories)]

    def _numeric_columns(self, features: pl.DataFrame) -> list[np.ndarray]:
        """Numeric features and BG/NBD scores (raw values), one contiguous array per column."""
        numeric = [features[c].cast(pl.Float64).to_numpy() for c in self.numeric_features]
        return [*numeric, *self._bgnbd_scores(features).T]

    @property
    def input_sizes(self) -> tuple[int, ...]:
        """Values per booster input: bins of each numeric column, categories of each categorical one."""
        return (*(len(edges) + 1 for edges in self.bin_edges), *(len(vocab) for _, vocab in self.categories))

    def _codes(
        self, features: pl.DataFrame, scores: np.ndarray | None = None, inputs: frozenset[int] | None = None
    ) -> np.ndarray:
        """Booster input as integer codes (Fortran order): numeric columns' bin indices, then category codes.

        Code ``input_sizes[c]`` of column c stands for missing. One polars select bins every column at once.
        ``scores``: the rows' ``_bgnbd_scores`` when already at hand. ``inputs``: the columns to code (the
        ones the booster splits on); the others are left missing.
        """
        scores = self._bgnbd_scores(features) if scores is None else scores
        numeric = features.select(pl.col(c).cast(pl.Float64) for c in self.numeric_features).with_columns(
            pl.Series(name, scores[:, k]) for k, name in enumerate(BGNBD_FEATURES)
        )
        coded = [
            _bin_codes(pl.col(c), edges) for c, edges in zip(numeric.columns, self.bin_edges, strict=True)
        ] + [
            pl.col(c)
            .replace_strict({v: i for i, v in enumerate(vocab)}, default=len(vocab), return_dtype=pl.Int32)
            .fill_null(len(vocab))
            for c, vocab in self.categories
        ]
        missing = (pl.repeat(size, pl.len(), dtype=pl.Int32) for size in self.input_sizes)
        chosen = [
            expr if inputs is None or k in inputs else blank
            for k, (expr, blank) in enumerate(zip(coded, missing, strict=True))
        ]
        frame = pl.concat([numeric, features.select(c for c, _ in self.categories)], how="horizontal")
        return frame.select(e.alias(f"_{k}") for k, e in enumerate(chosen)).to_numpy(order="fortran")

    def _matrix(self, features: pl.DataFrame) -> np.ndarray:
        """Booster input as the booster is fitted on: the codes as floats, NaN for missing."""
        return self._floats(self._codes(features))

    def _floats(self, codes: np.ndarray) -> np.ndarray:
        """Codes as the booster's float input: NaN for missing."""
        return np.where(codes == np.asarray(self.input_sizes), np.nan, codes.astype(np.float64))

    def _bgnbd_scores(self, features: pl.DataFrame) -> np.ndarray:
        """(P(alive), P(no purchase in the horizon)) per row under the model's BG/NBD params."""
        x, tx, t_obs = (features[c].cast(pl.Float64).to_numpy() for c in ("frequency", "recency", "T"))
        return np.column_stack(
            [
                probability_alive(self.bgnbd, x, tx, t_obs),
                probability_no_purchase(self.bgnbd, self.horizon_days, x, tx, t_obs),
            ]
        )

    def _base_inputs(self, features: pl.DataFrame, scores: np.ndarray | None = None) -> np.ndarray:
        """Stage-1 inputs: BG/NBD logits, log1p of recency gap, frequency and T, one-time-buyer flag."""
        scores = logit(np.clip(self._bgnbd_scores(features) if scores is None else scores, 1e-6, 1 - 1e-6))
        terms = features.select(
            pl.col(c).cast(pl.Float64).log1p() for c in ("days_since_last_order", "frequency", "T")
        ).to_numpy()
        return np.column_stack([scores, terms, features["frequency"].to_numpy() == 0])

    def _merged_codes(self, features: pl.DataFrame, scores: np.ndarray, starts: tuple[np.ndarray, ...]) -> np.ndarray:
        """Booster input as the merged codes of ``BoosterTables.merged`` (Fortran order), found from the values:
        a numeric column's by counting the few bin edges where its merged code changes that the value exceeds
        (``starts``: the runs of its codes), a category's through its code. ``scores``: the rows' ``_bgnbd_scores``.
        """
        out = np.zeros((features.height, len(starts)), dtype=np.int32, order="F")  # 0: a column no table reads
        n_numeric, n_features = len(self.bin_edges), len(self.numeric_features)
        for k, run in enumerate(starts):
            code = out[:, k]
            if not len(run):
                continue
            if k >= n_numeric:
                column, vocab = self.categories[k - n_numeric]
                codes = features[column].replace_strict(
                    {v: i for i, v in enumerate(vocab)}, default=len(vocab), return_dtype=pl.Int32
                ).fill_null(len(vocab))
                merged = np.append(np.searchsorted(run, np.arange(len(vocab)), side="right") - 1, len(run))
                code[:] = merged[codes.to_numpy()]
                continue
            values = (
                features[self.numeric_features[k]].cast(pl.Float64).to_numpy()
                if k < n_features
                else scores[:, k - n_features]
            )
            # merged code j starts at code run[j], the values above bin edge run[j] - 1; a handful of comparisons
            # (one pass each) beat a binary search over all the edges
            for edge in np.asarray(self.bin_edges[k])[run[1:] - 1]:
                code += values > edge
            code[np.isnan(values)] = len(run)
        return out

    def _prepared(self, features: pl.DataFrame) -> tuple[np.ndarray, BoosterTables, np.ndarray, np.ndarray]:
        """(BG/NBD scores, merged booster tables, their codes, stage-1 inputs) of buyers' rows: what scoring and
        contributions share, worked out once (the tables checked against the booster on a few rows)."""
        scores = self._bgnbd_scores(features)
        tables, starts = BoosterTables.from_booster(self.booster, self.input_sizes).merged()
        codes = self._merged_codes(features, scores, starts)
        self._check_tables(tables, codes, features, scores)
        return scores, tables, codes, self._base_inputs(features, scores)

    def _logit(self, features: pl.DataFrame, prepared: tuple | None = None) -> np.ndarray:
        """Stage-1 logit plus the boosted correction (scored through its lookup tables, checked on a few rows)."""
        _, tables, codes, inputs = self._prepared(features) if prepared is None else prepared
        return self.base.decision_function(inputs) + tables.predict(codes)

    def _check_tables(
        self, tables: BoosterTables, codes: np.ndarray, features: pl.DataFrame, scores: np.ndarray
    ) -> None:
        """Raise unless the (merged) tables score the first rows of ``codes`` as the booster scores those rows of
        ``features`` (checked once per loaded model and process)."""
        if tables.same_as(_TABLES.get(self.booster)):
            return
        head = features.head(_CHECKED_ROWS)
        walked = self.booster.predict(self._floats(self._codes(head, scores[: head.height])))
        if not np.allclose(tables.predict(codes[: head.height]), walked, rtol=0, atol=1e-9):
            raise RuntimeError(f"churn scoring tables disagree with the booster (scikit-learn {sklearn.__version__})")
        if head.height:
            _TABLES[self.booster] = tables

    def _stage1_terms(self, inputs: np.ndarray) -> np.ndarray:
        """Stage 1's terms coef * standardised input, per row and input."""
        return self.base[-1].coef_[0] * self.base[0].transform(inputs)

    def reference(self, features: pl.DataFrame) -> ContributionReference | None:
        """The ``ContributionReference`` of buyers' rows `features` (None without rows)."""
        if not features.height:
            return None
        _, tables, codes, inputs = self._prepared(features)
        return ContributionReference(self._stage1_terms(inputs).mean(axis=0), tables.code_frequencies(codes))

    def contributions(
        self, features: pl.DataFrame, group: Callable[[str], str] | None = None, prepared: tuple | None = None,
        reference: ContributionReference | None = None,
    ) -> tuple[float, tuple[str, ...], np.ndarray]:  # fmt: skip
        """(base, feature names, contributions (rows, names)) on the logit scale for buyers' rows:
        base + row sum = the model's logit (risk = expit of it, before clipping).

        Stage 1 contributes coef * (standardised input - its mean over the reference), each input under the feature
        it is made of (BG/NBD logits under ``bgnbd_p_alive`` / ``bgnbd_p_no_purchase``, the one-time flag under
        ``frequency``); the booster's tables contribute as ``BoosterTables.contributions``. The reference:
        `reference` (``reference`` of other buyers), by default the rows themselves. ``group`` (feature -> name):
        contributions summed per name instead (names in order of first feature), without the per-feature matrix.
        ``prepared``: ``_prepared(features)`` when already at hand.
        """
        _, tables, codes, inputs = self._prepared(features) if prepared is None else prepared
        terms = self._stage1_terms(inputs)
        if reference is not None:
            means, frequencies = reference.term_means, reference.frequencies
        else:
            means, frequencies = terms.mean(axis=0) if features.height else np.zeros(terms.shape[1]), None
        group = group or (lambda name: name)
        names = tuple(dict.fromkeys(group(f) for f in [*self.feature_names, *_BASE_INPUT_FEATURES]))
        into = np.array([names.index(group(f)) for f in self.feature_names])
        booster_base, out = tables.contributions(codes, into=into, width=len(names), frequencies=frequencies)
        for column, name in enumerate(_BASE_INPUT_FEATURES):
            out[:, names.index(group(name))] += terms[:, column] - means[column]
        return float(self.base[-1].intercept_[0] + means.sum() + booster_base), names, out

    def risk_and_explainer(
        self, features: pl.DataFrame, group: Callable[[str], str] | None = None,
        reference: ContributionReference | None = None,
    ) -> tuple[np.ndarray, Callable[[], tuple[float, tuple[str, ...], np.ndarray]]]:  # fmt: skip
        """(``predict_risk(features)``, a function giving ``contributions(buyers' rows, group, reference=)``): the
        inputs are worked out once for both, and the contributions only when asked for."""
        out = np.full(features.height, np.nan)
        buyers = features["frequency"].is_not_null().to_numpy()
        rows = features.filter(pl.col("frequency").is_not_null())
        prepared = self._prepared(rows)
        if buyers.any():
            out[buyers] = np.clip(expit(self._logit(rows, prepared)), _P_MIN, _P_MAX)
        return out, partial(self.contributions, rows, group, prepared, reference)

    def predict_risk(self, features: pl.DataFrame) -> np.ndarray:
        """Churn probability per row; NaN for prospects (frequency null)."""
        out = np.full(features.height, np.nan)
        buyers = features["frequency"].is_not_null().to_numpy()
        if buyers.any():
            rows = features.filter(pl.col("frequency").is_not_null())
            out[buyers] = np.clip(expit(self._logit(rows)), _P_MIN, _P_MAX)
        return out

    def content_hash(self) -> str:
        """sha256 of the pickled model: identical for identical data, settings and seed.

        A fresh estimator pickles differently from a loaded one (shared references inside sklearn objects),
        so the bytes hashed are those of the round-tripped copy, a fixed point of pickling.
        """
        canonical = pickle.loads(pickle.dumps(self, protocol=5))
        return hashlib.sha256(pickle.dumps(canonical, protocol=5)).hexdigest()


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


def _bin_edges(numeric: list[np.ndarray]) -> tuple[tuple[float, ...], ...]:
    """Unweighted quantile edges (at most 254) per column, so the booster sees at most 255 distinct values.

    HistGradientBoosting bins like this itself, but with sample weights it computes weighted quantiles one by
    one, which is orders of magnitude slower; binning beforehand keeps the same trees at a fraction of the cost.
    """
    edges = []
    for col in numeric:
        known = col[~np.isnan(col)]
        q = np.quantile(known, np.linspace(0, 1, _MAX_BINS + 1)[1:-1]) if known.size else np.empty(0)
        edges.append(tuple(float(v) for v in np.unique(q)))
    return tuple(edges)


def _both_classes(rows: pl.DataFrame) -> bool:
    """Whether `rows` hold at least MIN_CLASS_ROWS churners and as many non-churners."""
    churners = int(rows[LABEL].sum()) if rows.height else 0
    return min(churners, rows.height - churners) >= MIN_CLASS_ROWS


def _fit(snapshots: list[pl.DataFrame], horizon_days: int, as_of: date, seed: int) -> ChurnModel:
    """Stage 1 on all snapshots; stage 2 on snapshots[1:], early-stopped on snapshots[0] (the latest)."""
    latest = snapshots[0]
    earlier = pl.concat(snapshots[1:], how="vertical_relaxed")
    rows = pl.concat(snapshots, how="vertical_relaxed")
    if not (_both_classes(latest) and _both_classes(earlier)):
        raise InsufficientHistoryError(
            f"need two snapshots with at least {MIN_CLASS_ROWS} churners and {MIN_CLASS_ROWS} non-churners each"
        )
    # the booster's inputs: numeric features known on some of its own rows (an all-missing one cannot be binned)
    numeric = tuple(
        c
        for c, dtype in rows.schema.items()
        if c not in _NON_FEATURES
        and (dtype.is_numeric() or dtype == pl.Boolean)
        and earlier[c].null_count() < earlier.height
    )
    bgnbd = fit_bgnbd(rows["frequency"], rows["recency"], rows["T"], penalizer=1e-3)
    draft = ChurnModel(
        numeric_features=numeric,
        categories=_vocabularies(rows),
        bgnbd=bgnbd,
        bin_edges=(),
        base=make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)),
        booster=HistGradientBoostingRegressor(),
        horizon_days=horizon_days,
        trained_as_of=as_of,
    )
    base = draft.base.fit(draft._base_inputs(rows), rows[LABEL].to_numpy())
    draft = replace(draft, bin_edges=_bin_edges(draft._numeric_columns(earlier)))

    def working_response(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        p = np.clip(expit(base.decision_function(draft._base_inputs(frame))), _WORKING_P, 1 - _WORKING_P)
        weight = p * (1 - p)
        return (frame[LABEL].to_numpy() - p) / weight, weight

    names = draft.feature_names
    booster = HistGradientBoostingRegressor(
        learning_rate=0.05,
        max_iter=_MAX_ITER,
        max_depth=2,
        min_samples_leaf=max(500, earlier.height // 1000),
        l2_regularization=1.0,
        monotonic_cst=[MONOTONE.get(c, 0) for c in names],
        categorical_features=[c in CATEGORICAL_FEATURES for c in names],
        early_stopping=True,
        n_iter_no_change=10,
        tol=_STOP_TOL,
        random_state=seed,
    )
    (z, w), (z_val, w_val) = working_response(earlier), working_response(latest)
    booster.fit(
        draft._matrix(earlier), z, sample_weight=w,
        X_val=draft._matrix(latest), y_val=z_val, sample_weight_val=w_val,
    )  # fmt: skip
    return replace(draft, booster=booster)


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


@dataclass(frozen=True)
class TrainingSample:
    """The seeded customer sample the churn model trains on, drawn from every buyer up to D."""

    customers: pl.DataFrame  # customer_id, sorted
    fraction: float


def training_sample(
    buyers: pl.Series, *, n_snapshots: int = 4, max_train_rows: int = 200_000, seed: int = 0
) -> TrainingSample:
    """A seeded sample of `buyers` (ids with a completed order <= D) of about ``max_train_rows / n_snapshots``:
    those whose ``shards.sample_key`` is in the lowest ``fraction`` (decided per customer, so any shard can tell).

    Callers holding orders in a database draw it first and load only the sample's orders.
    """
    customers = buyers.unique().sort().to_frame("customer_id")
    fraction = min(1.0, max_train_rows / (n_snapshots * max(customers.height, 1)))
    keep = shards.in_key_share(customers["customer_id"], fraction, f"churn_sample:{seed}:")
    return TrainingSample(customers.filter(pl.Series(keep)), fraction)


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
    sample: TrainingSample | None = None,
) -> ChurnTrainingResult:
    """Train, evaluate (holdout t_h = D - h) and refit the churn model; see the module docstring.

    `sample` (from `training_sample` with the same settings) may be given when `orders` and
    `profiles` hold only the sampled customers; the result is the same as from all orders.
    Raises ``InsufficientHistoryError`` when the history before D is too short.
    """
    if n_snapshots < 2 or horizon_days < 1 or snapshot_spacing_days < 1 or max_train_rows < 1:
        raise ValueError("need n_snapshots >= 2 and positive horizon, spacing and max_train_rows")
    cut = orders.lazy().filter(pl.col("order_day") <= as_of)
    if sample is None:
        buyers = cut.filter(pl.col("status") == "completed").select("customer_id").collect().to_series()
        sample = training_sample(buyers, n_snapshots=n_snapshots, max_train_rows=max_train_rows, seed=seed)
    if sample.customers.height == 0:
        raise InsufficientHistoryError(f"no completed orders on or before {as_of}")
    fraction = sample.fraction
    # Canonical row order: results must not depend on how the input happens to be ordered.
    sample_orders = (
        cut.join(sample.customers.lazy(), on="customer_id", how="semi")
        .sort("customer_id", "order_ts", "order_id")
        .collect()
    )
    sample_profiles = (
        None if profiles is None else profiles.join(sample.customers, on="customer_id", how="semi").sort("customer_id")
    )

    h, s = timedelta(days=horizon_days), timedelta(days=snapshot_spacing_days)
    holdout_date = as_of - h
    eval_dates = [holdout_date - h - k * s for k in range(n_snapshots)]
    final_dates = [holdout_date - k * s for k in range(n_snapshots)]
    frames = {
        t: _snapshot(sample_orders, sample_profiles, t, horizon_days)
        for t in sorted({holdout_date, *eval_dates, *final_dates}, reverse=True)
    }

    def rows(dates: list[date]) -> list[pl.DataFrame]:
        chosen = [frames[d] for d in dates]
        total = sum(f.height for f in chosen)
        if total <= max_train_rows:
            return chosen
        keep = max_train_rows / total
        return [f.sample(fraction=keep, seed=seed + i).sort("customer_id") for i, f in enumerate(chosen)]

    holdout = frames[holdout_date]
    if not _both_classes(holdout):
        raise InsufficientHistoryError(
            f"holdout snapshot {holdout_date} needs at least {MIN_CLASS_ROWS} churners and non-churners"
        )
    eval_rows, final_rows = rows(eval_dates), rows(final_dates)
    # The evaluation and the final model are independent fits: one thread each (the boosters' OpenMP
    # loops limited to one thread, so the two never oversubscribe the cores).
    with ThreadPoolExecutor(2) as pool, threadpool_limits(limits=_OMP_THREADS, user_api="openmp"):
        fits = [pool.submit(_fit, chosen, horizon_days, as_of, seed) for chosen in (eval_rows, final_rows)]
        eval_model, model = (fit.result() for fit in fits)
    metrics: dict[str, Any] = {
        "trained_as_of": as_of.isoformat(),
        "horizon_days": horizon_days,
        "holdout_as_of": holdout_date.isoformat(),
        "eval_snapshots": [d.isoformat() for d in eval_dates],
        "final_snapshots": [d.isoformat() for d in final_dates],
        "customer_sample_fraction": fraction,
        **_holdout_metrics(eval_model, eval_rows, holdout, horizon_days),
        "n_final_train": sum(f.height for f in final_rows),
        "bgnbd_params": model.bgnbd.to_dict(),
        "booster_iterations": int(model.booster.n_iter_),
        "model_hash": model.content_hash(),
    }
    return ChurnTrainingResult(model=model, metrics=metrics)


def _holdout_metrics(
    eval_model: ChurnModel, eval_rows: list[pl.DataFrame], holdout: pl.DataFrame, horizon_days: int
) -> dict[str, Any]:
    """The evaluation model against the recency-only and BG/NBD baselines (each isotonic-calibrated on the
    evaluation rows) on the holdout snapshot: sizes, calibration and scores."""
    train = pl.concat(eval_rows, how="vertical_relaxed")
    y_train, y = train[LABEL].to_numpy(), holdout[LABEL].to_numpy()
    p_model = eval_model.predict_risk(holdout)
    p_recency = _isotonic(
        train["days_since_last_order"].to_numpy(), y_train, holdout["days_since_last_order"].to_numpy()
    )

    def bg_score(df: pl.DataFrame) -> np.ndarray:
        return probability_no_purchase(eval_model.bgnbd, horizon_days, df["frequency"], df["recency"], df["T"])

    p_bgnbd = _isotonic(bg_score(train), y_train, bg_score(holdout))
    deciles = _deciles(y, p_model)
    return {
        "n_train": train.height,
        "n_holdout": holdout.height,
        "holdout_churn_rate": float(y.mean()),
        "holdout_mean_predicted": float(p_model.mean()),
        "calibration_error": float(abs(p_model.mean() - y.mean())),
        "max_decile_error": max(abs(d["mean_predicted"] - d["observed_rate"]) for d in deciles),
        "model": _scores(y, p_model),
        "recency": _scores(y, p_recency),
        "bgnbd": _scores(y, p_bgnbd),
        "calibration_deciles": deciles,
    }
