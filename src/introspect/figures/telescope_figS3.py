"""Lee & Vijayan 2023, Supplementary Fig. 3: distance from the BMUs of an input to its
label's class centre, for correct vs incorrect predictions."""

from __future__ import annotations

import numpy as np

from .. import telescope
from ._base import Claim, Param
from ._claims import all_of, r3
from ._telescope import SOM_PAPER, SOM_PARAMS, box_stats, som_kwargs, som_run

ID = "telescope.figS3"
PAPER = "telescope"
TITLE = "Distance from BMUs to the label's class centre: correct vs incorrect predictions"
DESCRIPTION = (
    "Inputs the model gets wrong have BMUs farther from their class centre than inputs it "
    "gets right."
)

PARAMS = {
    "models": Param(["small_cnn@digits"], "model recipes (the paper: ResNet18)"),
    "splits": Param(["train", "val"], "SOM-tr and/or SOM-val inputs"),
    **SOM_PARAMS,
}
PROFILES = {"quick": {}, "paper": {"models": ["timm:resnet18", "timm:resnet50"], **SOM_PAPER}}


def compute(*, models, splits, **params) -> dict:
    box, counts = {}, {}
    for spec in models:
        run = som_run(spec, splits=tuple(dict.fromkeys(["train", *splits])), **som_kwargs(params))
        box[spec], counts[spec] = {}, {}
        for split in splits:
            correct = run.preds[split] == run.labels[split]
            counts[spec][split] = {
                "correct": int(correct.sum()),
                "incorrect": int((~correct).sum()),
            }
            box[spec][split] = {}
            for layer in run.layers:
                d = telescope.distance_to_centres(
                    run.bmus[split][layer],
                    run.labels[split],
                    run.centres(layer),
                    run.shape,
                    classes=np.arange(len(run.classes)),
                )
                box[spec][split][layer] = {
                    "correct": box_stats(d[correct]),
                    "incorrect": box_stats(d[~correct]),
                }
    return {
        "models": list(models),
        "splits": list(splits),
        "layers": list(params["layers"]),
        "distance": box,
        "counts": counts,
    }


def summarize(data: dict) -> str:
    lines = ["mean torus distance from an input's BMUs to its label's centre: correct vs incorrect"]
    for spec in data["models"]:
        for split in data["splits"]:
            c = data["counts"][spec][split]
            lines.append(f"{spec} {split}: {c['correct']} correct, {c['incorrect']} incorrect")
            for layer in data["layers"]:
                b = data["distance"][spec][split][layer]
                inc = f"{b['incorrect']['mean']:.3f}" if b["incorrect"]["n"] else "  n/a"
                lines.append(f"  {layer:<6}correct {b['correct']['mean']:.3f}   incorrect {inc}")
    return "\n".join(lines)


def _errors_land_farther(data, min_errors: int = 5):
    res, nums = {}, {}
    for spec in data["models"]:
        for split in data["splits"]:
            c = data["counts"][spec][split]
            if c["incorrect"] < min_errors:
                nums[f"{spec} {split} errors"] = c["incorrect"]
                continue
            for ly in data["layers"]:
                d = data["distance"][spec][split][ly]
                res[f"{spec} {split} {ly}"] = d["incorrect"]["mean"] > d["correct"]["mean"]
                nums[f"{spec} {split} {ly} correct / incorrect"] = r3(
                    [d["correct"]["mean"], d["incorrect"]["mean"]]
                )
    if not res:
        return (
            None,
            nums,
            (
                f"fewer than {min_errors} misclassified inputs in every split: the model is "
                "too accurate on these inputs for a comparison"
            ),
        )
    return all_of(res), nums


CLAIMS = [
    Claim(
        "D_class is bigger when the network's prediction is incorrect than when it is "
        "correct (mean distance of an input's BMUs to its label's centre, every layer)",
        "Lee & Vijayan 2023, Sec. 3.1 and Supplementary Fig. 3",
        _errors_land_farther,
    ),
]
