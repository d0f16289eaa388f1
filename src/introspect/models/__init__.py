"""Model registry: ``create_model(name)`` and ``list_models(pattern)``.

Every model takes images in ``[0, 1]`` (normalisation lives inside) and declares the
layers the papers inspect as aliases onto ``named_modules()`` paths.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from pathlib import Path

from .._utils import default_data_root
from ._base import (
    IntrospectableModel,
    Normalize,
    Normalized,
    available_layers,
    input_std,
    load_checkpoint,
    normalized,
    resolve_layer,
)
from ._timm import EvalTransform, TimmModel, eval_transform, pretrained_data_config
from ._zoo import CifarResNet, MnistCNN, Net1MLP, Net2AllConv, SmallCNN

__all__ = [
    "IntrospectableModel",
    "Normalize",
    "Normalized",
    "TimmModel",
    "EvalTransform",
    "eval_transform",
    "pretrained_data_config",
    "available_layers",
    "create_model",
    "input_std",
    "list_models",
    "load_checkpoint",
    "normalized",
    "register_model",
    "resolve_layer",
]

_AKAMASTER = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"

# name -> (factory, weight file glob, download URL or None)
_REGISTRY: dict[str, tuple[Callable, str | None, str | None]] = {}


def register_model(
    name: str, factory: Callable, weights: str | None = None, url: str | None = None
):
    """Register ``factory(**kwargs) -> IntrospectableModel`` under ``name``.

    ``weights`` is a file-name glob searched for ``pretrained=True`` in
    ``$INTROSPECT_WEIGHTS`` and ``<data root>/weights``; ``url`` is downloaded otherwise.
    """
    _REGISTRY[name] = (factory, weights, url)
    return factory


register_model("mnist_cnn", MnistCNN, "mnist_cnn_pytorch_examples_net_*.pt")
register_model("net1_mlp", Net1MLP)
register_model("net2_allconv", Net2AllConv)
register_model("small_cnn", SmallCNN)
for _n, _blocks, _hash in [
    (20, 3, "12fca82f"),
    (32, 5, "d509ac18"),
    (44, 7, "014dd654"),
    (56, 9, "4bfd9763"),
]:
    register_model(
        f"cifar_resnet{_n}",
        lambda num_classes=10, _b=_blocks, **kw: CifarResNet(
            n_blocks=_b, num_classes=num_classes, **kw
        ),
        f"cifar10_resnet{_n}-*.th",
        f"{_AKAMASTER}resnet{_n}-{_hash}.th",
    )


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob; ``timm:*`` patterns list timm's models."""
    if pattern.startswith("timm:"):
        import timm

        return [f"timm:{n}" for n in timm.list_models(pattern[5:] or "*")]
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def _weight_dirs(extra=None) -> list[Path]:
    dirs = [Path(extra).expanduser()] if extra else []
    if os.environ.get("INTROSPECT_WEIGHTS"):
        dirs.append(Path(os.environ["INTROSPECT_WEIGHTS"]).expanduser())
    dirs.append(default_data_root() / "weights")
    return dirs


def _find_weights(name: str, glob: str | None, url: str | None, extra=None) -> Path:
    for d in _weight_dirs(extra):
        hits = sorted(d.glob(glob)) if glob and d.is_dir() else []
        if hits:
            return hits[0]
    if url is not None:
        from torch.hub import download_url_to_file, get_dir

        target = Path(get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                download_url_to_file(url, str(target))
            except (OSError, ValueError) as err:  # URLError, timeouts, no network, HTTP errors
                target.unlink(missing_ok=True)
                looked = ", ".join(str(d) for d in _weight_dirs(extra))
                raise FileNotFoundError(
                    f"no pretrained weights for {name!r}: not in {looked}, and the download "
                    f"from {url} failed ({type(err).__name__}: {err}); offline? Put the file "
                    f"({glob or target.name}) in one of those folders, set $INTROSPECT_WEIGHTS, "
                    "or pass checkpoint=<path>."
                ) from err
        return target
    looked = ", ".join(str(d) for d in _weight_dirs(extra))
    raise FileNotFoundError(
        f"no pretrained weights for {name!r}: looked for {glob} in {looked}. Pass "
        "checkpoint=<path>, or put the file in one of those folders (set $INTROSPECT_WEIGHTS)."
    )


def create_model(
    name: str,
    pretrained: bool = False,
    checkpoint: str | Path | None = None,
    num_classes: int | None = None,
    weights_dir: str | Path | None = None,
    **kwargs,
) -> IntrospectableModel:
    """Create a model by name, in eval mode.

    Parameters
    ----------
    name : str
        A registered name (see :func:`list_models`) or ``"timm:<timm model name>"``.
    pretrained : bool
        Load published weights: timm's for ``timm:`` models, the akamaster checkpoints
        for ``cifar_resnet*``, a local copy of the PyTorch example's weights for
        ``mnist_cnn``.
    checkpoint : path, optional
        A ``torch.save`` state dict to load (``module.`` prefixes are stripped; a
        mismatch lists missing and unexpected keys).
    num_classes : int, optional
    weights_dir : path, optional
        Searched first for local copies of published weights (then
        ``$INTROSPECT_WEIGHTS`` and ``<data root>/weights``).
    **kwargs
        Passed to the model's constructor (e.g. ``depth=4, width=64`` for ``net1_mlp``).
    """
    if name.startswith("timm:"):
        model: IntrospectableModel = TimmModel(
            name[5:], pretrained=pretrained, num_classes=num_classes, **kwargs
        )
    else:
        if name not in _REGISTRY:
            raise ValueError(
                f"unknown model {name!r}; registered: {', '.join(list_models())}, "
                "or 'timm:<name>' for any timm model."
            )
        factory, glob, url = _REGISTRY[name]
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        model = factory(**kwargs)
        model.name = name
        if pretrained and checkpoint is None:
            checkpoint = _find_weights(name, glob, url, weights_dir)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model.eval()


from . import mnist_zoo as _mnist_zoo  # noqa: E402  (registers the shared MNIST models)

_mnist_zoo.register()
