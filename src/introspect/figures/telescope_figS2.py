"""Lee & Vijayan 2023, Supplementary Fig. 2: top-10 BMUs of the inputs of a few classes, SOM-tr vs SOM-val."""

from __future__ import annotations

from ._base import Param
from ._telescope import SOM_PAPER, SOM_PARAMS, class_bmus_data, class_bmus_summary
from ._telescope_claims import class_bmu_claims

ID = "telescope.figS2"
PAPER = "telescope"
TITLE = "Top-10 BMUs of the inputs of a few classes per layer for a second model, SOM-tr vs SOM-val"
DESCRIPTION = (
    "BMUs of same-class inputs cluster on the SOM, more tightly in deep layers, and "
    "unseen validation inputs land on the same units as the training inputs."
)

PARAMS = {
    "model": Param("small_cnn_rgb@digits", "model recipe (the paper: ResNet50)"),
    "classes": Param([0, 1, 2, 3, 4], "class indices shown"),
    **SOM_PARAMS,
}
# The paper does not list its class IDs; five spread over the 1000 ImageNet classes.
PROFILES = {
    "quick": {},
    "paper": {"model": "timm:resnet50", "classes": [1, 207, 417, 609, 950], **SOM_PAPER},
}


def compute(*, model, classes, **params) -> dict:
    return class_bmus_data(model, classes, params)


def summarize(data: dict) -> str:
    return class_bmus_summary(data)


CLAIMS = class_bmu_claims("Supplementary Fig. 2")
