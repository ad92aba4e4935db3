"""Plain-language reasons for a customer's churn risk, from the churn model's own per-feature contributions.

``ChurnModel.contributions`` splits each buyer's logit exactly into a base (the same for everyone: the mean
buyer of a reference) plus one contribution per feature. Features that say the same thing to a person are
summed into one reason (days silent, BG/NBD's P(alive) and P(no purchase) and recency are all "no order for
N days"). For a customer whose logit is above the base, the up to three reasons that raise it most (by more
than ``MIN_CONTRIBUTION``) are phrased from the customer's own values and joined with "; ", strongest first;
below the base, the reasons that lower it most. A buyer with churn_risk >= 0.5 left without a reason gets
``TYPICAL_RISK`` (the risk is about the base's own). The reference (``core.churn.ContributionReference``) is a
version's seeded sample of buyers (``core.segments``), so that no reason depends on the shard explaining it.

While a churn fallback scores (``bgnbd`` / ``prior``), the reasons are its inputs: the days since the last
order and, for one-time buyers, the single purchase day. Prospects get null.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl

from seg_pipeline.core.bgnbd import _dense_unique_rows
from seg_pipeline.core.churn import ChurnModel, ContributionReference

MAX_REASONS = 3
MAX_DRIVERS = 10
MIN_CONTRIBUTION = 0.05  # on the logit scale (about 1 percentage point of risk near 0.5): smaller is no reason
FALLBACK_REASONS = ["silence", "purchases"]  # while a fallback scores: its inputs
TYPICAL_RISK = "risk at the level of the typical buyer: no single factor stands out"


def _int(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Float64).round(0).cast(pl.Int64)


def _orders_of_status(rate: str) -> pl.Expr:
    """'k of n orders' for the status whose share of all orders is ``rate`` (all = completed / completed share)."""
    all_orders = (pl.col("order_count") / (1.0 - pl.col("cancel_rate") - pl.col("return_rate"))).round(0)
    return pl.format("{} of {} orders", (pl.col(rate) * all_orders).round(0).cast(pl.Int64), all_orders.cast(pl.Int64))


def _spend_change() -> pl.Expr:
    now, before = pl.col("spend_90d"), pl.col("spend_prev_90d")
    change = ((now / before - 1.0).abs() * 100).round(0).cast(pl.Int64)
    return (
        pl.when((now == 0) & (before == 0)).then(pl.lit("no spend in the last 180 days"))
        .when(before == 0).then(pl.lit("spend only in the last 90 days, none in the 90 before"))
        .when(now < before).then(pl.format("spend down {}% against the previous 90 days", change))
        .otherwise(pl.format("spend up {}% against the previous 90 days", change))
    )  # fmt: skip


def _categories() -> pl.Expr:
    """'bought from N categories', with the main category's share of spend when known."""
    counted = (
        pl.when(pl.col("distinct_categories") == 1).then(pl.lit("bought from 1 category"))
        .otherwise(pl.format("bought from {} categories", "distinct_categories"))
    )  # fmt: skip
    share = (pl.col("main_category_share") * 100).round(0).cast(pl.Int64)
    return (
        pl.when(pl.col("main_category").is_null() | pl.col("main_category_share").is_null()).then(counted)
        .otherwise(pl.format("{}, {}% of spend in {}", counted, share, "main_category"))
    )  # fmt: skip


#: reason -> (features it sums, its phrase from the customer's values)
REASONS: dict[str, tuple[tuple[str, ...], Callable[[], pl.Expr]]] = {
    "silence": (
        ("days_since_last_order", "recency", "bgnbd_p_alive", "bgnbd_p_no_purchase"),
        lambda: pl.when(pl.col("days_since_last_order") == 0).then(pl.lit("ordered on the as-of day"))
        .otherwise(pl.format("no order for {} days", _int("days_since_last_order"))),
    ),
    "purchases": (
        ("frequency", "order_count", "active_months", "orders_180d", "orders_365d"),
        lambda: pl.when(pl.col("frequency") == 0).then(pl.lit("only one purchase day so far"))
        .otherwise(pl.format("{} purchase days so far", _int("frequency") + 1)),
    ),  # fmt: skip
    "recent_orders": (
        ("orders_30d", "orders_90d"),
        lambda: pl.format("{} orders in the last 90 days", _int("orders_90d")),
    ),
    "tenure": (("T", "days_since_first_order"), lambda: pl.format("first order {} days ago", _int("T"))),
    "spend_trend": (("spend_trend_90d", "spend_90d", "spend_prev_90d", "spend_30d", "spend_180d"), _spend_change),
    "spend_level": (
        ("monetary_value", "total_spend", "avg_order_value", "spend_365d"),
        lambda: pl.format("average order value {}", _int("avg_order_value")),
    ),
    "returns": (("return_rate",), lambda: pl.format("returned {}", _orders_of_status("return_rate"))),
    "cancellations": (("cancel_rate",), lambda: pl.format("cancelled {}", _orders_of_status("cancel_rate"))),
    "rhythm": (
        ("mean_days_between_purchases", "std_days_between_purchases"),
        lambda: pl.when(pl.col("mean_days_between_purchases").is_null()).then(pl.lit("no repeat purchase yet"))
        .otherwise(pl.format("orders every {} days on average", _int("mean_days_between_purchases"))),
    ),  # fmt: skip
    "channel": (
        ("main_channel", "main_channel_share"),
        lambda: pl.format("buys mostly via {}", pl.col("main_channel").fill_null("no single channel")),
    ),
    "categories": (("distinct_categories", "main_category_share"), _categories),
    "basket": (
        ("items_per_order",),
        lambda: pl.when(pl.col("items_per_order").is_null()).then(pl.lit("items per order unknown"))
        .otherwise(pl.format("{} items per order on average", pl.col("items_per_order").round(1))),
    ),  # fmt: skip
    "membership": (
        ("is_member",),
        lambda: pl.when(pl.col("is_member")).then(pl.lit("loyalty member"))
        .when(~pl.col("is_member")).then(pl.lit("not a loyalty member")).otherwise(pl.lit("membership unknown")),
    ),  # fmt: skip
    "profile": (
        ("has_profile", "days_since_signup"),
        lambda: pl.when(~pl.col("has_profile")).then(pl.lit("no customer profile"))
        .otherwise(pl.format("signed up {} days ago", _int("days_since_signup").cast(pl.String).fill_null("?"))),
    ),  # fmt: skip
    **{
        c: ((c,), lambda c=c: pl.format("{} {}", pl.lit(c.replace("_", " ")), pl.col(c).fill_null("unknown")))
        for c in ("age_band", "gender", "region", "customer_type")
    },
}
_OF_FEATURE = {feature: reason for reason, (features, _) in REASONS.items() for feature in features}


def _phrase(name: str) -> pl.Expr:
    """The reason's phrase; a feature of no listed reason reads 'name value'."""
    return REASONS[name][1]() if name in REASONS else pl.format("{} {}", pl.lit(name.replace("_", " ")), pl.col(name))


def reason_of(feature: str) -> str:
    """The reason a feature's contribution counts toward (a feature of no listed reason is its own)."""
    return _OF_FEATURE.get(feature, feature)


def _phrased(frame: pl.DataFrame, reason_codes: np.ndarray, names: list[str], risk: np.ndarray) -> pl.Series:
    """'; '-joined phrases of each row's reason codes (columns of ``reason_codes``, -1 = none); a row naming none
    reads ``TYPICAL_RISK`` when its risk is >= 0.5, else null.

    Each reason is phrased once per distinct value of the columns it reads among the rows that name it (a few
    hundred phrases for up to a million rows, ``_groups``), found by one stable sort of the codes; every slot then
    gathers its phrases from that small table, and the slots are joined in one ``concat_str``.
    """
    height = reason_codes.shape[0]
    codes = reason_codes if reason_codes.shape[1] else np.full((height, 1), -1, dtype=np.int16)
    width = codes.shape[1]
    flat = codes.ravel()
    order = np.argsort(flat, kind="stable")  # each code's slots together (a radix sort), rows ascending
    bounds = np.concatenate([[0], np.cumsum(np.bincount(flat + 1, minlength=len(names) + 1))])
    index = np.zeros(flat.size, dtype=np.int64)  # each slot's phrase in the table: 0 none, 1 TYPICAL_RISK
    pieces, offset = [pl.Series("p", [None, TYPICAL_RISK], dtype=pl.String)], 2
    for code in np.flatnonzero(np.diff(bounds)[1:]):
        slots = order[bounds[code + 1] : bounds[code + 2]]
        phrase = _phrase(names[code])
        columns = list(dict.fromkeys(phrase.meta.root_names()))  # gather only what the phrase reads
        group, distinct = _groups(frame.select(columns)[slots // width])
        index[slots] = offset + group
        pieces.append(distinct.select(phrase.cast(pl.String).alias("p")).to_series())
        offset += distinct.height
    index = index.reshape(height, width)
    named = (codes >= 0).any(axis=1)
    typical = ~named & (risk >= 0.5)
    index[typical, 0] = 1
    table = pl.concat(pieces).rechunk()
    joined = pl.concat_str([table.gather(index[:, k]).alias(f"s{k}") for k in range(width)], separator="; ",
                           ignore_nulls=True)  # fmt: skip
    return pl.select(pl.when(pl.Series(named | typical)).then(joined).alias("churn_reasons")).to_series()


def _groups(values: pl.DataFrame) -> tuple[np.ndarray, pl.DataFrame]:
    """(each row's group, the groups' distinct rows): counted on a dense key when every column holds small whole
    numbers and no null (days, counts: ``bgnbd._dense_unique_rows``), else by a ``group_by``."""
    dense = None
    if all(dtype.is_numeric() for dtype in values.dtypes) and not any(values.null_count().row(0)):
        dense = _dense_unique_rows(tuple(values[c].cast(pl.Float64).to_numpy() for c in values.columns))
    if dense is not None:
        distinct, group, _ = dense
        return group, pl.DataFrame([pl.Series(c, v).cast(values.schema[c]) for c, v in zip(values.columns, distinct,
                                                                                             strict=True)])  # fmt: skip
    groups = values.with_row_index("_r").group_by(values.columns).agg("_r")
    group = np.empty(values.height, dtype=np.int64)
    group[groups["_r"].explode().to_numpy()] = np.repeat(np.arange(groups.height), groups["_r"].list.len().to_numpy())
    return group, groups.drop("_r")


def _top_codes(summed: np.ndarray) -> np.ndarray:
    """Per row, the up to ``MAX_REASONS`` reason columns that move the logit most the way it leaves the base
    (up for a risk above it, down below it), by more than ``MIN_CONTRIBUTION``, strongest first (ties: the
    first column); -1 = none. Only the columns that move some row by more than that are searched."""
    height, width = summed.shape
    movers = np.flatnonzero((summed.max(axis=0, initial=0.0) > MIN_CONTRIBUTION)
                            | (summed.min(axis=0, initial=0.0) < -MIN_CONTRIBUTION))  # fmt: skip
    toward = np.empty((height, movers.size))  # row-major: the row-wise passes below read rows
    np.multiply(summed[:, movers], np.where(summed.sum(axis=1, keepdims=True) >= 0, 1.0, -1.0), out=toward)
    flat, row_start = toward.ravel(), np.arange(height) * movers.size
    codes = np.full((height, min(MAX_REASONS, width)), -1, dtype=np.int16)
    for k in range(min(codes.shape[1], movers.size)):
        best = toward.argmax(axis=1)
        at = row_start + best
        codes[:, k] = np.where(flat[at] > MIN_CONTRIBUTION, movers[best], -1)
        flat[at] = -np.inf
    return codes


@dataclass(frozen=True)
class Moved:
    """How much each reason moved the logit over some buyers: the sum of its absolute contributions over `rows`
    buyers (None while a fallback scores: it has no contributions). Shards' merge by adding (``merge_moved``)."""

    names: tuple[str, ...]
    abs_sums: tuple[float, ...] | None
    rows: int


def merge_moved(parts: Iterable[Moved]) -> Moved:
    """The ``Moved`` of the union of the buyers of `parts` (every part of the same scorer)."""
    parts = list(parts)
    sums = None if parts[0].abs_sums is None else tuple(np.sum([p.abs_sums for p in parts], axis=0).tolist())
    return Moved(parts[0].names, sums, sum(p.rows for p in parts))


def churn_drivers(moved: Moved) -> list[dict]:
    """The churn drivers (segment_versions.metrics): the ``MAX_DRIVERS`` reasons of largest mean absolute
    contribution over the buyers (> 0), largest first; a fallback's are its inputs, without a mean."""
    if moved.abs_sums is None:
        return [{"reason": name, "mean_abs_logit": None} for name in moved.names]
    means = [s / max(moved.rows, 1) for s in moved.abs_sums]
    drivers = ({"reason": n, "mean_abs_logit": m} for n, m in zip(moved.names, means, strict=True) if m > 0)
    return sorted(drivers, key=lambda d: -d["mean_abs_logit"])[:MAX_DRIVERS]


def model_reasons(contributions: tuple[float, tuple[str, ...], np.ndarray]) -> tuple[np.ndarray, list[str], Moved]:
    """(reason codes of the rows (``_top_codes``), reason names, how much each moved the rows) from a model's
    contributions (``ChurnModel.contributions(rows, reason_of)``, module docstring)."""
    _, names, summed = contributions
    moved = Moved(tuple(names), tuple(float(np.abs(summed[:, k]).sum()) for k in range(len(names))), summed.shape[0])
    return _top_codes(summed), list(names), moved


def fallback_codes(frequency: np.ndarray, days_since_last_order: np.ndarray) -> np.ndarray:
    """Reason codes (of ``FALLBACK_REASONS``) while a fallback scores: days silent (when > 0), and the single
    purchase day of one-time buyers."""
    return np.column_stack([np.where(days_since_last_order > 0, 0, -1), np.where(frequency == 0, 1, -1)])


def churn_reasons(
    model: object, features: pl.DataFrame, risk: np.ndarray,
    contributions: tuple[float, tuple[str, ...], np.ndarray] | None = None,
    reference: ContributionReference | None = None,
) -> tuple[pl.Series, Moved]:  # fmt: skip
    """(``churn_reasons`` in ``features`` row order, null for prospects; how much each reason moved the buyers'
    risk, for ``churn_drivers``) for ``risk`` aligned with ``features`` (NaN for prospects). ``model`` is the churn
    scorer in force: a ``ChurnModel`` or a ``core.churn_fallback.ChurnFallback``, whose reasons are its inputs.
    ``contributions``: a ``ChurnModel``'s contributions of the buyers' rows (``risk_and_explainer``) when at hand,
    else worked out against ``reference`` (by default the buyers themselves).
    The reasons are phrased on the rows of ``features`` themselves (prospects name none).
    """
    buyers = features["frequency"].is_not_null().to_numpy()
    if isinstance(model, ChurnModel):
        if contributions is None:
            rows = features.filter(pl.col("frequency").is_not_null())
            contributions = model.contributions(rows, reason_of, reference=reference)
        codes, names, moved = model_reasons(contributions)
    else:
        b = features.select("frequency", "days_since_last_order").filter(pl.Series(buyers))
        codes = fallback_codes(b["frequency"].to_numpy(), b["days_since_last_order"].to_numpy())
        names = FALLBACK_REASONS
        moved = Moved(tuple(names), None, b.height)
    every = np.full((features.height, codes.shape[1]), -1, dtype=np.int16)
    every[buyers] = codes
    read = set().union(*(_phrase(name).meta.root_names() for name in names))
    phrased_from = features.select(c for c in features.columns if c in read)
    return _phrased(phrased_from, every, names, np.asarray(risk, dtype=np.float64)), moved
