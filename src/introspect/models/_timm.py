"""timm models behind the toolkit's model contract."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ._base import IntrospectableModel, Normalize

_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


class TimmModel(IntrospectableModel):
    """A timm model with its pretrained normalisation inside; layers live under ``body.``.

    ``CL1..CL4`` (the functional blocks of the telescope paper) are the last four entries
    of timm's ``feature_info`` after dropping entries that are only a pooling of the one
    before. That gives ``layer1..layer4`` for ResNets, ``features.denseblock1..3`` and
    ``features.norm5`` (the normalised output of denseblock4) for DenseNet-121, and
    ``features.8/17/26/35`` (the last ReLU of VGG-19's blocks 2..5, before each pool) for
    VGG-19.
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
        cfg = getattr(body, "pretrained_cfg", None) or {}
        self.normalize = Normalize(
            cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225))
        )
        self.body = body
        self.name = f"timm:{name}"
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

    def forward(self, x):
        return self.body(self.normalize(x))
