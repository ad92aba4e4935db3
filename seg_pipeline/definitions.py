"""The Dagster code location (`dagster dev` loads it through workspace.yaml): the `dg` project's defs folder."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """Everything under `seg_pipeline/defs` (see `seg_pipeline.defs.location`), loaded when the location loads."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
