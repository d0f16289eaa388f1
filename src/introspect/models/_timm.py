"""timm models behind the toolkit's model contract."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ._base import IntrospectableModel, Normalize

__all__ = ["TimmModel", "EvalTransform", "pretrained_data_config", "eval_transform"]

_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def pretrained_data_config(name: str) -> dict:
    """timm's evaluation data config of a model's pretrained weights, without loading them.

    ``name`` is a timm model name with an optional pretrained tag (``"resnet50"`` means
    timm's default tag, ``resnet50.a1_in1k``; ``"resnet50.tv_in1k"`` torchvision's
    weights). The config is :func:`timm.data.resolve_data_config` of the tag's
    ``pretrained_cfg``: ``input_size``, ``interpolation``, ``crop_pct``, ``crop_mode``,
    ``mean`` and ``std``, plus ``"model"``: the resolved ``architecture.tag``.
    """
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg, is_model

    arch = name.split(".", 1)[0]
    if not is_model(arch):
        raise ValueError(f"timm has no model {arch!r}; see timm.list_models('{arch[:4]}*').")
    try:
        cfg = get_pretrained_cfg(name, allow_unregistered=False)
    except RuntimeError:  # "Invalid pretrained tag"
        cfg = None
    if cfg is None:
        raise ValueError(
            f"timm has no pretrained weights {name!r}; see timm.list_pretrained('{arch}*')."
        )
    out = dict(resolve_data_config(pretrained_cfg=cfg.to_dict()))
    out["model"] = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else str(cfg.architecture)
    return out


class EvalTransform:
    """A PIL image -> float tensor (C, H, W) in [0, 1], as the model's weights were evaluated.

    timm's :func:`~timm.data.create_transform` in eval mode for ``config``: resize of the
    shorter side to ``input_size / crop_pct`` with the weights' interpolation (antialiased),
    centre crop to ``input_size``; without the normalisation, which lives inside the
    toolkit's models (images stay in [0, 1], so attacks work in pixel space). Picklable;
    its ``repr`` names the config, so caches keyed on it change when it does.
    """

    def __init__(self, config: dict):
        from timm.data import create_transform

        keys = ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std")
        self.config = {k: config[k] for k in keys if k in config}
        self.model = config.get("model")
        self.transform = create_transform(**self.config, is_training=False, normalize=False)

    def __call__(self, img) -> torch.Tensor:
        if getattr(img, "mode", "RGB") != "RGB":
            img = img.convert("RGB")
        x = self.transform(img)  # uint8 (C, H, W)
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()

    def __repr__(self) -> str:
        c = self.config
        return (
            f"EvalTransform(model={self.model!r}, input_size={tuple(c.get('input_size', ()))}, "
            f"interpolation={c.get('interpolation')!r}, crop_pct={c.get('crop_pct')}, "
            f"crop_mode={c.get('crop_mode')!r})"
        )


def eval_transform(name: str) -> EvalTransform:
    """:class:`EvalTransform` of a timm model name (``"resnet50.tv_in1k"`` or ``"timm:..."``)."""
    name = name.removeprefix("timm:")
    return EvalTransform(pretrained_data_config(name))


class TimmModel(IntrospectableModel):
    """A timm model with its pretrained normalisation inside; layers live under ``body.``.

    ``CL1..CL4`` (the functional blocks of the telescope paper) are the last four entries
    of timm's ``feature_info`` after dropping entries that are only a pooling of the one
    before. That gives ``layer1..layer4`` for ResNets, ``features.denseblock1..3`` and
    ``features.norm5`` (the normalised output of denseblock4) for DenseNet-121, and
    ``features.8/17/26/35`` (the last ReLU of VGG-19's blocks 2..5, before each pool) for
    VGG-19.

    ``name`` may carry a pretrained tag: ``"resnet50"`` is timm's default weights
    (``resnet50.a1_in1k``), ``"resnet50.tv_in1k"`` torchvision's. ``weights`` is the
    resolved ``architecture.tag`` and ``data_config`` the weights' evaluation data config
    (:func:`pretrained_data_config`); :meth:`eval_transform` turns images into the input
    the weights expect.
    """

    def __init__(self, name, pretrained=False, num_classes=None, **kwargs):
        super().__init__()
        import timm

        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        try:
            body = timm.create_model(name, pretrained=pretrained, **kwargs)
        except RuntimeError as err:
            if "Unknown model" in str(err):
                raise ValueError(
                    f"timm has no model {name!r}; see timm.list_models('{name[:4]}*')."
                ) from err
            raise
        except (OSError, ValueError) as err:  # the hub unreachable, no cached copy
            if not pretrained:
                raise
            raise FileNotFoundError(
                f"timm could not load the pretrained weights of {name!r} "
                f"({type(err).__name__}: {err}). Offline? Download them once where there is "
                "a network (they are cached under ~/.cache/huggingface), or pass "
                "pretrained=False or checkpoint=<path>."
            ) from err
        cfg = getattr(body, "pretrained_cfg", None) or {}
        self.normalize = Normalize(
            cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225))
        )
        self.body = body
        self.name = f"timm:{name}"
        tag = cfg.get("tag")
        self.weights = f"{cfg.get('architecture', name.split('.')[0])}.{tag}" if tag else name
        from timm.data import resolve_data_config

        self.data_config = dict(resolve_data_config(pretrained_cfg=dict(cfg)))
        self.input_size = tuple(cfg.get("input_size", (3, 224, 224)))
        self.num_classes = body.num_classes
        classifier = cfg.get("classifier", "fc")
        if isinstance(classifier, (list, tuple)):
            classifier = classifier[0]
        self.classifier_path = f"body.{classifier}"
        modules = dict(body.named_modules())
        info = [f["module"] for f in getattr(body, "feature_info", [])]
        info = [m for m in info if not isinstance(modules.get(m), _POOLS)]
        self.layer_aliases = OrderedDict(
            (f"CL{i + 1}", f"body.{m}") for i, m in enumerate(info[-4:])
        )
        if self.classifier_path.removeprefix("body.") in modules:
            self.layer_aliases["FC"] = self.classifier_path

    def eval_transform(self) -> EvalTransform:
        """The PIL -> [0, 1] tensor transform of these weights (resize, centre crop)."""
        return EvalTransform({**self.data_config, "model": self.weights})

    def forward(self, x):
        return self.body(self.normalize(x))
