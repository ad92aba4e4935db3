"""The code's shape (issue 16): a pure core, short functions, one folder per concern."""

import ast
from pathlib import Path

import seg_pipeline

PACKAGE = Path(seg_pipeline.__file__).parent
MAX_FUNCTION_LINES = 80


def _modules(folder: Path = PACKAGE) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_core_imports_neither_dagster_nor_duckdb() -> None:
    impure = {str(p.relative_to(PACKAGE)): _imported(p) & {"dagster", "duckdb"} for p in _modules(PACKAGE / "core")}
    assert {path: names for path, names in impure.items() if names} == {}


def test_the_services_do_not_import_dagster() -> None:
    tied = [str(p.relative_to(PACKAGE)) for p in _modules(PACKAGE / "services") if "dagster" in _imported(p)]
    assert tied == []


def test_no_function_is_longer_than_80_lines() -> None:
    long = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []
