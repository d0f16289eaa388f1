"""Pardo et al. 2022, Fig. 4: examples seen three ways (input, point on the map, reordered net)."""

from __future__ import annotations

import numpy as np

from ..recipes import recipe_data
from ._base import Claim, Param
from ._claims import need, r3
from ._selfintro import class_names, error_surface, introspector, mapped, si_kwargs, spec_name

ID = "selfintro.fig4"
PAPER = "selfintro"
TITLE = "Examples: input with label and answer, its point on the map, its reordered activations"
DESCRIPTION = (
    "Test inputs, correct and misclassified, each as the image (label, answer), as a cross "
    "on the activation map with the estimated error, and as its activations in the network "
    "reordered by preferred class."
)

PARAMS = {
    "model": Param("net1_mlp@digits", "model recipe (a Net1-like MLP)"),
    "n_examples": Param(20, "number of test inputs shown"),
    "n_misclassified": Param(6, "how many of them are misclassified (when there are enough)"),
    "vae_epochs": Param(100, "InfoVAE epochs (batch 128)"),
    "vae_lr": Param(1e-3, "InfoVAE Adam learning rate"),
    "estimator_epochs": Param(60, "error-estimator epochs (batch 32)"),
    "estimator_lr": Param(1e-3, "error-estimator Adam learning rate"),
    "fit_per_class": Param(None, "training images per class for the map (None: all)", "int"),
}
PROFILES = {
    "quick": {},
    "paper": {
        "model": "net1_mlp@mnist",
        "n_examples": 40,
        "n_misclassified": 8,
        "device": "cuda",
        "vae_epochs": 192,
        "vae_lr": 1e-4,
        "estimator_epochs": 100,
        "estimator_lr": 1e-4,
    },
}


def compute(
    *, model, n_examples, n_misclassified, workdir, device, data_root, seed, **params
) -> dict:
    si = introspector(
        model, workdir=workdir, device=device, data_root=data_root, seed=seed, **si_kwargs(params)
    )
    m = mapped(si, model, "test", workdir=workdir, data_root=data_root, seed=seed)
    rng = np.random.default_rng(seed)
    wrong = np.flatnonzero(m["labels"] != m["pred"])
    right = np.flatnonzero(m["labels"] == m["pred"])
    n_wrong = min(n_misclassified, len(wrong), n_examples)
    pick = np.concatenate(
        [
            rng.choice(wrong, n_wrong, replace=False),
            rng.choice(right, min(n_examples - n_wrong, len(right)), replace=False),
        ]
    ).astype(np.int64)
    rng.shuffle(pick)
    data = recipe_data(model, "test", data_root=data_root, seed=seed)
    x = np.stack([data[int(i)][0].numpy() for i in pick])
    import torch

    out = si.analyze(torch.from_numpy(x))
    glob = si.global_order()
    return {
        "model": spec_name(model),
        "classes": class_names(model, data_root),
        "index": pick,
        "images": x,
        "labels": m["labels"][pick],
        "pred": out["pred"],
        "z": out["z"],
        "log10_error_hat": out["log10_error_hat"],
        "activations_reordered": out["hidden"][:, glob],
        "layers": list(si.layers_),
        "widths": [si.layer_slices_[n].stop - si.layer_slices_[n].start for n in si.layers_],
        "background": {"z": m["z"], "labels": m["labels"], "pred": m["pred"]},
        "surface": error_surface(si),
    }


def summarize(data: dict) -> str:
    lines = [f"model {data['model']}: {len(data['index'])} test inputs"]
    lines.append(f"{'index':>6}{'label':>7}{'answer':>7}{'z1':>8}{'z2':>8}{'log10 e_hat':>12}")
    for i in range(len(data["index"])):
        mark = "" if data["labels"][i] == data["pred"][i] else "  <- wrong"
        lines.append(
            f"{int(data['index'][i]):>6}{int(data['labels'][i]):>7}{int(data['pred'][i]):>7}"
            f"{data['z'][i, 0]:>8.2f}{data['z'][i, 1]:>8.2f}{data['log10_error_hat'][i]:>12.2f}{mark}"
        )
    ok = data["labels"] == data["pred"]
    if ok.any() and (~ok).any():
        lines.append(
            f"mean log10 e_hat: correct {data['log10_error_hat'][ok].mean():.2f}, "
            f"misclassified {data['log10_error_hat'][~ok].mean():.2f}"
        )
    return "\n".join(lines)


def _misclassified_lie_in_high_error(data):
    le = np.asarray(data["log10_error_hat"], dtype=float)
    ok = np.asarray(data["labels"]) == np.asarray(data["pred"])
    need(ok.any() and (~ok).any(), "the examples hold no misclassified (or no correct) input")
    a, b = float(le[ok].mean()), float(le[~ok].mean())
    return b > a, {"mean log10 e_hat correct / misclassified": r3([a, b])}


CLAIMS = [
    Claim(
        "Misclassified digits sit where the map shows high average classification error "
        "(mean log10 e_hat of the misclassified examples above the correct ones)",
        "Pardo et al. 2022, Sec. 3.3 and Fig. 4",
        _misclassified_lie_in_high_error,
    ),
]
