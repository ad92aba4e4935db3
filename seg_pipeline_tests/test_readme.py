"""The README states what the code does: its settings table and lifecycle rules come from the code."""

from pathlib import Path

from seg_pipeline.core.lifecycle import LIFECYCLE_RULES_MARKDOWN
from seg_pipeline.core.schemas import CUSTOMER_SEGMENTS, SEGMENT_VERSIONS
from seg_pipeline.settings import SETTINGS_DOC

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_settings_table_matches_the_settings_module():
    table = README.split("<!-- settings-table -->")[1].split("<!-- /settings-table -->")[0]
    rows = [line for line in table.strip().splitlines()[2:]]
    assert rows == [f"| `{name}` | `{default}` | {meaning} |" for name, (default, meaning) in SETTINGS_DOC.items()]


def test_lifecycle_rules_match_the_code():
    assert (
        README.split("<!-- lifecycle-rules -->")[1].split("<!-- /lifecycle-rules -->")[0].strip()
        == LIFECYCLE_RULES_MARKDOWN
    )


def _column_rows(table) -> list[str]:
    return ["| column | type | meaning |", "|---|---|---|"] + [
        f"| `{c.name}` | {c.sql or str(c.dtype).lower()} | {c.doc.replace('|', '/')} |" for c in table.columns
    ]


def test_the_column_tables_come_from_the_schema_registry():
    block = README.split("<!-- table-columns -->")[1].split("<!-- /table-columns -->")[0]
    assert block.strip().splitlines() == [*_column_rows(CUSTOMER_SEGMENTS), "", *_column_rows(SEGMENT_VERSIONS)]
