"""ActivationStore: per-layer activation arrays, on disk (memory-mapped) or in memory."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

__all__ = ["ActivationStore", "StoreDamagedError"]


class StoreDamagedError(OSError):
    """A file of an activation store is missing, truncated or damaged (it is named)."""


_MANIFEST = "manifest.json"
_FORMAT = "introspect-activation-store/1"
_SPARE_BYTES = 64 << 20  # free space kept beyond the arrays (manifest, filesystem slack)


def _checksum(path: Path) -> str:
    from .fingerprint import file_checksum

    return file_checksum(path)


def _free_bytes(path: Path) -> int:
    """Free bytes on the filesystem of ``path`` (its nearest existing parent)."""
    p = Path(path).resolve()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


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
        self.checksums: dict[str, dict] = {}
        self._arrays: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- creation
    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> ActivationStore:
        """Reopen a store written by :func:`introspect.capture.capture`.

        Parameters
        ----------
        verify : bool
            For a complete store, check every array file's size and checksum against the
            manifest (reads each file once: BLAKE2b at about 0.8 GiB/s here). A damaged or truncated
            file raises an ``OSError`` that names it.
        """
        path = Path(path)
        manifest = path / _MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(f"{path} holds no activation store ({_MANIFEST} is missing).")
        try:
            info = json.loads(manifest.read_text())
            store = cls(path)
            store.n, store.layers, store.meta = info["n"], info["layers"], info["meta"]
            store.dims, store.done = info["dims"], info["done"]
            store.checksums = dict(info.get("checksums") or {})
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise OSError(f"{manifest}: not a readable activation-store manifest ({e}).") from e
        if store.complete and verify:
            store.verify()
        return store

    def verify(self) -> None:
        """Check the size and checksum of every array file of a complete on-disk store.

        Raises
        ------
        OSError
            Naming the damaged, truncated or missing file and the fix.
        """
        if self.path is None:
            return
        if self.complete and not self.checksums:
            raise StoreDamagedError(
                f"{self.path / _MANIFEST}: records no checksums (written by an older version); "
                f"delete {self.path} and capture again."
            )
        for name, info in self.checksums.items():
            f = self.path / name
            fix = f"delete {self.path} and capture again."
            if not f.is_file():
                raise StoreDamagedError(f"{f}: missing from the activation store; {fix}")
            if f.stat().st_size != info["bytes"]:
                raise StoreDamagedError(
                    f"{f}: {f.stat().st_size} bytes where {info['bytes']} were written "
                    f"(truncated or replaced); {fix}"
                )
            if _checksum(f) != info["checksum"]:
                raise StoreDamagedError(
                    f"{f}: checksum mismatch (the file is damaged or was changed); {fix}"
                )

    def _allocate(self, n: int, dims: dict[str, int], n_classes: int, meta: dict) -> None:
        self.n, self.layers, self.dims, self.meta, self.done = n, list(dims), dict(dims), meta, 0
        self.checksums, self._arrays = {}, {}
        shapes = {
            **{f"layer:{k}": (n, d) for k, d in dims.items()},
            "labels": (n,),
            "preds": (n,),
            "logits": (n, n_classes),
        }
        dtypes = {k: np.int64 if k in ("labels", "preds") else np.float32 for k in shapes}
        if self.path is not None:
            self._prepare_folder()
            need = sum(int(np.prod(s)) * np.dtype(dtypes[k]).itemsize for k, s in shapes.items())
            free = _free_bytes(self.path)
            if free < need + _SPARE_BYTES:
                raise OSError(
                    f"not enough free disk space for the activation store at {self.path}: it "
                    f"needs {_gib(need + _SPARE_BYTES)} and {_gib(free)} are free. Free some "
                    "space, pass store=<a folder on a larger disk>, or capture fewer inputs / "
                    "smaller layers (reducer='codes' or 'gap')."
                )
        self._write_manifest()  # done=0: a folder interrupted here is reallocated, not trusted
        for key, shape in shapes.items():
            dtype = dtypes[key]
            if self.path is None:
                self._arrays[key] = np.zeros(shape, dtype=dtype)
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                self._arrays[key] = np.lib.format.open_memmap(
                    self._file(key), mode="w+", dtype=dtype, shape=shape
                )
        self._write_manifest()

    def _prepare_folder(self) -> None:
        """Refuse a folder that holds anything but an activation store of ours."""
        if self.path.exists():
            if not self.path.is_dir():
                raise FileExistsError(
                    f"{self.path} is a file, not a folder for an activation store."
                )
            foreign = [p.name for p in self.path.iterdir() if not p.name.startswith(".")]
            if foreign and not (self.path / _MANIFEST).is_file():
                raise FileExistsError(
                    f"{self.path} is not an activation store (it has no {_MANIFEST}) and is not "
                    f"empty ({', '.join(sorted(foreign)[:5])}); nothing was written. Pass a new "
                    "or empty folder as store=."
                )
        self.path.mkdir(parents=True, exist_ok=True)

    def _file(self, key: str) -> Path:
        safe = key.replace(":", "__").replace("/", "_")
        return self.path / f"{safe}.npy"

    def _write_manifest(self) -> None:
        if self.path is None:
            return
        info = {
            "format": _FORMAT,
            "n": self.n,
            "layers": self.layers,
            "dims": self.dims,
            "done": self.done,
            "complete": self.complete,
            "meta": self.meta,
            "checksums": self.checksums,
        }
        tmp = self.path / f".{_MANIFEST}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        try:
            tmp.write_text(json.dumps(info, indent=1, default=str))
            os.replace(tmp, self.path / _MANIFEST)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

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
        if self.path is not None and self.complete:
            self.checksums = {}
            for key in self._arrays:
                f = self._file(key)
                self.checksums[f.name] = {"bytes": f.stat().st_size, "checksum": _checksum(f)}
        self._write_manifest()

    # ----------------------------------------------------------------- reading
    def _array(self, key: str, mode: str = "r") -> np.ndarray:
        arr = self._arrays.get(key)
        if arr is not None and (mode == "r" or not isinstance(arr, np.memmap) or arr.mode != "r"):
            return arr
        if self.path is None:
            raise KeyError(key)
        f = self._file(key)
        try:
            arr = np.load(f, mmap_mode=mode, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise StoreDamagedError(
                f"{f}: cannot be read ({e}); the store may be truncated or damaged: delete "
                f"{self.path} and capture again."
            ) from e
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

    def lock(self):
        """A file lock on the store folder (``filelock``), held while a capture writes it."""
        from .cache import FileLock

        self.path.mkdir(parents=True, exist_ok=True)
        return FileLock(self.path / ".lock", f"the activation store {self.path}")

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "memory"
        dims = ", ".join(f"{k}: {d}" for k, d in self.dims.items())
        return f"ActivationStore({where}, n={self.n}, done={self.done}, layers={{{dims}}})"


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"
