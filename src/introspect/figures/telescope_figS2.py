"""Lee & Vijayan 2023, Supplementary Fig. 2: top-10 BMUs of the inputs of a few classes, SOM-tr vs SOM-val."""

from __future__ import annotations

from ._base import Claim, Param
from ._claims import all_of, r3
from ._telescope import SOM_PAPER, SOM_PARAMS, class_bmus_data, class_bmus_summary

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


def _cluster_tighter_deeper(data):
    layers, res, nums = data["layers"], {}, {}
    for c in data["classes"]:
        d = [data["bmus"][ly][str(c)]["train"]["d_class"] for ly in layers]
        res[c] = d[-1] < d[0]
        nums[f"class {c} D_class per layer"] = r3(d)
    return all_of(res), nums


def _val_lands_on_train_units(data, share: float = 0.8):
    """Share of the SOM-val BMUs that fall on units the same class's SOM-tr BMUs use."""
    res, nums = {}, {}
    for ly in data["layers"]:
        hits = total = 0
        for c in data["classes"]:
            b = data["bmus"][ly][str(c)]
            seen = set(b["train"]["units"])
            hits += sum(k for u, k in zip(b["val"]["units"], b["val"]["counts"]) if u in seen)
            total += sum(b["val"]["counts"])
        frac = hits / total if total else float("nan")
        res[ly] = frac >= share
        nums[f"{ly} SOM-val BMUs on SOM-tr units"] = r3(frac)
    return all_of(res), nums


CLAIMS = [
    Claim(
        "BMUs of same-class inputs cluster together, and more tightly in deep layers "
        "(per class shown: D_class of CL4 below CL1)",
        "Lee & Vijayan 2023, Sec. 3.1 and Supplementary Fig. 2",
        _cluster_tighter_deeper,
    ),
    Claim(
        "SOM-val, not used to train the SOMs, elicits a similar set of units as SOM-tr "
        "(at least 80 % of its BMUs fall on units of the same class's SOM-tr BMUs)",
        "Lee & Vijayan 2023, Sec. 3.1 and Supplementary Fig. 2",
        _val_lands_on_train_units,
    ),
]
