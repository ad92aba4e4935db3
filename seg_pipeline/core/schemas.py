"""The schema registry: every table's columns, dtypes and one-line docs, declared once.

Pure (no Dagster, no DuckDB): `core/` uses it as it is, the landing reader takes its column lists
from it, and the store types its Delta tables and migrates older stores by it (`seg_pipeline.storage.store`).
A `Table` is one of three kinds: `landing` (the files of CONTRACT §1, read as text), `part` (a day-keyed
Delta table of the working store that steps read back in bulk, `day` naming the key) or `table` (a small
Delta table of the working store; replaced by `day` too where it has one, as the quarantine tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

from seg_pipeline.core import actions

Kind = Literal["orders", "profiles"]
Storage = Literal["landing", "part", "table"]

_TEXT, _COUNT, _FLOAT = pl.String(), pl.Int64(), pl.Float64()


@dataclass(frozen=True)
class Column:
    """One column: its name, Polars dtype and meaning.

    `sql`: the DuckDB type SQL over the store sees where it is not the dtype's own (e.g. `json`); `required`: a
    landing column a file must have.
    """

    name: str
    dtype: pl.DataType
    doc: str
    sql: str | None = None
    required: bool = False


@dataclass(frozen=True)
class Table:
    """A table's columns in order, how it is stored and, for tables replaced by day, its day column."""

    name: str
    doc: str
    storage: Storage
    columns: tuple[Column, ...]
    day: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def polars(self) -> dict[str, pl.DataType]:
        """name -> Polars dtype, in column order."""
        return {c.name: c.dtype for c in self.columns}

    @property
    def docs(self) -> dict[str, str]:
        """name -> one-line doc, in column order."""
        return {c.name: c.doc for c in self.columns}

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.polars)


def _c(name: str, dtype: pl.DataType, doc: str, **options: object) -> Column:
    return Column(name, dtype, doc, **options)  # type: ignore[arg-type]


# --- landing files (CONTRACT §1): every value arrives as text ----------------------------------------------------
LANDING_ORDERS = Table("landing_orders", "orders/YYYY-MM-DD*: the orders placed on that UTC day", "landing", (
    _c("order_id", _TEXT, "order identifier, unique across all days", required=True),
    _c("customer_id", _TEXT, "customer identifier (opaque)", required=True),
    _c("order_ts", _TEXT, "ISO 8601 timestamp of the order; naive timestamps are UTC", required=True),
    _c("amount", _TEXT, "order total >= 0 in `currency`", required=True),
    _c("currency", _TEXT, "ISO 4217 code; default SEG_CURRENCY"),
    _c("status", _TEXT, "completed / cancelled / returned; default completed"),
    _c("channel", _TEXT, "sales channel, e.g. web, app, store"),
    _c("category", _TEXT, "main product category"),
    _c("quantity", _TEXT, "items in the order, integer >= 1"),
))  # fmt: skip
LANDING_PROFILES = Table("landing_profiles", "profiles/YYYY-MM-DD*: the full profile snapshot of that day", "landing", (
    _c("customer_id", _TEXT, "customer identifier, unique within a snapshot", required=True),
    _c("signup_date", _TEXT, "ISO 8601 date the customer signed up"),
    _c("birth_year", _TEXT, "year of birth"),
    _c("gender", _TEXT, "gender as given"),
    _c("region", _TEXT, "region as given"),
    _c("customer_type", _TEXT, "individual / business / government"),
    _c("is_member", _TEXT, "loyalty programme member: true/false, 1/0, yes/no"),
    _c("name", _TEXT, "personal data: never copied into the analyst file"),
    _c("email", _TEXT, "personal data: never copied into the analyst file"),
    _c("phone", _TEXT, "personal data: never copied into the analyst file"),
))  # fmt: skip
LANDING: dict[Kind, Table] = {"orders": LANDING_ORDERS, "profiles": LANDING_PROFILES}
#: the column holding the day a landed file is for
DAY_COLUMN: dict[Kind, str] = {"orders": "order_day", "profiles": "snapshot_date"}
#: personal data: kept in the working store for matching, never shown in previews or the analyst file
PERSONAL_COLUMNS = ("name", "email", "phone")

_DAY_DOCS: dict[Kind, str] = {
    "orders": "the UTC day of the landed file the row came from",
    "profiles": "the day of the profile snapshot the row came from",
}


def _provenance(kind: Kind) -> tuple[Column, ...]:
    return (
        _c(DAY_COLUMN[kind], pl.Date(), _DAY_DOCS[kind]),
        _c("source_file", _TEXT, "landed file the row came from (<kind>/<file name>)"),
        _c("source_row", _COUNT, "1-based data row of the row in its file"),
    )


def _landed_text(kind: Kind) -> tuple[Column, ...]:
    """The landing columns as stored raw: text as it arrived, then the unknown ones packed into `extra`."""
    extra = _c("extra", _TEXT, "the landed columns the contract does not name, as one JSON object")
    return (*LANDING[kind].columns, extra)


def _raw(kind: Kind) -> Table:
    return Table(f"raw_{kind}", f"{kind} as landed, all text, every row", "part", (
        *_provenance(kind),
        *_landed_text(kind),
        _c("file_fingerprint", _TEXT, "content fingerprint of the source file when it was ingested"),
        _c("ingested_at", pl.Datetime("us"), "when the row was ingested (UTC)"),
        _c("run_id", _TEXT, "the Dagster run that ingested it"),
    ), day=DAY_COLUMN[kind])  # fmt: skip


def _quarantine(kind: Kind) -> Table:
    return Table(f"quarantine_{kind}", f"rejected raw {kind}: the raw values and why", "table", (
        *_provenance(kind),
        *_landed_text(kind),
        _c("reason", _TEXT, "every rule the row broke, '; '-separated, landed values scrubbed of personal data"),
        _c("as_of", pl.Date(), "the landed day whose ingestion rejected the row"),
        _c("run_id", _TEXT, "the Dagster run that rejected it"),
        _c("quarantined_at", pl.Datetime("us"), "when it was rejected (UTC)"),
    ), day=DAY_COLUMN[kind])  # fmt: skip


RAW_ORDERS, RAW_PROFILES = _raw("orders"), _raw("profiles")
QUARANTINE_ORDERS, QUARANTINE_PROFILES = _quarantine("orders"), _quarantine("profiles")

ORDERS = Table("orders", "validated, typed orders", "part", (
    _c("order_id", _TEXT, "order identifier, trimmed"),
    _c("customer_id", _TEXT, "customer identifier, trimmed"),
    _c("order_ts", pl.Datetime("us"), "order timestamp in UTC"),
    _c("order_day", pl.Date(), "the UTC day of the landed file"),
    _c("amount", _FLOAT, "order total in `currency`"),
    _c("currency", _TEXT, "ISO 4217 code, upper case"),
    _c("status", _TEXT, "completed / cancelled / returned"),
    _c("channel", _TEXT, "sales channel, scrubbed of personal data"),
    _c("category", _TEXT, "product category, scrubbed of personal data"),
    _c("quantity", pl.Int32(), "items in the order"),
    *_provenance("orders")[1:],
), day="order_day")  # fmt: skip

PROFILES = Table("profiles", "validated, typed profile snapshots", "part", (
    _c("snapshot_date", pl.Date(), _DAY_DOCS["profiles"]),
    _c("customer_id", _TEXT, "customer identifier, trimmed"),
    _c("signup_date", pl.Date(), "date the customer signed up"),
    _c("birth_year", pl.Int32(), "year of birth"),
    _c("gender", _TEXT, "gender, scrubbed of personal data"),
    _c("region", _TEXT, "region, scrubbed of personal data"),
    _c("customer_type", _TEXT, "individual / business / government"),
    _c("is_member", pl.Boolean(), "loyalty programme member"),
    *(c for c in LANDING_PROFILES.columns if c.name in PERSONAL_COLUMNS),
    *_provenance("profiles")[1:],
), day="snapshot_date")  # fmt: skip

#: kind -> its (raw, accepted, quarantine) tables
INGESTED: dict[Kind, tuple[Table, Table, Table]] = {
    "orders": (RAW_ORDERS, ORDERS, QUARANTINE_ORDERS),
    "profiles": (RAW_PROFILES, PROFILES, QUARANTINE_PROFILES),
}


def _window(what: str, n: int, dtype: pl.DataType) -> Column:
    return _c(f"{what}_{n}d", dtype, f"{'Completed orders' if what == 'orders' else 'Spend of completed orders'} "
              f"with order_day in (D - {n}, D].")  # fmt: skip


CUSTOMER_FEATURES = Table("customer_features", "point-in-time customer features per (as_of, customer_id)", "part", (
    _c("as_of", pl.Date(), "Date D the features describe: everything known up to the end of UTC day D."),
    _c("customer_id", _TEXT, "Customer identifier."),
    _c("frequency", _COUNT,
       "BTYD: number of distinct purchase days (days with >= 1 completed order <= D) after the first."),
    _c("recency", _FLOAT, "BTYD: days from the first to the last purchase day (0 for one purchase day)."),
    _c("T", _FLOAT, "BTYD: days from the first purchase day to D."),
    _c("monetary_value", _FLOAT,
       "BTYD: mean spend per repeat purchase day (first purchase day excluded); 0 when frequency = 0."),
    _c("days_since_last_order", _COUNT, "Days from the last purchase day to D."),
    _c("order_count", _COUNT, "Number of completed orders <= D."),
    _c("total_spend", _FLOAT, "Sum of amount over completed orders <= D."),
    _c("avg_order_value", _FLOAT, "total_spend / order_count."),
    *(_window("orders", n, _COUNT) for n in (30, 90, 180, 365)),
    *(_window("spend", n, _FLOAT) for n in (30, 90, 180, 365)),
    _c("spend_prev_90d", _FLOAT,
       "Spend of completed orders with order_day in (D - 180, D - 90] (days 91..180 before D)."),
    _c("spend_trend_90d", _FLOAT,
       "(spend_90d - spend_prev_90d) / (spend_90d + spend_prev_90d) in [-1, 1]; 0 when both are 0."),
    _c("mean_days_between_purchases", _FLOAT,
       "Mean days between consecutive purchase days (= recency / frequency); null if frequency = 0."),
    _c("std_days_between_purchases", _FLOAT,
       "Population std (ddof=0) of the days between consecutive purchase days; null if frequency = 0."),
    _c("days_since_first_order", _COUNT, "Days from the first purchase day to D (= T as an integer)."),
    _c("active_months", _COUNT, "Number of distinct calendar months with >= 1 purchase day."),
    _c("cancel_rate", _FLOAT, "Cancelled orders / all orders (any status) of the customer <= D."),
    _c("return_rate", _FLOAT, "Returned orders / all orders (any status) of the customer <= D."),
    _c("distinct_categories", _COUNT, "Number of distinct non-null categories over completed orders <= D."),
    _c("items_per_order", _FLOAT,
       "Mean quantity (items) per completed order <= D with a known quantity; null if none has one."),
    _c("main_category", _TEXT,
       "Category with the most completed spend <= D (ties: alphabetically first); null if none has a category."),
    _c("main_category_share", _FLOAT,
       "Completed spend in main_category / total_spend; null when main_category is null or nothing was spent."),
    _c("main_channel", _TEXT,
       "Channel with the most completed orders <= D (ties: alphabetically first); null if none has a channel."),
    _c("main_channel_share", _FLOAT, "Completed orders in main_channel / order_count; null when main_channel is null."),
    _c("age_band", _TEXT,
       "Age (D's year - birth_year) band: <25, 25-34, 35-44, 45-54, 55-64, 65+; null if unknown or negative."),
    _c("gender", _TEXT, "Gender from the profile snapshot."),
    _c("region", _TEXT, "Region from the profile snapshot."),
    _c("customer_type", _TEXT, "individual / business / government, from the profile snapshot."),
    _c("is_member", pl.Boolean(), "Loyalty programme member, from the profile snapshot."),
    _c("days_since_signup", _COUNT, "Days from signup_date to D; null if unknown."),
    _c("has_profile", pl.Boolean(), "Whether the customer is in the profile snapshot."),
), day="as_of")  # fmt: skip

# --- the working store's bookkeeping ------------------------------------------------------------------------------
LANDING_FILES = Table("landing_files", "every ingested landed file: what identifies its content", "table", (
    _c("kind", _TEXT, "orders or profiles"),
    _c("day", pl.Date(), "the day the file was landed for"),
    _c("source_file", _TEXT, "<kind>/<file name>"),
    _c("size", _COUNT, "bytes when ingested"),
    _c("mtime_ns", _COUNT, "modification time when ingested (ns since the epoch)"),
    _c("fingerprint", _TEXT, "content fingerprint (BLAKE2b, 128 bits)"),
    _c("raw_rows", _COUNT, "data rows read from it"),
    _c("ingested_at", pl.Datetime("us"), "when it was ingested (UTC)"),
    _c("run_id", _TEXT, "the Dagster run that ingested it"),
))  # fmt: skip
FEATURE_SOURCES = Table("feature_sources", "what each feature version was made from (for rolling forward)", "table", (
    _c("as_of", pl.Date(), "the feature version"),
    _c("orders_state", _TEXT, "code version and fingerprint of the accepted order parts it was made from"),
))  # fmt: skip
MODEL_REGISTRY = Table("model_registry", "every saved model and the as-of date it was trained for", "table", (
    _c("kind", _TEXT, "churn or clusters"),
    _c("version", _TEXT, "content hash of the model"),
    _c("trained_as_of", pl.Date(), "the as-of date it was trained for"),
    _c("path", _TEXT, "where its pickle is: `model_files/<kind>-<version>` (a row of the model_files table)"),
    _c("metrics", _TEXT, "training metrics", sql="json"),
    _c("created_at", pl.Datetime("us"), "when it was registered (UTC)"),
    _c("inputs", _TEXT, "what it was trained from (data, settings, code): reused only while unchanged"),
))  # fmt: skip


MODEL_FILES = Table("model_files", "the pickled models, one row per (kind, version), written once", "table", (
    _c("kind", _TEXT, "churn or clusters"),
    _c("version", _TEXT, "content hash of the model"),
    _c("model", pl.Binary(), "the pickle"),
))  # fmt: skip


# --- segment versions ---------------------------------------------------------------------------------------------
CUSTOMER_SEGMENTS = Table("customer_segments", "exactly one row per known customer per version", "part", (
    _c("as_of", pl.Date(),
       "the version's as-of date: everything known up to the end of this UTC day"),
    _c("customer_id", _TEXT,
       "customer identifier from the landing files"),
    _c("segment_version", _TEXT,
       "version id: as_of + hash of the models, code, landed data and settings that made it"),
    _c("r_score", pl.Int8(),
       "recency 1-5 against the churn horizon H: 3-5 = thirds among customers active within H (5 = most recent), "
       "2 = lapsed < 2H days, 1 = lapsed longer; null for prospects"),
    _c("f_score", pl.Int8(),
       "frequency quintile 1-5 from order_count (ties share the lowest score); null for prospects"),
    _c("m_score", pl.Int8(),
       "monetary quintile 1-5 from total_spend (ties share the lowest score); null for prospects"),
    _c("rfm_score", _TEXT,
       "R, F and M scores as text, e.g. '545'"),
    _c("rfm_segment", _TEXT,
       "segment from the standard R x F grid (Champions ... Hibernating), 'Prospect' without orders"),
    _c("cluster_label", _TEXT,
       "buyers: needs-based persona (k-means on basket, items, returns, rhythm, tenure, category and channel mix), "
       "named from what sets it apart, stable across versions; prospects: 'prospect ...' persona from the profile"),
    _c("value_tier", _TEXT,
       "customer pyramid by trailing 12-month spend: platinum/gold/silver/bronze"),
    _c("lifecycle_stage", _TEXT,
       "prospect/new/growing/stable/declining/lapsed (rules in README)"),
    _c("churn_risk", _FLOAT,
       "P(no completed order in the SEG_CHURN_HORIZON_DAYS days after as_of): the calibrated model, or the "
       "fallback named in segment_versions.churn_method"),
    _c("purchase_propensity", _FLOAT,
       "prospects: calibrated P(first completed order in the SEG_CHURN_HORIZON_DAYS days after as_of), or the "
       "prior named in segment_versions.metrics.prospects; null for buyers"),
    _c("expected_purchases_12m", _FLOAT,
       "BG/NBD expected purchase days in the next 12 months"),
    _c("clv", _FLOAT,
       "expected discounted spend over the next 12 months (BG/NBD x shrunk spend per purchase)"),
    _c("p_alive", _FLOAT,
       "P(the customer is still active: at least one completed order in the 365 days after as_of), the one-year "
       "counterpart of churn_risk: with alive = the BG/NBD P(alive) under which BG/NBD's P(no purchase in the "
       "churn horizon) equals churn_risk, p_alive = alive x P(a purchase within 365 days | alive); falls with "
       "silence, also for one-time buyers; >= 0.5 exactly when next_order_date is set"),
    _c("expected_purchases_30d", _FLOAT,
       "expected purchase days in the next 30 days: alive (see p_alive) x BG/NBD's if alive"),
    _c("expected_purchases_90d", _FLOAT,
       "expected purchase days in the next 90 days: alive (see p_alive) x BG/NBD's if alive"),
    _c("expected_purchases_365d", _FLOAT,
       "expected purchase days in the next 365 days (alive x BG/NBD's if alive)"),
    _c("next_order_date", pl.Date(),
       "median predicted date of the next completed order (BG/NBD purchase rate x alive); null when the customer "
       "more likely than not places no order within 365 days (p_alive < 0.5)"),
    _c("clv_low", _FLOAT,
       "lower end of the 80% interval of clv (purchase-count and spend spread, p_alive, parameter bootstrap)"),
    _c("clv_high", _FLOAT,
       "upper end of the 80% interval of clv; clv_low <= clv <= clv_high"),
    _c("churn_reasons", _TEXT,
       "up to three plain-language reasons for churn_risk, strongest first ('; '-separated), from the churn "
       "model's own per-feature contributions (from days silent and one-time buying while a fallback scores)"),
    _c("recommended_action", _TEXT,
       "one action from value tier x lifecycle stage x churn band; 'No action' only when the expected value of "
       f"contact ({actions.ASSUMED_SAVE_RATE} x churn_risk x clv) is below SEG_CONTACT_COST"),
    _c("in_control_group", pl.Boolean(),
       "held out of every audience to measure lift (SEG_CONTROL_SHARE of customers by a salted hash of "
       "customer_id, stable across versions and actions); the row keeps its recommended action"),
), day="as_of")  # fmt: skip
SEGMENT_VERSIONS = Table("segment_versions", "one row per version: what made it and how it scored", "table", (
    _c("as_of", pl.Date(),
       "the version's as-of date"),
    _c("segment_version", _TEXT,
       "version id: as_of + hash of the models and code that made it"),
    _c("run_id", _TEXT,
       "the Dagster run that built the version"),
    _c("code_version", _TEXT,
       "seg_pipeline version that built it"),
    _c("churn_model_version", _TEXT,
       "content hash of the churn model (or fallback) in force"),
    _c("cluster_model_version", _TEXT,
       "content hash of the cluster model in force"),
    _c("metrics", _TEXT,
       "JSON: churn holdout metrics (or the fallback used), clusters, value tier shares, BG/NBD params; per "
       "recommended action its share of customers and of CLV (actions.by_action); "
       "predictions: per window (30/90/365 days) the predictions made at as_of - window against what happened "
       "(expected vs actual purchase days, next-order error of the model and of the rhythm baseline, CLV interval "
       "coverage; made when the churn model in force changes, carried by the versions in between: checked_as_of) "
       "and churn_drivers (reasons by mean absolute contribution)", sql="json"),
    _c("customers", _COUNT,
       "customer_segments rows of the version (known customers)"),
    _c("prospects", _COUNT,
       "customers without a completed order"),
    _c("orders_accepted", _COUNT,
       "accepted order rows of the days <= as_of"),
    _c("orders_quarantined", _COUNT,
       "quarantined order rows of the days <= as_of"),
    _c("created_at", pl.Datetime("us"),
       "when the version was built (UTC)"),
    _c("churn_method", _TEXT,
       "where churn_risk comes from: 'model' (the trained churn model); while it cannot be trained (too little "
       "history, no churners or no non-churners, too few customers) 'bgnbd' = BG/NBD P(no purchase in the "
       "horizon) from params fitted on the buyers, else 'prior' = 1 - exp(-d/(2g)) * (1 - exp(-h/g)), "
       "d = days_since_last_order, g = (T + h)/(frequency + 1), h = SEG_CHURN_HORIZON_DAYS"),
    _c("data_through", pl.Date(),
       "the last landed order day <= as_of the version saw (a gap to as_of means data stopped arriving)"),
))  # fmt: skip

#: every registered table by name
TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        LANDING_ORDERS, LANDING_PROFILES, RAW_ORDERS, RAW_PROFILES, ORDERS, PROFILES,
        QUARANTINE_ORDERS, QUARANTINE_PROFILES, CUSTOMER_FEATURES,
        LANDING_FILES, FEATURE_SOURCES, MODEL_REGISTRY, MODEL_FILES, CUSTOMER_SEGMENTS, SEGMENT_VERSIONS,
    )
}  # fmt: skip
