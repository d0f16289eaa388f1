"""Rajesh thesis, "Dimensionality of ResNet50 CAMs": explained-variance curves and CAM dimension per class."""

from __future__ import annotations

import numpy as np

from ._base import Claim, Param
from ._claims import all_of, need, r3
from ._manifold_claims import low_dimensional
from ._manifolds import cam_dims, register_models

ID = "manifolds.dims"
PAPER = "manifolds"
TITLE = "Explained-variance curves and CAM dimension of each class at the penultimate layer"
DESCRIPTION = (
    "How many principal components of the penultimate representation each class needs to "
    "reach the threshold (0.95), with the number of images n beside every dimension."
)

PARAMS = {
    "models": Param(["small_cnn@digits"], "model recipes (see introspect.recipes)"),
    "dims_split": Param("train", "split whose images form the class manifolds"),
    "dims_n_per_class": Param(
        100, "images per class for the PCA (n; the dimension cannot exceed n - 1)"
    ),
    "n_classes": Param(None, "number of random classes (None: all)", "int"),
    "threshold": Param(0.95, "explained-variance threshold that defines the dimension"),
    "batch_size": Param(128, "capture batch size"),
}
PROFILES = {
    "quick": {},
    "paper": {
        "models": ["timm:resnet50.tv_in1k"],
        "dims_n_per_class": 300,
        "n_classes": 100,
        "device": "cuda",
        "batch_size": 64,
    },
}


def compute(
    *,
    models,
    dims_split,
    dims_n_per_class,
    n_classes,
    threshold,
    batch_size,
    workdir,
    device,
    data_root,
    seed,
) -> dict:
    register_models()
    results = {}
    for spec in models:
        m = cam_dims(
            spec,
            split=dims_split,
            n_per_class=dims_n_per_class,
            n_classes=n_classes,
            threshold=threshold,
            batch_size=batch_size,
            workdir=workdir,
            device=device,
            data_root=data_root,
            seed=seed,
        )
        results[spec] = m.to_dict()
    return {"models": list(models), "threshold": float(threshold), "results": results}


def summarize(data: dict) -> str:
    lines = []
    for spec in data["models"]:
        r = data["results"][spec]
        dims, n, pr = (
            np.asarray(r["dims"]),
            np.asarray(r["n"]),
            np.asarray(r["participation_ratio"]),
        )
        lines.append(
            f"{spec}: {len(dims)} classes, {r['n_features']} features, threshold {r['threshold']:.2f}: "
            f"CAM dimension mean {dims.mean():.1f} (min {dims.min()}, max {dims.max()}), "
            f"participation ratio mean {pr.mean():.2f}; n per class {n.min()}..{n.max()}; "
            f"{int(np.sum(r['capped']))} classes capped by n"
        )
        lines.append(f"  {'class':>20}  {'dim':>4}  {'n':>5}  {'PR':>6}  capped")
        for name, d, k, p, c in zip(r["class_names"], dims, n, pr, r["capped"]):
            lines.append(f"  {str(name)[:20]:>20}  {d:4d}  {k:5d}  {p:6.2f}  {'yes' if c else ''}")
    return "\n".join(lines)


def _low(data):
    return low_dimensional(data["results"], data["models"])


def _classes_differ(data):
    res, nums = {}, {}
    for spec in data["models"]:
        d = np.asarray(data["results"][spec]["dims"], dtype=float)
        res[spec] = d.max() - d.min() >= 2
        nums[f"{spec} CAM dimension min / max"] = r3([d.min(), d.max()])
    if not all_of(res):
        need(
            False,
            "the classes have (almost) equal CAM dimensions here ("
            + ", ".join(f"{k} {v}" for k, v in nums.items())
            + "): the class-wise comparison needs a spread",
        )
    return True, nums


CLAIMS = [
    Claim(
        "Class activations live in low dimensions: the average CAM dimension is far below the "
        "width of the layer (<= 25 % of it; the thesis: ~40 of ResNet50's 2048)",
        "Rajesh thesis, Results (Dimensionality of ResNet50 CAMs) and Conclusion",
        _low,
    ),
    Claim(
        "The CAM dimension differs between classes, so it can be set against class-wise "
        "robustness (a spread of at least 2 dimensions)",
        "Rajesh thesis, Results (Adversarial accuracy and CAM dims)",
        _classes_differ,
    ),
]
