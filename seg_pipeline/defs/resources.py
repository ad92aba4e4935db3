"""Resources shared by every asset: the settings and the working store."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import PrivateAttr

from seg_pipeline.launch.processes import process_tags
from seg_pipeline.settings import PipelineSettings
from seg_pipeline.storage.legacy_store import migrate_legacy_store
from seg_pipeline.storage.store import WorkingStore


class StoreResource(dg.ConfigurableResource):
    """The pipeline's working store of Delta tables (see `seg_pipeline.storage.store`).

    `legacy_path`: where a store of the layout before Delta Lake (SEG_STORE_PATH) is migrated from, if any.
    """

    uri: str
    legacy_path: str = ""
    _store: WorkingStore | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # once per run: an older store is migrated here; the run records its process, so a run whose
        # process is killed can be told from one still going (seg_pipeline.launch.processes)
        if context.run is not None:  # None for a resource built outside a run
            context.instance.add_run_tags(context.run.run_id, process_tags(context.run.run_id))
        self._store = WorkingStore(self.uri)
        if self.legacy_path and (migrated := migrate_legacy_store(self.legacy_path, self._store)):
            context.log.info(migrated)

    @contextmanager
    def open(self) -> Iterator[WorkingStore]:
        """The store for one step's body: a session, so each table's snapshot is loaded once per step."""
        with self._store.session() as store:
            yield store


def build_resources(settings: PipelineSettings) -> dict[str, dg.ConfigurableResource]:
    return {
        "settings": settings,
        "store": StoreResource(uri=settings.store_uri, legacy_path=settings.store_path),
    }
