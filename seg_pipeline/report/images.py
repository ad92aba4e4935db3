"""PNG images of the headline charts for the Dagster UI, which cannot run JavaScript: markdown data URIs."""

from __future__ import annotations

import base64
import io
from typing import Any

from seg_pipeline.report.data import RFM_ORDER, VersionData, segment_rows
from seg_pipeline.report.figures import ACCENT, CUSTOMERS_COLOR, REVENUE_COLOR


def metadata_images(data: VersionData) -> dict[str, str]:
    """Markdown PNG images (data URIs, no browser needed) of the segment sizes and the Pareto curve."""
    from matplotlib.figure import Figure  # imported here: slow to import and only needed for the UI images

    images = {}
    rows = segment_rows(data, "rfm_segment", RFM_ORDER)
    if not rows.is_empty():
        fig = Figure(figsize=(6.4, 3.6), dpi=80, layout="constrained")
        ax = fig.add_subplot()
        ys = list(range(rows.height))
        ax.barh([y - 0.2 for y in ys], rows["customer_share"].to_list(), height=0.4, color=CUSTOMERS_COLOR,
                label="customers")  # fmt: skip
        ax.barh([y + 0.2 for y in ys], rows["revenue_share"].fill_null(0).to_list(), height=0.4, color=REVENUE_COLOR,
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
        ax.plot([0, 1], [0, 1], linestyle=":", color=CUSTOMERS_COLOR)
        curve_x, curve_y = data.pareto["customer_share"], data.pareto["revenue_share"].fill_null(0)
        ax.plot([0, *curve_x], [0, *curve_y], color=REVENUE_COLOR, lw=2)
        top20 = data.pareto["top20_revenue_share"][0]
        if top20 is not None:
            ax.plot([0.2, 0.2, 0], [0, top20, top20], linestyle="--", color=ACCENT, lw=1)
            ax.plot([0.2], [top20], "o", color=ACCENT)
            ax.annotate(f"top 20%: {top20:.1%} of revenue", (0.2, top20), xytext=(0.3, top20 - 0.12), color=ACCENT,
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

