"""ActivationStore: per-layer activation arrays, on disk (memory-mapped) or in memory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["ActivationStore"]

_MANIFEST = "manifest.json"


class ActivationStore:
    """Per-layer arrays of shape (N, D) with the labels, predictions and logits of N inputs.

    On disk (``path`` given) every array is a preallocated ``.npy`` memory map, so memory
    stays bounded whatever N; ``manifest.json`` records how many rows are complete, so an
    interrupted capture resumes from the last complete batch and a finished store reopens
    without recomputing. Without a path the arrays live in memory.

    Attributes
    ----------
    layers : list of str
        Layer names as the user gave them (aliases kept).
    n : int
        Number of inputs.
    meta : dict
        Model, dataset, reducer and other parameters of the capture.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.n = 0
        self.layers: list[str] = []
        self.dims: dict[str, int] = {}
        self.meta: dict = {}
        self.done = 0
        self._arrays: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- creation
    @classmethod
    def open(cls, path: str | Path) -> ActivationStore:
        """Reopen a store written by :func:`introspect.capture.capture`."""
        path = Path(path)
        manifest = path / _MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(f"{path} holds no activation store ({_MANIFEST} is missing).")
        info = json.loads(manifest.read_text())
        store = cls(path)
        store.n, store.layers, store.meta = info["n"], info["layers"], info["meta"]
        store.dims, store.done = info["dims"], info["done"]
        return store

    def _allocate(self, n: int, dims: dict[str, int], n_classes: int, meta: dict) -> None:
        self.n, self.layers, self.dims, self.meta, self.done = n, list(dims), dict(dims), meta, 0
        shapes = {
            **{f"layer:{k}": (n, d) for k, d in dims.items()},
            "labels": (n,),
            "preds": (n,),
            "logits": (n, n_classes),
        }
        for key, shape in shapes.items():
            dtype = np.int64 if key in ("labels", "preds") else np.float32
            if self.path is None:
                self._arrays[key] = np.zeros(shape, dtype=dtype)
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                self._arrays[key] = np.lib.format.open_memmap(
                    self._file(key), mode="w+", dtype=dtype, shape=shape
                )
        self._write_manifest()

    def _file(self, key: str) -> Path:
        safe = key.replace(":", "__").replace("/", "_")
        return self.path / f"{safe}.npy"

    def _write_manifest(self) -> None:
        if self.path is None:
            return
        info = {
            "n": self.n,
            "layers": self.layers,
            "dims": self.dims,
            "done": self.done,
            "complete": self.complete,
            "meta": self.meta,
        }
        tmp = self.path / (_MANIFEST + ".tmp")
        tmp.write_text(json.dumps(info, indent=1, default=str))
        os.replace(tmp, self.path / _MANIFEST)

    def _write(self, start: int, layer_rows: dict, labels, preds, logits) -> None:
        stop = start + len(labels)
        for k, rows in layer_rows.items():
            self._array(f"layer:{k}", "r+")[start:stop] = rows
        self._array("labels", "r+")[start:stop] = labels
        self._array("preds", "r+")[start:stop] = preds
        self._array("logits", "r+")[start:stop] = logits

    def _commit(self, done: int) -> None:
        """Flush the rows written so far and record them as complete."""
        for arr in self._arrays.values():
            if isinstance(arr, np.memmap):
                arr.flush()
        self.done = done
        self._write_manifest()

    # ----------------------------------------------------------------- reading
    def _array(self, key: str, mode: str = "r") -> np.ndarray:
        arr = self._arrays.get(key)
        if arr is not None and (mode == "r" or not isinstance(arr, np.memmap) or arr.mode != "r"):
            return arr
        if self.path is None:
            raise KeyError(key)
        arr = np.load(self._file(key), mmap_mode=mode)
        self._arrays[key] = arr
        return arr

    @property
    def complete(self) -> bool:
        return self.n > 0 and self.done == self.n

    def _check_complete(self) -> None:
        if not self.complete:
            raise RuntimeError(
                f"this store is incomplete ({self.done} of {self.n} inputs captured); run "
                "introspect.capture.capture(..., store=<its path>) again to resume it."
            )

    def layer(self, name: str) -> np.ndarray:
        """The (N, D) float32 array of a layer (read-only memory map for on-disk stores)."""
        if name not in self.dims:
            raise KeyError(
                f"layer {name!r} is not in this store; it holds {', '.join(self.layers)}."
            )
        self._check_complete()
        return self._array(f"layer:{name}")

    @property
    def labels(self) -> np.ndarray:
        self._check_complete()
        return self._array("labels")

    @property
    def preds(self) -> np.ndarray:
        self._check_complete()
        return self._array("preds")

    @property
    def logits(self) -> np.ndarray:
        self._check_complete()
        return self._array("logits")

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "memory"
        dims = ", ".join(f"{k}: {d}" for k, d in self.dims.items())
        return f"ActivationStore({where}, n={self.n}, done={self.done}, layers={{{dims}}})"
