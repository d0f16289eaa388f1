"""Cheap content fingerprints of what a stage reads: files, datasets, weights and code.

Cache keys built from names and paths serve stale results when a file behind the name
changes (an overwritten checkpoint, replaced images, an edited reducer). The stages of
the pipeline therefore key their artifacts by these fingerprints as well, and record them
in their manifests so that a mismatch can say what changed.

All fingerprints are short hex strings (BLAKE2b). They are cached per process where the
input cannot change behind our back unnoticed: files by (path, size, mtime), tensors by
their in-place version counters.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "file_checksum",
    "file_fingerprint",
    "array_fingerprint",
    "model_fingerprint",
    "dataset_fingerprint",
    "code_fingerprint",
    "callable_fingerprint",
]

_DIGEST = 16
_SAMPLE_FILES = 64  # files whose contents are hashed in a dataset fingerprint
_file_cache: dict[tuple, str] = {}
_model_cache: dict[int, tuple[tuple, str]] = {}
_code_cache: dict[str, str] = {}


def _hasher():
    return hashlib.blake2b(digest_size=_DIGEST)


def file_checksum(path: str | os.PathLike) -> str:
    """BLAKE2b of a file's whole content, read now (no cache): for integrity checks."""
    h = _hasher()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_fingerprint(path: str | os.PathLike) -> str:
    """Hash of a file's whole content (cached by path, size and modification time).

    Raises
    ------
    FileNotFoundError
        Naming the file.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: file not found (needed for its fingerprint).") from None
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _file_cache:
        try:
            _file_cache[key] = file_checksum(p)
        except OSError as e:
            raise OSError(f"{p}: cannot be read for its fingerprint ({e}).") from e
    return _file_cache[key]


def array_fingerprint(*arrays) -> str:
    """Hash of the dtype, shape and bytes of arrays or tensors."""
    h = _hasher()
    for a in arrays:
        if isinstance(a, torch.Tensor):
            t = a.detach().cpu().contiguous()
            if t.dtype == torch.bfloat16:
                t = t.float()
            a = t.numpy()
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.view(np.uint8).reshape(-1).data if a.size else b"")
    return h.hexdigest()


def model_fingerprint(model: torch.nn.Module) -> str:
    """Hash of a model's class and every parameter and buffer (names, dtypes, values).

    Two models with the same fingerprint compute the same function (for the same code).
    Cached while no tensor of the model has been modified in place.
    """
    items = list(model.state_dict(keep_vars=True).items())
    versions = (type(model).__qualname__,) + tuple(
        (k, id(v), v._version, v.data_ptr()) for k, v in items
    )
    cached = _model_cache.get(id(model))
    if cached is not None and cached[0] == versions:
        return cached[1]
    h = _hasher()
    h.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for k, v in items:
        h.update(k.encode())
        h.update(array_fingerprint(v).encode())
    fp = h.hexdigest()
    _model_cache[id(model)] = (versions, fp)
    return fp


def _sample_positions(n: int, k: int) -> list[int]:
    if n <= k:
        return list(range(n))
    return sorted({int(round(i * (n - 1) / (k - 1))) for i in range(k)})


def _files_fingerprint(files: list[Path]) -> str:
    """Every file's name, size and mtime, plus the contents of an even sample of them."""
    h = _hasher()
    h.update(str(len(files)).encode())
    for f in files:
        try:
            st = f.stat()
        except OSError as e:
            raise OSError(f"{f}: cannot be read for the dataset fingerprint ({e}).") from e
        h.update(f"{f.name}|{st.st_size}|{st.st_mtime_ns};".encode())
    for i in _sample_positions(len(files), _SAMPLE_FILES):
        h.update(file_fingerprint(files[i]).encode())
    return h.hexdigest()


def _dataset_files(ds) -> list[Path] | None:
    samples = getattr(ds, "samples", None)
    if samples and isinstance(samples[0], (tuple, list)) and isinstance(samples[0][0], (str, Path)):
        return [Path(s[0]) for s in samples]
    inner = getattr(ds, "ds", None)
    if inner is None:
        return None
    if getattr(inner, "samples", None):
        return [Path(s[0]) for s in inner.samples]
    folder = getattr(inner, "raw_folder", None)  # MNIST-style
    if folder is None and getattr(inner, "base_folder", None) is not None:  # CIFAR-style
        folder = Path(inner.root) / inner.base_folder
    if folder is None and getattr(inner, "root", None) is not None:
        folder = inner.root
    if folder is not None and Path(folder).is_dir():
        return sorted(p for p in Path(folder).rglob("*") if p.is_file())
    return None


def dataset_fingerprint(ds) -> str:
    """Hash of what a dataset holds.

    - In-memory data (``ArrayDataset``, a tuple of tensors): the bytes of images and labels.
    - File-backed data (ImageFolder-style ``samples``, torchvision's folders): the file
      list with sizes and modification times, and the contents of an even sample of 64
      files. Replacing, adding or removing an image changes it.
    - A subset: the fingerprint of its base and its indices.
    - Anything else: the images and labels of an even sample of 64 items.
    """
    h = _hasher()
    if isinstance(ds, (tuple, list)) and len(ds) == 2:
        h.update(array_fingerprint(*ds).encode())
        return h.hexdigest()
    for attr in ("image_size", "channels", "classes"):
        h.update(f"{attr}={getattr(ds, attr, None)};".encode())
    if getattr(ds, "transform", None) is not None:  # how files become images is content too
        h.update(f"transform={ds.transform!r};".encode())
    base, indices = getattr(ds, "base", None), getattr(ds, "indices", None)
    if base is not None and indices is not None:
        h.update(dataset_fingerprint(base).encode())
        h.update(array_fingerprint(np.asarray(indices)).encode())
        return h.hexdigest()
    images = getattr(ds, "images", None)
    if images is not None and hasattr(ds, "labels"):
        h.update(array_fingerprint(images, ds.labels).encode())
        return h.hexdigest()
    files = _dataset_files(ds)
    if files:
        h.update(_files_fingerprint(files).encode())
        targets = getattr(ds, "targets", None)
        if targets is not None:
            h.update(array_fingerprint(np.asarray(targets)).encode())
        return h.hexdigest()
    n = len(ds)
    h.update(f"{type(ds).__module__}.{type(ds).__qualname__}|{n}".encode())
    for i in _sample_positions(n, _SAMPLE_FILES):
        x, y = ds[i]
        h.update(array_fingerprint(torch.as_tensor(x), np.asarray(int(y))).encode())
    return h.hexdigest()


def code_fingerprint(*modules: str) -> str:
    """Hash of the source files of the named modules (e.g. ``"introspect.capture"``).

    ``"introspect:core"`` stands for every module of the core except the figure modules.
    """
    import importlib

    h = _hasher()
    for name in modules:
        if name not in _code_cache:
            if name == "introspect:core":
                root = Path(__file__).resolve().parent
                files = sorted(
                    p for p in root.rglob("*.py") if "figures" not in p.relative_to(root).parts
                )
            else:
                files = [Path(importlib.import_module(name).__file__)]
            hh = _hasher()
            for f in files:
                hh.update(f.name.encode())
                hh.update(f.read_bytes())
            _code_cache[name] = hh.hexdigest()
        h.update(_code_cache[name].encode())
    return h.hexdigest()


def callable_fingerprint(fn: Callable) -> str:
    """Hash of a function's source (or of its bytecode and constants when there is none).

    Used for user reducers: editing the function changes the fingerprint.
    """
    h = _hasher()
    h.update(f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}".encode())
    try:
        h.update(inspect.getsource(fn).encode())
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        if code is not None:
            _hash_code(h, code)
        else:
            h.update(repr(fn).encode())
    return h.hexdigest()


def _hash_code(h, code) -> None:
    """Bytecode, names and constants of a code object (nested code objects included)."""
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames)).encode())
    for c in code.co_consts:
        if hasattr(c, "co_code"):
            _hash_code(h, c)
        else:
            h.update(repr(c).encode())
