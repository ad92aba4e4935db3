"""Versioned models plus their registry in the working store.

A model is saved under its content hash (its pickle in the store's `model_files` Delta table, so every
machine sharing the store finds it) and registered with the as-of date it was trained for, so any version
can be re-applied and no run ever uses a model trained on a later day.
"""

from __future__ import annotations

import pickle
from datetime import date
from typing import Any

from seg_pipeline.storage.store import WorkingStore


class ModelStore:
    """Model pickles in the store's `model_files`, registry rows in its `model_registry`."""

    def __init__(self, store: WorkingStore) -> None:
        self.store = store

    def save(self, kind: str, version: str, model: Any, trained_as_of: date, metrics: dict, inputs: str) -> str:
        """Store the model (once per version) and (re)register it for `trained_as_of`; returns where it is.

        `inputs`: a key of what it was trained from (data, settings, code), compared before reusing it.
        """
        path = self.store.save_model(kind, version, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        self.store.register_model(kind, version, trained_as_of, path, metrics, inputs)
        return path

    def in_force(self, kind: str, as_of: date, *, before: bool = False) -> dict | None:
        """The latest registered model of `kind` trained on or before `as_of` (strictly before if asked)."""
        return self.store.model_in_force(kind, as_of, before=before)

    def load(self, entry: dict) -> Any:
        """The model of a registry entry (`in_force`'s)."""
        kind = entry["path"].removeprefix("model_files/").split("-", 1)[0]
        return pickle.loads(self.store.model_bytes(kind, entry["version"]))
