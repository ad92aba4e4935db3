"""The HTML report: its content, that it is self-contained, that it renders in a real browser, the asset."""

import base64
import json
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
from plotly.offline import get_plotlyjs

from seg_pipeline import report
from seg_pipeline.cli import main
from seg_pipeline.defs.partitions import daily_partitions
from seg_pipeline.defs.report import report_assets
from seg_pipeline.defs.resources import build_resources
from seg_pipeline.storage import warehouse
from seg_pipeline.storage.sql_models import SQL_DIR, load_sql_models
from seg_pipeline.storage.store import WorkingStore
from seg_pipeline_tests.conftest import END, make_settings

PREVIOUS = END - timedelta(days=1)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # the report must need no network at all
]  # fmt: skip
# Injected at the top of <head>: collects uncaught errors and console.error calls, and writes
# them into the DOM after load so that --dump-dom shows them.
ERROR_COLLECTOR = """<script>
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message)); });
var __consoleError = console.error;
console.error = function () { window.__errors.push(Array.from(arguments).join(' ')); \
__consoleError.apply(console, arguments); };
window.addEventListener('load', function () { setTimeout(function () {
  var out = document.createElement('pre'); out.id = 'js-errors'; out.textContent = JSON.stringify(window.__errors);
  document.body.appendChild(out);
}, 300); });
</script>"""


@pytest.fixture(scope="module")
def page(published) -> str:
    return report.render_report(published[0].warehouse_path, END)


def chart_ids_in(html: str) -> list[str]:
    return re.findall(r'<div id="(chart-[a-z-]+)" class="plotly-graph-div', html)


def without_plotlyjs(html: str) -> str:
    bundle = get_plotlyjs()
    assert html.count(bundle) == 1, "plotly.js must be inlined exactly once"
    return html.replace(bundle, "")


def test_report_holds_every_chart_and_the_version(page, published):
    assert chart_ids_in(page) == list(report.CHART_IDS)
    data = report.load_version(published[0].warehouse_path, END)
    assert data.previous_as_of == PREVIOUS
    assert data.version["segment_version"] in page
    assert f"{data.version['customers']:,}" in page
    assert "migration-note" not in page
    top20 = data.metrics["value_tiers"]["top20_revenue_share"]
    assert f"{top20:.1%}" in page  # the 80/20 check, in the header and on the Pareto curve
    for label in ("churn model", "recency baseline", "BG/NBD baseline"):
        assert label in page
    # predictions: calibration and next-order error per window, CLV intervals of the top customers, reasons
    window = data.metrics["predictions"]["windows"][0]
    assert f"{window['window_days']} days from {window['cut']}" in page
    assert f"{window['next_order_mae_days']:,.1f}" in page and f"{window['rhythm_baseline_mae_days']:,.1f}" in page
    assert data.top_clv.height == 10 and data.top_clv["customer_id"][0] in page
    assert not data.common_reasons.is_empty() and data.common_reasons["reason"][0] in page
    assert "R is scored against the churn horizon of 90 days" in page
    actions = data.metrics["actions"]
    assert f"contact cost of {actions['contact_cost']:,.2f} (SEG_CONTACT_COST)" in page
    for action, shares in actions["by_action"].items():  # every action with its shares of customers and CLV
        cells = [action, f"{shares['customers']:,}", f"{shares['customer_share']:.1%}", f"{shares['clv_share']:.1%}"]
        assert "".join(f"<td class='{'num' if i else ''}'>{c}</td>" for i, c in enumerate(cells)) in page


def test_report_is_self_contained(page):
    rest = without_plotlyjs(page)
    assert not re.search(r"https?://", rest), "no URL outside the inlined plotly.js bundle"
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=|<link\b|@import|url\(", rest, re.IGNORECASE)


def test_first_version_notes_there_is_no_migration(published):
    html = report.render_report(published[0].warehouse_path, PREVIOUS)
    assert "migration-note" in html
    assert chart_ids_in(html) == [c for c in report.CHART_IDS if c != "chart-migration"]


def test_latest_version_by_default_and_unknown_versions_fail(published, tmp_path):
    path = report.write_report(published[0].warehouse_path, tmp_path)
    assert path == tmp_path / f"segments-{END}.html"
    assert chart_ids_in(path.read_text(encoding="utf-8")) == list(report.CHART_IDS)
    with pytest.raises(report.ReportError, match=f"no version {END + timedelta(days=1)}"):
        report.render_report(published[0].warehouse_path, END + timedelta(days=1))
    with pytest.raises(report.ReportError, match="no analyst file"):
        report.render_report(tmp_path / "missing.duckdb")


def chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_report_renders_in_headless_chromium(page, tmp_path):
    html_file = tmp_path / "report.html"
    html_file.write_text(page.replace("<head>", "<head>" + ERROR_COLLECTOR, 1), encoding="utf-8")
    dumped = chromium(html_file, tmp_path, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    errors = re.search(r'<pre id="js-errors">(.*?)</pre>', dom, re.DOTALL)
    assert errors, "the page's load handler never ran"
    assert json.loads(errors.group(1).replace("&quot;", '"').replace("&amp;", "&")) == []
    assert not re.search(r"Uncaught|ERROR:CONSOLE", dumped.stderr)
    starts = {chart: dom.find(f'id="{chart}"') for chart in report.CHART_IDS}
    assert all(i >= 0 for i in starts.values()), starts
    ends = sorted(starts.values())[1:] + [len(dom)]
    for chart, start in starts.items():
        div = dom[start : min(e for e in ends if e > start)]
        assert 'class="main-svg"' in div, f"{chart} was not drawn by plotly"

    shot = tmp_path / "report.png"
    taken = chromium(html_file, tmp_path, f"--screenshot={shot}", "--window-size=1400,4000")
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_segment_report_asset_writes_the_file_and_png_metadata(published):
    settings, instance = published
    result = dg.materialize(
        report_assets(daily_partitions(settings.partition_start)),
        partition_key=END.isoformat(), resources=build_resources(settings), instance=instance,
    )  # fmt: skip
    assert result.success
    metadata = result.asset_materializations_for_node("segment_report")[0].metadata
    path = Path(settings.warehouse_path).parent / "reports" / f"segments-{END}.html"
    assert path.exists() and metadata["dagster/uri"].value == path.as_uri()
    assert "| Champions |" in metadata["segment sizes"].value
    for name in ("segment sizes chart", "pareto chart"):
        image = re.fullmatch(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", metadata[name].value)
        assert image, name
        png = base64.b64decode(image.group(1))
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(png) < 60_000


def test_a_backfill_reports_only_the_versions_the_file_keeps(published, tmp_path):
    """A version older than SEG_KEEP_VERSIONS keeps is left out of the file; its report is skipped, not failed."""
    settings = make_settings(tmp_path, Path(published[0].landing_dir))
    marts = {m.name: m.description for m in load_sql_models(SQL_DIR)}
    store = WorkingStore.open_existing(published[0].store_uri)
    warehouse.publish(store, settings.warehouse_path, [PREVIOUS, END], marts, keep_versions=1)
    assert report.published_versions(settings.warehouse_path) == [END]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            report_assets(daily_partitions(settings.partition_start)), instance=instance,
            resources=build_resources(settings),
            tags={"dagster/asset_partition_range_start": str(PREVIOUS), "dagster/asset_partition_range_end": str(END)},
        )  # fmt: skip
    assert result.success
    assert sorted(p.name for p in (tmp_path / "out" / "reports").iterdir()) == [f"segments-{END}.html"]
    with pytest.raises(report.ReportError, match="SEG_KEEP_VERSIONS"):
        report.load_version(settings.warehouse_path, PREVIOUS)


def test_cli_report_prints_the_path(published, tmp_path, monkeypatch, capsys):
    settings = published[0]
    monkeypatch.setenv("SEG_LANDING_DIR", settings.landing_dir)
    monkeypatch.setenv("SEG_WAREHOUSE_PATH", settings.warehouse_path)
    monkeypatch.setenv("SEG_PARTITION_START", settings.partition_start)
    assert main(["report", "--as-of", PREVIOUS.isoformat(), "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / f"segments-{PREVIOUS}.html")
    assert main(["report", "--as-of", "2020-01-01", "--out", str(tmp_path)]) == 1
    assert "has no version 2020-01-01" in capsys.readouterr().err
