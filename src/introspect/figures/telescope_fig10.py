"""Lee & Vijayan 2023, Fig. 10: cosine distance between the SOM weights at class centres,
CL1 vs CL4, for every model."""

from __future__ import annotations

import numpy as np

from .. import telescope
from ._base import Claim, Param
from ._claims import all_of, r3
from ._telescope import PAPER_MODELS, SOM_PAPER, SOM_PARAMS, box_stats, som_kwargs, som_run

ID = "telescope.fig10"
PAPER = "telescope"
TITLE = "Cosine distance between the weights at class centres, CL1 vs CL4, per model"
DESCRIPTION = (
    "Class centres' functional codes are close in CL1 and far apart in CL4, for the "
    "ImageNet models and for ResNet50 trained on CIFAR-10/100 and SVHN."
)

PARAMS = {
    "models": Param(["small_cnn@digits", "small_cnn_rgb@digits"], "model recipes"),
    "compare": Param(["CL1", "CL4"], "the two layers compared"),
    "n_centres": Param(100, "classes whose centres are compared (all when fewer)"),
    **SOM_PARAMS,
}
PROFILES = {
    "quick": {},
    "paper": {
        "models": PAPER_MODELS + ["resnet50@cifar10", "resnet50@cifar100", "resnet50@svhn"],
        **SOM_PAPER,
    },
}


def compute(*, models, compare, n_centres, **params) -> dict:
    missing = set(compare) - set(params["layers"])
    if missing:
        raise ValueError(f"compare names layers {sorted(missing)} that are not in layers.")
    dist, hist = {}, {}
    for spec in models:
        run = som_run(spec, splits=("train",), **som_kwargs(params))
        rng = np.random.default_rng(params["seed"])
        k = min(int(n_centres), len(run.classes))
        chosen = np.sort(rng.choice(len(run.classes), size=k, replace=False))
        dist[spec], hist[spec] = {}, {}
        for layer in compare:
            units = telescope.centre_units(run.centres(layer)[chosen], run.shape)
            d = telescope.centre_cosine_distances(run.soms[layer].weights_, units)
            dist[spec][layer] = box_stats(d)
            hist[spec][layer] = np.histogram(d, bins=40, range=(0, 1))[0].tolist()
    return {
        "models": list(models),
        "layers": list(compare),
        "distance": dist,
        "hist": hist,
        "som_size": int(params["som_size"]),
    }


def summarize(data: dict) -> str:
    a, b = data["layers"]
    lines = [f"cosine distance between class-centre weights, median [q1, q3]: {a} vs {b}"]
    for spec in data["models"]:
        x, y = data["distance"][spec][a], data["distance"][spec][b]
        lines.append(
            f"{spec:<24}{a} {x['median']:.4f} [{x['q1']:.4f}, {x['q3']:.4f}]   "
            f"{b} {y['median']:.4f} [{y['q1']:.4f}, {y['q3']:.4f}]   ratio {y['median'] / max(x['median'], 1e-12):.1f}x"
        )
    return "\n".join(lines)


def _cl1_centres_much_closer(data, factor: float = 2.0):
    res, nums = {}, {}
    first, last = data["layers"][0], data["layers"][-1]
    for spec in data["models"]:
        a = data["distance"][spec][first]["median"]
        b = data["distance"][spec][last]["median"]
        res[spec] = b > factor * a
        nums[f"{spec} median {first} / {last}"] = r3([a, b])
    return all_of(res), nums


CLAIMS = [
    Claim(
        "Class centres are much closer to each other in CL1 than in CL4 (median cosine "
        "distance of CL4 more than twice CL1's), for every model",
        "Lee & Vijayan 2023, Sec. 3.1 and Fig. 10",
        _cl1_centres_much_closer,
    ),
]
