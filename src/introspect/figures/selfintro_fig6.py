"""Pardo et al. 2022, Fig. 6: targeted iterative FGSM seen as trajectories on Net2's map."""

from __future__ import annotations

import numpy as np
import torch

from ..attacks import iterative_fgsm
from ..recipes import recipe_data
from ._base import Claim, Param
from ._claims import r3
from ._selfintro import class_names, error_surface, introspector, mapped, si_kwargs, spec_name

ID = "selfintro.fig6"
PAPER = "selfintro"
TITLE = "Adversarial trajectories: targeted iterative FGSM towards every class, on Net2's map"
DESCRIPTION = (
    "For a few test images, 100 signed-gradient steps of 0.01 towards each of the classes "
    "(E_adv = 1/2 ||y_target - y_hat||^2); the code z of every step traces a path from the "
    "start across the activation map."
)

PARAMS = {
    "model": Param("net2_allconv@digits", "model recipe (a Net2-like all-convolutional net)"),
    "n_images": Param(
        6, "test images attacked (the first correctly classified ones, one per class)"
    ),
    "steps": Param(100, "FGSM steps"),
    "step_size": Param(0.01, "size of one signed-gradient step (images in [0, 1])"),
    "max_points": Param(5000, "at most this many background test points"),
    "vae_epochs": Param(100, "InfoVAE epochs (batch 128)"),
    "vae_lr": Param(1e-3, "InfoVAE Adam learning rate"),
    "estimator_epochs": Param(60, "error-estimator epochs (batch 32)"),
    "estimator_lr": Param(1e-3, "error-estimator Adam learning rate"),
    "fit_per_class": Param(None, "training images per class for the map (None: all)", "int"),
}
PROFILES = {
    "quick": {},
    "paper": {
        "model": "net2_allconv@cifar10",
        "device": "cuda",
        "vae_epochs": 192,
        "vae_lr": 1e-4,
        "estimator_epochs": 100,
        "estimator_lr": 1e-4,
    },
}


def compute(
    *, model, n_images, steps, step_size, max_points, workdir, device, data_root, seed, **params
) -> dict:
    si = introspector(
        model, workdir=workdir, device=device, data_root=data_root, seed=seed, **si_kwargs(params)
    )
    m = mapped(si, model, "test", workdir=workdir, data_root=data_root, seed=seed)
    K = int(si.model.num_classes)
    # the first correctly classified test image of classes 0, 1, 2, ... (cycling)
    picks: list[int] = []
    for k in range(n_images):
        cand = np.flatnonzero((m["labels"] == k % K) & (m["pred"] == m["labels"]))
        cand = [int(c) for c in cand if int(c) not in picks]
        if cand:
            picks.append(cand[0])
    data = recipe_data(model, "test", data_root=data_root, seed=seed)
    x = torch.stack([data[i][0] for i in picks])  # (n, C, H, W)
    targets = torch.arange(K).repeat(len(picks))
    xs = x.repeat_interleave(K, 0)  # image i with target t at row i*K + t
    traj = iterative_fgsm(
        si.model, xs, targets, steps=steps, step_size=step_size, loss="mse", device=device
    )  # (n*K, steps+1, C, H, W)
    flat = traj.reshape(-1, *traj.shape[2:])
    a = si.analyze(flat)
    shape = (len(picks), K, steps + 1)
    pred = a["pred"].reshape(shape)
    keep = np.random.default_rng(seed).permutation(len(m["labels"]))[:max_points]
    return {
        "model": spec_name(model),
        "classes": class_names(model, data_root),
        "index": np.asarray(picks),
        "labels": m["labels"][picks],
        "images": x.numpy(),
        "adversarial": traj[:, -1].reshape(len(picks), K, *x.shape[1:]).numpy(),
        "z": a["z"].reshape(*shape, 2),
        "pred": pred,
        "log10_error_hat": a["log10_error_hat"].reshape(shape),
        "success": pred[:, :, -1] == np.arange(K)[None, :],
        "first_success_step": np.where(
            (pred == np.arange(K)[None, :, None]).any(-1),
            (pred == np.arange(K)[None, :, None]).argmax(-1),
            -1,
        ),
        "background": {"z": m["z"][keep], "labels": m["labels"][keep]},
        "surface": error_surface(si),
        "steps": steps,
        "step_size": step_size,
    }


def summarize(data: dict) -> str:
    K = len(data["classes"])
    lines = [
        f"model {data['model']}: {len(data['index'])} test images x {K} targets x "
        f"{data['steps']} FGSM steps of {data['step_size']}"
    ]
    lines.append("final answer == target (1) per image (rows) and target (columns):")
    lines.append(f"{'image':>6}{'label':>6}  " + "".join(f"{c[:4]:>5}" for c in data["classes"]))
    for i, idx in enumerate(data["index"]):
        row = "".join(f"{int(s):>5}" for s in data["success"][i])
        lines.append(f"{int(idx):>6}{int(data['labels'][i]):>6}  {row}")
    off = ~np.eye(K, dtype=bool)[data["labels"]]
    lines.append(f"success rate over the wrong targets: {data['success'][off].mean():.3f}")
    peak = data["log10_error_hat"].max(-1)[off]
    start = data["log10_error_hat"][..., 0][off]
    lines.append(
        f"log10 e_hat: start {np.median(start):.2f} (median), peak along the path "
        f"{np.median(peak):.2f} (median)"
    )
    return "\n".join(lines)


def _attacks_travel_to_target(data):
    K = len(data["classes"])
    off = ~np.eye(K, dtype=bool)[np.asarray(data["labels"])]
    rate = float(np.asarray(data["success"])[off].mean())
    return rate >= 0.5, {"success rate over the wrong targets": r3(rate)}


def _error_rises_on_the_way(data):
    K = len(data["classes"])
    off = ~np.eye(K, dtype=bool)[np.asarray(data["labels"])]
    le = np.asarray(data["log10_error_hat"], dtype=float)
    start, peak = float(np.median(le[..., 0][off])), float(np.median(le.max(-1)[off]))
    return peak > start, {
        "median log10 e_hat at the start / peak along the path": r3([start, peak])
    }


CLAIMS = [
    Claim(
        "A successful attack is a trajectory from the correct category's region to the "
        "target's: most targeted attacks end at their target (success rate >= 0.5)",
        "Pardo et al. 2022, Sec. 2.10 and 3.5, Fig. 6",
        _attacks_travel_to_target,
    ),
    Claim(
        "On its way the trajectory crosses regions of high estimated error (the peak of "
        "log10 e_hat along the path above its start)",
        "Pardo et al. 2022, Sec. 3.5 and Fig. 6",
        _error_rises_on_the_way,
    ),
]
