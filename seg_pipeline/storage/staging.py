"""What the steps of one sharded version hand each other: pickles under the working store's `_staging/` folder.

A sharded version (``SEG_CUSTOMER_SHARDS`` > 1) is made by separate step processes, possibly on separate
machines: the population step stages what every shard scores with and each shard's customers, each shard step
stages its rows, the publish step reads them all. They live beside the store's tables (local or object storage),
so that every worker reaches them where it reaches the store; `table_names` skips the folder. A staged object
is written whole before it can be read (a local rename; an object store's put is atomic), and a version's folder
is removed once the version is published (and `_staging/` with the last one).
"""

import contextlib
import os
import pickle
import shutil
from pathlib import Path

from pyarrow.fs import FileSelector, FileType

from seg_pipeline.storage.store import WorkingStore

FOLDER = "_staging"


class StagingMissing(LookupError):
    """A staged object is not there; `str()` says which step stages it."""


class Staging:
    """The `_staging/` folder of a working store."""

    def __init__(self, store: WorkingStore) -> None:
        self.store = store

    def put(self, name: str, value: object) -> None:
        """Stage `value` as `name` (e.g. '2026-06-30/population'), replacing what was staged under it."""
        data = pickle.dumps(value, protocol=5)
        path = f"{FOLDER}/{name}.pkl"
        if not self.store.local:
            self.store.put_object(path, data)
            return
        target = Path(self.store.uri) / path
        with self.store.owner_only():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
            partial.write_bytes(data)
        partial.replace(target)

    def get(self, name: str, missing: str) -> object:
        """What is staged as `name`; `StagingMissing(missing)` when nothing is."""
        path = f"{FOLDER}/{name}.pkl"
        try:
            if self.store.local:
                data = (Path(self.store.uri) / path).read_bytes()
            else:
                with self.store.filesystem().open_input_stream(path) as stream:
                    data = stream.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise StagingMissing(missing) from None
        return pickle.loads(data)

    def drop(self, folder: str) -> None:
        """Remove everything staged under `folder` (e.g. a published version's)."""
        if self.store.local:
            shutil.rmtree(Path(self.store.uri) / FOLDER / folder, ignore_errors=True)
            with contextlib.suppress(OSError):  # the staging folder itself, once nothing else is staged
                (Path(self.store.uri) / FOLDER).rmdir()
            return
        fs = self.store.filesystem()
        for info in fs.get_file_info(FileSelector(f"{FOLDER}/{folder}", allow_not_found=True, recursive=True)):
            if info.type == FileType.File:
                fs.delete_file(info.path)
