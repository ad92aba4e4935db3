"""The report page: HTML sections, tables and CSS around the figures, written as ONE self-contained file.

plotly.js and the styles are inlined, nothing is fetched from the network; every chart is a plotly figure in a
div with a stable id (`CHART_IDS`).
"""

from __future__ import annotations

import html
import os
from datetime import date
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
from plotly.offline import get_plotlyjs

from seg_pipeline.report import figures
from seg_pipeline.report.data import RFM_ORDER, VersionData, load_version, segment_rows

#: the campaign-tracking chart, shown once a version has been measured (so not in every report)
LIFT_CHART_ID = "chart-action-lift"
#: the id of every chart div a full report holds (migration only when there is a previous version)
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
_PLOT_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
_BASELINES = (("model", "churn model"), ("recency", "recency baseline"), ("bgnbd", "BG/NBD baseline"))


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
    title = f"Customer segments {data.as_of.isoformat()}"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head>"
        f"<body><main>{_header(data, title)}{''.join(_sections(data))}"
        f"<footer>Read from the analyst file's tables customer_segments, segment_versions, segment_summary, "
        f"segment_migration, tier_pareto, cluster_profiles, churn_watchlist (as_of = {data.as_of}) and action_lift."
        "</footer></main></body></html>\n"
    )


def _header(data: VersionData, title: str) -> str:
    v = data.version
    return (
        f"<header><h1>{_e(title)}</h1><p class='meta'>version <b>{_e(v['segment_version'])}</b>"
        f" &middot; created {_e(str(v.get('created_at', ''))[:19])} UTC"
        f" &middot; previous version {_e(data.previous_as_of or 'none')}"
        f" &middot; run {_e(str(v.get('run_id', ''))[:8])}</p>{_kpis(data)}</header>"
    )


def _sections(data: VersionData) -> list[str]:
    """The page's sections, in order."""
    m, previous = data.metrics, data.previous_as_of
    return [
        _section(
            "Segments",
            "RFM segments and personas: their share of customers beside their share of 12-month revenue.",
            _grid(_figure_div("chart-segment-sizes",
                              figures.shares_figure(data, "rfm_segment", RFM_ORDER, "RFM segments")),
                  _figure_div("chart-cluster-sizes", figures.shares_figure(data, "cluster_label", None, "Personas"))),
            _grid(_figure_div("chart-rfm-heatmap", figures.rfm_heatmap(data)), _summary_table(data)),
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
            _grid(_figure_div("chart-pareto", figures.pareto_figure(data)),
                  _figure_div("chart-tier-revenue", figures.tier_revenue_figure(data))),
            _figure_div("chart-tier-lifecycle", figures.tier_lifecycle_figure(data), wide=True),
        ),
        _section(
            "Movement",
            f"Customers by RFM segment in the previous version ({previous}) and in this one."
            if previous else "Customers moving between RFM segments from the previous version.",
            _figure_div("chart-migration", figures.migration_figure(data), wide=True) if previous else _note(
                "migration-note", "There is no previous version in this file, so there is no migration to show yet."),
        ),  # fmt: skip
        _section(
            "Churn risk",
            f"P(no completed order in the {m.get('churn', {}).get('horizon_days', '?')} days after the as-of date), "
            "for customers with at least one order. Calibration and scores on the model's holdout "
            f"({m.get('churn', {}).get('holdout_as_of', '?')}).",
            _grid(_figure_div("chart-churn-histogram", figures.churn_histogram(data)),
                  _figure_div("chart-calibration", figures.calibration_figure(data))),
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
            _figure_div(LIFT_CHART_ID, figures.lift_figure(data), wide=True) if not data.lift.is_empty() else "",
            _lift_table(data),
        ),
    ]  # fmt: skip

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
    rows = segment_rows(data, "rfm_segment", RFM_ORDER)
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


# ---------------------------------------------------------------------------- Dagster UI metadata


def sizes_markdown(data: VersionData) -> str:
    """The RFM segment sizes and value shares as a markdown table (the asset's preview)."""
    rows = segment_rows(data, "rfm_segment", RFM_ORDER)
    lines = ["| RFM segment | customers | share | revenue share |", "|---|---:|---:|---:|"]
    lines += [f"| {r['segment']} | {r['customers']:,} | {_pct(r['customer_share'])} | {_pct(r['revenue_share'])} |"
              for r in rows.iter_rows(named=True)]  # fmt: skip
    return "\n".join(lines)


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
