"""Resources shared by every asset: the settings and the working store."""

import dagster as dg

from seg_pipeline.settings import PipelineSettings
from seg_pipeline.store import WorkingStore


class StoreResource(dg.ConfigurableResource):
    """The pipeline's working DuckDB store (see `seg_pipeline.store`)."""

    path: str

    def open(self) -> WorkingStore:
        return WorkingStore(self.path)


def build_resources(settings: PipelineSettings) -> dict[str, dg.ConfigurableResource]:
    return {"settings": settings, "store": StoreResource(path=settings.store_path)}
