"""Artifacts keyed by their parameters under a work directory, served only when right.

Expensive stages (train, capture, fit, attack) store their outputs under
``<workdir>/<stage>/<hash of the parameters>/`` and reuse them, so the figures of one
paper share one trained model and one capture. A cached result is served only when it is

- **complete**: it is written into a temporary folder and renamed into place once every
  file is on disk; an interrupted or failed stage leaves nothing behind that looks done;
- **safe to load**: JSON + ``.npz`` read with ``allow_pickle=False`` (see
  :mod:`introspect._artifact`); pickle files are never loaded;
- **intact**: sizes and checksums in its manifest are verified on every load;
- **fresh for its inputs**: the manifest records fingerprints of what the stage read
  (checkpoint and data content, the code of the stage, the package version); when they
  differ from today's, the result is recomputed and a warning names what changed.

Concurrent runs on one workdir take a lock per stage folder (``filelock``), so the second
waits for the first and then loads its result instead of computing it again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from . import _artifact
from .fingerprint import code_fingerprint

__all__ = ["Workdir", "param_hash", "CacheWarning", "FileLock", "computing"]

_RESULT = "result"
_LEGACY = ("result.pt",)
_DEPTH = [0]  # how many Workdir.memo computations this process is inside


def computing() -> bool:
    """Whether this process is computing a cached stage (inside ``Workdir.memo``'s ``fn``).

    Stages called from there are not sharded over ``torch.distributed``: the other ranks
    wait on the stage's lock instead of joining (see :func:`introspect.distributed.group`).
    """
    return _DEPTH[0] > 0


class CacheWarning(UserWarning):
    """A cached artifact was ignored (damaged, unsafe, or made from other inputs)."""


def _canonical(obj):
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return _canonical(obj.item())
    return obj


def param_hash(params: dict) -> str:
    """A short, stable hash of JSON-able parameters (key order does not matter)."""
    text = json.dumps(_canonical(params), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def stage_inputs(fn: Callable | None = None, inputs: dict | None = None) -> dict:
    """The fingerprints recorded with a stage's result: ``inputs``, the code and version.

    The code fingerprint covers every core module and the module that defines ``fn``.
    """
    from . import __version__

    modules = ["introspect:core"]
    mod = getattr(fn, "__module__", None)
    if mod and mod.startswith("introspect.") and mod in sys.modules:
        modules.append(mod)
    out = {k: _canonical(v) for k, v in (inputs or {}).items()}
    out["code"] = code_fingerprint(*modules)
    out["version"] = __version__
    return out


def _changed(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


class Workdir:
    """A folder of cached artifacts.

    Parameters
    ----------
    root : path
        Created on first use.
    """

    def __init__(self, root: str | Path = "introspect-work"):
        self.root = Path(root).expanduser()

    def path(self, stage: str, params: dict) -> Path:
        """The folder of the artifact of ``stage`` with these parameters (created, with a
        ``params.json`` that says what it holds)."""
        folder = self.root / stage / param_hash(params)
        folder.mkdir(parents=True, exist_ok=True)
        info = folder / "params.json"
        if not info.is_file():
            tmp = folder / f".params.{time.time_ns()}.tmp"
            tmp.write_text(json.dumps(_canonical(params), indent=1, sort_keys=True, default=str))
            tmp.replace(info)
        return folder

    def lock(self, folder: Path, what: str = "this stage"):
        """A file lock on ``folder`` that says when it waits for another process."""
        return FileLock(Path(folder) / ".lock", what)

    def key(self, stage: str, params: dict, inputs: dict) -> str:
        """A hash of the parameters and the input fingerprints: what downstream stages key on."""
        return param_hash({"stage": stage, "params": params, "inputs": inputs})

    def memo(
        self,
        stage: str,
        params: dict,
        fn: Callable[[], object],
        *,
        inputs: dict | None = None,
    ):
        """``fn()``'s result, computed once per ``(stage, params)`` and kept on disk.

        Parameters
        ----------
        stage : str
        params : dict
            JSON-able parameters that name the result; they select its folder.
        fn : callable
            Computes the result: numbers, strings, arrays, tensors, containers of them,
            and introspect / ``torch.nn`` objects.
        inputs : dict, optional
            Content fingerprints of what ``fn`` reads (checkpoint, data, model weights;
            see :mod:`introspect.fingerprint`). With the code and version fingerprints they
            are recorded beside the result; a cached result made from other inputs is
            recomputed, with a :class:`CacheWarning` that names what changed.

        A damaged, truncated or unsafe cached file is never loaded: it is set aside with
        a warning that names it, and the result recomputed. An exception or Ctrl-C in
        ``fn`` leaves nothing cached.
        """
        folder = self.path(stage, params)
        target = folder / _RESULT
        want = stage_inputs(fn, inputs)
        existed = target.exists()
        cached = self._load(target, want, stage)
        if cached is not _MISSING:
            return cached
        with self.lock(folder, f"{stage} {folder.name}"):
            # another process may have made it meanwhile (the damage, if any, was named once)
            cached = self._load(target, want, stage, quiet=existed)
            if cached is not _MISSING:
                return cached
            for name in _LEGACY:
                if (folder / name).exists():
                    warnings.warn(
                        f"{folder / name}: ignored, not loaded: cached results in pickle format "
                        "can run code when loaded. It is recomputed in the safe format; delete "
                        "the file.",
                        CacheWarning,
                        stacklevel=2,
                    )
            _DEPTH[0] += 1
            try:
                result = fn()
            finally:
                _DEPTH[0] -= 1
            if target.exists():
                _set_aside(target)
            _artifact.save(result, target, inputs=want)
        return result

    def cached(self, stage: str, params: dict, *, inputs: dict | None = None, fn=None):
        """``(True, result)`` when :meth:`memo` would serve a cached result, else
        ``(False, None)``; computes nothing (``fn`` only names the code fingerprinted)."""
        target = self.path(stage, params) / _RESULT
        got = self._load(target, stage_inputs(fn, inputs), stage, quiet=True)
        return (False, None) if got is _MISSING else (True, got)

    def _load(self, target: Path, want: dict, stage: str, quiet: bool = False):
        if not target.exists():
            return _MISSING
        try:
            manifest = _artifact.read_manifest(target)
            changed = _changed(manifest.get("inputs", {}), want)
            if changed:
                if quiet:
                    return _MISSING
                warnings.warn(
                    f"cached {stage} at {target.parent} was made from other inputs "
                    f"({', '.join(changed)} changed); recomputing.",
                    CacheWarning,
                    stacklevel=3,
                )
                return _MISSING
            return _artifact.load(target)
        except _artifact.ArtifactError as e:
            if not quiet:
                warnings.warn(f"{e} Recomputing {stage}.", CacheWarning, stacklevel=3)
            return _MISSING

    def __repr__(self) -> str:
        return f"Workdir({str(self.root)!r})"


_MISSING = object()


def _set_aside(path: Path) -> None:
    """Remove a stale or damaged artifact (the warning has named it) before replacing it."""
    dest = path.with_name(f".{path.name}.stale-{time.time_ns()}")
    try:
        path.rename(dest)  # atomic: readers never see a half-deleted folder
    except OSError:
        dest = path
    shutil.rmtree(dest, ignore_errors=True)


class FileLock:
    """``filelock.FileLock`` that tells the user when it has to wait."""

    def __init__(self, path: Path, what: str):
        from filelock import FileLock

        self._lock = FileLock(str(path))
        self.path, self.what = path, what

    def __enter__(self):
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            print(
                f"waiting for another process that is computing {self.what} ({self.path})",
                file=sys.stderr,
            )
            self._lock.acquire()
        return self

    def __exit__(self, *exc):
        self._lock.release()
        return False
