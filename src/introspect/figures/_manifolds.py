"""Shared, cached stages of the class-activation-manifold figures (Rajesh thesis).

Every ``manifolds.*`` figure asks, for a model recipe, the same two things: the CAM
dimension of each class at the penultimate layer, and the class-wise PGD accuracy.
Both are cached in the workdir (the capture through :func:`introspect.pipeline.captured`,
the attack through ``Workdir.memo``), keyed by the model, the data and the parameters,
so the four figures share one capture and one attack per model.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import pipeline
from ..data import _Subset
from ..manifolds import (
    CappedDimensionWarning,
    class_manifold_dims,
    classwise_robustness,
    dim_robustness_correlation,
)
from ..recipes import load_recipe, recipe_data
from ._base import Param

__all__ = [
    "chosen_classes",
    "cam_dims",
    "robustness",
    "analyse",
    "analyse_models",
    "analysis_params",
    "eps_key",
]


def eps_key(eps: float) -> str:
    """The dictionary key of an eps value (JSON keys are strings)."""
    return format(float(eps), "g")


def chosen_classes(n_total: int, n_classes: int | None, seed: int) -> list[int]:
    """``n_classes`` random class indices out of ``n_total`` (all when None), ascending."""
    if n_classes is None or n_classes >= n_total:
        return list(range(n_total))
    rng = np.random.default_rng(seed)
    return sorted(int(c) for c in rng.choice(n_total, size=n_classes, replace=False))


def _data(spec, split, n_per_class, n_classes, data_root, seed):
    data = recipe_data(spec, split, data_root=data_root, n_per_class=n_per_class, seed=seed)
    classes = chosen_classes(len(data.classes), n_classes, seed)
    if len(classes) < len(data.classes):
        keep = np.flatnonzero(np.isin(np.asarray(data.targets), classes))
        key = {**data.cache_key, "classes": classes}
        data = _Subset(data, keep)
        data.cache_key = key
    return data, classes


def cam_dims(
    spec,
    *,
    split,
    n_per_class,
    n_classes,
    threshold,
    workdir,
    device,
    data_root,
    seed,
    batch_size=128,
):
    """CAM dimension per class at the penultimate layer (``ClassManifolds``), cached capture."""
    model = load_recipe(spec, workdir=workdir, device=device, data_root=data_root, seed=seed)
    data, classes = _data(spec, split, n_per_class, n_classes, data_root, seed)
    store = pipeline.captured(
        model,
        data,
        ["penultimate"],
        reducer="flatten",
        workdir=workdir,
        device=device,
        batch_size=batch_size,
        progress=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CappedDimensionWarning)  # reported in the data instead
        return class_manifold_dims(
            store,
            layer="penultimate",
            threshold=threshold,
            classes=classes,
            class_names=data.classes,
        )


def robustness(
    spec,
    *,
    split,
    n_per_class,
    n_classes,
    eps,
    nb_iter,
    workdir,
    device,
    data_root,
    seed,
    batch_size=128,
) -> dict:
    """Class-wise clean and PGD accuracy (``ClasswiseRobustness.to_dict()``), cached."""
    model = load_recipe(spec, workdir=workdir, device=device, data_root=data_root, seed=seed)
    data, classes = _data(spec, split, n_per_class, n_classes, data_root, seed)
    wd = pipeline.as_workdir(workdir)
    parts = []
    attack = pipeline.attack_fn(wd)  # the shared, cached attack stage
    for e in eps:  # one eps at a time: the same seed per eps, so figures' eps lists share attacks
        parts.append(
            classwise_robustness(
                model, data, [e], attack=attack, nb_iter=nb_iter, classes=classes,
                batch_size=batch_size, device=device, seed=seed,
            ).to_dict()
        )  # fmt: skip
    out = dict(parts[0])
    out["eps"] = [p["eps"][0] for p in parts]
    for k in ("adv_acc", "adv_acc_given_clean"):
        out[k] = [p[k][0] for p in parts]
    out["adv_accuracy"] = [p["adv_accuracy"][0] for p in parts]
    return out


def analyse(
    spec,
    *,
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
    """One model: CAM dimensions, class-wise robustness and their correlation per eps.

    Returns plain data: ``manifolds`` (``ClassManifolds.to_dict()``), ``robustness``
    (``ClasswiseRobustness.to_dict()``), ``correlation`` (eps -> dict of
    :func:`dim_robustness_correlation`, or None when the accuracies do not vary),
    ``correlation_pr`` (the same with the participation ratio), ``mean_dim``,
    ``mean_pr``.
    """
    common = dict(workdir=workdir, device=device, data_root=data_root, seed=seed)
    m = cam_dims(
        spec,
        split=dims_split,
        n_per_class=dims_n_per_class,
        n_classes=n_classes,
        threshold=threshold,
        batch_size=batch_size,
        **common,
    )
    rob = robustness(
        spec,
        split=robust_split,
        n_per_class=robust_n_per_class,
        n_classes=n_classes,
        eps=eps,
        nb_iter=nb_iter,
        batch_size=batch_size,
        **common,
    )
    adv = np.asarray(rob["adv_acc"], dtype=float)
    corr, corr_pr = {}, {}
    for j, e in enumerate(rob["eps"]):
        corr[eps_key(e)] = _corr(m.dims, adv[j], seed)
        corr_pr[eps_key(e)] = _corr(m.participation_ratio, adv[j], seed)
    return {
        "model": spec if isinstance(spec, str) else str(spec),
        "manifolds": m.to_dict(),
        "robustness": rob,
        "correlation": corr,
        "correlation_pr": corr_pr,
        "mean_dim": m.mean_dim,
        "mean_pr": float(np.mean(m.participation_ratio)),
    }


def analysis_params(
    models: list, eps: list, models_help: str = "model recipes (see introspect.recipes)"
) -> dict:
    """The parameters of every figure that pairs CAM dimensions with PGD accuracy.

    ``models`` and ``eps`` are the figure's quick defaults; the rest is common.
    """
    return {
        "models": Param(models, models_help),
        "dims_split": Param("train", "split whose images form the class manifolds"),
        "dims_n_per_class": Param(100, "images per class for the PCA (n)"),
        "robust_split": Param("test", "split whose images are attacked"),
        "robust_n_per_class": Param(None, "images per class attacked (None: all)", "int"),
        "n_classes": Param(None, "number of random classes (None: all)", "int"),
        "threshold": Param(0.95, "explained-variance threshold that defines the dimension"),
        "eps": Param(eps, "L-inf budgets of PGD, in [0, 1] pixel units"),
        "nb_iter": Param(10, "PGD steps (step size 2.5 eps / nb_iter, random start)"),
        "batch_size": Param(128, "capture and attack batch size"),
    }


def analyse_models(models, **params) -> dict:
    """:func:`analyse` for every model recipe: ``{spec: result}`` in the given order."""
    register_models()
    return {spec: analyse(spec, **params) for spec in models}


def _corr(x, acc, seed, n_boot=1000):
    x, acc = np.asarray(x, dtype=float), np.asarray(acc, dtype=float)
    ok = np.isfinite(x) & np.isfinite(acc)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(acc[ok]) == 0:
        return None  # undefined: every class equally robust (e.g. all 0) or equal dims
    out = dim_robustness_correlation(x, acc, n_boot=n_boot, seed=seed)
    out["pearson_ci"], out["spearman_ci"] = list(out["pearson_ci"]), list(out["spearman_ci"])
    return out


def fmt_corr(c) -> str:
    """``r_P -0.41 (p 0.003) r_S -0.38 (p 0.007)`` or ``undefined``."""
    if c is None:
        return "undefined (no variation)"
    ci = c["pearson_ci"]
    ci_txt = f", CI {ci[0]:+.2f}..{ci[1]:+.2f}" if np.all(np.isfinite(ci)) else ""
    exact = ", exact" if c.get("spearman_p_method") == "exact permutation" else ""
    return (
        f"n {c['n']}: Pearson r {c['pearson_r']:+.2f} (p {c['pearson_p']:.3g}{ci_txt})  "
        f"Spearman r {c['spearman_r']:+.2f} (p {c['spearman_p']:.3g}{exact})"
    )


def register_models() -> None:
    """Make sure the published MNIST models are registered (idempotent)."""
    from ..models import mnist_zoo

    mnist_zoo.register()


def across_models(results: dict, models, eps) -> dict:
    """Per-model means (dimension, participation ratio, clean and PGD accuracy per eps).

    Returns lists aligned with ``models`` and, for every eps, the correlation of mean
    dimension with mean PGD accuracy across the models (None with fewer than 3 models; no
    bootstrap interval; with so few points it only says whether the order agrees, and
    architectures with different feature sizes D are not on one scale).
    """
    out = {
        "mean_dim": [results[s]["mean_dim"] for s in models],
        "mean_pr": [results[s]["mean_pr"] for s in models],
        "clean_accuracy": [results[s]["robustness"]["clean_accuracy"] for s in models],
        "adv_accuracy": {
            eps_key(e): [results[s]["robustness"]["adv_accuracy"][j] for s in models]
            for j, e in enumerate(eps)
        },
        "n_features": [results[s]["manifolds"]["n_features"] for s in models],
    }
    out["correlation"] = {
        # a bootstrap over 3 or 4 models is meaningless: r and p only
        k: _corr(out["mean_dim"], acc, 0, n_boot=0) if len(models) >= 3 else None
        for k, acc in out["adv_accuracy"].items()
    }
    return out


def summarize_models(data: dict, labels=None) -> list[str]:
    """Table lines: one row per model with its means and its per-class r at each eps."""
    models, eps = data["models"], data["eps"]
    labels = labels or models
    acc = data["across"]
    lines = [
        f"{'model':<34} {'D':>5} {'dim':>6} {'PR':>6} {'clean':>6}"
        + "".join(f" {'acc@' + format(e, '.3g'):>9}" for e in eps)
        + "".join(f" {'r_S@' + format(e, '.3g'):>9}" for e in eps)
    ]
    for i, (spec, label) in enumerate(zip(models, labels)):
        r = data["results"][spec]
        rs = [r["correlation"][eps_key(e)] for e in eps]
        lines.append(
            f"{str(label)[:34]:<34} {acc['n_features'][i]:>5} {acc['mean_dim'][i]:6.1f} "
            f"{acc['mean_pr'][i]:6.2f} {acc['clean_accuracy'][i]:6.3f}"
            + "".join(f" {acc['adv_accuracy'][eps_key(e)][i]:9.3f}" for e in eps)
            + "".join(f" {'n/a' if c is None else format(c['spearman_r'], '+.2f'):>9}" for c in rs)
        )
    for e in eps:
        lines.append(
            f"across models, mean dim vs PGD accuracy at eps {e:.3g}: "
            f"{fmt_corr(acc['correlation'][eps_key(e)])}"
        )
    return lines
