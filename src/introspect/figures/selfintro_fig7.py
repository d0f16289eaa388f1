"""Pardo et al. 2022, Fig. 7: estimated error per class, correct vs misclassified test inputs."""

from __future__ import annotations

import numpy as np

from ._base import Claim, Param
from ._claims import all_of, need, r3
from ._selfintro import auroc_misclassified, class_names, introspector, mapped, si_kwargs, spec_name

ID = "selfintro.fig7"
PAPER = "selfintro"
TITLE = "Violins of the estimated error per class, correct vs misclassified, with sensitivity"
DESCRIPTION = (
    "The error estimator's log10 e_hat on the test set, split by class and by whether the "
    "classifier was right; the class sensitivity above each pair; confidence c = -log10 e_hat."
)

PARAMS = {
    "models": Param(["net1_mlp@digits", "net2_allconv@digits"], "model recipes"),
    "resolution": Param(100, "points of each violin's density curve"),
    "vae_epochs": Param(100, "InfoVAE epochs (batch 128)"),
    "vae_lr": Param(1e-3, "InfoVAE Adam learning rate"),
    "estimator_epochs": Param(60, "error-estimator epochs (batch 32)"),
    "estimator_lr": Param(1e-3, "error-estimator Adam learning rate"),
    "fit_per_class": Param(None, "training images per class for the map (None: all)", "int"),
}
PROFILES = {
    "quick": {},
    "paper": {
        "models": ["net1_mlp@mnist", "net2_allconv@cifar10"],
        "device": "cuda",
        "vae_epochs": 192,
        "vae_lr": 1e-4,
        "estimator_epochs": 100,
        "estimator_lr": 1e-4,
    },
}


def violin(values: np.ndarray, grid: np.ndarray) -> dict:
    """Gaussian-KDE density of ``values`` on ``grid`` (scaled to a peak of 1) and quartiles."""
    from scipy.stats import gaussian_kde

    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return {"n": 0, "density": np.zeros_like(grid), "quartiles": [np.nan] * 3}
    if len(v) < 2 or np.ptp(v) < 1e-9:
        dens = np.exp(-0.5 * ((grid - v.mean()) / 0.05) ** 2)
    else:
        dens = gaussian_kde(v)(grid)
    dens = dens / dens.max() if dens.max() > 0 else dens
    return {"n": int(len(v)), "density": dens, "quartiles": np.percentile(v, [25, 50, 75]).tolist()}


def compute(*, models, resolution, workdir, device, data_root, seed, **params) -> dict:
    out = {"models": [spec_name(m) for m in models], "panels": {}}
    for spec in models:
        si = introspector(
            spec,
            workdir=workdir,
            device=device,
            data_root=data_root,
            seed=seed,
            **si_kwargs(params),
        )
        m = mapped(si, spec, "test", workdir=workdir, data_root=data_root, seed=seed)
        le, y, p = m["log10_error_hat"], m["labels"], m["pred"]
        lo, hi = float(le.min()), float(le.max())
        pad = 0.05 * (hi - lo + 1e-6)
        grid = np.linspace(lo - pad, hi + pad, resolution)
        classes = class_names(spec, data_root)
        per = []
        for k in range(len(classes)):
            mk = y == k
            per.append(
                {
                    "sensitivity": float((p[mk] == k).mean()) if mk.any() else float("nan"),
                    "correct": violin(le[mk & (p == y)], grid),
                    "wrong": violin(le[mk & (p != y)], grid),
                }
            )
        out["panels"][spec_name(spec)] = {
            "classes": classes,
            "grid": grid,
            "per_class": per,
            "accuracy": m["accuracy"],
            "auroc": auroc_misclassified(le, y, p),
            "n_test": int(len(y)),
            "median_correct": float(np.median(le[p == y])),
            "median_wrong": float(np.median(le[p != y])) if (p != y).any() else float("nan"),
        }
    return out


def summarize(data: dict) -> str:
    lines = []
    for spec in data["models"]:
        p = data["panels"][spec]
        lines.append(
            f"{spec}: test accuracy {p['accuracy']:.4f} (n={p['n_test']}), AUROC of e_hat for "
            f"misclassified vs correct {p['auroc']:.3f}; median log10 e_hat correct "
            f"{p['median_correct']:.2f}, misclassified {p['median_wrong']:.2f}"
        )
        lines.append(
            f"  {'class':>10}{'sens.':>7}{'n ok':>6}{'n bad':>6}{'med ok':>8}{'med bad':>8}"
        )
        for c, row in zip(p["classes"], p["per_class"]):
            lines.append(
                f"  {c[:10]:>10}{row['sensitivity']:>7.3f}{row['correct']['n']:>6}{row['wrong']['n']:>6}"
                f"{row['correct']['quartiles'][1]:>8.2f}{row['wrong']['quartiles'][1]:>8.2f}"
            )
    return "\n".join(lines)


def _orders_of_magnitude(data, orders: float = 2.0):
    mnist = [s for s in data["models"] if s.startswith("net1") or s.endswith("@mnist")]
    need(bool(mnist), "the claim is about Net1 on MNIST (or digits); no such model in this run")
    res, nums = {}, {}
    for s in mnist:
        p = data["panels"][s]
        need(p["median_wrong"] == p["median_wrong"], f"{s} misclassified no test input")
        gap = p["median_wrong"] - p["median_correct"]
        res[s] = gap >= orders
        nums[f"{s} median log10 e_hat misclassified - correct"] = r3(gap)
    return all_of(res), nums


def _separates(data):
    res = {s: data["panels"][s]["auroc"] > 0.7 for s in data["models"]}
    nums = {f"{s} AUROC": r3(data["panels"][s]["auroc"]) for s in data["models"]}
    return all_of(res), nums


CLAIMS = [
    Claim(
        "Misclassified MNIST images are, on average, two to three orders of magnitude worse "
        "than the correctly classified ones in expected error (median log10 e_hat gap >= 2)",
        "Pardo et al. 2022, Sec. 3.6 and Fig. 7",
        _orders_of_magnitude,
    ),
    Claim(
        "The estimated error separates misclassified from correct test inputs (AUROC > 0.7), "
        "for both nets",
        "Pardo et al. 2022, Fig. 7",
        _separates,
    ),
]
