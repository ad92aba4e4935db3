"""The Dagster code location (`dagster dev` loads it through workspace.yaml)."""

import dagster as dg

from seg_pipeline.defs import build_definitions
from seg_pipeline.settings import PipelineSettings


@dg.definitions
def defs() -> dg.Definitions:
    """Settings are read from the environment when the code location loads, not at import."""
    return build_definitions(PipelineSettings.from_env())
