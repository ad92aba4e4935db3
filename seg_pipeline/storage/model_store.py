"""Versioned model files plus their registry in the working store.

A model is saved under its content hash and registered with the as-of date it was trained
for, so any version can be re-applied and no run ever uses a model trained on a later day.
"""

from __future__ import annotations

import os
import pickle
from datetime import date
from pathlib import Path
from typing import Any

from seg_pipeline.storage.store import WorkingStore


class ModelStore:
    """Model files in `folder`, registry rows in the working store's `model_registry`."""

    def __init__(self, folder: str | Path, store: WorkingStore) -> None:
        self.folder = Path(folder)
        self.store = store

    def save(self, kind: str, version: str, model: Any, trained_as_of: date, metrics: dict, inputs: str) -> Path:
        """Write the model file (once per version) and (re)register it for `trained_as_of`.

        `inputs`: a key of what it was trained from (data, settings, code), compared before reusing it.
        """
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.folder / f"{kind}-{version}.pkl"
        if not path.exists():  # owner-only: a model holds what it was trained on
            staging = path.with_suffix(".tmp")
            with os.fdopen(os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
                pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
            staging.replace(path)
        self.store.register_model(kind, version, trained_as_of, path, metrics, inputs)
        return path

    def in_force(self, kind: str, as_of: date, *, before: bool = False) -> dict | None:
        """The latest registered model of `kind` trained on or before `as_of` (strictly before if asked)."""
        return self.store.model_in_force(kind, as_of, before=before)

    @staticmethod
    def load(entry: dict) -> Any:
        return pickle.loads(Path(entry["path"]).read_bytes())
