"""Versioned model files plus their registry in the working store.

A model is saved under its content hash and registered with the as-of date it was trained
for, so any version can be re-applied and no run ever uses a model trained on a later day.
"""

from __future__ import annotations

import json
import os
import pickle
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from seg_pipeline.store import WorkingStore


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
        with self.store.transaction() as con:
            con.execute("delete from model_registry where kind = ? and trained_as_of = ?", [kind, trained_as_of])
            con.execute(
                "insert into model_registry (kind, version, trained_as_of, path, metrics, created_at, inputs) "
                "values (?, ?, ?, ?, ?, ?, ?)",
                [kind, version, trained_as_of, str(path), json.dumps(metrics), datetime.now(UTC).replace(tzinfo=None),
                 inputs],
            )  # fmt: skip
        return path

    def in_force(self, kind: str, as_of: date, *, before: bool = False) -> dict | None:
        """The latest registered model of `kind` trained on or before `as_of` (strictly before if asked)."""
        op = "<" if before else "<="
        rows = self.store.frame(
            "select version, trained_as_of, path, metrics, inputs from model_registry "
            f"where kind = ? and trained_as_of {op} ? order by trained_as_of desc limit 1",
            [kind, as_of],
        )
        if rows.is_empty():
            return None
        row = rows.row(0, named=True)
        return {**row, "metrics": json.loads(row["metrics"])}

    @staticmethod
    def load(entry: dict) -> Any:
        return pickle.loads(Path(entry["path"]).read_bytes())
