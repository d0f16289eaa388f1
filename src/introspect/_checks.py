"""Input contracts shared by the public entry points.

Every public entry (capture, training, SOM, library, introspector, manifolds, attacks)
checks what it is given here, so that out-of-contract input is refused with a message
that names the problem and the fix instead of producing silent nonsense.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["check_images", "check_labels", "check_finite", "check_eps", "check_scores"]

_NORMALIZE_HINT = (
    "divide by 255 (or use torchvision's ToTensor) and put the normalisation inside the "
    "model with introspect.models.normalized(model, mean, std)"
)


def _describe(x) -> str:
    return f"{type(x).__name__} of dtype {getattr(x, 'dtype', '?')}"


def check_images(x, *, where: str) -> None:
    """Refuse anything but finite floating-point images in [0, 1].

    Parameters
    ----------
    x : torch.Tensor or ndarray of shape (N, C, H, W) (any shape is accepted)
    where : str
        The public function being called, named in the message.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{where}: images must be a torch.Tensor or ndarray; got {type(x).__name__}."
        )
    if not torch.is_floating_point(x):
        raise TypeError(
            f"{where}: images must be floats in [0, 1]; got {_describe(x)}: {_NORMALIZE_HINT}."
        )
    if x.numel() == 0:
        return
    # one pass: a NaN makes both extremes NaN and an inf is an extreme, so finite extremes
    # mean finite images (torch.isfinite(x).all() costs several times this pass: it
    # writes a boolean image of the whole batch first)
    lo, hi = (float(v) for v in torch.aminmax(x))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = int((~torch.isfinite(x)).reshape(x.shape[0], -1).any(1).sum()) if x.ndim else 1
        raise ValueError(
            f"{where}: images hold NaN or inf values ({bad} image(s)); remove or repair them."
        )
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(
            f"{where}: images must be floats in [0, 1]; these range over [{lo:.4g}, {hi:.4g}]: "
            f"{_NORMALIZE_HINT}."
        )


def check_labels(y, n_classes: int | None = None, *, where: str) -> np.ndarray:
    """Integer class labels in ``[0, n_classes)``, as an int64 array of shape (N,).

    Float labels are refused even when they hold whole numbers, since they usually mean
    that labels and another column were swapped.
    """
    arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"{where}: labels must be integers (class numbers); got dtype {arr.dtype}. "
            "Convert them with .long() / .astype(int) if they are whole class numbers."
        )
    if arr.ndim != 1:
        raise ValueError(f"{where}: labels must have shape (N,); got {arr.shape}.")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{where}: labels must be >= 0; found {int(arr.min())}.")
    if n_classes is not None and arr.size and arr.max() >= n_classes:
        raise ValueError(
            f"{where}: labels must be class numbers in [0, {n_classes}); found {int(arr.max())}. "
            "Check that the model has as many outputs as the data has classes."
        )
    return arr.astype(np.int64, copy=False)


def check_finite(X, *, where: str, what: str = "values") -> None:
    """Refuse arrays that hold NaN or inf, naming the first bad row."""
    arr = X.detach() if isinstance(X, torch.Tensor) else np.asarray(X)
    if isinstance(arr, torch.Tensor):
        if not torch.is_floating_point(arr) or bool(torch.isfinite(arr).all()):
            return
        finite = torch.isfinite(arr).cpu().numpy()
    else:
        if not np.issubdtype(arr.dtype, np.floating) or np.isfinite(arr).all():
            return
        finite = np.isfinite(arr)
    rows = np.flatnonzero(~finite.reshape(finite.shape[0], -1).all(1)) if finite.ndim else [0]
    raise ValueError(
        f"{where}: {what} hold NaN or inf in {len(rows)} row(s) (first: row {int(rows[0])}); "
        "drop or repair those rows first."
    )


def check_eps(eps, *, where: str, name: str = "eps") -> float:
    """A finite, non-negative perturbation size, as a float."""
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: {name} must be a number; got {eps!r}.") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{where}: {name} must be a finite number >= 0 (in [0, 1] pixel units); got {eps!r}."
        )
    return value


def check_scores(scores, labels, *, where: str, names=("scores", "labels")) -> tuple:
    """Class scores of shape (n, n_classes) as float64 and one class number per row.

    ``names`` are what the message calls the two arguments (e.g. ``("logits", "labels")``).
    """
    P = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores,
                   dtype=np.float64)  # fmt: skip
    if P.ndim != 2:
        raise ValueError(
            f"{where}: {names[0]} must have shape (n_samples, n_classes); got {P.shape}."
        )
    y = check_labels(labels, P.shape[1], where=f"{where} ({names[1]})")
    if P.shape[0] != y.shape[0]:
        raise ValueError(
            f"{where}: {names[0]} has {P.shape[0]} rows but {names[1]} has {y.shape[0]}."
        )
    return P, y
