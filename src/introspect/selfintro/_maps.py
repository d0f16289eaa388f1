"""Array-level maths of the self-introspective map (Pardo et al. 2022).

The classifier's error, the KDE of the codes and ``E[z | H_k]`` (Eq. 8), the order of
the units by preferred class (Eq. 10) and the brainbow colours (Eq. 11). Private module
of :mod:`introspect.selfintro`.
"""

from __future__ import annotations

import colorsys
import warnings

import numpy as np
import torch

from .._checks import check_scores
from .._utils import to_numpy

__all__ = [
    "classifier_error",
    "kde_density",
    "kde_expectation",
    "KDEWindowWarning",
    "KDE_OUTSIDE_TOLERANCE",
    "outside_fraction",
    "order_units",
    "brainbow_colors",
    "default_class_colors",
]

# d3's category10 palette as RGB in [0, 1] (the usual 10-class colours).
_CATEGORY10 = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _hex_to_rgb(h: str) -> tuple[float, float, float]:
    h = h.lstrip("#")
    return tuple(int(h[i : i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def default_class_colors(n_classes: int) -> np.ndarray:
    """One RGB colour per class, shape (n_classes, 3) in [0, 1].

    Up to 10 classes: d3's category10; more: evenly spaced hues at full saturation.
    """
    if n_classes <= len(_CATEGORY10):
        return np.array([_hex_to_rgb(c) for c in _CATEGORY10[:n_classes]])
    return np.array([colorsys.hsv_to_rgb(k / n_classes, 0.85, 0.95) for k in range(n_classes)])


# ----------------------------------------------------------------- array-level maths


def classifier_error(logits, labels, output: str = "sigmoid") -> np.ndarray:
    """The classifier's per-sample error ``e = 1/2 ||y - y_hat||^2``.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_classes)
        Pre-activation outputs.
    labels : array-like of shape (n_samples,)
        Integer class labels; ``y`` is their one-hot vector.
    output : {"sigmoid", "softmax", "logits", "probs"}
        How ``y_hat`` is obtained from ``logits``: the sigmoid of each output (the
        paper's nets), a softmax (``"logits"`` means the same: a cross-entropy net), or
        ``"probs"`` when the values already are ``y_hat``.

    Returns
    -------
    e : ndarray of shape (n_samples,)
    """
    P, y = check_scores(
        to_numpy(logits), labels, where="classifier_error", names=("logits", "labels")
    )
    z = torch.as_tensor(P)
    if output == "sigmoid":
        p = torch.sigmoid(z)
    elif output in ("softmax", "logits"):
        p = torch.softmax(z, dim=1)
    elif output == "probs":
        p = z
    else:
        raise ValueError(
            f"output must be 'sigmoid', 'softmax', 'logits' or 'probs'; got {output!r}"
        )
    onehot = np.zeros(tuple(p.shape))
    onehot[np.arange(len(y)), y] = 1.0
    return 0.5 * ((onehot - p.numpy()) ** 2).sum(1)


def _grid(extent: float, grid_size: int) -> tuple[np.ndarray, float]:
    g = np.linspace(-extent, extent, int(grid_size))
    return g, float(g[1] - g[0])


def _scott_bandwidth(Z: np.ndarray, floor: float) -> float:
    n = Z.shape[0]
    spread = float(np.sqrt(np.mean(Z.var(0)))) if n > 1 else 0.0
    return max(spread * n ** (-1.0 / (Z.shape[1] + 4)), floor)


def kde_density(
    Z, *, extent: float = 4.0, grid_size: int = 201, bandwidth: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian KDE of 2-D codes on a square grid.

    Parameters
    ----------
    Z : array-like of shape (n_samples, 2)
    extent : float, default 4.0
        The grid covers ``[-extent, extent]^2``.
    grid_size : int, default 201
        Points per axis (spacing ``dz = 2 extent / (grid_size - 1)``).
    bandwidth : float or None
        Kernel standard deviation. None: Scott's rule on the pooled standard deviation,
        ``sigma n^(-1/6)``, never below the grid spacing (so a point mass still covers a
        few grid cells).

    Returns
    -------
    grid : ndarray of shape (grid_size,)
        Coordinates along each axis.
    density : ndarray of shape (grid_size, grid_size)
        ``density[i, j] = f_hat(grid[i], grid[j])``; it integrates to ~1 over the grid.
    """
    Z = np.asarray(to_numpy(Z), dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] != 2:
        raise ValueError(f"Z must have shape (n_samples, 2); got {Z.shape}")
    if Z.shape[0] == 0:
        raise ValueError("cannot estimate a density from 0 codes")
    g, dz = _grid(extent, grid_size)
    h = float(bandwidth) if bandwidth is not None else _scott_bandwidth(Z, dz)
    # The isotropic kernel factorises over the two axes: f = Phi_1^T Phi_2 / n.
    norm = 1.0 / (np.sqrt(2 * np.pi) * h)
    phi1 = norm * np.exp(-0.5 * ((g[None, :] - Z[:, :1]) / h) ** 2)  # (n, G)
    phi2 = norm * np.exp(-0.5 * ((g[None, :] - Z[:, 1:2]) / h) ** 2)
    return g, phi1.T @ phi2 / Z.shape[0]


class KDEWindowWarning(UserWarning):
    """Codes lie outside the KDE's grid, so ``E[z]`` is pulled toward the window."""


# Warn when more than this fraction of the codes (of any one class) lies outside the grid.
KDE_OUTSIDE_TOLERANCE = 0.01


def outside_fraction(Z, extent: float) -> float:
    """Fraction of the codes with a coordinate outside ``[-extent, extent]``."""
    Z = np.asarray(to_numpy(Z), dtype=np.float64)
    return float((np.abs(Z) > extent).any(-1).mean()) if len(Z) else 0.0


def suggested_extent(Z, bandwidth: float | None = None) -> float:
    """A window that holds every code and its kernel: ``max |z| + 4 h``, rounded up.

    ``h`` is ``bandwidth`` or Scott's rule (:func:`kde_density`'s default).
    """
    Z = np.asarray(to_numpy(Z), dtype=np.float64)
    h = float(bandwidth) if bandwidth is not None else _scott_bandwidth(Z, 0.0)
    return float(np.ceil(np.abs(Z).max() + 4.0 * h))


def kde_expectation(
    Z,
    *,
    extent: float = 4.0,
    grid_size: int = 201,
    bandwidth: float | None = None,
    normalize: bool = True,
) -> np.ndarray:
    """``E[z]`` as the Riemann sum of ``z f_hat(z) dz^2`` over the grid (Eq. 8).

    Parameters
    ----------
    Z : array-like of shape (n_samples, 2)
    extent, grid_size, bandwidth : see :func:`kde_density`
    normalize : bool, default True
        Divide by the Riemann sum of ``f_hat dz^2`` (the KDE's mass inside the grid),
        which removes the bias of truncating the domain; False is Eq. 8 literally.

    Returns
    -------
    ez : ndarray of shape (2,)
        For codes well inside the grid this is their sample mean (a KDE has the mean of
        its sample); a point mass gives the point itself.

    Warns
    -----
    KDEWindowWarning
        When more than ``KDE_OUTSIDE_TOLERANCE`` of the codes lie outside the grid: their
        mass is cut off, so ``E[z]`` is pulled toward the window; widen ``extent``.
    """
    frac = outside_fraction(Z, extent)
    if frac > KDE_OUTSIDE_TOLERANCE:
        warnings.warn(
            f"{frac:.1%} of the codes lie outside the KDE window [-{extent:g}, {extent:g}]^2, "
            f"so E[z] is pulled toward the window; pass extent={suggested_extent(Z, bandwidth):g} "
            "(it holds every code and its kernel).",
            KDEWindowWarning,
            stacklevel=2,
        )
    g, f = kde_density(Z, extent=extent, grid_size=grid_size, bandwidth=bandwidth)
    dz = g[1] - g[0]
    w = f * dz * dz
    mass = w.sum()
    ez = np.array([(g[:, None] * w).sum(), (g[None, :] * w).sum()])
    if normalize:
        if mass <= 0:
            raise ValueError(
                f"the codes lie outside the grid [-{extent}, {extent}]^2; widen `extent`"
            )
        ez = ez / mass
    return ez


def order_units(expected: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort units by their preferred class, then by strength (Eq. 10).

    Parameters
    ----------
    expected : ndarray of shape (n_classes, n_units)
        ``E[h_i | H_k]`` of one layer.

    Returns
    -------
    order : ndarray of shape (n_units,)
        Permutation: ``units[order]`` puts class 0's units first (strongest first), then
        class 1's, and so on.
    assignment : ndarray of shape (n_units,)
        ``argmax_k E[h_i | H_k]`` for every unit, in the original order.
    strength : ndarray of shape (n_units,)
        ``max_k E[h_i | H_k]``, in the original order.
    """
    E = np.asarray(expected, dtype=np.float64)
    if E.ndim != 2:
        raise ValueError(f"expected must have shape (n_classes, n_units); got {E.shape}")
    assignment = E.argmax(0)
    strength = E.max(0)
    order = np.lexsort((-strength, assignment))
    return order, assignment, strength


def brainbow_colors(expected: np.ndarray, colors=None, *, normalize: bool = True) -> np.ndarray:
    """Artificial brainbow (Eq. 11): ``alpha_i = (1/K) sum_k c_k E[h_i | H_k]``.

    Parameters
    ----------
    expected : ndarray of shape (n_classes, n_units)
        ``E[h_i | H_k]`` of one layer (use one call per layer so each layer is scaled on
        its own, as in the paper's figure).
    colors : array-like of shape (n_classes, 3) or None
        RGB in [0, 1], one per class; None uses :func:`default_class_colors`.
    normalize : bool, default True
        Clip negative values (inhibition has no colour) and divide by the layer's
        largest channel value, so the strongest unit is at full brightness and the
        result is a displayable RGB in [0, 1]. False returns Eq. 11 as it is.

    Returns
    -------
    rgb : ndarray of shape (n_units, 3)
        A unit driven by one class only has that class's hue; a unit driven equally by
        all classes has the mean colour (grey for a balanced palette).
    """
    E = np.asarray(expected, dtype=np.float64)
    if E.ndim != 2:
        raise ValueError(f"expected must have shape (n_classes, n_units); got {E.shape}")
    K = E.shape[0]
    C = default_class_colors(K) if colors is None else np.asarray(colors, dtype=np.float64)
    if C.shape != (K, 3):
        raise ValueError(f"colors must have shape ({K}, 3) (RGB per class); got {C.shape}")
    alpha = E.T @ C / K
    if not normalize:
        return alpha
    alpha = np.clip(alpha, 0.0, None)
    top = alpha.max()
    return alpha / top if top > 0 else alpha
