"""Small helpers the figure modules' claim checks share (see :class:`._base.Claim`)."""

from __future__ import annotations

import numpy as np

from ._base import NotTestable

__all__ = ["NotTestable", "r3", "trend", "need", "all_of", "median_d_class"]


def r3(values):
    """Values rounded to 3 significant digits, for a claim's numbers (lists and dicts too)."""
    if isinstance(values, dict):
        return {k: r3(v) for k, v in values.items()}
    if isinstance(values, (list, tuple, np.ndarray)):
        return [r3(v) for v in values]
    if values is None:
        return None
    v = float(values)
    if not np.isfinite(v):
        return None
    return float(f"{v:.3g}")


def trend(values) -> str:
    """ "rising", "falling" or "not monotone" for a sequence (ties count as monotone)."""
    v = [float(x) for x in values]
    d = np.diff(v)
    if np.all(d >= 0):
        return "rising"
    if np.all(d <= 0):
        return "falling"
    return "not monotone"


def need(condition: bool, reason: str) -> None:
    """Raise :class:`NotTestable` with ``reason`` unless ``condition``."""
    if not condition:
        raise NotTestable(reason)


def all_of(results: dict) -> bool:
    """True when every per-model (or per-case) verdict in ``results`` is True."""
    return bool(results) and all(bool(v) for v in results.values())


def median_d_class(data, spec, split) -> list:
    """Median D_class per layer of one model and split, from a figure's ``d_class_box``."""
    return [data["d_class_box"][spec][ly][split]["median"] for ly in data["layers"]]
