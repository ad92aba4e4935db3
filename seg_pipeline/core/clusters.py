"""Behavioural k-means clusters with stable, human-readable labels.

Customers with >= 1 completed order are described by log1p(order_count), log1p(avg_order_value),
log1p(days_since_last_order), log1p(days_since_first_order) and spend_trend_90d, standardised on a seeded,
day-to-day stable sample (the ``sample_size`` customers with the smallest seeded polars hash of their id;
the hash is stable for a given polars version). k in ``k_range`` is chosen by silhouette (on a 4,000-row
subsample) of seeded k-means fits on that sample; all customers are then assigned to the nearest centroid.
A tiny customer base with at most k_min distinct customers gets fewer clusters (k < distinct customers),
and one cluster (silhouette -1) below three distinct customers: a version never fails for lack of clusters.

Names come from each cluster's medians relative to the population (sample quantiles):
``[new | active | lapsed] [one-time | repeat | frequent] [bargain buyers | mid spenders | high spenders]``,
e.g. 'lapsed one-time bargain buyers'. new: days_since_first_order <= q25; else lapsed: days_since_last_order
>= q67, active: <= q33. one-time: order_count <= 1; frequent: >= max(q75, 3). Spend: avg_order_value tertiles.
Duplicates are told apart by their spend trend ('(growing)', '(declining)', '(steady)', threshold 0.2) and
then by a size rank (' #2'), larger clusters first.

Stability: given the previous model, a k-means warm-started from the previous centroids (mapped into
today's scaled space) is kept unless another k beats its silhouette by more than 0.03. Today's centroids are
then matched to the previous ones with the Hungarian algorithm in the previous model's scaled space; a pair
closer than 1.0 (standard-deviation units) inherits the previous label, any other cluster gets a fresh name.
Models are saved as canonical JSON, which is also what ``content_hash`` hashes.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

PROSPECTS_LABEL = "prospects"
# (feature column, log1p-transformed)
CLUSTER_FEATURES: tuple[tuple[str, bool], ...] = (
    ("order_count", True),
    ("avg_order_value", True),
    ("days_since_last_order", True),
    ("days_since_first_order", True),
    ("spend_trend_90d", False),
)
K_RANGE = (3, 8)  # the clusters asked for; a tiny customer base gets fewer
SILHOUETTE_SAMPLE = 4_000
SILHOUETTE_TOLERANCE = 0.03
MATCH_MAX_DISTANCE = 1.0
TREND_THRESHOLD = 0.2
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
        """Standardised feature matrix (rows as given; nulls count as 0 before the transform)."""
        return (_raw_matrix(features, self.features) - np.asarray(self.mean)) / np.asarray(self.scale)

    def predict_index(self, features: pl.DataFrame) -> np.ndarray:
        """Nearest-centroid index per row (rows must be buyers)."""
        return _nearest(self.transform(features), np.asarray(self.centroids))

    def predict_labels(self, features: pl.DataFrame) -> pl.Series:
        """``cluster_label`` per row; 'prospects' for customers without a completed order."""
        index = np.full(features.height, self.k)  # k: the prospects label, after the clusters' own
        buyers = features["frequency"].is_not_null().to_numpy()
        if buyers.any():
            index[buyers] = self.predict_index(features.filter(pl.Series(buyers)))
        return pl.Series("cluster_label", [*self.labels, PROSPECTS_LABEL], dtype=pl.Utf8).gather(index)

    def to_json(self) -> str:
        """Canonical JSON (the save format and the hash input)."""
        d = asdict(self)
        d["trained_as_of"] = None if self.trained_as_of is None else self.trained_as_of.isoformat()
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "ClusterModel":
        """Inverse of ``to_json``."""
        d = json.loads(text)
        return cls(
            features=tuple((str(n), bool(log)) for n, log in d["features"]),
            mean=tuple(d["mean"]),
            scale=tuple(d["scale"]),
            centroids=tuple(tuple(c) for c in d["centroids"]),
            labels=tuple(d["labels"]),
            silhouette=d["silhouette"],
            trained_as_of=None if d["trained_as_of"] is None else date.fromisoformat(d["trained_as_of"]),
        )

    def content_hash(self) -> str:
        """sha256 of the canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def save(self, directory: str | Path) -> Path:
        """Write ``cluster_model-<hash16>.json`` into ``directory``; returns the path."""
        path = Path(directory) / f"cluster_model-{self.content_hash()[:16]}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ClusterModel":
        """Load a model written by ``save``."""
        return cls.from_json(Path(path).read_text())


def _raw_matrix(features: pl.DataFrame, spec: tuple[tuple[str, bool], ...]) -> np.ndarray:
    cols = []
    for name, log in spec:
        col = pl.col(name).cast(pl.Float64).fill_null(0.0)
        cols.append((col.clip(lower_bound=0.0).log1p() if log else col).alias(name))
    return features.select(cols).to_numpy()


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    d = (centroids**2).sum(axis=1)[None, :] - 2.0 * x @ centroids.T
    return np.argmin(d, axis=1)


def _kmeans(x: np.ndarray, k: int, seed: int, init: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """(centroids, silhouette on a seeded subsample); single-threaded: small problems, no oversubscription."""
    with threadpool_limits(limits=1):
        km = KMeans(
            n_clusters=k, init="k-means++" if init is None else init, n_init=_N_INIT if init is None else 1,
            random_state=seed,
        ).fit(x)
        if len(np.unique(km.labels_)) < 2:
            return km.cluster_centers_, -1.0
        sil = silhouette_score(x, km.labels_, sample_size=min(SILHOUETTE_SAMPLE, len(x)), random_state=seed)
    return km.cluster_centers_, float(sil)


def _name_parts(stats: dict[str, float], pop: dict[str, np.ndarray]) -> tuple[str, str]:
    """(base name, trend qualifier) from a cluster's medians and population quantiles (q25, q33, q67, q75)."""
    if stats["days_since_first_order"] <= pop["days_since_first_order"][0]:
        status = "new "
    elif stats["days_since_last_order"] >= pop["days_since_last_order"][2]:
        status = "lapsed "
    elif stats["days_since_last_order"] <= pop["days_since_last_order"][1]:
        status = "active "
    else:
        status = ""
    if stats["order_count"] <= 1:
        frequency = "one-time"
    elif stats["order_count"] >= max(pop["order_count"][3], 3.0):
        frequency = "frequent"
    else:
        frequency = "repeat"
    aov = stats["avg_order_value"]
    spend = (
        "high spenders"
        if aov >= pop["avg_order_value"][2]
        else "bargain buyers" if aov <= pop["avg_order_value"][1] else "mid spenders"
    )
    trend = stats["spend_trend_90d"]
    qualifier = "growing" if trend > TREND_THRESHOLD else "declining" if trend < -TREND_THRESHOLD else "steady"
    return f"{status}{frequency} {spend}", qualifier


def _unique_names(parts: list[tuple[str, str]], sizes: np.ndarray, taken: set[str]) -> list[str]:
    """Base names, '(qualifier)' when a base repeats, then ' #n' by size rank; avoids ``taken``."""
    order = sorted(range(len(parts)), key=lambda i: (-sizes[i], i))
    base_count: dict[str, int] = {}
    for base, _ in parts:
        base_count[base] = base_count.get(base, 0) + 1
    names: list[str] = [""] * len(parts)
    used = set(taken)
    for i in order:
        base, qualifier = parts[i]
        name = base if base_count[base] == 1 and base not in used else f"{base} ({qualifier})"
        rank = 2
        candidate = name
        while candidate in used:
            candidate = f"{name} #{rank}"
            rank += 1
        names[i] = candidate
        used.add(candidate)
    return names


def _inherited_labels(centroids_raw: np.ndarray, previous: ClusterModel) -> list[str | None]:
    """Hungarian matching to the previous centroids in the previous scaled space; None = no close match."""
    labels: list[str | None] = [None] * len(centroids_raw)
    if previous.features != CLUSTER_FEATURES:
        return labels
    mapped = (centroids_raw - np.asarray(previous.mean)) / np.asarray(previous.scale)
    prev = np.asarray(previous.centroids)
    dist = np.sqrt(((mapped[:, None, :] - prev[None, :, :]) ** 2).sum(axis=2))
    for i, j in zip(*linear_sum_assignment(dist), strict=True):
        if dist[i, j] <= MATCH_MAX_DISTANCE:
            labels[i] = previous.labels[j]
    return labels


def _name_parts_per_cluster(raw: np.ndarray, assigned: np.ndarray, centroids_raw: np.ndarray) -> list[tuple[str, str]]:
    """Name parts from each cluster's medians vs population quantiles, both in original units."""

    def units(values: np.ndarray, j: int) -> np.ndarray:
        return np.expm1(values) if CLUSTER_FEATURES[j][1] else values

    pop = {n: units(np.quantile(raw[:, j], [0.25, 1 / 3, 2 / 3, 0.75]), j) for j, (n, _) in enumerate(CLUSTER_FEATURES)}
    parts = []
    for c, centroid in enumerate(centroids_raw):
        members = raw[assigned == c]
        med = np.median(members, axis=0) if len(members) else centroid
        parts.append(_name_parts({n: float(units(med[j], j)) for j, (n, _) in enumerate(CLUSTER_FEATURES)}, pop))
    return parts


def fit_clusters(
    features: pl.DataFrame,
    previous: ClusterModel | None = None,
    *,
    k_range: tuple[int, int] = K_RANGE,
    sample_size: int = 20_000,
    seed: int = 0,
) -> ClusterModel:
    """Fit the behavioural clusters on customers with >= 1 completed order (see the module docstring)."""
    k_min, k_max = k_range
    if not 2 <= k_min <= k_max:
        raise ValueError("need 2 <= k_range[0] <= k_range[1]")
    buyers = features.filter(pl.col("frequency").is_not_null())
    sample = (
        buyers.with_columns(pl.col("customer_id").hash(seed).alias("_h"))
        .sort("_h", "customer_id")
        .head(sample_size)
        .drop("_h")
    )
    raw = _raw_matrix(sample, CLUSTER_FEATURES)
    if raw.size == 0:
        raise ValueError("no completed order: no customer to cluster")
    n_distinct = len(np.unique(raw, axis=0))
    mean = raw.mean(axis=0)
    scale = np.where(raw.std(axis=0) > 1e-9, raw.std(axis=0), 1.0)
    x = (raw - mean) / scale

    # silhouettes need 2 <= k < distinct customers: fewer distinct customers get fewer clusters, or one
    ks = range(max(2, min(k_min, n_distinct - 1)), min(k_max, n_distinct - 1) + 1)
    candidates = {k: _kmeans(x, k, seed) for k in ks} or {1: (x.mean(axis=0, keepdims=True), -1.0)}
    best_k = max(candidates, key=lambda k: (candidates[k][1], -k))
    centroids, sil = candidates[best_k]
    if previous is not None and previous.features == CLUSTER_FEATURES and previous.k in candidates:
        prev_raw = np.asarray(previous.centroids) * np.asarray(previous.scale) + np.asarray(previous.mean)
        warm, warm_sil = _kmeans(x, previous.k, seed, init=(prev_raw - mean) / scale)
        if warm_sil >= sil - SILHOUETTE_TOLERANCE:
            centroids, sil = warm, warm_sil

    assigned = _nearest(x, centroids)
    sizes = np.bincount(assigned, minlength=len(centroids))
    centroids_raw = centroids * scale + mean
    labels = _inherited_labels(centroids_raw, previous) if previous is not None else [None] * len(centroids)
    fresh = [c for c in range(len(centroids)) if labels[c] is None]
    parts = _name_parts_per_cluster(raw, assigned, centroids_raw)
    taken = {n for n in labels if n is not None}
    for c, name in zip(fresh, _unique_names([parts[c] for c in fresh], sizes[fresh], taken), strict=True):
        labels[c] = name

    as_of = features["as_of"].max() if "as_of" in features.columns and features.height else None
    return ClusterModel(
        features=CLUSTER_FEATURES,
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        centroids=tuple(tuple(float(v) for v in c) for c in centroids),
        labels=tuple(str(n) for n in labels),
        silhouette=float(sil),
        trained_as_of=as_of,
    )


def label_keep_share(prev_labels: pl.DataFrame, new_labels: pl.DataFrame) -> float:
    """Share of customers in both frames (columns customer_id, cluster_label) whose label is unchanged.

    Customers who are prospects in both are left out (trivially stable); NaN when no customer is left.
    """
    both = prev_labels.select("customer_id", "cluster_label").join(
        new_labels.select("customer_id", pl.col("cluster_label").alias("_new")), on="customer_id", how="inner"
    )
    both = both.filter(~((pl.col("cluster_label") == PROSPECTS_LABEL) & (pl.col("_new") == PROSPECTS_LABEL)))
    if both.height == 0:
        return float("nan")
    return float((both["cluster_label"] == both["_new"]).mean())
