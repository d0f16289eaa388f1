"""Rajesh thesis, "Relationship in multiple CNNs": CAM dimension vs robustness across CNNs."""

from __future__ import annotations

from ._base import Param
from ._manifolds import across_models, analyse, register_models, summarize_models

ID = "manifolds.models"
PAPER = "manifolds"
TITLE = "Mean CAM dimension and class-wise PGD accuracy across CNNs"
DESCRIPTION = (
    "The dimension-robustness relation repeated on several CNNs: per model, the mean CAM "
    "dimension, the PGD accuracy and the per-class correlation."
)

PARAMS = {
    "models": Param(
        ["small_cnn@digits", "small_cnn_pgd@digits", "mnist_cnn@digits"],
        "model recipes (see introspect.figures._recipes)",
    ),
    "dims_split": Param("train", "split whose images form the class manifolds"),
    "dims_n_per_class": Param(100, "images per class for the PCA (n)"),
    "robust_split": Param("test", "split whose images are attacked"),
    "robust_n_per_class": Param(None, "images per class attacked (None: all)", "int"),
    "n_classes": Param(None, "number of random classes (None: all)", "int"),
    "threshold": Param(0.95, "explained-variance threshold that defines the dimension"),
    "eps": Param([0.02, 0.05, 0.1], "L-inf budgets of PGD, in [0, 1] pixel units"),
    "nb_iter": Param(10, "PGD steps (step size 2.5 eps / nb_iter, random start)"),
    "batch_size": Param(128, "capture and attack batch size"),
}
PROFILES = {
    "quick": {},
    "paper": {
        "models": ["timm:resnet50", "timm:resnet18", "timm:densenet121", "timm:vgg19"],
        "dims_n_per_class": 300,
        "robust_split": "val",
        "robust_n_per_class": 50,
        "n_classes": 100,
        "eps": [0.25 / 255, 0.5 / 255, 1 / 255],
        "nb_iter": 20,
        "device": "cuda",
        "batch_size": 64,
    },
}


def compute(
    *,
    models,
    dims_split,
    dims_n_per_class,
    robust_split,
    robust_n_per_class,
    n_classes,
    threshold,
    eps,
    nb_iter,
    batch_size,
    workdir,
    device,
    data_root,
    seed,
) -> dict:
    register_models()
    results = {
        spec: analyse(
            spec,
            dims_split=dims_split,
            dims_n_per_class=dims_n_per_class,
            robust_split=robust_split,
            robust_n_per_class=robust_n_per_class,
            n_classes=n_classes,
            threshold=threshold,
            eps=eps,
            nb_iter=nb_iter,
            batch_size=batch_size,
            workdir=workdir,
            device=device,
            data_root=data_root,
            seed=seed,
        )
        for spec in models
    }
    eps = [float(e) for e in eps]
    return {
        "models": list(models),
        "eps": eps,
        "threshold": float(threshold),
        "results": results,
        "across": across_models(results, models, eps),
    }


def summarize(data: dict) -> str:
    return "\n".join(
        [f"CAM dimension (threshold {data['threshold']:.2f}) and PGD accuracy per model"]
        + summarize_models(data)
    )
