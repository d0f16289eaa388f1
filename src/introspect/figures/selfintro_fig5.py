"""Pardo et al. 2022, Fig. 5: noise constellations of one test digit, clean- vs noise-trained."""

from __future__ import annotations

import numpy as np

from ..attacks import awgn
from ..recipes import recipe_data
from ._base import Claim, Param
from ._claims import need, r3
from ._selfintro import class_names, introspector, mapped, si_kwargs, spec_name

ID = "selfintro.fig5"
PAPER = "selfintro"
TITLE = (
    "Noise constellations: one test digit under AWGN on the map of Net1 and a noise-trained clone"
)
DESCRIPTION = (
    "n_draws copies of one test input with additive white Gaussian noise of increasing "
    "sigma, placed on each net's activation map: the net trained on clean data scatters, "
    "the clone trained with sigma ~ U[0, 1] per minibatch stays put."
)

PARAMS = {
    "models": Param(
        ["net1_mlp@digits", "net1_mlp_noise@digits"],
        "model recipes: the clean-trained net and its noise-trained clone",
    ),
    "sample": Param(
        None, "test-set index of the input (None: first test image of sample_class)", "int"
    ),
    "sample_class": Param(1, "class of the input when sample is None"),
    "sigmas": Param([0.0, 0.1, 0.2, 0.3], "AWGN standard deviations (images in [0, 1])"),
    "n_draws": Param(200, "noise draws per sigma"),
    "max_points": Param(5000, "at most this many background test points per map"),
    "vae_epochs": Param(100, "InfoVAE epochs (batch 128)"),
    "vae_lr": Param(1e-3, "InfoVAE Adam learning rate"),
    "estimator_epochs": Param(60, "error-estimator epochs (batch 32)"),
    "estimator_lr": Param(1e-3, "error-estimator Adam learning rate"),
    "fit_per_class": Param(None, "training images per class for the map (None: all)", "int"),
}
PROFILES = {
    "quick": {},
    "paper": {
        "models": ["net1_mlp@mnist", "net1_mlp_noise@mnist"],
        "sample": 907,
        "max_points": 10000,
        "device": "cuda",
        "vae_epochs": 192,
        "vae_lr": 1e-4,
        "estimator_epochs": 100,
        "estimator_lr": 1e-4,
    },
}


def compute(
    *,
    models,
    sample,
    sample_class,
    sigmas,
    n_draws,
    max_points,
    workdir,
    device,
    data_root,
    seed,
    **params,
) -> dict:
    data = recipe_data(models[0], "test", data_root=data_root, seed=seed)
    if sample is None:
        sample = int(np.flatnonzero(np.asarray(data.targets) == sample_class)[0])
    x0, y0 = data[int(sample)]
    noisy = {float(s): awgn(x0, float(s), n_draws, seed=seed) for s in sigmas}  # (n, C, H, W)
    out = {
        "models": [spec_name(m) for m in models],
        "sample": int(sample),
        "label": int(y0),
        "image": x0.numpy(),
        "sigmas": [float(s) for s in sigmas],
        "examples": np.stack([noisy[float(s)][0].numpy() for s in sigmas]),
        "classes": class_names(models[0], data_root),
        "panels": {},
    }
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
        keep = np.random.default_rng(seed).permutation(len(m["labels"]))[:max_points]
        clean = si.analyze(x0[None])
        panel = {
            "background": {"z": m["z"][keep], "labels": m["labels"][keep]},
            "test_accuracy": m["accuracy"],
            "clean_z": clean["z"][0],
            "clean_pred": int(clean["pred"][0]),
            "z": [],
            "pred": [],
            "log10_error_hat": [],
            "accuracy": [],
        }
        for s in sigmas:
            a = si.analyze(noisy[float(s)])
            panel["z"].append(a["z"])
            panel["pred"].append(a["pred"])
            panel["log10_error_hat"].append(a["log10_error_hat"])
            panel["accuracy"].append(float((a["pred"] == int(y0)).mean()))
        # accuracy of the whole test set under each noise level (the black-box view)
        xt, yt = data.tensors()
        panel["test_accuracy_noisy"] = [
            float((si.analyze(awgn(xt, float(s), 1, seed=seed)[0])["pred"] == yt.numpy()).mean())
            for s in sigmas
        ]
        panel["z"] = np.stack(panel["z"])
        panel["pred"] = np.stack(panel["pred"])
        panel["log10_error_hat"] = np.stack(panel["log10_error_hat"])
        panel["spread"] = [
            float(np.linalg.norm(z - panel["clean_z"], axis=1).mean()) for z in panel["z"]
        ]
        out["panels"][spec_name(spec)] = panel
    return out


def summarize(data: dict) -> str:
    lines = [
        f"test sample {data['sample']} (label {data['label']}), {len(data['sigmas'])} noise levels"
    ]
    lines.append(
        f"{'model':<26}{'sigma':>6}{'acc(sample)':>12}{'acc(test)':>10}{'mean |dz|':>10}"
        f"{'log10 e_hat':>12}"
    )
    for spec in data["models"]:
        p = data["panels"][spec]
        for i, s in enumerate(data["sigmas"]):
            lines.append(
                f"{spec:<26}{s:>6.2f}{p['accuracy'][i]:>12.3f}{p['test_accuracy_noisy'][i]:>10.3f}"
                f"{p['spread'][i]:>10.3f}{np.median(p['log10_error_hat'][i]):>12.2f}"
            )
    lines.append("acc(sample): fraction of noisy copies classified as the label; |dz|: distance")
    lines.append("on the map from the clean input's code; log10 e_hat: median estimated error")
    return "\n".join(lines)


def _noise_trained_is_stable(data):
    need(len(data["models"]) >= 2, "needs the clean-trained net and its noise-trained clone")
    clean, noisy = data["models"][0], data["models"][1]
    a, b = data["panels"][clean]["spread"][-1], data["panels"][noisy]["spread"][-1]
    return b < a, {
        f"mean |dz| at sigma {data['sigmas'][-1]:g}, clean-trained / noise-trained": r3([a, b])
    }


def _noise_trained_more_accurate(data):
    need(len(data["models"]) >= 2, "needs the clean-trained net and its noise-trained clone")
    clean, noisy = data["models"][0], data["models"][1]
    a = data["panels"][clean]["test_accuracy_noisy"][-1]
    b = data["panels"][noisy]["test_accuracy_noisy"][-1]
    return b >= a, {
        f"test accuracy at sigma {data['sigmas'][-1]:g}, clean-trained / noise-trained": r3([a, b])
    }


CLAIMS = [
    Claim(
        "The net trained with noise injection responds much more stably to noise: its noisy "
        "copies stray less from the clean input's point on the map (at the largest sigma)",
        "Pardo et al. 2022, Sec. 3.4 and Fig. 5",
        _noise_trained_is_stable,
    ),
    Claim(
        "... with less significant classification errors (test accuracy under the largest "
        "noise at least that of the clean-trained net)",
        "Pardo et al. 2022, Fig. 5(e)-(h)",
        _noise_trained_more_accurate,
    ),
]
