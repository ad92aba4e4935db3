"""SQL marts kept as files: one SELECT per `.sql` file, named after the table it makes.

A model's SELECT builds ONE version of its table: it reads the as-of date with DuckDB's
`getvariable('as_of')` and returns rows whose `as_of` column equals it (a model measuring
earlier versions, such as `action_lift`, may return rows of as_of before it, never after).
It runs over the working store's tables (`WorkingStore.connect()`); building version D then
replaces the rows of the mart's Delta table with as_of = D or an as_of the SELECT returns by the
SELECT's rows, in one commit (the table is created from the SELECT the first time; columns added
to a SELECT later are added to the table), so re-building D replaces what it made and leaves the
other versions alone. Settings a model reads (`getvariable('churn_horizon_days')`) are set
beside as_of.

The leading `--` comment of a file is its description (what the table is, its grain).
A model's dependencies are the real tables its SELECT reads (CTE names excluded), found by
sqlglot's scope analysis; models are ordered so that a model reading another comes after it.
Every error is one line naming the file, e.g. `dbt_like_sql/x.sql: Binder Error: ... (line 7)`.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import traverse_scope

from seg_pipeline.storage.store import WorkingStore

#: The shipped marts; the caller may point elsewhere (SEG_SQL_DIR).
SQL_DIR = Path(__file__).resolve().parents[2] / "dbt_like_sql"

_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_LINE = re.compile(r"^LINE (\d+):", re.MULTILINE)
_ROWS = "_sql_model_rows"  # temp table holding the SELECT's rows while a version is replaced


class SqlModelError(ValueError):
    """A model file cannot be loaded or built; the message is one line naming the file."""


@dataclass(frozen=True)
class SqlModel:
    name: str  # the table it makes = the file's stem
    path: Path
    sql: str  # the file's text, run as is
    deps: tuple[str, ...]  # tables it reads, sorted
    description: str  # its leading comment

    @property
    def label(self) -> str:
        """How errors name the file: `<folder>/<file>.sql`."""
        return f"{self.path.parent.name}/{self.path.name}"


def sql_dependencies(sql: str) -> tuple[str, ...]:
    """The tables a DuckDB SELECT reads (joins, subqueries, set operations), sorted; no CTEs or table functions."""
    tables: set[str] = set()
    for statement in sqlglot.parse(sql, dialect="duckdb"):
        if statement is None:
            continue
        for scope in traverse_scope(statement):
            tables.update(
                source.name
                for source in scope.sources.values()
                if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier)
            )
    return tuple(sorted(tables))


def _description(sql: str) -> str:
    lines = []
    for line in sql.strip().splitlines():
        if not line.startswith("--"):
            break
        lines.append(line.removeprefix("--").strip())
    return "\n".join(lines).strip()


def _error(label: str, error: Exception) -> SqlModelError:
    """One line: the file, the first line of the message, and the file line it points at."""
    text = str(error)
    where = _LINE.search(text)
    suffix = f" (line {where.group(1)})" if where else ""
    return SqlModelError(f"{label}: {text.strip().splitlines()[0]}{suffix}")


def load_sql_model(path: Path) -> SqlModel:
    """Read one `.sql` file: a single SELECT whose stem is a plain lower-case identifier."""
    label = f"{path.parent.name}/{path.name}"
    if not _NAME.fullmatch(path.stem):
        raise SqlModelError(f"{label}: the file name must be a lower-case table name ([a-z_][a-z0-9_]*)")
    sql = path.read_text(encoding="utf-8")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise _error(label, error) from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise SqlModelError(f"{label}: expected exactly one SELECT statement, found {len(statements)} statement(s)")
    try:
        deps = sql_dependencies(sql)
    except SqlglotError as error:
        raise SqlModelError(f"{label}: cannot read its tables: {str(error).splitlines()[0]}") from None
    return SqlModel(name=path.stem, path=path, sql=sql, deps=deps, description=_description(sql))


def load_sql_models(folder: Path) -> list[SqlModel]:
    """Every `*.sql` model of `folder`, each after the models it reads (ties by name)."""
    models = {model.name: model for model in map(load_sql_model, sorted(Path(folder).glob("*.sql")))}
    sorter = graphlib.TopologicalSorter({name: [d for d in m.deps if d in models] for name, m in models.items()})
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        cycle = " reads ".join(models[name].label for name in reversed(error.args[1]))
        raise SqlModelError(f"dependency cycle between SQL models: {cycle}") from None
    ordered: list[SqlModel] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        ordered += [models[name] for name in ready]
        sorter.done(*ready)
    return ordered


def build_sql_model(
    con: duckdb.DuckDBPyConnection, model: SqlModel, as_of: date, variables: Mapping[str, int] | None = None
) -> pl.DataFrame:
    """The rows of version `as_of` (and of the earlier versions it returns) of the model's table: its SELECT run
    over the store's tables in `con` (`WorkingStore.connect()`). `variables`: integer settings the SQL reads with
    getvariable()."""
    try:
        con.execute(f"set variable as_of = date '{as_of.isoformat()}'")
        for name, value in (variables or {}).items():
            con.execute(f"set variable {name} = {int(value)}")
        con.execute(f"create or replace temp table {_ROWS} as {model.sql}")
        columns = dict(con.execute(f"select column_name, column_type from (describe {_ROWS})").fetchall())
        if "as_of" not in columns:
            raise SqlModelError(f"{model.label}: the SELECT must return an as_of column (getvariable('as_of'))")
        [(stray,)] = con.execute(
            f"select count(*) from {_ROWS} where as_of is null or as_of > getvariable('as_of')"
        ).fetchall()
        if stray:
            raise SqlModelError(
                f"{model.label}: {stray} row(s) have as_of null or after getvariable('as_of') = {as_of}"
            )
        # Delta has no 128-bit integers: sums of integers (HUGEINT in DuckDB) are stored as BIGINT
        wide = [f'"{c}"::bigint as "{c}"' for c, t in columns.items() if t in ("HUGEINT", "UHUGEINT")]
        replace = f"replace ({', '.join(wide)})" if wide else ""
        rows = con.sql(f"select * {replace} from {_ROWS}").pl()
        con.execute(f"drop table {_ROWS}")
    except duckdb.Error as error:
        raise _error(model.label, error) from None
    return rows


def run_sql_model(
    store: WorkingStore, model: SqlModel, as_of: date, variables: Mapping[str, int] | None = None
) -> tuple[int, pl.DataFrame]:
    """Build version `as_of` of the model's table (`build_sql_model`) and replace the versions it returns and
    version `as_of` in the store's Delta table (one commit); returns the rows written and the model's newest
    version on or before `as_of`."""
    with store.connect(model.deps) as con:
        rows = build_sql_model(con, model, as_of, variables)
    store.replace_mart_versions(model.name, rows, [as_of, *rows["as_of"].unique().to_list()])
    return rows.height, store.mart_latest(model.name, as_of)
