"""A cached-result format that cannot execute code when it is loaded.

A result is written as a folder of three files:

- ``tree.json``: the structure (dicts, lists, tuples, sets, numbers, strings, devices,
  dtypes, paths and objects of allow-listed classes), with arrays replaced by references;
- ``arrays.npz``: every array and tensor, read back with ``allow_pickle=False``;
- ``manifest.json``: the format, the package version, what the result was made from
  (``inputs``), and the size and BLAKE2b checksum of both files, verified on load.

Objects are stored as their class name and ``__dict__``, and rebuilt with
``cls.__new__`` and a ``__dict__`` update: no constructor, ``__setstate__`` or other code
of the artifact runs. Only classes defined in ``introspect`` and torch's own
``torch.nn`` modules are allowed, so a planted artifact can at worst hold wrong numbers,
which the checksums catch when the file was damaged rather than forged. Pickle files
(``result.pt``) from earlier versions are never loaded.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

FORMAT = "introspect-artifact/1"
_ALLOWED_PREFIXES = ("introspect.", "torch.nn.modules.", "torch.nn.parameter")


class ArtifactError(OSError):
    """A cached artifact is missing, damaged, or not in the safe format; names the file."""


def _checksum(path: Path) -> str:
    from .fingerprint import file_checksum

    return file_checksum(path)


class _Encoder:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self._seen: dict[int, str] = {}

    def _array(self, a: np.ndarray, owner) -> str:
        key = self._seen.get(id(owner))
        if key is None:
            if a.dtype == object:
                raise TypeError("object arrays cannot be cached safely; store numbers or strings.")
            key = f"a{len(self.arrays)}"
            self.arrays[key] = a
            self._seen[id(owner)] = key
        return key

    def enc(self, obj):  # noqa: C901 - one branch per supported type
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"__float__": repr(obj)}
        if isinstance(obj, np.generic):
            return self.enc(obj.item())
        if isinstance(obj, np.ndarray):
            return {"__ndarray__": self._array(obj, obj)}
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu()
            dtype = str(t.dtype)
            if t.dtype == torch.bfloat16:
                t = t.float()
            out = {"__tensor__": self._array(t.numpy(), obj), "dtype": dtype}
            if isinstance(obj, torch.nn.Parameter):
                out["parameter"] = bool(obj.requires_grad)
            return out
        if isinstance(obj, torch.device):
            return {"__device__": str(obj)}
        if isinstance(obj, torch.dtype):
            return {"__dtype__": str(obj)}
        if isinstance(obj, Path):
            return {"__path__": str(obj)}
        if isinstance(obj, slice):
            return {"__slice__": [self.enc(obj.start), self.enc(obj.stop), self.enc(obj.step)]}
        if isinstance(obj, range):
            return {"__range__": [obj.start, obj.stop, obj.step]}
        if isinstance(obj, np.dtype):
            return {"__npdtype__": obj.str}
        if isinstance(obj, OrderedDict):
            return {"__odict__": [[self.enc(k), self.enc(v)] for k, v in obj.items()]}
        if isinstance(obj, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in obj):
                return {k: self.enc(v) for k, v in obj.items()}
            return {"__dict__": [[self.enc(k), self.enc(v)] for k, v in obj.items()]}
        if isinstance(obj, list):
            return [self.enc(v) for v in obj]
        if isinstance(obj, tuple):
            return {"__tuple__": [self.enc(v) for v in obj]}
        if isinstance(obj, (set, frozenset)):
            return {"__set__": [self.enc(v) for v in sorted(obj, key=repr)]}
        cls = type(obj)
        name = f"{cls.__module__}:{cls.__qualname__}"
        if _allowed(cls.__module__) and hasattr(obj, "__dict__"):
            return {"__object__": name, "state": self.enc(dict(vars(obj)))}
        raise TypeError(
            f"a {name} cannot be cached safely (only numbers, strings, arrays, tensors, "
            "containers and introspect / torch.nn objects can); return plain data from the stage."
        )


def _allowed(module: str) -> bool:
    return module.startswith(_ALLOWED_PREFIXES)


def _resolve(name: str):
    module, _, qualname = name.partition(":")
    if not _allowed(module):
        raise ArtifactError(f"class {name} is not allowed in a cached artifact.")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise ArtifactError(f"{name} is not a class.")
    return obj


class _Decoder:
    def __init__(self, arrays):
        self.arrays = arrays
        self._made: dict[tuple, object] = {}

    def dec(self, obj):  # noqa: C901
        if isinstance(obj, list):
            return [self.dec(v) for v in obj]
        if not isinstance(obj, dict):
            return obj
        if "__ndarray__" in obj:
            key = ("a", obj["__ndarray__"])
            if key not in self._made:
                self._made[key] = self.arrays[obj["__ndarray__"]]
            return self._made[key]
        if "__tensor__" in obj:
            key = ("t", obj["__tensor__"], obj.get("parameter"))
            if key not in self._made:
                t = torch.from_numpy(np.array(self.arrays[obj["__tensor__"]]))
                dtype = getattr(torch, obj["dtype"].replace("torch.", ""))
                t = t.to(dtype)
                if "parameter" in obj:
                    t = torch.nn.Parameter(t, requires_grad=obj["parameter"])
                self._made[key] = t
            return self._made[key]
        if "__float__" in obj:
            return float(obj["__float__"])
        if "__device__" in obj:
            return torch.device(obj["__device__"])
        if "__dtype__" in obj:
            dtype = getattr(torch, obj["__dtype__"].replace("torch.", ""))
            if not isinstance(dtype, torch.dtype):
                raise ArtifactError(f"{obj['__dtype__']} is not a torch dtype.")
            return dtype
        if "__path__" in obj:
            return Path(obj["__path__"])
        if "__slice__" in obj:
            return slice(*(self.dec(v) for v in obj["__slice__"]))
        if "__range__" in obj:
            return range(*(int(v) for v in obj["__range__"]))
        if "__npdtype__" in obj:
            return np.dtype(str(obj["__npdtype__"]))
        if "__odict__" in obj:
            return OrderedDict((self._key(k), self.dec(v)) for k, v in obj["__odict__"])
        if "__dict__" in obj:
            return {self._key(k): self.dec(v) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(self.dec(v) for v in obj["__tuple__"])
        if "__set__" in obj:
            return {self._key(v) for v in obj["__set__"]}
        if "__object__" in obj:
            cls = _resolve(obj["__object__"])
            inst = cls.__new__(cls)
            inst.__dict__.update(self.dec(obj["state"]))
            return inst
        return {k: self.dec(v) for k, v in obj.items()}

    def _key(self, k):
        k = self.dec(k)
        return tuple(k) if isinstance(k, list) else k


def save(obj, folder: Path, inputs: dict | None = None) -> Path:
    """Write ``obj`` into a new ``folder`` atomically (a temporary sibling, then a rename).

    The folder must not exist yet. Nothing is visible under ``folder`` until every file
    and its checksum is written.
    """
    folder = Path(folder)
    enc = _Encoder()
    tree = enc.enc(obj)
    tmp = folder.parent / f".{folder.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir(parents=True)
    try:
        (tmp / "tree.json").write_text(json.dumps(tree))
        with open(tmp / "arrays.npz", "wb") as f:
            np.savez(f, **enc.arrays)
        from . import __version__

        files = {
            name: {"bytes": (tmp / name).stat().st_size, "checksum": _checksum(tmp / name)}
            for name in ("tree.json", "arrays.npz")
        }
        manifest = {
            "format": FORMAT,
            "version": __version__,
            "inputs": inputs or {},
            "files": files,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
        os.replace(tmp, folder)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_manifest(folder: Path) -> dict:
    """The manifest of an artifact folder; raises :class:`ArtifactError` naming the file."""
    path = Path(folder) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing (the artifact is incomplete).") from None
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path}: cannot be read ({e}).") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not an {FORMAT} manifest.")
    return manifest


def load(folder: Path):
    """Read an artifact written by :func:`save`, verifying sizes and checksums first."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    for name, info in manifest["files"].items():
        path = folder / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ArtifactError(f"{path}: missing (the artifact is incomplete).") from None
        if size != info["bytes"]:
            raise ArtifactError(
                f"{path}: {size} bytes where {info['bytes']} were written (truncated or replaced)."
            )
        if _checksum(path) != info["checksum"]:
            raise ArtifactError(f"{path}: checksum mismatch (the file is damaged or was changed).")
    try:
        tree = json.loads((folder / "tree.json").read_text())
        with np.load(folder / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return _Decoder(arrays).dec(tree)
    except ArtifactError:
        raise
    except Exception as e:  # a forged but checksummed file: refuse, naming the folder
        raise ArtifactError(f"{folder}: cannot be decoded ({type(e).__name__}: {e}).") from e
