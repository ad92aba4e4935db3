"""Resources shared by every asset: the settings and the working store."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from seg_pipeline.settings import PipelineSettings
from seg_pipeline.store import WorkingStore


class StoreResource(dg.ConfigurableResource):
    """The pipeline's working DuckDB store (see `seg_pipeline.store`)."""

    path: str

    @contextmanager
    def open(self) -> Iterator[WorkingStore]:
        """The store for one step's body, locked and open throughout (see `WorkingStore.session`)."""
        with WorkingStore(self.path).session() as working:
            yield working


def build_resources(settings: PipelineSettings) -> dict[str, dg.ConfigurableResource]:
    return {"settings": settings, "store": StoreResource(path=settings.store_path)}
