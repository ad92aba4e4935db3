"""Resources shared by every asset: the settings and the working store."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import PrivateAttr

from seg_pipeline.launch.processes import process_tags
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage.store import WorkingStore


class StoreResource(dg.ConfigurableResource):
    """The pipeline's working DuckDB store (see `seg_pipeline.storage.store`)."""

    path: str
    _store: WorkingStore | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # once per run: the schema is checked here, not per step; the run records its process, so a run whose
        # process is killed can be told from one still going (seg_pipeline.launch.processes)
        if context.run is not None:  # None for a resource built outside a run
            context.instance.add_run_tags(context.run.run_id, process_tags(context.run.run_id))
        self._store = WorkingStore(self.path)

    @contextmanager
    def open(self) -> Iterator[WorkingStore]:
        """The store for one step's body, locked and open throughout (see `WorkingStore.session`)."""
        with self._store.session() as working:
            yield working


def build_resources(settings: PipelineSettings) -> dict[str, dg.ConfigurableResource]:
    return {"settings": settings, "store": StoreResource(path=settings.store_path)}
