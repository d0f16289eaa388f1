"""Rajesh thesis, "Adversarial accuracy and CAM dims": dimension vs class-wise PGD accuracy."""

from __future__ import annotations

from ._base import Claim
from ._manifold_claims import negative_class_correlation
from ._manifolds import analyse_models, analysis_params, fmt_corr

ID = "manifolds.robustness"
PAPER = "manifolds"
TITLE = "CAM dimension vs class-wise adversarial accuracy (L-inf PGD), Pearson and Spearman r"
DESCRIPTION = (
    "One point per class: the dimension of its activation manifold against its accuracy "
    "under PGD, for each eps; the thesis reports a strong negative correlation."
)

PARAMS = analysis_params(
    ["small_cnn@digits"],
    eps=[0.01, 0.02, 0.05],
)
PROFILES = {
    "quick": {},
    "paper": {
        "models": ["timm:resnet50.tv_in1k"],
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
    return {
        "models": list(models),
        "eps": [float(e) for e in eps],
        "threshold": float(params["threshold"]),
        "results": results,
    }


def summarize(data: dict) -> str:
    lines = []
    for spec in data["models"]:
        r = data["results"][spec]
        m, rob = r["manifolds"], r["robustness"]
        lines.append(
            f"{spec}: mean CAM dimension {r['mean_dim']:.1f} (n per class {min(m['n'])}..{max(m['n'])}, "
            f"{sum(m['capped'])} capped), clean accuracy {rob['clean_accuracy']:.3f}"
        )
        for j, e in enumerate(rob["eps"]):
            key = format(float(e), "g")
            lines.append(
                f"  eps {e:.4g}: PGD accuracy {rob['adv_accuracy'][j]:.3f}; dim vs accuracy: "
                f"{fmt_corr(r['correlation'][key])}"
            )
            lines.append(
                f"           participation ratio vs accuracy: {fmt_corr(r['correlation_pr'][key])}"
            )
        lines.append(
            f"  {'class':>20}  {'dim':>4}  {'n':>4}  {'n_att':>5}  {'clean':>5}"
            + "".join(f"  {'eps ' + format(e, '.3g'):>10}" for e in rob["eps"])
        )
        for i, name in enumerate(m["class_names"]):
            lines.append(
                f"  {str(name)[:20]:>20}  {m['dims'][i]:4d}  {m['n'][i]:4d}  {rob['n'][i]:5d}  "
                f"{rob['clean_acc'][i]:5.2f}"
                + "".join(f"  {rob['adv_acc'][j][i]:10.2f}" for j in range(len(rob["eps"])))
            )
    return "\n".join(lines)


CLAIMS = [
    Claim(
        "More robust classes have lower CAM dimensions: a strong negative correlation between "
        "class-wise PGD accuracy and CAM dimension (Spearman r <= -0.5, p < 0.05, at an eps "
        "where the attack neither fails nor wins everywhere)",
        "Rajesh thesis, Results (Adversarial accuracy and CAM dims) and Conclusion",
        negative_class_correlation,
    ),
]
