"""The model contract: images in [0, 1] in, logits out, layers declared by path."""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "Normalize",
    "Normalized",
    "normalized",
    "IntrospectableModel",
    "available_layers",
    "resolve_layer",
    "load_checkpoint",
    "input_std",
]


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, so that models take images in ``[0, 1]``.

    The statistics are non-persistent buffers: they follow ``.to(device)`` but stay out of
    ``state_dict``, so published checkpoints load strictly.
    """

    def __init__(self, mean, std):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, x):
        return (x - self.mean) / self.std

    def extra_repr(self):
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class IntrospectableModel(nn.Module):
    """Base class of every model the toolkit creates.

    Attributes
    ----------
    layer_aliases : OrderedDict of str -> str
        The paper's layer names (``CN1``, ``CL1``, ``FC``...) mapped onto
        ``named_modules()`` paths, in forward order.
    input_size : tuple (C, H, W)
        The input the model expects, in ``[0, 1]``.
    num_classes : int
    classifier_path : str
        Path of the final linear layer; the penultimate representation is its input.
    output : {"logits", "sigmoid"}
        ``"sigmoid"`` for networks trained with sigmoid outputs and a squared error
        (Pardo et al.); ``forward`` returns pre-sigmoid scores in both cases.
    """

    layer_aliases: OrderedDict
    input_size: tuple
    num_classes: int
    classifier_path: str
    output: str = "logits"
    name: str = "model"

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax (or sigmoid, for sigmoid-output networks) of ``forward``'s output."""
        return torch.sigmoid(logits) if self.output == "sigmoid" else logits.softmax(-1)


class Normalized(nn.Module):
    """A model that expects normalised input, made to take images in [0, 1].

    ``forward(x) = net(normalize(x))``. The wrapped model's layers keep their own names:
    every ``named_modules()`` path of ``net`` (``"layer1"``) and its aliases resolve here
    too (onto ``"net.layer1"``), so a user names layers as in their own model.

    Attributes
    ----------
    net : nn.Module
    normalize : Normalize
    layer_aliases : dict of str -> str
        ``net``'s aliases and paths, mapped onto this module's paths.
    classifier_path : str or None
        The last ``nn.Linear`` of ``net`` (its input is the ``"penultimate"`` layer).
    num_classes : int or None
    """

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        inner = getattr(net, "layer_aliases", {}) or {}
        self._paths = {n: f"net.{n}" for n, _ in net.named_modules() if n}
        self.layer_aliases = OrderedDict((k, f"net.{v}") for k, v in inner.items())
        last = None
        for name, m in net.named_modules():
            if isinstance(m, nn.Linear):
                last = (name, m)
        path = getattr(net, "classifier_path", None) or (last[0] if last else None)
        self.classifier_path = f"net.{path}" if path else None
        self.num_classes = getattr(net, "num_classes", None) or (
            last[1].out_features if last else None
        )
        self.name = getattr(net, "name", type(net).__name__)
        for attr in ("input_size", "output"):
            if hasattr(net, attr):
                setattr(self, attr, getattr(net, attr))

    def forward(self, x):
        return self.net(self.normalize(x))

    def resolve(self, name: str) -> str | None:
        """``net``'s own path or alias ``name`` as a path of this module (None if unknown)."""
        return self.layer_aliases.get(name) or self._paths.get(name)


def normalized(model: nn.Module, mean, std) -> Normalized:
    """Wrap a model trained on normalised images so that it takes images in [0, 1].

    Attacks and captures work in [0, 1] pixel space; the normalisation belongs inside the
    model. ``mean`` and ``std`` are per channel, e.g. ImageNet's ``(0.485, 0.456, 0.406)``
    and ``(0.229, 0.224, 0.225)``. Layers are still named as in ``model``.

    Examples
    --------
    >>> import torchvision
    >>> net = normalized(torchvision.models.resnet18(num_classes=10),
    ...                  (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    >>> resolve_layer(net, "layer4")
    'net.layer4'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"normalized() wraps a torch.nn.Module; got {type(model).__name__}.")
    return Normalized(model, mean, std)


def input_std(model: nn.Module) -> tuple[float, ...]:
    """Per-channel std of the model's own input normalisation; ``(1.0,)`` when it has none.

    Models take images in [0, 1] and normalise inside (the outermost :class:`Normalize`).
    A perturbation of ``eps`` pixels is ``eps / std`` in the normalised units that papers
    attacking normalised tensors quote (Lee 2019's ResNet44: std 0.229/0.224/0.225, so
    0.01 pixels = 0.044 normalised).

    >>> input_std(Normalized(nn.Identity(), (0.5,), (0.25,)))
    (0.25,)
    """
    for module in model.modules():
        if isinstance(module, Normalize):
            return tuple(float(f"{float(v):.6g}") for v in module.std.flatten())  # float32 -> 0.229
    return (1.0,)


def available_layers(model: nn.Module) -> list[str]:
    """Every addressable layer: the paper aliases first, then all ``named_modules`` paths."""
    aliases = list(getattr(model, "layer_aliases", {}) or {})
    paths = [n for n, _ in model.named_modules() if n]
    return aliases + paths


def resolve_layer(model: nn.Module, name: str) -> str:
    """Map an alias or a ``named_modules`` path to the path; unknown names list the options."""
    aliases = getattr(model, "layer_aliases", {}) or {}
    if name in aliases:
        return aliases[name]
    modules = dict(model.named_modules())
    if name in modules and name:
        return name
    if isinstance(model, Normalized) and model.resolve(name):
        return model.resolve(name)
    shown = available_layers(model)
    more = "" if len(shown) <= 60 else f" ... ({len(shown) - 60} more)"
    raise ValueError(
        f"unknown layer {name!r} for {type(model).__name__}. Available layers: "
        f"{', '.join(shown[:60])}{more}. Aliases: {dict(aliases) or 'none'}."
    )


def _clean_state_dict(obj) -> dict:
    sd = obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                sd = obj[key]
                break
    if not isinstance(sd, dict):
        raise ValueError("the checkpoint holds no state_dict (a dict of tensors).")
    return {re.sub(r"^module\.", "", k): v for k, v in sd.items()}


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = True) -> nn.Module:
    """Load a ``torch.save`` checkpoint (plain state dict or ``{"state_dict": ...}``).

    ``module.`` prefixes (DataParallel) are stripped. A mismatch raises an error that
    lists the missing and the unexpected keys.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist.")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    sd = _clean_state_dict(raw)
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    shape = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in sd and hasattr(sd[k], "shape") and tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    if strict and (missing or unexpected or shape):
        raise ValueError(
            f"checkpoint {path.name} does not fit {type(model).__name__}: "
            f"missing keys {missing or 'none'}; unexpected keys {unexpected or 'none'}; "
            f"shape mismatches {shape or 'none'}."
        )
    model.load_state_dict(sd, strict=False)
    return model
