"""Needs-based buyer personas: k-means on *what* and *how* customers buy, named from what sets each apart.

RFM, value tiers and the life cycle already say how much and how recently; the clusters describe preferences.
Customers with >= 1 completed order are described by ``CLUSTER_FEATURES`` (log1p where marked): basket value
(avg_order_value), items_per_order, return_rate, cancel_rate, rhythm (frequency = repeat purchase days, and
mean_days_between_purchases, a one-time buyer's tenure standing in as the lower bound of its gap) and tenure
(days_since_first_order); plus, for every category (channel) that is the main one of >= ``MIN_LEVEL_SHARE`` of
the buyers, ``category:<c>`` (``channel:<c>``) = the customer's main_category_share (main_channel_share) when c
is their main one, else 0. Standardised on a seeded, day-to-day stable sample (the ``sample_size`` customers
of smallest ``shards.sample_key`` of their id: the same sample for any number of shards).

k: seeded k-means fits for every k in ``k_range`` on that sample; the largest k whose extra cluster still
explains >= ``MIN_GAIN`` of the variance (the drop in within-cluster inertia from k - 1 to k) among those whose
smallest cluster holds >= ``MIN_CLUSTER_SHARE`` of the sample wins: the data, not the range, sets where more
clusters stop paying off (``choice`` in the metrics says which k and why; ``explained_by_k`` the curve).
All customers are then assigned to the nearest centroid.
A tiny customer base with at most k_min distinct customers gets fewer clusters (k < distinct customers),
and one cluster (silhouette -1) below three distinct customers: a version never fails for lack of clusters.

Names: a centroid is in population standard deviations, so its largest coordinates are what distinguishes the
cluster. Up to ``NAME_TRAITS`` traits with |z| >= ``TRAIT_MIN_Z`` (``TRAIT_WORDS``: 'app-first', 'electronics',
'big-basket', 'high-return', ...) and a noun ('one-timers' when the median member bought once, 'regulars'
for many repeat purchase days, else 'buyers' of a category, 'shoppers' of a channel or 'customers') make
e.g. 'app-first electronics buyers'. 'new' is said only
when the median member's first purchase is < ``NEW_DAYS`` days old (the life cycle's 'new'); no name says
'active' or 'lapsed' (that is the life cycle's job). Equal names get the next trait, then ' #n' by size; a word
that every name shares says nothing and is dropped from the fresh names.

Stability: given the previous model, a k-means warm-started from the previous centroids (mapped into
today's scaled space) is kept unless another k beats its silhouette by more than 0.03. Today's centroids are
then matched to the previous ones with the Hungarian algorithm in the previous model's scaled space (on the
features both share); a pair closer than 1.0 (standard-deviation units) inherits the previous label unless the
label says 'new' and the median member no longer is, any other cluster gets a fresh name.
``content_hash`` hashes a model's canonical JSON (``ModelStore`` keeps the files).
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from seg_pipeline.core import shards
from seg_pipeline.core.lifecycle import NEW_WINDOW_DAYS
from seg_pipeline.core.prospects import PROSPECT_PREFIX

# (feature, log1p-transformed); the per-level ``category:<c>`` / ``channel:<c>`` features follow at fit time
CLUSTER_FEATURES: tuple[tuple[str, bool], ...] = (
    ("avg_order_value", True),
    ("items_per_order", True),
    ("return_rate", False),
    ("cancel_rate", False),
    ("frequency", True),
    ("mean_days_between_purchases", True),
    ("days_since_first_order", True),
)
#: level features: prefix -> (the main-level column, its share column)
LEVEL_FEATURES = {
    "category": ("main_category", "main_category_share"),
    "channel": ("main_channel", "main_channel_share"),
}
MIN_LEVEL_SHARE = 0.05
K_RANGE = (2, 12)  # the clusters tried; a tiny customer base gets fewer
MIN_GAIN = 0.04
MIN_CLUSTER_SHARE = 0.02
SILHOUETTE_SAMPLE = 4_000
SILHOUETTE_TOLERANCE = 0.03
MATCH_MAX_DISTANCE = 1.0
TRAIT_MIN_Z = 0.5
NAME_TRAITS = 2
NEW_DAYS = NEW_WINDOW_DAYS
#: (feature, sign) -> word; the level features name themselves ('<c>' for a category, '<c>-first' for a channel)
TRAIT_WORDS = {
    ("avg_order_value", 1): "big-basket", ("avg_order_value", -1): "small-basket",
    ("items_per_order", 1): "multi-item", ("items_per_order", -1): "single-item",
    ("return_rate", 1): "high-return", ("cancel_rate", 1): "cancel-prone",
    ("mean_days_between_purchases", -1): "frequent", ("mean_days_between_purchases", 1): "occasional",
    ("days_since_first_order", 1): "long-standing", ("days_since_first_order", -1): "new",
}  # fmt: skip
_N_INIT = 4


@dataclass(frozen=True)
class ClusterModel:
    """Standardisation, centroids (in standardised units) and one label per centroid."""

    features: tuple[tuple[str, bool], ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    centroids: tuple[tuple[float, ...], ...]
    labels: tuple[str, ...]
    silhouette: float
    trained_as_of: date | None

    @property
    def k(self) -> int:
        """Number of clusters."""
        return len(self.centroids)

    def transform(self, features: pl.DataFrame) -> np.ndarray:
        """Standardised feature matrix (rows as given), standardised in place (no matrix-sized temporaries)."""
        matrix = _raw_matrix(features, self.features)
        matrix -= np.asarray(self.mean)
        matrix /= np.asarray(self.scale)
        return matrix

    def predict_index(self, features: pl.DataFrame) -> np.ndarray:
        """Nearest-centroid index per row (rows must be buyers)."""
        return _nearest(self.transform(features), np.asarray(self.centroids))

    def predict_labels(self, features: pl.DataFrame) -> pl.Series:
        """``cluster_label`` per row; null for customers without a completed order (see ``core.prospects``)."""
        index = np.full(features.height, self.k)  # k: the null label, after the clusters' own
        buyers = features["frequency"].is_not_null().to_numpy()
        if buyers.any():
            index[buyers] = self.predict_index(features.filter(pl.col("frequency").is_not_null()))
        return pl.Series("cluster_label", [*self.labels, None], dtype=pl.Utf8).gather(index)

    def to_json(self) -> str:
        """Canonical JSON (the input of ``content_hash``)."""
        d = asdict(self)
        d["trained_as_of"] = None if self.trained_as_of is None else self.trained_as_of.isoformat()
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    def content_hash(self) -> str:
        """sha256 of the canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()


def _feature_expr(name: str, log: bool) -> pl.Expr:
    """One clustering input from the feature table (nulls: 0, a one-time buyer's gap: its tenure)."""
    prefix, _, level = name.partition(":")
    if prefix in LEVEL_FEATURES:
        main, share = LEVEL_FEATURES[prefix]
        col = pl.when(pl.col(main) == level).then(pl.col(share)).otherwise(0.0)
    elif name == "mean_days_between_purchases":
        col = pl.col(name).fill_null(pl.col("days_since_first_order"))
    else:
        col = pl.col(name)
    col = col.cast(pl.Float64).fill_null(0.0)
    return (col.clip(lower_bound=0.0).log1p() if log else col).alias(name)


def feature_spec(buyers: pl.DataFrame) -> tuple[tuple[str, bool], ...]:
    """``CLUSTER_FEATURES`` plus the level features of the categories and channels common among ``buyers``."""
    levels = []
    for prefix, (main, _) in LEVEL_FEATURES.items():
        if main not in buyers.columns or buyers.height == 0:
            continue
        shares = buyers.get_column(main).drop_nulls().value_counts(normalize=True, name="share")
        common = sorted(shares.filter(pl.col("share") >= MIN_LEVEL_SHARE).get_column(main).to_list())
        if len(common) >= 2:  # a single level distinguishes nobody
            levels += [(f"{prefix}:{level}", False) for level in common]
    return (*CLUSTER_FEATURES, *levels)


def _raw_matrix(features: pl.DataFrame, spec: tuple[tuple[str, bool], ...]) -> np.ndarray:
    return features.select(_feature_expr(name, log) for name, log in spec).to_numpy()


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    d = (centroids**2).sum(axis=1)[None, :] - 2.0 * x @ centroids.T
    return np.argmin(d, axis=1)


def _kmeans(x: np.ndarray, k: int, seed: int, init: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """(centroids, smallest cluster's share, inertia) of a seeded k-means; single-threaded: small problems."""
    with threadpool_limits(limits=1):
        km = KMeans(
            n_clusters=k,
            init="k-means++" if init is None else init,
            n_init=_N_INIT if init is None else 1,
            random_state=seed,
        ).fit(x)
    return km.cluster_centers_, float(np.bincount(km.labels_, minlength=k).min() / len(x)), float(km.inertia_)


def _silhouette(x: np.ndarray, centroids: np.ndarray, seed: int) -> float:
    """Silhouette of the nearest-centroid assignment on a seeded subsample; -1 for a single cluster."""
    assigned = _nearest(x, centroids)
    if len(np.unique(assigned)) < 2:
        return -1.0
    with threadpool_limits(limits=1):
        return float(silhouette_score(x, assigned, sample_size=min(SILHOUETTE_SAMPLE, len(x)), random_state=seed))


def _choose_k(candidates: dict[int, tuple[np.ndarray, float, float]], total: float) -> tuple[int, str]:
    """The largest k whose extra cluster still explains >= MIN_GAIN of the variance (inertia(k - 1) - inertia(k),
    inertia(1) = ``total``), among the k without a cluster under MIN_CLUSTER_SHARE; and why."""
    inertia = {1: total, **{k: c[2] for k, c in candidates.items()}}
    gain = {k: (inertia[k - 1] - inertia[k]) / total for k in candidates if k - 1 in inertia}
    eligible = [k for k, c in candidates.items() if c[1] >= MIN_CLUSTER_SHARE] or list(candidates)
    paying = [k for k in eligible if gain.get(k, 0.0) >= MIN_GAIN]
    best = max(paying) if paying else min(eligible)
    why = (
        f"k={best}: the largest k in {min(candidates)}..{max(candidates)} whose extra cluster explains >= "
        f"{MIN_GAIN:.0%} of the variance ({gain.get(best, 0.0):.1%}; {1 - inertia[best] / total:.0%} explained in all)"
        if paying
        else f"k={best}: no extra cluster explains {MIN_GAIN:.0%} of the variance"
    )
    excluded = sorted(set(candidates) - set(eligible))
    if excluded:
        why += f"; k={','.join(map(str, excluded))} left out: a cluster under {MIN_CLUSTER_SHARE:.0%} of buyers"
    return best, why


def _trait_words(z: np.ndarray, spec: tuple[tuple[str, bool], ...], median: dict[str, float]) -> list[str]:
    """What sets a cluster apart, most distinctive first: words for its centroid coordinates with |z| >= TRAIT_MIN_Z."""
    words: list[tuple[float, str]] = []
    for (name, _), value in zip(spec, z, strict=True):
        prefix, _, level = name.partition(":")
        sign = 1 if value > 0 else -1
        if abs(value) < TRAIT_MIN_Z:
            continue
        if prefix in LEVEL_FEATURES:
            word = (level if prefix == "category" else f"{level}-first") if sign > 0 else None
        else:
            word = TRAIT_WORDS.get((name, sign))
        if word == "new" and not median["days_since_first_order"] < NEW_DAYS:
            word = None
        if word is not None:
            words.append((-abs(value), word.replace(" ", "-")))
    return [w for _, w in sorted(words)]


def _noun(z: np.ndarray, spec: tuple[tuple[str, bool], ...], median: dict[str, float], traits: list[str]) -> str:
    """From the rhythm: 'one-timers' when the median member bought once, 'regulars' for many repeat purchase
    days; else from the lead trait: 'buyers' of a category, 'shoppers' of a channel, otherwise 'customers'."""
    if median["order_count"] <= 1:
        return "one-timers"
    if dict(zip((n for n, _ in spec), z, strict=True)).get("frequency", 0.0) >= TRAIT_MIN_Z:
        return "regulars"
    categories = {n.partition(":")[2] for n, _ in spec if n.startswith("category:")}
    if any(t in categories for t in traits[:NAME_TRAITS]):
        return "buyers"
    return "shoppers" if traits and traits[0].endswith("-first") else "customers"


def _compose(traits: list[str], noun: str, categories: set[str]) -> str:
    """Channel words first, then the other traits, the categories ('home and grocery') and the noun,
    e.g. 'app-first electronics buyers'."""
    channel = [w for w in traits if w.endswith("-first")]
    other = [w for w in traits if not w.endswith("-first") and w not in categories]
    category = " and ".join(w for w in traits if w in categories)
    return " ".join([*channel, *other, *([category] if category else []), noun] if traits else ["mainstream", noun])


def _fresh_names(
    z: np.ndarray,
    spec: tuple[tuple[str, bool], ...],
    medians: list[dict[str, float]],
    fresh: list[int],
    sizes: np.ndarray,
    taken: set[str],
) -> dict[int, str]:
    """Names for the clusters in ``fresh`` (largest first), unique and apart from ``taken``."""
    categories = {n.partition(":")[2] for n, _ in spec if n.startswith("category:")}
    names: dict[int, str] = {}
    used = set(taken)
    for c in sorted(fresh, key=lambda c: (-sizes[c], c)):
        traits = _trait_words(z[c], spec, medians[c])
        noun = _noun(z[c], spec, medians[c], traits)
        lengths = range(NAME_TRAITS, max(len(traits), NAME_TRAITS) + 1)
        options = [_compose(traits[:n], noun, categories) for n in lengths]
        name = next((o for o in options if o not in used), options[-1])
        rank = 2
        while name in used:
            name = f"{options[-1]} #{rank}"
            rank += 1
        names[c] = name
        used.add(name)
    return names


def _drop_shared_words(labels: list[str], fresh: list[int]) -> list[str]:
    """Fresh names without any word every name shares (it would distinguish no cluster)."""
    if len(labels) < 2:
        return labels
    shared = set.intersection(*(set(label.split()) for label in labels))
    out = list(labels)
    for c in fresh:
        trimmed = " ".join(w for w in labels[c].split() if w not in shared)
        if trimmed and trimmed not in out:
            out[c] = trimmed
    return out


def _inherited_labels(
    centroids_raw: np.ndarray, spec: tuple[tuple[str, bool], ...], previous: ClusterModel
) -> list[str | None]:
    """Hungarian matching to the previous centroids in the previous scaled space, on the features both models
    have; None = no close match (or the previous model lacks a base feature)."""
    labels: list[str | None] = [None] * len(centroids_raw)
    prev_index = {name: j for j, (name, _) in enumerate(previous.features)}
    if any(f not in previous.features for f in CLUSTER_FEATURES):
        return labels
    today = [j for j, (name, _) in enumerate(spec) if name in prev_index]
    before = [prev_index[spec[j][0]] for j in today]
    mapped = (centroids_raw[:, today] - np.asarray(previous.mean)[before]) / np.asarray(previous.scale)[before]
    prev = np.asarray(previous.centroids)[:, before]
    dist = np.sqrt(((mapped[:, None, :] - prev[None, :, :]) ** 2).sum(axis=2))
    for i, j in zip(*linear_sum_assignment(dist), strict=True):
        if dist[i, j] <= MATCH_MAX_DISTANCE:
            labels[i] = previous.labels[j]
    return labels


def _warm_start(previous: ClusterModel, spec: tuple[tuple[str, bool], ...], mean: np.ndarray, scale: np.ndarray):
    """The previous centroids in today's scaled space (a feature the previous model lacked: the population mean)."""
    prev_index = {name: j for j, (name, _) in enumerate(previous.features)}
    prev_raw = np.asarray(previous.centroids) * np.asarray(previous.scale) + np.asarray(previous.mean)
    init = np.zeros((previous.k, len(spec)))
    for j, (name, _) in enumerate(spec):
        if name in prev_index:
            init[:, j] = (prev_raw[:, prev_index[name]] - mean[j]) / scale[j]
    return init


def fit_clusters(
    features: pl.DataFrame,
    previous: ClusterModel | None = None,
    *,
    k_range: tuple[int, int] = K_RANGE,
    sample_size: int = 20_000,
    seed: int = 0,
) -> tuple[ClusterModel, dict]:
    """Fit the personas on customers with >= 1 completed order (see the module docstring).

    Returns the model and its metrics: k, silhouette, the silhouette per k tried, ``choice`` (why that k),
    the labels and each label's traits (feature: z against the population).
    """
    if not 2 <= k_range[0] <= k_range[1]:
        raise ValueError("need 2 <= k_range[0] <= k_range[1]")
    buyers = features.filter(pl.col("frequency").is_not_null())
    sample = shards.bottom_k(buyers, sample_size, f"cluster_sample:{seed}:")
    spec = feature_spec(sample)
    raw = _raw_matrix(sample, spec)
    if raw.size == 0:
        raise ValueError("no completed order: no customer to cluster")
    mean = raw.mean(axis=0)
    scale = np.where(raw.std(axis=0) > 1e-9, raw.std(axis=0), 1.0)
    x = (raw - mean) / scale
    warm = _warm_start(previous, spec, mean, scale) if previous is not None else None
    centroids, sil, choice, candidates, total = _centroids(x, len(np.unique(raw, axis=0)), k_range, warm, seed)
    final = _persona_names(sample, x, centroids, spec, previous, mean, scale)

    as_of = features["as_of"].max() if "as_of" in features.columns and features.height else None
    model = ClusterModel(
        features=spec,
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        centroids=tuple(tuple(float(v) for v in c) for c in centroids),
        labels=tuple(str(n) for n in final),
        silhouette=float(sil),
        trained_as_of=as_of,
    )
    traits = {
        label: {name: round(float(z), 2) for (name, _), z in zip(spec, centroid, strict=True) if abs(z) >= TRAIT_MIN_Z}
        for label, centroid in zip(final, centroids, strict=True)
    }
    metrics = {
        "k": model.k, "silhouette": model.silhouette, "choice": choice,
        "explained_by_k": {str(k): round(1 - v[2] / total, 4) if total else 0.0 for k, v in candidates.items()},
        "features": [name for name, _ in spec], "labels": list(model.labels), "traits": traits,
    }  # fmt: skip
    return model, metrics


def _centroids(
    x: np.ndarray, n_distinct: int, k_range: tuple[int, int], warm: np.ndarray | None, seed: int
) -> tuple[np.ndarray, float, str, dict, float]:
    """(centroids, silhouette, why that k, the fits per k, total inertia) on the standardised sample ``x``.

    ``warm``: the previous model's centroids in today's scale; its k is kept while its silhouette stays near.
    """
    k_min, k_max = k_range
    # silhouettes need 2 <= k < distinct customers: fewer distinct customers get fewer clusters, or one
    ks = range(max(2, min(k_min, n_distinct - 1)), min(k_max, n_distinct - 1) + 1)
    candidates = {k: _kmeans(x, k, seed) for k in ks}
    total = float((x**2).sum())  # the inertia of one cluster
    if candidates:
        best_k, choice = _choose_k(candidates, total)
    else:
        best_k, choice = 1, "one cluster: fewer than three distinct customers"
        candidates = {1: (x.mean(axis=0, keepdims=True), 1.0, total)}
    centroids = candidates[best_k][0]
    sil = _silhouette(x, centroids, seed)
    if warm is not None and len(warm) in candidates:
        warmed = _kmeans(x, len(warm), seed, init=warm)[0]
        warm_sil = _silhouette(x, warmed, seed)
        if warm_sil >= sil - SILHOUETTE_TOLERANCE:
            if len(warm) != best_k:
                choice += f"; kept the previous k={len(warm)} (silhouette {warm_sil:.3f}, near today's)"
            centroids, sil = warmed, warm_sil
    return centroids, sil, choice, candidates, total


def _persona_names(
    sample: pl.DataFrame,
    x: np.ndarray,
    centroids: np.ndarray,
    spec: tuple[tuple[str, bool], ...],
    previous: ClusterModel | None,
    mean: np.ndarray,
    scale: np.ndarray,
) -> list[str]:
    """One name per centroid: the previous version's where it still fits its members, else a fresh one."""
    assigned = _nearest(x, centroids)
    sizes = np.bincount(assigned, minlength=len(centroids))
    medians = _medians(sample, assigned, len(centroids))
    centroids_raw = centroids * scale + mean
    labels = _inherited_labels(centroids_raw, spec, previous) if previous is not None else [None] * len(centroids)
    labels = [
        None
        if label is None or ("new" in label.split() and medians[c]["days_since_first_order"] >= NEW_DAYS)
        else label
        for c, label in enumerate(labels)
    ]
    fresh = [c for c in range(len(centroids)) if labels[c] is None]
    named = _fresh_names(centroids, spec, medians, fresh, sizes, {n for n in labels if n is not None})
    return _drop_shared_words([labels[c] or named[c] for c in range(len(centroids))], fresh)


def _medians(sample: pl.DataFrame, assigned: np.ndarray, k: int) -> list[dict[str, float]]:
    """Per cluster: the median member's order_count and days_since_first_order (0 for an empty cluster)."""
    stats = (
        sample.select("order_count", "days_since_first_order")
        .with_columns(pl.Series("_c", assigned))
        .group_by("_c")
        .agg(pl.col("order_count", "days_since_first_order").median())
    )
    by_cluster = {row["_c"]: row for row in stats.iter_rows(named=True)}
    empty = {"order_count": 0.0, "days_since_first_order": 0.0}
    return [{k_: float(v) for k_, v in by_cluster.get(c, empty).items() if k_ != "_c"} for c in range(k)]


def label_keep_share(prev_labels: pl.DataFrame, new_labels: pl.DataFrame) -> float:
    """Share of customers in both frames (columns customer_id, cluster_label) whose label is unchanged.

    Customers who are prospects in both (a label starting with PROSPECT_PREFIX) are left out: their persona
    follows their profile, not the clusters. NaN when no customer is left.
    """
    old, new = pl.col("cluster_label"), pl.col("_new")
    share, n = (
        _by_id(prev_labels.select("customer_id", "cluster_label"))
        .lazy()
        .join(_by_id(new_labels.select("customer_id", old.alias("_new"))).lazy(), on="customer_id", how="inner")
        .filter(~(old.str.starts_with(PROSPECT_PREFIX) & new.str.starts_with(PROSPECT_PREFIX)))
        .select((old == new).mean(), pl.len())
        .collect()
        .row(0)
    )  # one plan: the joined rows are counted as they are matched, never gathered into a frame
    return float(share) if n else float("nan")


def _by_id(labels: pl.DataFrame) -> pl.DataFrame:
    """`labels` with customer_id flagged sorted when it is (versions are stored so): a join of two such frames
    merges them instead of hashing a million strings (10x faster)."""
    ids = labels.get_column("customer_id")
    return labels.with_columns(ids.set_sorted()) if ids.is_sorted() else labels
