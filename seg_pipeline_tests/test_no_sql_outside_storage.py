"""The store is closed: no module outside the storage modules holds SQL text (issue 16)."""

import ast
import re
from pathlib import Path

import seg_pipeline

PACKAGE = Path(seg_pipeline.__file__).parent

#: where SQL may be written: the storage package, and the benchmark's floor (a bare DuckDB query, on purpose)
STORAGE = "storage/"
STORAGE_MODULES = {"devtools/bench.py"}

#: module -> constants holding SQL that is shown to people, never run by the pipeline
SHOWN_NOT_RUN = {"cli.py": {"SAMPLE_QUERY"}}  # the query `seg-pipeline demo` suggests to analysts (CONTRACT §2)

SQL = re.compile(
    r"\b(select|insert|delete|update|create|alter|drop)\b.*\b(from|into|table|view|where|set)\b",
    re.IGNORECASE | re.DOTALL,
)


def _skipped(tree: ast.AST, shown: set[str]) -> set[int]:
    """ids of the string nodes not to judge alone: docstrings (prose), the parts of f-strings (judged whole) and
    the constants named in `shown`."""
    skipped = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skipped.add(id(body[0].value))
        elif isinstance(node, ast.JoinedStr):
            skipped.update(id(value) for value in node.values)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in shown for t in node.targets):
            skipped.update(id(inner) for inner in ast.walk(node.value))
    return skipped


def sql_literals(source: str, shown: set[str] = frozenset()) -> list[tuple[int, str]]:
    """(line, text) of every string literal (f-string parts joined) of `source` that reads as SQL, but for the
    constants named in `shown`."""
    tree = ast.parse(source)
    skipped = _skipped(tree, shown)
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if SQL.search(text):
            found.append((node.lineno, text))
    return sorted(found)


def test_the_scanner_finds_sql_and_ignores_prose() -> None:
    source = '''
def f(con, table):
    """Delete the rows of a table where they are stale, then select from what is left."""
    con.execute(f"delete from {table} where day = ?")
    con.execute("select count(*) " "from orders")
    return "a table of orders"
EXAMPLE = "select * from orders"
'''
    assert [line for line, _ in sql_literals(source)] == [4, 5, 7]
    assert [line for line, _ in sql_literals(source, {"EXAMPLE"})] == [4, 5]


def test_no_sql_text_outside_the_storage_modules() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module.startswith(STORAGE) or module in STORAGE_MODULES:
            continue
        found = sql_literals(path.read_text(), SHOWN_NOT_RUN.get(module, set()))
        offenders += [f"{module}:{line}: {text[:60]!r}" for line, text in found]
    assert not offenders, "SQL text outside the storage modules:\n" + "\n".join(offenders)


def test_every_allowed_module_exists() -> None:
    assert sorted(m for m in STORAGE_MODULES if not (PACKAGE / m).is_file()) == []
