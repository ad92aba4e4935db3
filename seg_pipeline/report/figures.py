"""The report's plotly figures, one function per chart: each takes a `VersionData` and returns a figure, or None
when the version has no data for it."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl

from seg_pipeline.core.lifecycle import LIFECYCLE_STAGES
from seg_pipeline.core.value_tiers import VALUE_TIERS
from seg_pipeline.report.data import CHURN_BIN, RFM_ORDER, VersionData, segment_rows

TIER_ORDER = (*VALUE_TIERS, "(none)")

CUSTOMERS_COLOR = "#94a3b8"
REVENUE_COLOR = "#2563eb"
ACCENT = "#dc2626"
_TIER_COLORS = {"platinum": "#7c3aed", "gold": "#f59e0b", "silver": "#64748b", "bronze": "#b45309"}
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
_HEAT = [[0.0, "#f8fafc"], [0.15, "#dbeafe"], [0.5, "#60a5fa"], [1.0, "#1e3a8a"]]


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


def shares_figure(data: VersionData, segment_type: str, order: tuple[str, ...] | None, title: str) -> go.Figure | None:
    """Horizontal bars: share of customers and share of 12-month revenue of each segment."""
    rows = segment_rows(data, segment_type, order)
    if rows.is_empty():
        return None
    names = rows["segment"].to_list()
    fig = go.Figure()
    for column, label, color in (("customer_share", "customers", CUSTOMERS_COLOR),
                                 ("revenue_share", "revenue (12 months)", REVENUE_COLOR)):  # fmt: skip
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


def rfm_heatmap(data: VersionData) -> go.Figure | None:
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


def pareto_figure(data: VersionData) -> go.Figure | None:
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
        x=x, y=y, mode="lines", name="revenue share", line={"color": REVENUE_COLOR, "width": 3},
        hovertemplate="top %{x:.0%} of buyers<br>%{y:.1%} of revenue<extra></extra>",
    )  # fmt: skip
    if top20 is not None:
        fig.add_scatter(x=[0.2], y=[top20], mode="markers", name="top 20%", showlegend=False,
                        marker={"color": ACCENT, "size": 11},
                        hovertemplate="top 20%: %{y:.1%} of revenue<extra></extra>")  # fmt: skip
        fig.add_shape(type="line", x0=0.2, x1=0.2, y0=0, y1=top20, line={"color": ACCENT, "dash": "dash", "width": 1})
        fig.add_shape(type="line", x0=0, x1=0.2, y0=top20, y1=top20, line={"color": ACCENT, "dash": "dash", "width": 1})
        fig.add_annotation(x=0.2, y=top20, text=f"<b>top 20% of buyers bring {top20:.1%} of revenue</b>",
                           showarrow=True, arrowhead=0, ax=60, ay=30, xanchor="left",
                           font={"color": ACCENT})  # fmt: skip
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


def tier_revenue_figure(data: VersionData) -> go.Figure | None:
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
    for values, label, color in ((customer_share, "buyers", CUSTOMERS_COLOR),
                                 (revenue_share, "revenue (12 months)", REVENUE_COLOR)):  # fmt: skip
        fig.add_bar(x=names, y=values, name=label, marker_color=color, text=[f"{s:.1%}" for s in values],
                    textposition="outside", cliponaxis=False,
                    hovertemplate="%{x}: %{y:.1%} of " + label + "<extra></extra>")  # fmt: skip
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(gridcolor="rgba(0,0,0,0)")
    return _layout(fig, "Value tiers: share of buyers and of 12-month revenue", height=420, barmode="group", bargap=0.3)


def _share_heatmap(
    shares: list[list[float]], counts: list[list[int]], x: list[str], y: list[str], whole: str, cell: str
) -> go.Figure:
    """A heatmap coloured by each cell's share of its `whole` ("tier", "row"), labelled with its customer count."""
    return go.Figure(
        go.Heatmap(
            z=shares, x=x, y=y, text=[[f"{c:,}" if c else "" for c in row] for row in counts],
            texttemplate="%{text}", customdata=counts, colorscale=_HEAT, zmin=0, zmax=1, xgap=2, ygap=2,
            colorbar={"title": {"text": f"share of {whole}"}, "tickformat": ".0%", "thickness": 12},
            hovertemplate=f"{cell}<br>%{{customdata:,}} customers (%{{z:.1%}} of the {whole})<extra></extra>",
        )
    )  # fmt: skip


def tier_lifecycle_figure(data: VersionData) -> go.Figure | None:
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
    fig = _share_heatmap(share, z, stages, tiers, "tier", "%{y} x %{x}")
    fig.update_yaxes(autorange="reversed", gridcolor="rgba(0,0,0,0)")
    fig.update_xaxes(side="top", gridcolor="rgba(0,0,0,0)")
    title = "Value tier (rows) x lifecycle stage (columns): customers, coloured by share of the tier"
    return _layout(fig, title, height=360, margin={"l": 90, "r": 20, "t": 80, "b": 20})


def migration_figure(data: VersionData) -> go.Figure | None:
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
    fig = _share_heatmap(shares, counts, targets, sources, "row", "from %{y}<br>to %{x}")
    fig.update_yaxes(autorange="reversed", title_text=f"from ({data.previous_as_of})", gridcolor="rgba(0,0,0,0)")
    fig.update_xaxes(title_text=f"to ({data.as_of})", tickangle=-30, gridcolor="rgba(0,0,0,0)")
    title = f"RFM segment migration: {moved:,} of {total:,} customers ({moved / (total or 1):.1%}) changed segment"
    return _layout(fig, title, height=170 + 32 * len(sources), margin={"l": 130, "r": 20, "t": 50, "b": 20})


def lift_figure(data: VersionData) -> go.Figure | None:
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


def churn_histogram(data: VersionData) -> go.Figure | None:
    """Buyers by churn risk, in bins of CHURN_BIN."""
    if data.churn_bins.is_empty():
        return None
    bins = data.churn_bins
    lows = bins["bin"].to_list()
    mean = data.mean_churn_risk
    fig = go.Figure(
        go.Bar(
            x=[b + CHURN_BIN / 2 for b in lows], y=bins["customers"].to_list(), width=CHURN_BIN * 0.92,
            marker_color=[ACCENT if b >= 0.5 else REVENUE_COLOR for b in lows],
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


def calibration_figure(data: VersionData) -> go.Figure | None:
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
        line={"color": REVENUE_COLOR, "width": 2}, marker={"size": 9},
        customdata=[[i + 1, d["n"]] for i, d in enumerate(deciles)],
        hovertemplate="decile %{customdata[0]} (%{customdata[1]:,} buyers)<br>predicted %{x:.3f}<br>"
        "observed %{y:.3f}<extra></extra>",
    )  # fmt: skip
    error = data.metrics["churn"].get("max_decile_error")
    fig.update_xaxes(title_text="mean predicted churn risk", range=[-0.02, 1.02], dtick=0.2)
    fig.update_yaxes(title_text="observed churn rate", range=[-0.02, 1.02], dtick=0.2)
    title = "Calibration by decile" + (f": largest gap {error:.3f}" if error is not None else "")
    return _layout(fig, title, height=400)

