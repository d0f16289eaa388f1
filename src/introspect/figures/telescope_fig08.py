"""Lee & Vijayan 2023, Fig. 8: cosine distance between the SOM weights at class centres,
per layer and model, for four SOM sizes."""

from __future__ import annotations

import numpy as np

from .. import telescope
from ._base import Claim, Param
from ._claims import all_of, r3
from ._telescope import PAPER_MODELS, SOM_PAPER, SOM_PARAMS, box_stats, som_kwargs, som_run

ID = "telescope.fig08"
PAPER = "telescope"
TITLE = "Cosine distance between the SOM weights at class centres, per layer, model and SOM size"
DESCRIPTION = (
    "The functional codes at the centres of different classes are close in CL1..CL3 and "
    "spread apart in CL4, whatever the SOM size."
)

PARAMS = {
    "models": Param(["small_cnn@digits"], "model recipes"),
    "som_sizes": Param([8, 10, 12], "SOM grid sides compared (the paper: 10, 20, 30, 40)"),
    "n_centres": Param(100, "classes whose centres are compared (all when fewer)"),
    **SOM_PARAMS,
}
PROFILES = {
    "quick": {},
    "paper": {"models": PAPER_MODELS, "som_sizes": [10, 20, 30, 40], **SOM_PAPER},
}


def compute(*, models, som_sizes, n_centres, **params) -> dict:
    dist, chosen = {}, {}
    for size in som_sizes:
        dist[str(size)] = {}
        for spec in models:
            run = som_run(spec, splits=("train",), **som_kwargs({**params, "som_size": size}))
            n_cls = len(run.classes)
            if spec not in chosen:
                rng = np.random.default_rng(params["seed"])
                k = min(int(n_centres), n_cls)
                chosen[spec] = np.sort(rng.choice(n_cls, size=k, replace=False)).tolist()
            dist[str(size)][spec] = {}
            for layer in run.layers:
                centres = run.centres(layer)[chosen[spec]]
                units = telescope.centre_units(centres, run.shape)
                d = telescope.centre_cosine_distances(run.soms[layer].weights_, units)
                dist[str(size)][spec][layer] = box_stats(d)
    return {
        "models": list(models),
        "layers": list(params["layers"]),
        "som_sizes": [int(s) for s in som_sizes],
        "classes": chosen,
        "distance": dist,
    }


def summarize(data: dict) -> str:
    lines = ["median cosine distance between the weights at class centres (pairs of classes)"]
    lines.append(f"{'size':<6}{'model':<24}" + "".join(f"{la:>10}" for la in data["layers"]))
    for size in data["som_sizes"]:
        for spec in data["models"]:
            row = data["distance"][str(size)][spec]
            lines.append(
                f"{size:<6}{spec:<24}"
                + "".join(f"{row[la]['median']:>10.4f}" for la in data["layers"])
            )
    n = {spec: len(c) for spec, c in data["classes"].items()}
    lines.append(f"classes compared per model: {n}")
    return "\n".join(lines)


def _centres_diverge_in_cl4(data):
    res, nums = {}, {}
    layers = data["layers"]
    for size in data["som_sizes"]:
        for spec in data["models"]:
            med = [data["distance"][str(size)][spec][ly]["median"] for ly in layers]
            res[f"{size} {spec}"] = all(med[-1] > v for v in med[:-1])
            nums[f"{size}x{size} {spec} median"] = r3(med)
    return all_of(res), nums


CLAIMS = [
    Claim(
        "Cosine distances between class centres are small but become bigger in CL4, at every "
        "SOM size and for every model (CL4's median above those of CL1-CL3)",
        "Lee & Vijayan 2023, Sec. 3.1 and Fig. 8",
        _centres_diverge_in_cl4,
    ),
]
