"""Lee & Vijayan 2023, Fig. 9: D_class per layer for ResNet50 trained on CIFAR-10,
CIFAR-100 and SVHN (training and test examples)."""

from __future__ import annotations

from ..recipes import recipe as _recipe
from ._base import Claim, Param
from ._claims import all_of, median_d_class, r3
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


def _holds_beyond_imagenet(data):
    res, nums = {}, {}
    for spec in data["models"]:
        for split in ("train", "val"):
            med = median_d_class(data, spec, split)
            res[f"{spec} {split}"] = med[-1] < med[0]
            nums[f"{spec} {split} median D_class"] = r3(med)
    datasets = sorted({str(_recipe(s).get("dataset")) for s in data["models"]})
    nums["datasets"] = datasets
    if len(datasets) < 2:
        return (
            None,
            nums,
            (
                f"all models are trained on one dataset ({datasets[0]}); the claim is that the "
                "effect holds across datasets (the paper profile: CIFAR-10, CIFAR-100, SVHN)"
            ),
        )
    return all_of(res), nums


CLAIMS = [
    Claim(
        "The shrinking of D_class from CL1 to CL4 holds for ResNet50 trained on CIFAR-10, "
        "CIFAR-100 and SVHN, for training and test examples (median CL4 < CL1 on each)",
        "Lee & Vijayan 2023, Sec. 3.1 and Fig. 9",
        _holds_beyond_imagenet,
    ),
]
