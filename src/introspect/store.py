"""ActivationStore: per-layer activation arrays, on disk (zarr v3) or in memory.

On disk a store is a zarr v3 group: one array per layer plus ``labels``, ``preds`` and
``logits``, chunked one row-block per capture batch and stored uncompressed, so that

- many writers can fill it at once: in a ``torchrun`` job every batch (chunk) has exactly
  one writer, the rank that owns it (see :mod:`introspect.distributed`);
- an interrupted capture resumes: each finished batch leaves a marker in ``.progress/``,
  so any rank (or a single process) redoes only the batches without one;
- the chunk files are plain little-endian rows (zarr's ``bytes`` codec, no compression),
  so this module writes and reads them directly, one ``write`` / ``readinto`` per chunk,
  while zarr writes the metadata and any zarr v3 reader can open the store. Loading a
  34 MiB layer into memory takes ~13 ms here (copying the ``.npy`` memory map of the
  first store format: ~17 ms); what is lost is reading pages in place without a copy
  (summing that layer: ~18 ms against ~10 ms from a memory map), small beside any
  analysis of it. ``layer(name, lazy=True)`` reads row blocks on demand, for layers
  larger than memory (the library streams through it). A capture is faster than with the
  memory maps (0.39 s against 0.64 s for that layer and another), as the manifest is
  no longer rewritten after every batch.

``manifest.json`` (written by one process, rank 0) records the inputs' fingerprints, the
layers, the chunking, whether the store is complete, and the size and BLAKE2b checksum of
every file once it is.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

__all__ = ["ActivationStore", "StoreDamagedError", "StoredArray"]


class StoreDamagedError(OSError):
    """A file of an activation store is missing, truncated or damaged (it is named)."""


_MANIFEST = "manifest.json"
_FORMAT = "introspect-activation-store/2 (zarr v3)"
_PROGRESS = ".progress"
_SPARE_BYTES = 64 << 20  # free space kept beyond the arrays (manifest, filesystem slack)
_ZARR_CONFIG = {"write_empty_chunks": True}  # every chunk is a file: checksummed, never implied


def _checksum(path: Path) -> str:
    from .fingerprint import file_checksum

    return file_checksum(path)


def _free_bytes(path: Path) -> int:
    """Free bytes on the filesystem of ``path`` (its nearest existing parent)."""
    p = Path(path).resolve()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def _replace_text(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically (temporary name, then rename)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ActivationStore:
    """Per-layer arrays of shape (N, D) with the labels, predictions and logits of N inputs.

    On disk (``path`` given) the arrays are a zarr v3 group chunked one row-block of
    ``batch_size`` rows per capture batch, uncompressed; each finished batch is recorded,
    so an interrupted capture (one process or any rank of a ``torchrun`` job) resumes with
    the batches it lacks and a finished store reopens without recomputing. Without a path
    the arrays live in memory.

    Reading: :meth:`layer`, :attr:`labels`, :attr:`preds` and :attr:`logits` return
    read-only numpy arrays, read once per store object (one read per chunk file);
    :meth:`rows` reads a row range only, for streaming a layer larger than memory.

    Attributes
    ----------
    layers : list of str
        Layer names as the user gave them (aliases kept).
    n : int
        Number of inputs.
    dims : dict of str -> int
        Width D of every layer.
    batch_size : int
        Rows per chunk (the capture's batch size).
    done : int
        Rows captured so far (``n`` once complete).
    meta : dict
        Model, dataset, reducer, fingerprints and other parameters of the capture.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.n = 0
        self.layers: list[str] = []
        self.dims: dict[str, int] = {}
        self.meta: dict = {}
        self.done = 0
        self.batch_size = 0
        self.n_classes = 0
        self.checksums: dict[str, dict] = {}
        self._arrays: dict[str, np.ndarray] = {}
        self._writers: dict = {}
        self._marked: set[int] = set()

    # ---------------------------------------------------------------- creation
    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> ActivationStore:
        """Reopen a store written by :func:`introspect.capture.capture`.

        Parameters
        ----------
        verify : bool
            For a complete store, check every file's size and checksum against the
            manifest (reads each file once: BLAKE2b at about 0.8 GiB/s here). A damaged,
            truncated or missing file raises :class:`StoreDamagedError` that names it.
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
            store.batch_size = int(info.get("batch_size") or 0)
            store.n_classes = int(info.get("n_classes") or 0)
            store.checksums = dict(info.get("checksums") or {})
            fmt = info.get("format")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise OSError(f"{manifest}: not a readable activation-store manifest ({e}).") from e
        if fmt != _FORMAT:
            raise StoreDamagedError(
                f"{manifest}: a store of format {fmt!r}, not {_FORMAT!r} (written by another "
                f"version); delete {path} and capture again."
            )
        if not info.get("complete") and store.n:
            store._scan_progress()
        if store.complete and verify:
            store.verify()
        return store

    def _files(self) -> list[Path]:
        """The store's data files (zarr metadata and chunks), not the manifest or dot-files."""
        out = []
        for root, dirs, files in os.walk(self.path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            out += [Path(root) / f for f in sorted(files) if not f.startswith(".")]
        return [f for f in out if f != self.path / _MANIFEST]

    def verify(self) -> None:
        """Check the size and checksum of every file of a complete on-disk store.

        Raises
        ------
        StoreDamagedError
            Naming the damaged, truncated or missing file and the fix.
        """
        if self.path is None:
            return
        fix = f"delete {self.path} and capture again."
        if self.complete and not self.checksums:
            raise StoreDamagedError(f"{self.path / _MANIFEST}: records no checksums; {fix}")
        for name, info in self.checksums.items():
            f = self.path / name
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

    @property
    def n_batches(self) -> int:
        return -(-self.n // self.batch_size) if self.batch_size else 0

    def _rows_of(self, batch: int) -> int:
        return min(self.batch_size, self.n - batch * self.batch_size)

    def _allocate(
        self, n: int, dims: dict[str, int], n_classes: int, meta: dict, batch_size: int
    ) -> None:
        """Create the (empty) arrays: in memory, or as a zarr group with the manifest."""
        self.n, self.layers, self.dims, self.meta, self.done = n, list(dims), dict(dims), meta, 0
        self.batch_size, self.n_classes = int(batch_size), int(n_classes)
        self.checksums, self._arrays, self._writers, self._marked = {}, {}, {}, set()
        shapes = self._shapes()
        if self.path is None:
            for key, (shape, dtype) in shapes.items():
                self._arrays[key] = np.zeros(shape, dtype=dtype)
            return
        import zarr

        self._prepare_folder()
        need = sum(int(np.prod(s)) * np.dtype(d).itemsize for s, d in shapes.values())
        free = _free_bytes(self.path)
        if free < need + _SPARE_BYTES:
            raise OSError(
                f"not enough free disk space for the activation store at {self.path}: it "
                f"needs {_gib(need + _SPARE_BYTES)} and {_gib(free)} are free. Free some "
                "space, pass store=<a folder on a larger disk>, or capture fewer inputs / "
                "smaller layers (reducer='codes' or 'gap')."
            )
        self._write_manifest()  # done=0: a folder interrupted here is reallocated, not trusted
        for p in self.path.iterdir():  # arrays of an earlier allocation (other layers too)
            if p.name != _MANIFEST and p.name != ".lock":
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        group = zarr.open_group(self.path, mode="a")
        for key, (shape, dtype) in shapes.items():
            chunks = (self.batch_size, *shape[1:])
            group.create_array(
                self._name(key), shape=shape, chunks=chunks, dtype=dtype, compressors=None,
                filters=None, fill_value=0, overwrite=True, config=_ZARR_CONFIG,
            )  # fmt: skip
        (self.path / _PROGRESS).mkdir(exist_ok=True)
        self._write_manifest()

    def _shapes(self) -> dict[str, tuple[tuple, type]]:
        n = self.n
        return {
            **{f"layer:{k}": ((n, d), np.float32) for k, d in self.dims.items()},
            "labels": ((n,), np.int64),
            "preds": ((n,), np.int64),
            "logits": ((n, self.n_classes), np.float32),
        }

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

    @staticmethod
    def _name(key: str) -> str:
        return key.replace(":", "__").replace("/", "_")

    def _write_manifest(self) -> None:
        if self.path is None:
            return
        info = {
            "format": _FORMAT,
            "n": self.n,
            "layers": self.layers,
            "dims": self.dims,
            "n_classes": self.n_classes,
            "batch_size": self.batch_size,
            "done": self.done if self.complete else 0,  # progress lives in .progress/
            "complete": self.complete,
            "meta": self.meta,
            "checksums": self.checksums,
        }
        _replace_text(self.path / _MANIFEST, json.dumps(info, indent=1, default=str))

    # ------------------------------------------------------------------ writing
    def _scan_progress(self) -> None:
        """Which batches are on disk (their markers), and so how many rows are done."""
        folder = self.path / _PROGRESS
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        self._marked = {int(s) for s in names if s.isdigit() and int(s) < self.n_batches}
        self.done = sum(self._rows_of(b) for b in self._marked)

    def batch_done(self, batch: int) -> bool:
        """Whether batch ``batch`` (rows ``batch * batch_size`` onwards) is stored."""
        return self.complete or batch in self._marked

    def _layout(self, key: str) -> dict:
        """The array's zarr v3 metadata (``zarr.json``, read once) and whether its chunks are
        raw rows: the ``bytes`` codec alone (uncompressed, little-endian), whole rows per
        chunk, ``batch_size`` rows, the default ``c/<i>/<j>`` chunk keys. Such chunk files
        are read and written directly; any other layout goes through zarr."""
        got = self._writers.get(key)
        if got is None:
            f = self.path / self._name(key) / "zarr.json"
            try:
                meta = json.loads(f.read_text())
                shape = tuple(meta["shape"])
                chunks = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
                dtype = np.dtype(meta["data_type"]).newbyteorder("<")
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise StoreDamagedError(
                    f"{f}: cannot be read ({e}); the store may be truncated or damaged: "
                    f"delete {self.path} and capture again."
                ) from e
            codecs = meta.get("codecs") or []
            keys = meta.get("chunk_key_encoding") or {}
            raw = (
                len(codecs) == 1
                and codecs[0].get("name") == "bytes"
                and (codecs[0].get("configuration") or {}).get("endian", "little") == "little"
                and chunks[1:] == shape[1:]
                and chunks[0] == self.batch_size
                and keys.get("name") == "default"
                and (keys.get("configuration") or {}).get("separator", "/") == "/"
            )
            got = self._writers[key] = dict(shape=shape, dtype=dtype, raw=raw)
        return got

    def _chunk_file(self, key: str, batch: int) -> Path:
        ndim = len(self._layout(key)["shape"])
        return self.path / self._name(key) / "c" / str(batch) / Path(*(["0"] * (ndim - 1)))

    def _put_chunk(self, key: str, batch: int, rows) -> None:
        """Write batch ``batch`` of ``key`` as its zarr chunk file, atomically.

        The arrays are uncompressed with zarr's ``bytes`` codec (little-endian), so a chunk
        is its rows' bytes, zero-padded to ``batch_size`` rows at the end of the array
        (what zarr writes); writing the file directly skips zarr's per-call machinery
        (a third of a capture's time here). Other layouts go through zarr.
        """
        layout = self._layout(key)
        start = batch * self.batch_size
        if not layout["raw"]:
            import zarr

            arr = zarr.open_array(self.path / self._name(key), mode="r+", config=_ZARR_CONFIG)
            arr[start : start + len(rows)] = rows
            return
        buf = np.zeros((self.batch_size, *layout["shape"][1:]), dtype=layout["dtype"])
        buf[: len(rows)] = rows
        f = self._chunk_file(key, batch)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f".{f.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(memoryview(buf).cast("B"))
            os.replace(tmp, f)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _write_batch(self, batch: int, layer_rows: dict, labels, preds, logits) -> None:
        """Store the rows of batch ``batch`` and record it as done (its marker last)."""
        start = batch * self.batch_size
        stop = start + len(labels)
        if stop != start + self._rows_of(batch):
            raise ValueError(f"batch {batch} has {len(labels)} rows, not {self._rows_of(batch)}.")
        values = {f"layer:{k}": v for k, v in layer_rows.items()}
        values.update(labels=labels, preds=preds, logits=logits)
        for key, rows in values.items():
            if self.path is None:
                self._arrays[key][start:stop] = rows
            else:
                self._put_chunk(key, batch, np.asarray(rows))
        if self.path is not None:
            _replace_text(self.path / _PROGRESS / str(batch), f"{stop - start}\n")
        self._marked.add(batch)
        self.done += stop - start

    def _finish(self) -> None:
        """Seal a store whose batches are all written: checksums, complete manifest.

        Raises ``RuntimeError`` naming the missing batches when some are not stored.
        """
        if self.path is not None:
            self._scan_progress()
        missing = [b for b in range(self.n_batches) if b not in self._marked]
        if missing:
            raise RuntimeError(
                f"the activation store {self.path} lacks {len(missing)} of {self.n_batches} "
                f"batches (first: {missing[:5]}); a rank failed. Run the capture again: it "
                "resumes with the missing batches."
            )
        self.done = self.n
        if self.path is None:
            return
        self.checksums = {
            f.relative_to(self.path).as_posix(): {"bytes": f.stat().st_size, "checksum": _checksum(f)}
            for f in self._files()
        }  # fmt: skip
        self._write_manifest()
        shutil.rmtree(self.path / _PROGRESS, ignore_errors=True)

    # ----------------------------------------------------------------- reading
    def _zarr(self, key: str):
        import zarr

        f = self.path / self._name(key)
        try:
            return zarr.open_array(f, mode="r")
        except Exception as e:  # zarr raises several kinds for a missing / bad zarr.json
            raise StoreDamagedError(
                f"{f}: cannot be read ({e}); the store may be truncated or damaged: delete "
                f"{self.path} and capture again."
            ) from e

    def _read(self, key: str, rows: slice) -> np.ndarray:
        """Rows of ``key``: each chunk file read straight into the result (raw chunks), or
        through zarr (any other layout)."""
        layout = self._layout(key)
        start, stop, _ = rows.indices(layout["shape"][0])
        stop = max(start, stop)
        if not layout["raw"]:
            try:
                return np.asarray(self._zarr(key)[start:stop])
            except Exception as e:  # a truncated chunk fails to decode
                raise StoreDamagedError(
                    f"{self.path / self._name(key)}: cannot be read ({e}); the store may be "
                    f"truncated or damaged: delete {self.path} and capture again."
                ) from e
        out = np.empty((stop - start, *layout["shape"][1:]), dtype=layout["dtype"])
        row_bytes = out[:1].nbytes if len(out) else 0
        bs = self.batch_size
        for b in range(start // bs, -(-stop // bs)):
            lo, hi = max(start, b * bs), min(stop, (b + 1) * bs)
            f = self._chunk_file(key, b)
            view = memoryview(out[lo - start : hi - start]).cast("B")
            try:
                with open(f, "rb") as fh:
                    fh.seek((lo - b * bs) * row_bytes)
                    got = fh.readinto(view)
            except OSError as e:
                got = f"{e}"
            if got != len(view):
                why = got if isinstance(got, str) else f"{got} of {len(view)} bytes"
                raise StoreDamagedError(
                    f"{f}: cannot be read ({why}); the store may be truncated or damaged: "
                    f"delete {self.path} and capture again."
                )
        return out.astype(out.dtype.newbyteorder("="), copy=False)

    def _array(self, key: str) -> np.ndarray:
        arr = self._arrays.get(key)
        if arr is not None:
            return arr
        if self.path is None:
            raise KeyError(key)
        arr = self._read(key, slice(None))
        arr.flags.writeable = False
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

    def _check_layer(self, name: str) -> None:
        if name not in self.dims:
            raise KeyError(
                f"layer {name!r} is not in this store; it holds {', '.join(self.layers)}."
            )
        self._check_complete()

    def layer(self, name: str, lazy: bool = False) -> np.ndarray:
        """The layer's activations, a read-only float32 array of shape (N, D).

        Parameters
        ----------
        lazy : bool
            Return a :class:`StoredArray` instead, whose row slices are read from disk
            when they are taken: for streaming a layer larger than memory in row blocks
            (as :class:`~introspect.library.LibraryNetwork` reads its input). In-memory
            stores return their array.
        """
        self._check_layer(name)
        key = f"layer:{name}"
        if lazy and self.path is not None and key not in self._arrays:
            return StoredArray(self, key)
        return self._array(key)

    def rows(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of a layer, float32 of shape (stop - start, D), read from
        disk (only the chunks they lie in) without keeping the whole layer in memory."""
        self._check_layer(name)
        key = f"layer:{name}"
        if self.path is None or key in self._arrays:
            return self._array(key)[start:stop]
        return self._read(key, slice(start, stop))

    @property
    def labels(self) -> np.ndarray:
        """Labels, int64 of shape (N,)."""
        self._check_complete()
        return self._array("labels")

    @property
    def preds(self) -> np.ndarray:
        """The model's answers (argmax of the logits), int64 of shape (N,)."""
        self._check_complete()
        return self._array("preds")

    @property
    def logits(self) -> np.ndarray:
        """Logits, float32 of shape (N, n_classes)."""
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


class StoredArray:
    """A read-only array of an on-disk store whose rows are read when they are indexed.

    ``a[i:j]`` reads only the chunks of those rows; ``np.asarray(a)`` (or any other index)
    reads the whole array. Made by ``ActivationStore.layer(name, lazy=True)``.

    Attributes
    ----------
    shape : tuple of int
        (N, D).
    dtype : numpy dtype
    """

    def __init__(self, store: ActivationStore, key: str):
        self._store, self._key = store, key
        layout = store._layout(key)
        self.shape, self.dtype = tuple(layout["shape"]), layout["dtype"].newbyteorder("=")
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        if isinstance(index, slice) and index.step in (None, 1):
            return self._store._read(self._key, index)
        return np.asarray(self)[index]

    def __array__(self, dtype=None, copy=None):
        out = self._store._read(self._key, slice(None))
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"StoredArray({self._key!r}, shape={self.shape}, dtype={self.dtype})"


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"
