"""great-expectations run of a rule table on a prepared batch, for operators.

GX is imported lazily (about 4 s) and its ephemeral context and suites are built once per
process. Only the columns the expectations read are converted to pandas. Results come back
as JSON-serialisable dicts, one per expectation, their sampled values scrubbed of emails and
phone numbers.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from functools import cache
from typing import Any

import polars as pl

from seg_pipeline.core.personal_data import scrub_text
from seg_pipeline.core.validation.rules import RULES, Kind, Rule

SAMPLE_SIZE = 20
#: GX contexts are not thread-safe; one validation at a time per process
_LOCK = threading.Lock()


@cache
def _context() -> Any:
    """The process-wide ephemeral GX context with one pandas dataframe asset per kind."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every in-memory batch (pandas row hashing, twice per validation: ~65% of
    # its cost on a 1M-row batch); the fingerprint is only a batch marker we never use.
    pandas_execution_engine.HASH_THRESHOLD = 0
    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    source = context.data_sources.add_pandas("seg_pipeline")
    for kind in RULES:
        source.add_dataframe_asset(kind).add_batch_definition_whole_dataframe("batch")
    return context


@cache  # one warm-up thread per process, however many callers ask
def warm_up() -> None:
    """Import GX and build its context in a background thread, while the caller reads and checks rows.

    The import costs seconds of mostly single-threaded Python; polars and DuckDB work meanwhile
    runs outside the GIL, so the two overlap instead of adding up. The SQLAlchemy ORM, which GX
    imports and Dagster's storage also imports lazily (when a step fails, say), is imported here
    first, in the caller's thread (0.1 s): two threads importing its modules in different orders
    would otherwise get a partially initialised module, and a file's own error would be replaced by
    an AttributeError about `sqlalchemy.orm.exc`.
    """
    import sqlalchemy.future  # noqa: F401
    import sqlalchemy.orm  # noqa: F401

    def build() -> None:
        with _LOCK:
            _context()

    threading.Thread(target=build, name="gx-warm-up", daemon=True).start()


@cache
def _suite(kind: Kind, settings_items: tuple[tuple[str, object], ...]) -> tuple[Any, Any]:
    """(batch definition, expectation suite) of `kind` for these settings, built once."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = _context()
    settings = dict(settings_items)
    name = f"{kind}[{','.join(f'{k}={v}' for k, v in settings_items)}]"
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    position = 0
    for rule in RULES[kind]:
        for expect in rule.expectations:
            expectation_class = getattr(gxe, expect.type)
            meta = {"rule": rule.name, "position": position}
            suite.add_expectation(expectation_class(**expect.resolve(settings), meta=meta))
            position += 1
    batch_definition = context.data_sources.get("seg_pipeline").get_asset(kind).get_batch_definition("batch")
    return batch_definition, suite


def gx_columns(rules: Sequence[Rule]) -> list[str]:
    """Prepared-frame columns read by the expectations of `rules`, in first-use order."""
    return list(dict.fromkeys(c for rule in rules for e in rule.expectations for c in e.columns))


def run_suite(
    kind: Kind,
    prepared: pl.DataFrame,
    settings: Mapping[str, object],
    failed_rows: Mapping[str, int],
) -> list[dict[str, Any]]:
    """Validate `prepared` with the GX suite of `kind`; one JSON-ready dict per expectation.

    `failed_rows` (rule -> polars count) is reported beside GX's `unexpected_count`.
    `sample_rows` names the source rows behind `partial_unexpected_list`.
    """
    frame = prepared.select(gx_columns(RULES[kind])).to_pandas(types_mapper=_integers_stay_integers)
    with _LOCK:
        batch_definition, suite = _suite(kind, tuple(sorted(settings.items())))
        result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
            suite, result_format="SUMMARY"
        )
    sources = prepared.select("source_file", "source_row")
    report = []
    for item in sorted(result.results, key=lambda r: r.expectation_config.meta["position"]):
        config = item.expectation_config
        kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
        columns = [kwargs.pop(k) for k in ("column", "column_A", "column_B") if k in kwargs]
        details = item.result or {}
        indexes = details.get("partial_unexpected_index_list") or []
        rule = config.meta["rule"]
        report.append(
            _jsonable(
                {
                    "rule": rule,
                    "expectation": config.type,
                    "column": ", ".join(columns) if columns else None,
                    "kwargs": kwargs,
                    "success": bool(item.success),
                    "element_count": details.get("element_count", prepared.height),
                    "missing_count": details.get("missing_count"),
                    "unexpected_count": details.get("unexpected_count"),
                    "unexpected_percent": details.get("unexpected_percent"),
                    "observed_value": details.get("observed_value"),
                    "partial_unexpected_list": scrub_text(details.get("partial_unexpected_list", [])[:SAMPLE_SIZE]),
                    "sample_rows": [f"{sources.item(i, 0)}:{sources.item(i, 1)}" for i in indexes[:SAMPLE_SIZE]],
                    "failed_rows": failed_rows.get(rule),
                    "exception": _exception_message(item.exception_info),
                }
            )
        )
    return report


def _exception_message(info: Any) -> str | None:
    """The message of an exception GX caught while evaluating an expectation, if any."""
    if not isinstance(info, Mapping):
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info["raised_exception"] else None
    messages = [m for m in (_exception_message(v) for v in info.values()) if m]
    return "; ".join(messages) or None


def _integers_stay_integers(arrow_type: Any) -> Any:
    """pyarrow -> pandas dtype mapping keeping nullable integers integer (not float + NaN)."""
    import pandas as pd
    import pyarrow as pa

    return pd.Int64Dtype() if pa.types.is_integer(arrow_type) else None


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy/pandas scalars unwrapped, NaN/NaT -> None, timestamps -> ISO text."""
    import numpy as np
    import pandas as pd

    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NaT or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, (date, str, int, float, bool)):
        return value.isoformat() if isinstance(value, date) else value
    return str(value)
