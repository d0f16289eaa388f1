"""Lee & Vijayan 2023, Fig. 6: top-10 BMUs of the inputs of a few classes, SOM-tr vs SOM-val."""

from __future__ import annotations

from ._base import Param
from ._telescope import SOM_PAPER, SOM_PARAMS, class_bmus_data, class_bmus_summary
from ._telescope_claims import class_bmu_claims

ID = "telescope.fig06"
PAPER = "telescope"
TITLE = "Top-10 BMUs of the inputs of a few classes per layer, SOM-tr (seen) vs SOM-val (unseen)"
DESCRIPTION = (
    "BMUs of same-class inputs cluster on the SOM, more tightly in deep layers, and "
    "unseen validation inputs land on the same units as the training inputs."
)

PARAMS = {
    "model": Param("small_cnn@digits", "model recipe (the paper: ResNet18)"),
    "classes": Param([0, 1, 2, 3, 4], "class indices shown"),
    **SOM_PARAMS,
}
# The paper does not list its class IDs; five spread over the 1000 ImageNet classes.
PROFILES = {
    "quick": {},
    "paper": {"model": "timm:resnet18", "classes": [1, 207, 417, 609, 950], **SOM_PAPER},
}


def compute(*, model, classes, **params) -> dict:
    return class_bmus_data(model, classes, params)


def summarize(data: dict) -> str:
    return class_bmus_summary(data)


CLAIMS = class_bmu_claims("Fig. 6")
