"""Validation of landed orders and profiles: polars row verdicts, great-expectations report.

The rules live once, in `ORDER_RULES` / `PROFILE_RULES` (see `rules.py`).
"""

from seg_pipeline.core.validation.engine import (
    LandingSchemaError,
    ValidationResult,
    check_columns,
    normalize_column_name,
    validate_orders,
    validate_profiles,
)
from seg_pipeline.core.validation.gx_report import warm_up
from seg_pipeline.core.validation.rules import ORDER_RULES, PROFILE_RULES, Expect, Rule

__all__ = [
    "ORDER_RULES",
    "PROFILE_RULES",
    "Expect",
    "LandingSchemaError",
    "Rule",
    "ValidationResult",
    "check_columns",
    "normalize_column_name",
    "validate_orders",
    "validate_profiles",
    "warm_up",
]
