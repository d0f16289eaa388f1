"""Lee & Vijayan 2023, Fig. 9: D_class per layer for ResNet50 trained on CIFAR-10,
CIFAR-100 and SVHN (training and test examples)."""

from __future__ import annotations

from ._base import Param
from ._telescope import SOM_PAPER, SOM_PARAMS, box_stats, som_kwargs, som_run

ID = "telescope.fig09"
PAPER = "telescope"
TITLE = "D_class per layer for models trained on other datasets (train and test examples)"
DESCRIPTION = (
    "The shrinking of D_class from CL1 to CL4 holds beyond ImageNet: ResNet50 trained on "
    "CIFAR-10, CIFAR-100 and SVHN."
)

PARAMS = {
    "models": Param(
        ["small_cnn@digits", "small_cnn_rgb@digits"],
        "model recipes, one per dataset (the paper: ResNet50 on CIFAR-10, CIFAR-100, SVHN)",
    ),
    **SOM_PARAMS,
}
PROFILES = {
    "quick": {},
    "paper": {
        "models": ["resnet50@cifar10", "resnet50@cifar100", "resnet50@svhn"],
        **SOM_PAPER,
    },
}


def compute(*, models, **params) -> dict:
    box, acc = {}, {}
    for spec in models:
        run = som_run(spec, **som_kwargs(params))
        acc[spec] = {s: run.accuracy(s) for s in ("train", "val")}
        box[spec] = {
            layer: {split: box_stats(run.d_class(layer, split)) for split in ("train", "val")}
            for layer in run.layers
        }
    return {
        "models": list(models),
        "layers": list(params["layers"]),
        "som_size": int(params["som_size"]),
        "d_class_box": box,
        "accuracy": acc,
    }


def summarize(data: dict) -> str:
    lines = ["median D_class over classes (train / test examples)"]
    lines.append(
        f"{'model':<24}" + "".join(f"{la:>16}" for la in data["layers"]) + "   accuracy tr/test"
    )
    for spec in data["models"]:
        b = data["d_class_box"][spec]
        a = data["accuracy"][spec]
        lines.append(
            f"{spec:<24}"
            + "".join(
                f"{b[la]['train']['median']:>8.3f}/{b[la]['val']['median']:<7.3f}"
                for la in data["layers"]
            )
            + f"   {a['train']:.3f}/{a['val']:.3f}"
        )
    return "\n".join(lines)
