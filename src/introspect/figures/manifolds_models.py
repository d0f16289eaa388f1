"""Rajesh thesis, "Relationship in multiple CNNs": CAM dimension vs robustness across CNNs."""

from __future__ import annotations

from ._base import Claim
from ._manifold_claims import across_models_negative
from ._manifolds import (
    across_models,
    analyse_models,
    analysis_params,
    summarize_models,
)

ID = "manifolds.models"
PAPER = "manifolds"
TITLE = "Mean CAM dimension and class-wise PGD accuracy across CNNs"
DESCRIPTION = (
    "The dimension-robustness relation repeated on several CNNs: per model, the mean CAM "
    "dimension, the PGD accuracy and the per-class correlation."
)

PARAMS = analysis_params(
    ["small_cnn@digits", "small_cnn_pgd@digits", "mnist_cnn@digits"],
    eps=[0.02, 0.05, 0.1],
)
PROFILES = {
    "quick": {},
    "paper": {
        # torchvision's weights throughout, as the thesis's ResNet50 (it does not name the
        # other three CNNs; one training recipe keeps them comparable)
        "models": [
            "timm:resnet50.tv_in1k",
            "timm:resnet18.tv_in1k",
            "timm:densenet121.tv_in1k",
            "timm:vgg19.tv_in1k",
        ],
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


def compute(*, models, eps, **params) -> dict:
    results = analyse_models(models, eps=eps, **params)
    eps = [float(e) for e in eps]
    return {
        "models": list(models),
        "eps": eps,
        "threshold": float(params["threshold"]),
        "results": results,
        "across": across_models(results, models, eps),
    }


def summarize(data: dict) -> str:
    return "\n".join(
        [f"CAM dimension (threshold {data['threshold']:.2f}) and PGD accuracy per model"]
        + summarize_models(data)
    )


CLAIMS = [
    Claim(
        "The relationship is preserved across CNNs: models with lower mean CAM dimension are "
        "more robust (Spearman r across models < 0 at every eps)",
        "Rajesh thesis, Results (Relationship in multiple CNNs)",
        across_models_negative,
    ),
]
