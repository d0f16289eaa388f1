"""Small helpers shared by the core modules."""

from __future__ import annotations

import functools
import os
import random
import warnings
from pathlib import Path

import numpy as np
import torch


def __getattr__(name: str):
    # NotFittedError subclasses scikit-learn's, whose import costs more than a second:
    # it is defined in introspect._estimator and imported only when it is asked for, so
    # the modules that only need the helpers below (capture, data, models) stay cheap.
    if name == "NotFittedError":
        from ._estimator import NotFittedError

        return NotFittedError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_is_fitted(obj, attr: str) -> None:
    """Raise :class:`~introspect.NotFittedError` when ``obj`` has no learned attribute ``attr``."""
    if getattr(obj, attr, None) is None:
        from ._estimator import NotFittedError

        name = type(obj).__name__
        raise NotFittedError(f"This {name} is not fitted yet: call {name}.fit(...) first.")


def renamed_keyword(old: str, new: str):
    """Decorator: accept the deprecated keyword ``old`` for ``new``, with a FutureWarning.

    Passing both is a ``TypeError``. The signature (``inspect.signature``) shows ``new``
    only.
    """

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(
                        f"{fn.__qualname__}() got both {new!r} and its deprecated alias {old!r}."
                    )
                warnings.warn(
                    f"{fn.__qualname__}: the keyword {old!r} is deprecated and will be removed; "
                    f"use {new!r}.",
                    FutureWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper

    return decorate


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 (seeds legacy global users too)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``None`` into a :class:`torch.device`.

    ``"auto"`` picks CUDA when available. Asking for CUDA on a machine without it raises
    an error that says so instead of failing deep inside torch.
    """
    if device is None:
        return torch.device("cpu")
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={str(device)!r} was requested but CUDA is not available here; "
            "pass device='cpu' (or 'auto')."
        )
    return dev


def default_data_root() -> Path:
    """``$INTROSPECT_DATA`` if set, else ``~/.cache/introspect``."""
    env = os.environ.get("INTROSPECT_DATA")
    return Path(env).expanduser() if env else Path("~/.cache/introspect").expanduser()


def to_numpy(x) -> np.ndarray:
    """Detach a tensor (on any device) or pass an array through."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
