"""Rajesh thesis, "Effect of adversarial training": random vs normal vs PGD-trained model."""

from __future__ import annotations

from ._base import Claim, Param
from ._claims import need, r3
from ._manifold_claims import across_models_negative
from ._manifolds import (
    across_models,
    analyse_models,
    analysis_params,
    summarize_models,
)

ID = "manifolds.adversarial_training"
PAPER = "manifolds"
TITLE = "CAM dimension of a random, a normally trained and a PGD-trained network"
DESCRIPTION = (
    "Per class, the CAM dimension of the same architecture untrained, trained normally and "
    "trained with PGD (Madry et al.), beside its PGD accuracy."
)

PARAMS = analysis_params(
    ["small_cnn_random@digits", "small_cnn@digits", "small_cnn_pgd@digits"],
    eps=[0.02, 0.05, 0.1],
    models_help="model recipes: random, normally trained, adversarially trained",
)
PARAMS["labels"] = Param(["random", "normal", "adversarial"], "names of the models in the plot")
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


def compute(*, models, labels, eps, **params) -> dict:
    if len(labels) != len(models):
        raise ValueError(f"give one label per model: {len(labels)} labels for {len(models)} models")
    results = analyse_models(models, eps=eps, **params)
    eps = [float(e) for e in eps]
    return {
        "models": list(models),
        "labels": list(labels),
        "eps": eps,
        "threshold": float(params["threshold"]),
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


def _by_label(data):
    need(
        {"normal", "adversarial"} <= set(data["labels"]),
        f"needs a normal and an adversarial model; labels {data['labels']}",
    )
    return {lab: i for i, lab in enumerate(data["labels"])}


def _at_lowers_dimension(data):
    i = _by_label(data)
    dims = data["across"]["mean_dim"]
    a, b = dims[i["normal"]], dims[i["adversarial"]]
    return b < a, {"mean CAM dimension normal / adversarially trained": r3([a, b])}


def _at_is_robust(data):
    i = _by_label(data)
    acc = data["across"]["adv_accuracy"]
    pairs = {k: [v[i["normal"]], v[i["adversarial"]]] for k, v in acc.items()}
    return all(b > a for a, b in pairs.values()), {
        "PGD accuracy normal / adversarially trained per eps": r3(pairs)
    }


CLAIMS = [
    Claim(
        "PGD adversarial training (Madry) lowers the average CAM dimension against normal "
        "training: supporting evidence that robust models have lower-dimensional CAMs",
        "Rajesh thesis, Results (Effect of adversarial training)",
        _at_lowers_dimension,
    ),
    Claim(
        "The adversarially trained model is the more robust (PGD accuracy above the normal "
        "model's at every eps)",
        "Rajesh thesis, Results (Effect of adversarial training)",
        _at_is_robust,
    ),
    Claim(
        "Across random, normal and adversarially trained models, lower mean CAM dimension goes "
        "with higher PGD accuracy (Spearman r < 0 at every eps)",
        "Rajesh thesis, Results (Effect of adversarial training)",
        across_models_negative,
    ),
]
