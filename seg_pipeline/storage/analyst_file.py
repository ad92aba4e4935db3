"""The reading half of the analyst DuckDB file (`warehouse.py` publishes it): named, read-only queries.

Opens the file read-only, like any analyst, so it never blocks a publish or another reader. A table
left out of the file (a mart not built) reads as an empty frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import duckdb
import polars as pl


class AnalystFileReader:
    """Reads of one analyst file over one read-only connection (see `open_analyst_file`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._tables = {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}

    def published_versions(self) -> list[date]:
        """The versions whose customers are in the file, oldest first (segment_versions lists every version ever
        built; older ones leave customer_segments: SEG_KEEP_VERSIONS)."""
        if "segment_versions" not in self._tables:
            return []
        sql = "select as_of from segment_versions where as_of in (select as_of from customer_segments) order by as_of"
        return [row[0] for row in self._con.execute(sql).fetchall()]

    def version_frames(self, as_of: date, *, churn_bin: float, top: int) -> dict[str, pl.DataFrame]:
        """The rows of version `as_of` the report shows, by name: `version` (its segment_versions row),
        `mean_churn_risk` (one row, over buyers), `summary`, `pareto` (by percentile), `rfm_grid`, `migration`
        (RFM segments), `churn_bins` (lower edges `churn_bin` apart), `tier_lifecycle`, `personas`,
        `prospects`, `watchlist`, `top_clv` and `common_reasons` (the first `top` of each), and `lift` (the
        action_lift rows of every version up to `as_of`, by as_of)."""
        last_bin = round(1 / churn_bin) - 1
        queries = {
            "version": ("segment_versions", "select * from segment_versions where as_of = ?"),
            "mean_churn_risk": (
                "customer_segments",
                "select avg(churn_risk) as mean_churn_risk from customer_segments where as_of = ?",
            ),
            "summary": ("segment_summary", "select * from segment_summary where as_of = ?"),
            "pareto": ("tier_pareto", "select * from tier_pareto where as_of = ? order by percentile"),
            "rfm_grid": (
                "customer_segments",
                "select r_score, f_score, any_value(rfm_segment) as rfm_segment, count(*) as customers "
                "from customer_segments where as_of = ? and r_score is not null group by all order by all",
            ),
            "migration": (
                "segment_migration",
                "select previous_as_of, from_segment, to_segment, customers, share_of_from from segment_migration "
                "where as_of = ? and segment_type = 'rfm_segment'",
            ),
            "churn_bins": (
                "customer_segments",
                f"select least(floor(churn_risk / {churn_bin}), {last_bin}) * {churn_bin} as bin, "
                "count(*) as customers from customer_segments "
                "where as_of = ? and churn_risk is not null group by all order by bin",
            ),
            "tier_lifecycle": (
                "customer_segments",
                "select coalesce(value_tier, '(none)') as value_tier, lifecycle_stage, count(*) as customers "
                "from customer_segments where as_of = ? group by all",
            ),
            "personas": (
                "cluster_profiles",
                "select cluster_label, customers, customer_share, revenue_share, distinguishing_features "
                "from cluster_profiles where as_of = ? and distinguishing_features is not null "
                "order by customers desc, cluster_label",
            ),
            "prospects": (
                "customer_segments",
                "select cluster_label, count(*) as customers, avg(purchase_propensity) as mean_propensity "
                "from customer_segments where as_of = ? and lifecycle_stage = 'prospect' "
                "group by all order by customers desc, cluster_label",
            ),
            "watchlist": (
                "churn_watchlist",
                "select watch_rank, customer_id, value_tier, rfm_segment, lifecycle_stage, churn_risk, spend_365d, "
                "revenue_at_risk, recommended_action, churn_reasons from churn_watchlist where as_of = ? "
                f"order by watch_rank limit {top:d}",
            ),
            "top_clv": (
                "customer_segments",
                "select customer_id, value_tier, clv, clv_low, clv_high, p_alive, expected_purchases_365d, "
                "next_order_date from customer_segments where as_of = ? and clv is not null "
                f"order by clv desc, customer_id limit {top:d}",
            ),
            "common_reasons": (  # each distinct reason counted, then its numbers masked once
                "customer_segments",
                "select regexp_replace(reason, '[0-9]+', 'N', 'g') as reason, sum(customers)::bigint as customers "
                "from (select reason, count(*) as customers from ("
                "select unnest(string_split(churn_reasons, '; ')) as reason from customer_segments "
                "where as_of = ? and churn_risk >= 0.5 and churn_reasons is not null) group by reason) "
                f"group by all order by customers desc, reason limit {top:d}",
            ),
            "lift": ("action_lift", "select * from action_lift where as_of <= ? order by as_of, recommended_action"),
        }
        return {name: self._frame(table, sql, as_of) for name, (table, sql) in queries.items()}

    def _frame(self, table: str, sql: str, as_of: date) -> pl.DataFrame:
        return self._con.sql(sql, params=[as_of]).pl() if table in self._tables else pl.DataFrame()


@contextmanager
def open_analyst_file(path: str | Path) -> Iterator[AnalystFileReader]:
    """A reader of the analyst file at `path`, open read-only for the `with` block."""
    with duckdb.connect(str(path), read_only=True) as con:
        yield AnalystFileReader(con)


def published_versions(path: str | Path) -> list[date]:
    """The versions of the analyst file at `path` a report can be made of, oldest first."""
    with open_analyst_file(path) as reader:
        return reader.published_versions()
