"""Rajesh thesis, "Effect of adversarial training": random vs normal vs PGD-trained model."""

from __future__ import annotations

from ._base import Param
from ._manifolds import across_models, analyse, register_models, summarize_models

ID = "manifolds.adversarial_training"
PAPER = "manifolds"
TITLE = "CAM dimension of a random, a normally trained and a PGD-trained network"
DESCRIPTION = (
    "Per class, the CAM dimension of the same architecture untrained, trained normally and "
    "trained with PGD (Madry et al.), beside its PGD accuracy."
)

PARAMS = {
    "models": Param(
        ["small_cnn_random@digits", "small_cnn@digits", "small_cnn_pgd@digits"],
        "model recipes: random, normally trained, adversarially trained",
    ),
    "labels": Param(["random", "normal", "adversarial"], "names of the models in the plot"),
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
        "models": [
            "kolter_madry_cnn_random@mnist",
            "kolter_madry_cnn_normal@mnist",
            "kolter_madry_cnn_pgd@mnist",
        ],
        "dims_n_per_class": 500,
        "robust_n_per_class": 100,
        "eps": [0.1, 0.2, 0.3],
        "nb_iter": 40,
        "device": "cuda",
    },
}


def compute(
    *,
    models,
    labels,
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
    if len(labels) != len(models):
        raise ValueError(f"give one label per model: {len(labels)} labels for {len(models)} models")
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
        "labels": list(labels),
        "eps": eps,
        "threshold": float(threshold),
        "results": results,
        "across": across_models(results, models, eps),
    }


def summarize(data: dict) -> str:
    return "\n".join(
        [f"CAM dimension (threshold {data['threshold']:.2f}) and PGD accuracy, by training"]
        + summarize_models(
            data, labels=[f"{a} ({b})" for a, b in zip(data["labels"], data["models"])]
        )
    )
