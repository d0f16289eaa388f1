"""Rajesh thesis, "Adversarial accuracy and CAM dims": dimension vs class-wise PGD accuracy."""

from __future__ import annotations

from ._base import Param
from ._manifolds import analyse, fmt_corr, register_models

ID = "manifolds.robustness"
PAPER = "manifolds"
TITLE = "CAM dimension vs class-wise adversarial accuracy (L-inf PGD), Pearson and Spearman r"
DESCRIPTION = (
    "One point per class: the dimension of its activation manifold against its accuracy "
    "under PGD, for each eps; the thesis reports a strong negative correlation."
)

PARAMS = {
    "models": Param(["small_cnn@digits"], "model recipes (see introspect.figures._recipes)"),
    "dims_split": Param("train", "split whose images form the class manifolds"),
    "dims_n_per_class": Param(100, "images per class for the PCA (n)"),
    "robust_split": Param("test", "split whose images are attacked"),
    "robust_n_per_class": Param(None, "images per class attacked (None: all)", "int"),
    "n_classes": Param(None, "number of random classes (None: all)", "int"),
    "threshold": Param(0.95, "explained-variance threshold that defines the dimension"),
    "eps": Param([0.01, 0.02, 0.05], "L-inf budgets of PGD, in [0, 1] pixel units"),
    "nb_iter": Param(10, "PGD steps (step size 2.5 eps / nb_iter, random start)"),
    "batch_size": Param(128, "capture and attack batch size"),
}
PROFILES = {
    "quick": {},
    "paper": {
        "models": ["timm:resnet50"],
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
    return {
        "models": list(models),
        "eps": [float(e) for e in eps],
        "threshold": float(threshold),
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
