"""Pardo et al. 2022, Fig. 2: activation maps of Net1 and Net2 through self-introspection."""

from __future__ import annotations

import numpy as np

from ._base import Claim, Param
from ._claims import all_of, need, r3
from ._selfintro import (
    auroc_misclassified,
    class_names,
    error_surface,
    introspector,
    mapped,
    si_kwargs,
    spec_name,
    training_record,
)

ID = "selfintro.fig2"
PAPER = "selfintro"
TITLE = "Activation maps: training trajectories, trained map, estimated error, test set"
DESCRIPTION = (
    "(a) the 2-D code of fixed inputs at every training epoch (one InfoVAE over the whole "
    "record); (b) the trained net's map of the training set by class; (c) the estimated "
    "error over the map with the training points; (d) the test points."
)

PARAMS = {
    "models": Param(
        ["net1_mlp@digits", "net2_allconv@digits"], "model recipes (Net1-like, Net2-like)"
    ),
    "record_per_class": Param(10, "fixed inputs per class recorded through training (a)"),
    "record_every": Param(
        1, "record every this many epochs (a); None: at the recipe's weight snapshots", "int"
    ),
    "max_points": Param(20000, "at most this many points per map in the returned data"),
    "resolution": Param(81, "grid points per axis of the estimated-error image (c)"),
    "vae_epochs": Param(100, "InfoVAE epochs (batch 128)"),
    "vae_lr": Param(1e-3, "InfoVAE Adam learning rate"),
    "estimator_epochs": Param(60, "error-estimator epochs (batch 32)"),
    "estimator_lr": Param(1e-3, "error-estimator Adam learning rate"),
    "fit_per_class": Param(None, "training images per class for the map (None: all)", "int"),
}
PAPER_SI = {
    "vae_epochs": 192,
    "vae_lr": 1e-4,
    "estimator_epochs": 100,
    "estimator_lr": 1e-4,
}
PROFILES = {
    "quick": {},
    "paper": {
        "models": ["net1_mlp@mnist", "net2_allconv@cifar10"],
        "record_per_class": 30,
        "record_every": None,  # Net1 every 7 epochs, Net2 every 14: about once a cycle
        "max_points": 70000,
        "device": "cuda",
        **PAPER_SI,
    },
}


def _subsample(n, max_points, seed):
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def compute(
    *,
    models,
    record_per_class,
    record_every,
    max_points,
    resolution,
    workdir,
    device,
    data_root,
    seed,
    **params,
) -> dict:
    out = {"models": [spec_name(m) for m in models], "panels": {}}
    for spec in models:
        kw = si_kwargs(params)
        si = introspector(
            spec, workdir=workdir, device=device, data_root=data_root, seed=seed, **kw
        )
        rec = training_record(
            spec,
            n_per_class=record_per_class,
            every=record_every,
            workdir=workdir,
            device=device,
            data_root=data_root,
            seed=seed,
            **kw,
        )
        panel = {"record": rec, "classes": class_names(spec, data_root)}
        for split in ("train", "test"):
            m = mapped(si, spec, split, workdir=workdir, data_root=data_root, seed=seed)
            idx = _subsample(len(m["labels"]), max_points, seed)
            panel[split] = {
                "z": m["z"][idx],
                "labels": m["labels"][idx],
                "pred": m["pred"][idx],
                "log10_error_hat": m["log10_error_hat"][idx],
                "log10_error": np.log10(np.maximum(m["error"][idx], 1e-8)),
                "accuracy": m["accuracy"],
                "n": int(len(m["labels"])),
                "auroc": auroc_misclassified(m["log10_error_hat"], m["labels"], m["pred"]),
            }
        panel["surface"] = error_surface(si, resolution=resolution)
        panel["recon_error"] = float(si.vae_.history_["recon"][-1])
        panel["layers"] = list(si.layers_)
        panel["n_units"] = int(si.n_features_in_)
        out["panels"][spec_name(spec)] = panel
    return out


def summarize(data: dict) -> str:
    lines = [
        f"{'model':<24}{'units':>6}{'train acc':>10}{'test acc':>9}{'recon':>9}"
        f"{'AUROC tr':>9}{'AUROC te':>9}{'records':>8}"
    ]
    for spec in data["models"]:
        p = data["panels"][spec]
        lines.append(
            f"{spec:<24}{p['n_units']:>6}{p['train']['accuracy']:>10.4f}{p['test']['accuracy']:>9.4f}"
            f"{p['recon_error']:>9.4f}{p['train']['auroc']:>9.3f}{p['test']['auroc']:>9.3f}"
            f"{len(p['record']['epochs']):>8}"
        )
    lines.append(
        "recon: InfoVAE reconstruction loss 1/2 (h_hat - h)^2 per unit at the last epoch, in units of "
        "the variance of h (the VAE sees h / its overall std); AUROC: estimated error separating "
        "misclassified from correct inputs"
    )
    return "\n".join(lines)


_PAPER_ACCURACY = {"net1_mlp@mnist": 0.9657, "net2_allconv@cifar10": 0.762}


def _paper_accuracy(data, tol: float = 0.01):
    """Test accuracy of the paper's nets within ``tol`` of the paper's (or above it)."""
    specs = [s for s in data["models"] if s in _PAPER_ACCURACY]
    need(
        bool(specs),
        "the paper's accuracies are for Net1 on MNIST and Net2 on CIFAR-10 (the paper "
        f"profile); this run has {data['models']}",
    )
    res, nums = {}, {}
    for s in specs:
        acc = data["panels"][s]["test"]["accuracy"]
        res[s] = acc >= _PAPER_ACCURACY[s] - tol
        nums[f"{s} test accuracy (paper)"] = f"{acc:.4f} ({_PAPER_ACCURACY[s]})"
    return all_of(res), nums


def _map_clusters_by_class(data, level: float = 0.8):
    """5-nearest-neighbour accuracy of the class from z (train points -> test points)."""
    from sklearn.neighbors import KNeighborsClassifier

    res, nums = {}, {}
    for s in data["models"]:
        p = data["panels"][s]
        knn = KNeighborsClassifier(5).fit(np.asarray(p["train"]["z"]), p["train"]["labels"])
        acc = float(knn.score(np.asarray(p["test"]["z"]), p["test"]["labels"]))
        res[s] = acc >= level
        nums[f"{s} class from z, 5-NN test accuracy"] = r3(acc)
    return all_of(res), nums


def _error_map_locates_errors(data):
    res = {s: data["panels"][s]["test"]["auroc"] > 0.7 for s in data["models"]}
    nums = {f"{s} AUROC of e_hat (misclassified vs correct, test)": r3(
        data["panels"][s]["test"]["auroc"]) for s in data["models"]}  # fmt: skip
    return all_of(res), nums


CLAIMS = [
    Claim(
        "The classifiers reach the paper's test accuracy: Net1 96.57 % on MNIST, Net2 76.2 % on "
        "CIFAR-10 (within 1 point)",
        "Pardo et al. 2022, Sec. 2.11",
        _paper_accuracy,
    ),
    Claim(
        "Activation patterns of the same category cluster on the 2-d map (the class of a test "
        "point follows from its train neighbours on z: 5-NN accuracy >= 0.8)",
        "Pardo et al. 2022, Sec. 3.1 and Fig. 2(b), 2(f)",
        _map_clusters_by_class,
    ),
    Claim(
        "The estimated error over z co-registers with where the misclassified inputs lie "
        "(AUROC of e_hat for misclassified vs correct test inputs above 0.7)",
        "Pardo et al. 2022, Sec. 3.1 and Fig. 2(c)-(d), 2(g)-(h)",
        _error_map_locates_errors,
    ),
]
