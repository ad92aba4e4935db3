"""The HTML report of one segment version: who the customers are, what they are worth, how they move.

Reads only the analyst DuckDB file (read-only, like any analyst) and writes ONE self-contained
HTML file: plotly.js and the styles are inlined, nothing is fetched from the network. Every chart
is a plotly figure in a div with a stable id (`CHART_IDS`). For the Dagster UI, which cannot run
JavaScript, `metadata_images` draws the two headline charts as small PNG data-URI markdown images.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import plotly.graph_objects as go
import polars as pl
from plotly.offline import get_plotlyjs

from seg_pipeline.core.lifecycle import LIFECYCLE_STAGES
from seg_pipeline.core.rfm import PROSPECT_SEGMENT, RFM_SEGMENTS
from seg_pipeline.core.value_tiers import VALUE_TIERS

#: the id of every chart div a full report holds (migration only when there is a previous version)
#: the campaign-tracking chart, shown once a version has been measured (so not in every report)
LIFT_CHART_ID = "chart-action-lift"
CHART_IDS = (
    "chart-segment-sizes",
    "chart-cluster-sizes",
    "chart-rfm-heatmap",
    "chart-pareto",
    "chart-tier-revenue",
    "chart-tier-lifecycle",
    "chart-migration",
    "chart-churn-histogram",
    "chart-calibration",
)
RFM_ORDER = (*RFM_SEGMENTS, PROSPECT_SEGMENT)
TIER_ORDER = (*VALUE_TIERS, "(none)")
CHURN_BIN = 0.05  # width of the churn-risk histogram bins

_CUSTOMERS_COLOR = "#94a3b8"
_REVENUE_COLOR = "#2563eb"
_ACCENT = "#dc2626"
_TIER_COLORS = {"platinum": "#7c3aed", "gold": "#f59e0b", "silver": "#64748b", "bronze": "#b45309"}
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
_HEAT = [[0.0, "#f8fafc"], [0.15, "#dbeafe"], [0.5, "#60a5fa"], [1.0, "#1e3a8a"]]
_PLOT_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
_BASELINES = (("model", "churn model"), ("recency", "recency baseline"), ("bgnbd", "BG/NBD baseline"))


class ReportError(LookupError):
    """The analyst file has no such version (or none at all); the message is one line."""


@dataclass(frozen=True)
class VersionData:
    """Everything the report shows of one version, read from the analyst file."""

    as_of: date
    version: dict[str, Any]  # the segment_versions row, `metrics` parsed from JSON
    summary: pl.DataFrame  # segment_summary rows of the version
    pareto: pl.DataFrame  # tier_pareto rows, by percentile
    rfm_grid: pl.DataFrame  # r_score, f_score, rfm_segment, customers
    migration: pl.DataFrame  # rfm_segment rows of segment_migration
    churn_bins: pl.DataFrame  # bin (lower edge), customers
    tier_lifecycle: pl.DataFrame  # value_tier, lifecycle_stage, customers
    watchlist: pl.DataFrame  # top rows of churn_watchlist
    lift: pl.DataFrame  # action_lift rows of the versions measured by as_of, by as_of
    top_clv: pl.DataFrame  # the customers with the highest clv, with its interval
    common_reasons: pl.DataFrame  # reason (numbers as N), customers: over buyers with churn_risk >= 0.5
    mean_churn_risk: float | None  # over buyers
    personas: pl.DataFrame  # cluster_profiles rows of the buyers' personas, largest first
    prospects: pl.DataFrame  # cluster_label (prospect persona), customers, mean_propensity

    @property
    def metrics(self) -> dict[str, Any]:
        return self.version["metrics"]

    @property
    def previous_as_of(self) -> date | None:
        return None if self.migration.is_empty() else self.migration["previous_as_of"][0]


def load_version(warehouse_path: str | Path, as_of: date | None = None) -> VersionData:
    """Read version `as_of` (default: the latest) from the analyst file, read-only."""
    path = Path(warehouse_path)
    if not path.exists():
        raise ReportError(f"no analyst file at {path}: materialize a version first")
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {row[0] for row in con.sql("select table_name from information_schema.tables").fetchall()}
        versions = _versions(con, tables)
        if not versions:
            raise ReportError(f"{path} holds no segment version yet")
        day = as_of or versions[-1]
        if day not in versions:
            hint = " (older versions leave it: SEG_KEEP_VERSIONS)" if day < versions[0] else ""
            raise ReportError(f"{path} has no version {day}; it has {versions[0]} .. {versions[-1]}{hint}")

        def frame(table: str, sql: str) -> pl.DataFrame:
            """Rows of `sql` for the version; empty when `table` is not in the file (a mart left out)."""
            return con.sql(sql, params=[day]).pl() if table in tables else pl.DataFrame()

        version = frame("segment_versions", "select * from segment_versions where as_of = ?").row(0, named=True)
        version["metrics"] = json.loads(version["metrics"]) if version.get("metrics") else {}
        horizon = int(version["metrics"].get("rfm", {}).get("churn_horizon_days", 0))
        mean_risk = con.sql("select avg(churn_risk) from customer_segments where as_of = ?", params=[day]).fetchall()
        return VersionData(
            as_of=day,
            mean_churn_risk=mean_risk[0][0],
            version=version,
            summary=frame("segment_summary", "select * from segment_summary where as_of = ?"),
            pareto=frame("tier_pareto", "select * from tier_pareto where as_of = ? order by percentile"),
            rfm_grid=frame(
                "customer_segments",
                "select r_score, f_score, any_value(rfm_segment) as rfm_segment, count(*) as customers "
                "from customer_segments where as_of = ? and r_score is not null group by all order by all",
            ),
            migration=frame(
                "segment_migration",
                "select previous_as_of, from_segment, to_segment, customers, share_of_from from segment_migration "
                "where as_of = ? and segment_type = 'rfm_segment'",
            ),
            churn_bins=frame(
                "customer_segments",
                f"select least(floor(churn_risk / {CHURN_BIN}), {round(1 / CHURN_BIN) - 1}) * {CHURN_BIN} as bin, "
                "count(*) as customers from customer_segments "
                "where as_of = ? and churn_risk is not null group by all order by bin",
            ),
            tier_lifecycle=frame(
                "customer_segments",
                "select coalesce(value_tier, '(none)') as value_tier, lifecycle_stage, count(*) as customers "
                "from customer_segments where as_of = ? group by all",
            ),
            personas=frame(
                "cluster_profiles",
                "select cluster_label, customers, customer_share, revenue_share, distinguishing_features "
                "from cluster_profiles where as_of = ? and distinguishing_features is not null "
                "order by customers desc, cluster_label",
            ),
            prospects=frame(
                "customer_segments",
                "select cluster_label, count(*) as customers, avg(purchase_propensity) as mean_propensity "
                "from customer_segments where as_of = ? and lifecycle_stage = 'prospect' "
                "group by all order by customers desc, cluster_label",
            ),
            watchlist=frame(
                "churn_watchlist",
                "select watch_rank, customer_id, value_tier, rfm_segment, lifecycle_stage, churn_risk, spend_365d, "
                "revenue_at_risk, recommended_action, churn_reasons from churn_watchlist where as_of = ? "
                "order by watch_rank limit 10",
            ),
            top_clv=frame(
                "customer_segments",
                "select customer_id, value_tier, clv, clv_low, clv_high, p_alive, expected_purchases_365d, "
                "next_order_date from customer_segments where as_of = ? and clv is not null "
                "order by clv desc, customer_id limit 10",
            ),
            common_reasons=frame(
                "customer_segments",
                "select regexp_replace(reason, '[0-9]+', 'N', 'g') as reason, count(*) as customers from ("
                "select unnest(string_split(churn_reasons, '; ')) as reason from customer_segments "
                "where as_of = ? and churn_risk >= 0.5 and churn_reasons is not null) "
                "group by all order by customers desc, reason limit 10",
            ),
            # the versions measured by this one: at least the churn horizon before it
            lift=frame(
                "action_lift",
                f"select * from action_lift where as_of <= ?::date - {horizon} order by as_of, recommended_action",
            ),
        )


def published_versions(warehouse_path: str | Path) -> list[date]:
    """The versions a report can be made of, oldest first: those whose customers are in the analyst file."""
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        tables = {row[0] for row in con.sql("select table_name from information_schema.tables").fetchall()}
        return _versions(con, tables)


def _versions(con: duckdb.DuckDBPyConnection, tables: set[str]) -> list[date]:
    # segment_versions lists every version ever built; older ones leave customer_segments (SEG_KEEP_VERSIONS)
    if "segment_versions" not in tables:
        return []
    sql = "select as_of from segment_versions where as_of in (select as_of from customer_segments) order by as_of"
    return [row[0] for row in con.sql(sql).fetchall()]


def render_report(warehouse_path: str | Path, as_of: date | None = None) -> str:
    """The self-contained HTML report of version `as_of` (default: the latest) of the analyst file."""
    return report_html(load_version(warehouse_path, as_of))


def write_report(warehouse_path: str | Path, out_dir: str | Path, as_of: date | None = None) -> Path:
    """Write `segments-<as_of>.html` into `out_dir` (atomically: a reader never sees half a file)."""
    return write_html(load_version(warehouse_path, as_of), out_dir)


def write_html(data: VersionData, out_dir: str | Path) -> Path:
    """Write the report of an already loaded version; its path."""
    target = Path(out_dir) / f"segments-{data.as_of.isoformat()}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(report_html(data), encoding="utf-8")
    os.replace(partial, target)
    return target


# --------------------------------------------------------------------------------------- the page


def report_html(data: VersionData) -> str:
    """The whole page; plotly.js inlined once in the head, each figure a div with its chart id."""
    v, m = data.version, data.metrics
    title = f"Customer segments {data.as_of.isoformat()}"
    previous = data.previous_as_of
    sections = [
        _section(
            "Segments",
            "RFM segments and personas: their share of customers beside their share of 12-month revenue.",
            _grid(_figure_div("chart-segment-sizes", _shares_figure(data, "rfm_segment", RFM_ORDER, "RFM segments")),
                  _figure_div("chart-cluster-sizes",
                              _shares_figure(data, "cluster_label", None, "Personas"))),
            _grid(_figure_div("chart-rfm-heatmap", _rfm_heatmap(data)), _summary_table(data)),
            _note("rfm-scheme", _rfm_scheme(data)),
        ),
        _section(
            "Personas",
            "What and how buyers buy: needs-based clusters named from what sets them apart from all buyers. "
            + str(m.get("clusters", {}).get("choice", "")),
            _personas_table(data),
        ),
        _section(
            "Prospects",
            "Customers without a completed order, by who they are, with their chance of a first order.",
            _prospects_table(data),
        ),
        _section(
            "Value",
            "How concentrated revenue is (trailing 12-month completed spend of buyers) and how the value tiers live.",
            _grid(_figure_div("chart-pareto", _pareto_figure(data)),
                  _figure_div("chart-tier-revenue", _tier_revenue_figure(data))),
            _figure_div("chart-tier-lifecycle", _tier_lifecycle_figure(data), wide=True),
        ),
        _section(
            "Movement",
            f"Customers by RFM segment in the previous version ({previous}) and in this one."
            if previous else "Customers moving between RFM segments from the previous version.",
            _figure_div("chart-migration", _migration_figure(data), wide=True) if previous else _note(
                "migration-note", "There is no previous version in this file, so there is no migration to show yet."),
        ),  # fmt: skip
        _section(
            "Churn risk",
            f"P(no completed order in the {m.get('churn', {}).get('horizon_days', '?')} days after the as-of date), "
            "for customers with at least one order. Calibration and scores on the model's holdout "
            f"({m.get('churn', {}).get('holdout_as_of', '?')}).",
            _grid(_figure_div("chart-churn-histogram", _churn_histogram(data)),
                  _figure_div("chart-calibration", _calibration_figure(data))),
            f"<div class='narrow'>{_churn_metrics_table(data)}</div>",
        ),  # fmt: skip
        _section("Churn watchlist", "The most valuable customers most likely to churn (top 10 of churn_watchlist), "
                 "each with the reasons the churn model gives.", _watchlist_table(data),
                 _reasons_table(data)),
        _section("Predictions", "Each prediction made at as-of - window and checked against what happened in the "
                 "window (a seeded sample of buyers); the CLV intervals of the most valuable customers.",
                 _grid(_prediction_checks_table(data), _top_clv_table(data))),
        _section("Actions", _action_rule(data), f"<div class='narrow'>{_actions_table(data)}</div>"),
        _section(
            "Campaign tracking",
            "Lift of each recommended action (action_lift): the share of its treated customers (in the version's "
            "audiences) who placed a completed order in the churn horizon after the version, minus that share of "
            "its control group (held out of every audience), with 95% intervals. A lift is only as real as the "
            "campaign the business ran on the audience files.",
            _figure_div(LIFT_CHART_ID, _lift_figure(data), wide=True) if not data.lift.is_empty() else "",
            _lift_table(data),
        ),
    ]  # fmt: skip
    header = (
        f"<header><h1>{_e(title)}</h1><p class='meta'>version <b>{_e(v['segment_version'])}</b>"
        f" &middot; created {_e(str(v.get('created_at', ''))[:19])} UTC"
        f" &middot; previous version {_e(previous or 'none')}"
        f" &middot; run {_e(str(v.get('run_id', ''))[:8])}</p>{_kpis(data)}</header>"
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head>"
        f"<body><main>{header}{''.join(sections)}"
        f"<footer>Read from the analyst file's tables customer_segments, segment_versions, segment_summary, "
        f"segment_migration, tier_pareto, cluster_profiles, churn_watchlist (as_of = {data.as_of}) and action_lift."
        "</footer></main></body></html>\n"
    )


def _kpis(data: VersionData) -> str:
    v, m = data.version, data.metrics
    churn, tiers = m.get("churn", {}), m.get("value_tiers", {})
    buyers = v["customers"] - v["prospects"]
    revenue = data.pareto["total_revenue"][0] if not data.pareto.is_empty() else None
    mean_risk = data.mean_churn_risk
    cards = [
        ("customers", f"{v['customers']:,}", f"{v['prospects']:,} prospects"),
        ("buyers", f"{buyers:,}", f"{v['orders_accepted']:,} orders accepted, {v['orders_quarantined']:,} quarantined"),
        ("revenue, 12 months", _money(revenue), "completed orders"),
        ("top 20% of buyers", _pct(tiers.get("top20_revenue_share")), "of 12-month revenue"),
        ("mean churn risk", _num(mean_risk, 2), "over buyers"),
        ("churn model AUC", _num(churn.get("model", {}).get("auc"), 3),
         f"recency baseline {_num(churn.get('recency', {}).get('auc'), 3)}"),
    ]  # fmt: skip
    return "<div class='kpis'>" + "".join(
        f"<div class='kpi'><div class='label'>{_e(label)}</div><div class='value'>{_e(value)}</div>"
        f"<div class='sub'>{_e(sub)}</div></div>"
        for label, value, sub in cards
    ) + "</div>"


def _section(title: str, lead: str, *parts: str) -> str:
    return f"<section><h2>{_e(title)}</h2><p class='lead'>{_e(lead)}</p>{''.join(parts)}</section>"


def _grid(*cells: str) -> str:
    return "<div class='grid'>" + "".join(f"<div class='cell'>{c}</div>" for c in cells) + "</div>"


def _note(element_id: str, text: str) -> str:
    return f"<p class='note' id='{element_id}'>{_e(text)}</p>"


def _figure_div(chart_id: str, fig: go.Figure | None, wide: bool = False) -> str:
    """The figure as a div with id `chart_id` (plotly.js is in the page head), or a note when no data."""
    if fig is None:
        return _note(f"{chart_id}-empty", "No data for this chart in this version.")
    inner = fig.to_html(full_html=False, include_plotlyjs=False, div_id=chart_id, config=_PLOT_CONFIG,
                        default_height=f"{fig.layout.height}px")  # fmt: skip
    return f"<div class='chart{' wide' if wide else ''}'>{inner}</div>"


def _table(header: list[str], rows: list[list[str]], numeric: set[int], caption: str = "") -> str:
    head = "".join(f"<th class='{'num' if i in numeric else ''}'>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>"
        + "".join(f"<td class='{'num' if i in numeric else ''}'>{cell}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_table(data: VersionData) -> str:
    rows = _ordered(_segment_rows(data, "rfm_segment"), "segment", RFM_ORDER)
    if rows.is_empty():
        return _note("summary-empty", "segment_summary has no rows for this version.")
    return _table(
        ["RFM segment", "customers", "share", "revenue share", "mean churn risk", "mean CLV"],
        [[_e(r["segment"]), f"{r['customers']:,}", _pct(r["customer_share"]), _pct(r["revenue_share"]),
          _num(r["mean_churn_risk"], 2), _money(r["mean_clv"])] for r in rows.iter_rows(named=True)],
        numeric={1, 2, 3, 4, 5},
        caption="Size and value per RFM segment (segment_summary)",
    )  # fmt: skip


def _personas_table(data: VersionData) -> str:
    if data.personas.is_empty():
        return _note("personas-empty", "cluster_profiles has no buyer persona for this version.")
    return _table(
        ["persona", "customers", "share", "revenue share", "distinguishing features (persona vs all buyers)"],
        [[_e(r["cluster_label"]), f"{r['customers']:,}", _pct(r["customer_share"]), _pct(r["revenue_share"]),
          _e(r["distinguishing_features"])] for r in data.personas.iter_rows(named=True)],
        numeric={1, 2, 3},
        caption="Buyer personas (cluster_profiles)",
    )  # fmt: skip


def _prospects_table(data: VersionData) -> str:
    if data.prospects.is_empty():
        return _note("prospects-empty", "This version has no prospects.")
    m = data.metrics.get("prospects", {})
    if m.get("method") == "model" and "model" in m:
        model, baseline = m["model"], m["signup_recency"]
        how = (f"purchase_propensity: logistic model, holdout AUC {model['auc']:.3f} vs signup recency "
               f"{baseline['auc']:.3f} (Brier {model['brier']:.3f} vs {baseline['brier']:.3f})")
    else:
        how = f"purchase_propensity: fallback '{m.get('method', '?')}' ({m.get('reason', '')})"
    return _table(
        ["prospect persona", "prospects", "mean purchase propensity"],
        [[_e(r["cluster_label"]), f"{r['customers']:,}", _pct(r["mean_propensity"])]
         for r in data.prospects.iter_rows(named=True)],
        numeric={1, 2},
        caption=how,
    )  # fmt: skip


def _churn_metrics_table(data: VersionData) -> str:
    churn = data.metrics.get("churn", {})
    scored = [(label, churn[key]) for key, label in _BASELINES if key in churn]
    if not scored:
        return _note("churn-metrics-empty", "The version's metrics hold no churn holdout scores.")
    best = {
        k: (max if k == "auc" else min)(s.get(k, float("nan")) for _, s in scored) for k in ("auc", "logloss", "brier")
    }

    def cell(scores: dict, key: str) -> str:
        text = _num(scores.get(key), 4)
        return f"<b>{text}</b>" if scores.get(key) == best[key] else text

    caption = (
        f"Holdout {churn.get('holdout_as_of', '?')}: {churn.get('n_holdout', 0):,} buyers, "
        f"observed churn rate {_pct(churn.get('holdout_churn_rate'))}, mean predicted "
        f"{_pct(churn.get('holdout_mean_predicted'))}. Best of each column in bold; "
        "lower is better for log loss and Brier."
    )
    return _table(
        ["", "AUC", "log loss", "Brier"],
        [[_e(label), cell(s, "auc"), cell(s, "logloss"), cell(s, "brier")] for label, s in scored],
        numeric={1, 2, 3},
        caption=caption,
    )


def _watchlist_table(data: VersionData) -> str:
    if data.watchlist.is_empty():
        return _note("watchlist-empty", "No platinum or gold customer has a churn risk of 0.5 or more in this version.")
    return _table(
        ["#", "customer", "tier", "RFM segment", "lifecycle", "churn risk", "12-month spend", "revenue at risk",
         "action", "reasons"],
        [[str(r["watch_rank"]), _e(r["customer_id"]), _e(r["value_tier"]), _e(r["rfm_segment"]),
          _e(r["lifecycle_stage"]), _num(r["churn_risk"], 2), _num(r["spend_365d"], 0),
          _num(r["revenue_at_risk"], 0), _e(r["recommended_action"]), _e(r["churn_reasons"] or "")]
         for r in data.watchlist.iter_rows(named=True)],
        numeric={0, 5, 6, 7},
    )  # fmt: skip


def _reasons_table(data: VersionData) -> str:
    if data.common_reasons.is_empty():
        return _note("reasons-empty", "No buyer has a churn risk of 0.5 or more in this version.")
    return _table(
        ["reason (N: the customer's number)", "customers"],
        [[_e(r["reason"]), f"{r['customers']:,}"] for r in data.common_reasons.iter_rows(named=True)],
        numeric={1},
        caption="Most common churn reasons of buyers with churn risk >= 0.5 (customer_segments.churn_reasons)",
    )


def _prediction_checks_table(data: VersionData) -> str:
    windows = data.metrics.get("predictions", {}).get("windows", [])
    if not windows:
        return _note("prediction-checks-empty", "The history is shorter than 30 days: no window to check yet.")
    return _table(
        ["window", "predicted purchase days", "actual", "ratio", "next-order error, model", "rhythm baseline",
         "CLV 80% interval coverage"],
        [[f"{w['window_days']} days from {_e(w['cut'])}", _num(w["predicted_purchase_days"], 0),
          _num(w["actual_purchase_days"], 0), _num(w["purchase_ratio"], 3), _num(w["next_order_mae_days"], 1),
          _num(w["rhythm_baseline_mae_days"], 1), _pct(w["clv_interval_coverage"])] for w in windows],
        numeric={1, 2, 3, 4, 5, 6},
        caption="Expected purchase calibration, next-order mean absolute error in days (capped at the window) "
        "and CLV interval coverage (segment_versions.metrics.predictions)",
    )  # fmt: skip


def _top_clv_table(data: VersionData) -> str:
    if data.top_clv.is_empty():
        return _note("top-clv-empty", "No buyer in this version.")
    return _table(
        ["customer", "tier", "CLV", "80% interval", "P(alive)", "purchases, 365 days", "next order"],
        [[_e(r["customer_id"]), _e(r["value_tier"]), _money(r["clv"]),
          f"{_money(r['clv_low'])} – {_money(r['clv_high'])}", _num(r["p_alive"], 2),
          _num(r["expected_purchases_365d"], 1), _e(r["next_order_date"] or "none within a year")]
         for r in data.top_clv.iter_rows(named=True)],
        numeric={2, 4, 5},
        caption="Highest CLV customers with their interval",
    )  # fmt: skip


def _rfm_scheme(data: VersionData) -> str:
    horizon = data.metrics.get("rfm", {}).get("churn_horizon_days", "H")
    return (
        f"R is scored against the churn horizon of {horizon} days: 5, 4, 3 = thirds of the customers active "
        f"within it (5 = most recent), 2 = lapsed for less than twice the horizon, 1 = lapsed longer, so a lapsed "
        "customer never carries an R 3-5 segment. F (completed orders) and M (lifetime spend) are quintiles. Equal "
        "values share a score: a tie that straddles a quintile edge takes the score of its lowest member."
    )


def _action_rule(data: VersionData) -> str:
    rule = data.metrics.get("actions", {})
    cost = _num(rule.get("contact_cost"), 2)
    return (
        "One action per customer from value tier x lifecycle stage x churn band (core/recommended_actions.csv). "
        f"Expected value of contact = {_pct(rule.get('save_rate'))} (assumed save rate) x churn risk x CLV; "
        f"below the contact cost of {cost} (SEG_CONTACT_COST) a lapsed customer gets No action, otherwise a "
        "win-back action."
    )


def _actions_table(data: VersionData) -> str:
    by_action = data.metrics.get("actions", {}).get("by_action", {})
    if not by_action:
        return _note("actions-empty", "The version's metrics hold no action shares.")
    rows = sorted(by_action.items(), key=lambda item: (-item[1]["customers"], item[0]))
    return _table(
        ["recommended action", "customers", "share of customers", "share of CLV"],
        [[_e(action), f"{v['customers']:,}", _pct(v["customer_share"]), _pct(v["clv_share"])] for action, v in rows],
        numeric={1, 2, 3},
        caption="Customers and expected 12-month revenue (CLV) per action (segment_versions.metrics)",
    )


def _lift_table(data: VersionData) -> str:
    if data.lift.is_empty():
        return _note("lift-empty", "No version is mature yet: an action's lift is measured once the churn horizon "
                     "after a version has passed.")  # fmt: skip
    latest = data.lift.filter(pl.col("as_of") == data.lift["as_of"].max())

    def interval(value: float | None, low: float | None, high: float | None, digits: int, pct: bool) -> str:
        show = _pct if pct else (lambda v: _num(v, digits))
        return show(value) + ("" if low is None else f" [{show(low)}, {show(high)}]")

    return _table(
        ["action", "treated", "control", "treated rate", "control rate", "lift [95%]", "spend lift [95%]"],
        [[_e(r["recommended_action"]), f"{r['treated_customers']:,}", f"{r['control_customers']:,}",
          _pct(r["treated_rate"]), _pct(r["control_rate"]),
          interval(r["lift"], r["lift_low"], r["lift_high"], 0, True),
          interval(r["spend_lift"], r["spend_lift_low"], r["spend_lift_high"], 2, False)]
         for r in latest.iter_rows(named=True)],
        numeric={1, 2, 3, 4, 5, 6},
        caption=f"Version {latest['as_of'][0]}: purchase rate and spend per customer over the horizon after it",
    )  # fmt: skip


# ----------------------------------------------------------------------------------------- figures


def _layout(fig: go.Figure, title: str, height: int = 380, **extra: Any) -> go.Figure:
    fig.update_layout(
        template="none",
        title={"text": title, "x": 0.01, "xanchor": "left", "y": 1, "yref": "container", "yanchor": "top",
               "pad": {"t": 10}, "font": {"size": 15}},
        height=height,
        font={"family": _FONT, "size": 12, "color": "#1e293b"},
        paper_bgcolor="white",
        plot_bgcolor="white",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "xanchor": "left", "x": 0},
        hoverlabel={"font": {"family": _FONT}},
        margin={"l": 60, "r": 20, "t": 72, "b": 50},
    )
    fig.update_layout(**extra)  # overrides the defaults above
    fig.update_xaxes(gridcolor="#e2e8f0", zerolinecolor="#cbd5e1", linecolor="#94a3b8", automargin=True)
    fig.update_yaxes(gridcolor="#e2e8f0", zerolinecolor="#cbd5e1", linecolor="#94a3b8", automargin=True)
    return fig


def _segment_rows(data: VersionData, segment_type: str) -> pl.DataFrame:
    if data.summary.is_empty():
        return data.summary
    return data.summary.filter(pl.col("segment_type") == segment_type)


def _ordered(rows: pl.DataFrame, column: str, order: tuple[str, ...] | None) -> pl.DataFrame:
    """Rows in `order` of `column` (unknown values last), else by customers descending."""
    if rows.is_empty():
        return rows
    if order is None:
        return rows.sort(["customers", column], descending=[True, False])
    rank = {name: i for i, name in enumerate(order)}
    return rows.with_columns(pl.col(column).replace_strict(rank, default=len(rank)).alias("_rank")).sort(
        "_rank", column).drop("_rank")  # fmt: skip


def _shares_figure(data: VersionData, segment_type: str, order: tuple[str, ...] | None, title: str) -> go.Figure | None:
    """Horizontal bars: share of customers and share of 12-month revenue of each segment."""
    rows = _ordered(_segment_rows(data, segment_type), "segment", order)
    if rows.is_empty():
        return None
    names = rows["segment"].to_list()
    fig = go.Figure()
    for column, label, color in (("customer_share", "customers", _CUSTOMERS_COLOR),
                                 ("revenue_share", "revenue (12 months)", _REVENUE_COLOR)):  # fmt: skip
        shares = rows[column].fill_null(0).to_list()
        fig.add_bar(
            y=names, x=shares, name=label, orientation="h", marker_color=color,
            text=[f"{s:.0%}" for s in shares], textposition="outside", cliponaxis=False,
            customdata=rows.select("customers", "revenue").rows(),
            hovertemplate="%{y}<br>" + label + " share %{x:.1%}<br>%{customdata[0]:,} customers, "
            "revenue %{customdata[1]:,.0f}<extra></extra>",
        )  # fmt: skip
    fig.update_yaxes(autorange="reversed", gridcolor="rgba(0,0,0,0)")
    fig.update_xaxes(tickformat=".0%", rangemode="tozero")
    return _layout(fig, title, height=max(300, 60 + 34 * len(names)), barmode="group", bargap=0.25)


def _rfm_heatmap(data: VersionData) -> go.Figure | None:
    """Buyers by recency score (rows) x frequency score (columns), each cell named by its RFM segment."""
    if data.rfm_grid.is_empty():
        return None
    cells = {(r["r_score"], r["f_score"]): r for r in data.rfm_grid.iter_rows(named=True)}
    scores = [1, 2, 3, 4, 5]
    z = [[cells.get((r, f), {}).get("customers", 0) for f in scores] for r in scores]
    names = [[cells.get((r, f), {}).get("rfm_segment", "") for f in scores] for r in scores]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=[str(s) for s in scores], y=[str(s) for s in scores], text=names,
            texttemplate="<b>%{z:,}</b><br>%{text}", textfont={"size": 10}, colorscale=_HEAT,
            colorbar={"title": {"text": "buyers"}, "thickness": 12},
            hovertemplate="R %{y}, F %{x}<br>%{text}<br>%{z:,} buyers<extra></extra>", xgap=2, ygap=2,
        )
    )  # fmt: skip
    fig.update_xaxes(title_text="F score (order count quintile, 5 = most)", gridcolor="rgba(0,0,0,0)")
    fig.update_yaxes(title_text="R score (5 = most recent)", gridcolor="rgba(0,0,0,0)")
    return _layout(fig, "RFM grid: buyers by R x F score", height=440)


def _pareto_figure(data: VersionData) -> go.Figure | None:
    """Cumulative revenue share of the top p% of buyers, with the top 20% marked and the tier bands shaded."""
    if data.pareto.is_empty():
        return None
    x = [0.0, *data.pareto["customer_share"].to_list()]
    y = [0.0, *data.pareto["revenue_share"].fill_null(0).to_list()]
    top20 = data.pareto["top20_revenue_share"][0]
    fig = go.Figure()
    for start, end, tier in _tier_bands(data):
        if tier != VALUE_TIERS[-1]:  # the best tiers shaded; the last one is the rest of the curve
            fig.add_vrect(x0=start, x1=end, fillcolor=_TIER_COLORS[tier], opacity=0.12, line_width=0, layer="below")
        last = tier == VALUE_TIERS[-1]  # labelled at the bottom, where the curve is not
        fig.add_annotation(x=(start + end) / 2, y=0 if last else 1, yref="paper", yanchor="bottom" if last else "top",
                           showarrow=False, textangle=-90 if end - start < 0.06 else 0, text=tier,
                           font={"size": 10, "color": "#475569"})  # fmt: skip
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="equal shares", line={"dash": "dot", "color": "#94a3b8"},
                    hoverinfo="skip")  # fmt: skip
    fig.add_scatter(
        x=x, y=y, mode="lines", name="revenue share", line={"color": _REVENUE_COLOR, "width": 3},
        hovertemplate="top %{x:.0%} of buyers<br>%{y:.1%} of revenue<extra></extra>",
    )  # fmt: skip
    if top20 is not None:
        fig.add_scatter(x=[0.2], y=[top20], mode="markers", name="top 20%", showlegend=False,
                        marker={"color": _ACCENT, "size": 11},
                        hovertemplate="top 20%: %{y:.1%} of revenue<extra></extra>")  # fmt: skip
        fig.add_shape(type="line", x0=0.2, x1=0.2, y0=0, y1=top20, line={"color": _ACCENT, "dash": "dash", "width": 1})
        fig.add_shape(
            type="line", x0=0, x1=0.2, y0=top20, y1=top20, line={"color": _ACCENT, "dash": "dash", "width": 1}
        )
        fig.add_annotation(x=0.2, y=top20, text=f"<b>top 20% of buyers bring {top20:.1%} of revenue</b>",
                           showarrow=True, arrowhead=0, ax=60, ay=30, xanchor="left",
                           font={"color": _ACCENT})  # fmt: skip
    fig.update_xaxes(title_text="share of buyers (by 12-month spend, highest first)", tickformat=".0%", range=[0, 1])
    fig.update_yaxes(title_text="share of 12-month revenue", tickformat=".0%", range=[0, 1.02])
    return _layout(fig, f"Pareto curve: {data.pareto['buyers'][0]:,} buyers", height=420)


def _tier_bands(data: VersionData) -> list[tuple[float, float, str]]:
    """(start, end, tier) on the Pareto curve's x axis from the version's tier sizes, best tier first."""
    tiers = data.metrics.get("value_tiers", {}).get("tiers", {})
    total = sum(t["customers"] for t in tiers.values())
    bands, start = [], 0.0
    for tier in VALUE_TIERS:
        if tier in tiers and total:
            end = start + tiers[tier]["customers"] / total
            bands.append((start, end, tier))
            start = end
    return bands


def _tier_revenue_figure(data: VersionData) -> go.Figure | None:
    """Each value tier's share of buyers and of 12-month revenue."""
    tiers = data.metrics.get("value_tiers", {})
    shares = tiers.get("tiers", {})
    if not shares:
        return None
    names = [t for t in VALUE_TIERS if t in shares]
    total = sum(shares[t]["customers"] for t in names) or 1
    customer_share = [shares[t]["customers"] / total for t in names]
    revenue_share = [shares[t]["revenue_share"] for t in names]
    fig = go.Figure()
    for values, label, color in ((customer_share, "buyers", _CUSTOMERS_COLOR),
                                 (revenue_share, "revenue (12 months)", _REVENUE_COLOR)):  # fmt: skip
        fig.add_bar(x=names, y=values, name=label, marker_color=color, text=[f"{s:.1%}" for s in values],
                    textposition="outside", cliponaxis=False,
                    hovertemplate="%{x}: %{y:.1%} of " + label + "<extra></extra>")  # fmt: skip
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(gridcolor="rgba(0,0,0,0)")
    return _layout(fig, "Value tiers: share of buyers and of 12-month revenue", height=420, barmode="group", bargap=0.3)


def _tier_lifecycle_figure(data: VersionData) -> go.Figure | None:
    """Customers by value tier (rows) x lifecycle stage (columns); colour = share of the tier's customers."""
    if data.tier_lifecycle.is_empty():
        return None
    counts = {
        (r["value_tier"], r["lifecycle_stage"]): r["customers"] for r in data.tier_lifecycle.iter_rows(named=True)
    }
    tiers = [t for t in TIER_ORDER if any(k[0] == t for k in counts)] + sorted(
        {k[0] for k in counts} - set(TIER_ORDER))  # fmt: skip
    stages = [s for s in LIFECYCLE_STAGES if any(k[1] == s for k in counts)] + sorted(
        {k[1] for k in counts} - set(LIFECYCLE_STAGES))  # fmt: skip
    z = [[counts.get((t, s), 0) for s in stages] for t in tiers]
    share = [[c / (sum(row) or 1) for c in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=share, x=stages, y=tiers, text=[[f"{c:,}" if c else "" for c in row] for row in z],
            texttemplate="%{text}", customdata=z, colorscale=_HEAT, zmin=0, zmax=1, xgap=2, ygap=2,
            colorbar={"title": {"text": "share of tier"}, "tickformat": ".0%", "thickness": 12},
            hovertemplate="%{y} x %{x}<br>%{customdata:,} customers (%{z:.1%} of the tier)<extra></extra>",
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", gridcolor="rgba(0,0,0,0)")
    fig.update_xaxes(side="top", gridcolor="rgba(0,0,0,0)")
    title = "Value tier (rows) x lifecycle stage (columns): customers, coloured by share of the tier"
    return _layout(fig, title, height=360, margin={"l": 90, "r": 20, "t": 80, "b": 20})


def _migration_figure(data: VersionData) -> go.Figure | None:
    """Customers from RFM segment (rows, previous version) to RFM segment (columns, this version)."""
    if data.migration.is_empty():
        return None
    rows = data.migration
    present = set(rows["from_segment"]) | set(rows["to_segment"])
    known = [s for s in RFM_ORDER if s in present] + sorted(present - set(RFM_ORDER) - {"(new)", "(gone)"})
    sources = (["(new)"] if "(new)" in present else []) + [s for s in known if s in set(rows["from_segment"])]
    targets = [s for s in known if s in set(rows["to_segment"])] + (["(gone)"] if "(gone)" in present else [])
    cells = {(r["from_segment"], r["to_segment"]): r for r in rows.iter_rows(named=True)}
    counts = [[cells[(a, b)]["customers"] if (a, b) in cells else 0 for b in targets] for a in sources]
    shares = [[cells[(a, b)]["share_of_from"] if (a, b) in cells else 0.0 for b in targets] for a in sources]
    moved = rows.filter(pl.col("from_segment") != pl.col("to_segment"))["customers"].sum()
    total = rows["customers"].sum()
    fig = go.Figure(
        go.Heatmap(
            z=shares, x=targets, y=sources, text=[[f"{c:,}" if c else "" for c in row] for row in counts],
            texttemplate="%{text}", customdata=counts, colorscale=_HEAT, zmin=0, zmax=1, xgap=2, ygap=2,
            colorbar={"title": {"text": "share of row"}, "tickformat": ".0%", "thickness": 12},
            hovertemplate="from %{y}<br>to %{x}<br>%{customdata:,} customers (%{z:.1%} of the row)<extra></extra>",
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", title_text=f"from ({data.previous_as_of})", gridcolor="rgba(0,0,0,0)")
    fig.update_xaxes(title_text=f"to ({data.as_of})", tickangle=-30, gridcolor="rgba(0,0,0,0)")
    title = f"RFM segment migration: {moved:,} of {total:,} customers ({moved / (total or 1):.1%}) changed segment"
    return _layout(fig, title, height=170 + 32 * len(sources), margin={"l": 130, "r": 20, "t": 50, "b": 20})


def _lift_figure(data: VersionData) -> go.Figure | None:
    """Lift in purchase rate per action over the measured versions, with its 95% interval."""
    rows = data.lift.filter(pl.col("lift").is_not_null())
    if rows.is_empty():
        return None
    fig = go.Figure()
    for (action,), group in rows.partition_by("recommended_action", as_dict=True, maintain_order=True).items():
        fig.add_scatter(
            x=group["as_of"].to_list(), y=group["lift"].to_list(), mode="lines+markers", name=action,
            error_y={"type": "data", "symmetric": False,
                     "array": (group["lift_high"] - group["lift"]).to_list(),
                     "arrayminus": (group["lift"] - group["lift_low"]).to_list()},
            hovertemplate=f"{action}<br>version %{{x}}<br>lift %{{y:.1%}}<extra></extra>",
        )  # fmt: skip
    fig.add_hline(y=0, line={"color": "#94a3b8", "dash": "dot", "width": 1})
    fig.update_xaxes(title_text="version (as_of)")
    fig.update_yaxes(title_text="lift in purchase rate (treated - control)", tickformat=".0%")
    return _layout(fig, "Measured lift per action over versions", height=420)


def _churn_histogram(data: VersionData) -> go.Figure | None:
    """Buyers by churn risk, in bins of CHURN_BIN."""
    if data.churn_bins.is_empty():
        return None
    bins = data.churn_bins
    lows = bins["bin"].to_list()
    mean = data.mean_churn_risk
    fig = go.Figure(
        go.Bar(
            x=[b + CHURN_BIN / 2 for b in lows], y=bins["customers"].to_list(), width=CHURN_BIN * 0.92,
            marker_color=[_ACCENT if b >= 0.5 else _REVENUE_COLOR for b in lows],
            customdata=[[b, b + CHURN_BIN] for b in lows],
            hovertemplate="churn risk %{customdata[0]:.2f}-%{customdata[1]:.2f}<br>%{y:,} buyers<extra></extra>",
        )
    )  # fmt: skip
    if mean is not None:
        fig.add_vline(x=mean, line={"color": "#0f172a", "dash": "dash", "width": 1},
                      annotation_text=f"mean {mean:.2f}", annotation_position="top")  # fmt: skip
    high = sum(c for b, c in zip(lows, bins["customers"], strict=True) if b >= 0.5) / (bins["customers"].sum() or 1)
    fig.update_xaxes(title_text="churn risk (red: 0.5 or more)", range=[0, 1], dtick=0.1)
    fig.update_yaxes(title_text="buyers")
    return _layout(fig, f"Churn risk: {high:.0%} of buyers at 0.5 or more", height=400, showlegend=False)


def _calibration_figure(data: VersionData) -> go.Figure | None:
    """Mean predicted vs observed churn rate per decile of predicted risk on the holdout."""
    deciles = data.metrics.get("churn", {}).get("calibration_deciles") or []
    if not deciles:
        return None
    predicted = [d["mean_predicted"] for d in deciles]
    observed = [d["observed_rate"] for d in deciles]
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                    line={"dash": "dot", "color": "#94a3b8"}, hoverinfo="skip")  # fmt: skip
    fig.add_scatter(
        x=predicted, y=observed, mode="lines+markers", name="churn model (holdout deciles)",
        line={"color": _REVENUE_COLOR, "width": 2}, marker={"size": 9},
        customdata=[[i + 1, d["n"]] for i, d in enumerate(deciles)],
        hovertemplate="decile %{customdata[0]} (%{customdata[1]:,} buyers)<br>predicted %{x:.3f}<br>"
        "observed %{y:.3f}<extra></extra>",
    )  # fmt: skip
    error = data.metrics["churn"].get("max_decile_error")
    fig.update_xaxes(title_text="mean predicted churn risk", range=[-0.02, 1.02], dtick=0.2)
    fig.update_yaxes(title_text="observed churn rate", range=[-0.02, 1.02], dtick=0.2)
    title = "Calibration by decile" + (f": largest gap {error:.3f}" if error is not None else "")
    return _layout(fig, title, height=400)


# ---------------------------------------------------------------------------- Dagster UI metadata


def sizes_markdown(data: VersionData) -> str:
    """The RFM segment sizes and value shares as a markdown table (the asset's preview)."""
    rows = _ordered(_segment_rows(data, "rfm_segment"), "segment", RFM_ORDER)
    lines = ["| RFM segment | customers | share | revenue share |", "|---|---:|---:|---:|"]
    lines += [f"| {r['segment']} | {r['customers']:,} | {_pct(r['customer_share'])} | {_pct(r['revenue_share'])} |"
              for r in rows.iter_rows(named=True)]  # fmt: skip
    return "\n".join(lines)


def metadata_images(data: VersionData) -> dict[str, str]:
    """Markdown PNG images (data URIs, no browser needed) of the segment sizes and the Pareto curve."""
    from matplotlib.figure import Figure  # imported here: slow to import and only needed for the UI images

    images = {}
    rows = _ordered(_segment_rows(data, "rfm_segment"), "segment", RFM_ORDER)
    if not rows.is_empty():
        fig = Figure(figsize=(6.4, 3.6), dpi=80, layout="constrained")
        ax = fig.add_subplot()
        ys = list(range(rows.height))
        ax.barh([y - 0.2 for y in ys], rows["customer_share"].to_list(), height=0.4, color=_CUSTOMERS_COLOR,
                label="customers")  # fmt: skip
        ax.barh([y + 0.2 for y in ys], rows["revenue_share"].fill_null(0).to_list(), height=0.4, color=_REVENUE_COLOR,
                label="revenue (12 months)")  # fmt: skip
        ax.set_yticks(ys, rows["segment"].to_list(), fontsize=9)
        ax.invert_yaxis()
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
        ax.set_title(f"RFM segments {data.as_of}: share of customers and revenue", fontsize=10)
        ax.legend(fontsize=8, frameon=False, loc="lower right")
        _tidy(ax)
        images["segment sizes chart"] = _png_markdown(fig, "segment sizes")
    if not data.pareto.is_empty():
        fig = Figure(figsize=(5.2, 3.6), dpi=80, layout="constrained")
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], linestyle=":", color=_CUSTOMERS_COLOR)
        curve_x, curve_y = data.pareto["customer_share"], data.pareto["revenue_share"].fill_null(0)
        ax.plot([0, *curve_x], [0, *curve_y], color=_REVENUE_COLOR, lw=2)
        top20 = data.pareto["top20_revenue_share"][0]
        if top20 is not None:
            ax.plot([0.2, 0.2, 0], [0, top20, top20], linestyle="--", color=_ACCENT, lw=1)
            ax.plot([0.2], [top20], "o", color=_ACCENT)
            ax.annotate(f"top 20%: {top20:.1%} of revenue", (0.2, top20), xytext=(0.3, top20 - 0.12), color=_ACCENT,
                        fontsize=9)  # fmt: skip
        ax.set_xlim(0, 1), ax.set_ylim(0, 1.02)
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
        ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
        ax.set_xlabel("share of buyers", fontsize=9)
        ax.set_ylabel("share of 12-month revenue", fontsize=9)
        ax.set_title(f"Pareto curve {data.as_of}", fontsize=10)
        _tidy(ax)
        images["pareto chart"] = _png_markdown(fig, "pareto")
    return images


def _tidy(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.grid(axis="x", color="#e2e8f0")
    ax.set_axisbelow(True)


def _png_markdown(fig: Any, alt: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode('ascii')})"


# ---------------------------------------------------------------------------------------- helpers


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _money(value: float | None) -> str:
    if value is None:
        return "–"
    for limit, unit, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(value) >= limit:
            return f"{value / unit:,.1f}{suffix}"
    return f"{value:,.0f}"


_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f1f5f9;color:#0f172a;font:14px/1.5 system-ui,-apple-system,\
'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}
main{max-width:1360px;margin:0 auto;padding:28px 32px 40px}
header{margin-bottom:8px}
h1{font-size:26px;margin:0 0 4px;font-weight:650;letter-spacing:-.01em}
h2{font-size:19px;margin:0 0 2px;font-weight:620}
.meta{color:#475569;margin:0 0 16px}
.kpis{display:grid;grid-template-columns:repeat(6,1fr);gap:12px}
.kpi{background:#fff;border:1px solid #e2e8f0;border-radius:10px;padding:12px 14px}
.kpi .label{color:#64748b;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.kpi .value{font-size:24px;font-weight:650;margin:2px 0}
.kpi .sub{color:#64748b;font-size:12px}
section{background:#fff;border:1px solid #e2e8f0;border-radius:12px;padding:18px 20px;margin-top:18px}
.lead{color:#475569;margin:0 0 12px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:18px;align-items:start;margin-bottom:12px}
.cell{min-width:0}
.chart{min-width:0}
.chart.wide{margin-bottom:12px}
.narrow{max-width:760px}
.note{background:#f8fafc;border:1px dashed #cbd5e1;border-radius:8px;padding:14px;color:#475569}
table{border-collapse:collapse;width:100%;font-size:13px}
caption{caption-side:bottom;text-align:left;color:#64748b;font-size:12px;padding-top:6px}
th,td{padding:6px 8px;border-bottom:1px solid #e2e8f0;text-align:left;white-space:nowrap}
th{color:#475569;font-weight:600;background:#f8fafc}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:hover{background:#f8fafc}
footer{color:#64748b;font-size:12px;margin-top:18px}
@media (max-width:1000px){.grid{grid-template-columns:1fr}.kpis{grid-template-columns:repeat(3,1fr)}}
"""
