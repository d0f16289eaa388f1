"""Lee & Vijayan 2023, Fig. 7: D_class per layer (SOM-tr, SOM-val) and cosine distances
between all pairs of SOM unit weights per layer."""

from __future__ import annotations

import numpy as np

from .. import telescope
from ._base import Claim, Param
from ._claims import all_of, median_d_class, r3, trend
from ._telescope import SOM_PAPER, SOM_PARAMS, box_stats, som_kwargs, som_run

ID = "telescope.fig07"
PAPER = "telescope"
TITLE = "D_class per layer (SOM-tr, SOM-val) and cosine distances between SOM unit weights"
DESCRIPTION = (
    "A/B: the mean torus distance from each class's BMUs to its centre shrinks from CL1 "
    "to CL4; C/D: the weights (functional codes) of CL1's SOM are nearly identical, "
    "deeper SOMs hold more diverse codes."
)

PARAMS = {
    "models": Param(["small_cnn@digits"], "model recipes (the paper: ResNet18, ResNet50)"),
    **SOM_PARAMS,
}
PROFILES = {
    "quick": {},
    "paper": {"models": ["timm:resnet18", "timm:resnet50"], **SOM_PAPER},
}


def compute(*, models, **params) -> dict:
    d_class, d_box, unit_cos, acc = {}, {}, {}, {}
    for spec in models:
        run = som_run(spec, **som_kwargs(params))
        d_class[spec], d_box[spec], unit_cos[spec] = {}, {}, {}
        acc[spec] = {s: run.accuracy(s) for s in ("train", "val")}
        for layer in run.layers:
            d_class[spec][layer] = {}
            d_box[spec][layer] = {}
            for split in ("train", "val"):
                d = run.d_class(layer, split)
                d_class[spec][layer][split] = d.tolist()
                d_box[spec][layer][split] = box_stats(d)
            cos = telescope.unit_cosine_distances(run.soms[layer].weights_)
            unit_cos[spec][layer] = box_stats(cos)
            unit_cos[spec][layer]["hist"] = np.histogram(cos, bins=40, range=(0, 1))[0].tolist()
    return {
        "models": list(models),
        "layers": list(params["layers"]),
        "som_size": int(params["som_size"]),
        "d_class": d_class,
        "d_class_box": d_box,
        "unit_cosine": unit_cos,
        "accuracy": acc,
    }


def summarize(data: dict) -> str:
    lines = [
        f"SOM {data['som_size']}x{data['som_size']}; D_class (median [q1, q3] over classes) and "
        "cosine distance between all pairs of unit weights (median [q1, q3])"
    ]
    for spec in data["models"]:
        a = data["accuracy"][spec]
        lines.append(f"{spec} (accuracy SOM-tr {a['train']:.3f}, SOM-val {a['val']:.3f})")
        lines.append(f"  {'layer':<6}{'D_class tr':>22}{'D_class val':>22}{'unit cos dist':>24}")
        for layer in data["layers"]:
            tr = data["d_class_box"][spec][layer]["train"]
            va = data["d_class_box"][spec][layer]["val"]
            uc = data["unit_cosine"][spec][layer]
            lines.append(
                f"  {layer:<6}"
                f"{tr['median']:>8.3f} [{tr['q1']:.3f}, {tr['q3']:.3f}]"
                f"{va['median']:>8.3f} [{va['q1']:.3f}, {va['q3']:.3f}]"
                f"{uc['median']:>10.4f} [{uc['q1']:.4f}, {uc['q3']:.4f}]"
            )
    return "\n".join(lines)


def _d_class_smaller_deep(data):
    res, nums = {}, {}
    for spec in data["models"]:
        for split in ("train", "val"):
            med = median_d_class(data, spec, split)
            res[f"{spec} {split}"] = med[-1] < med[0]
            nums[f"{spec} {split} median D_class"] = r3(med)
            nums[f"{spec} {split} trend"] = trend(med)
    return all_of(res), nums


def _units_homogeneous_shallow(data):
    res, nums = {}, {}
    for spec in data["models"]:
        med = [data["unit_cosine"][spec][ly]["median"] for ly in data["layers"]]
        res[spec] = med[-1] > med[0]
        nums[f"{spec} median unit-pair cosine distance"] = r3(med)
        nums[f"{spec} trend"] = trend(med)
    return all_of(res), nums


CLAIMS = [
    Claim(
        "Distances to the class centres are much smaller in deep layers than in shallow "
        "ones, for seen (SOM-tr) and unseen (SOM-val) inputs (median D_class CL4 < CL1)",
        "Lee & Vijayan 2023, Sec. 3.1 and Fig. 7A-B",
        _d_class_smaller_deep,
    ),
    Claim(
        "Cosine distances between the SOM weights of CL1 are quite small and become "
        "bigger in deep layers: codes homogeneous in shallow layers, diverse in deep ones",
        "Lee & Vijayan 2023, Sec. 3.1 and Fig. 7C-D",
        _units_homogeneous_shallow,
    ),
]
