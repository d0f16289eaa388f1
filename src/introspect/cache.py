"""Artifacts keyed by their parameters under a work directory.

Expensive stages (train, capture, fit, attack) store their outputs under
``<workdir>/<stage>/<hash of the parameters>/`` and reuse them, so the figures of one
paper share one trained model and one capture.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = ["Workdir", "param_hash"]


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
            info.write_text(json.dumps(_canonical(params), indent=1, sort_keys=True, default=str))
        return folder

    def memo(self, stage: str, params: dict, fn: Callable[[], object]):
        """``fn()``'s result, computed once per ``(stage, params)`` and kept on disk.

        The result may hold tensors, arrays and plain Python values. It is written
        atomically, so an interrupted computation leaves nothing half-written.
        """
        target = self.path(stage, params) / "result.pt"
        if target.is_file():
            return torch.load(target, map_location="cpu", weights_only=False)
        result = fn()
        tmp = target.with_suffix(".tmp")
        torch.save(result, tmp)
        os.replace(tmp, target)
        return result

    def __repr__(self) -> str:
        return f"Workdir({str(self.root)!r})"
