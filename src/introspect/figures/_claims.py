"""Small helpers the figure modules' claim checks share (see :class:`._base.Claim`)."""

from __future__ import annotations

import numpy as np

from ._base import NotTestable

__all__ = ["NotTestable", "r3", "trend", "need", "all_of", "torus_mean_distance"]


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


def torus_mean_distance(rows, cols, counts, centre, shape) -> float:
    """Count-weighted mean torus distance from grid points to ``centre`` on an m x n torus."""
    m, n = shape
    r = np.abs(np.asarray(rows, float) - centre[0]) % m
    c = np.abs(np.asarray(cols, float) - centre[1]) % n
    r = np.minimum(r, m - r)
    c = np.minimum(c, n - c)
    w = np.asarray(counts, float)
    return float((np.hypot(r, c) * w).sum() / w.sum())
