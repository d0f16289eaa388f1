"""Lee & Vijayan 2023, Fig. 3: PCA explained variance of the vector codes, per layer."""

from __future__ import annotations

import numpy as np

from .. import pipeline
from ..recipes import load_recipe, recipe_data
from ..telescope import pca_explained_variance
from ._base import Claim, Param
from ._claims import all_of, r3

ID = "telescope.fig03"
PAPER = "telescope"
TITLE = "PCA explained variance of the top 30 axes of the vector codes, per layer and model"
DESCRIPTION = (
    "How many directions the functional codes of CL1..CL4 occupy: the explained-variance "
    "ratio of their top principal axes, for each model."
)

PARAMS = {
    "models": Param(["small_cnn@digits"], "model recipes (see introspect.recipes)"),
    "layers": Param(["CL1", "CL2", "CL3", "CL4"], "layers whose vector codes are analysed"),
    "split": Param("train", "data split the codes are computed on (SOM-tr)"),
    "n_per_class": Param(50, "images per class (the paper's SOM-tr: 50)"),
    "n_components": Param(30, "number of principal axes shown"),
    "batch_size": Param(128, "capture batch size"),
}
PROFILES = {
    "quick": {},
    "paper": {
        "models": ["timm:resnet18", "timm:resnet50", "timm:densenet121", "timm:vgg19"],
        "device": "cuda",
        "batch_size": 50,
    },
}


def compute(
    *,
    models,
    layers,
    split,
    n_per_class,
    n_components,
    batch_size,
    workdir,
    device,
    data_root,
    seed,
) -> dict:
    explained: dict[str, dict[str, list]] = {}
    n_samples, dims = {}, {}
    for spec in models:
        model = load_recipe(spec, workdir=workdir, device=device, data_root=data_root, seed=seed)
        data = recipe_data(spec, split, data_root=data_root, n_per_class=n_per_class, seed=seed)
        store = pipeline.captured(
            model,
            data,
            layers,
            reducer="codes",
            workdir=workdir,
            device=device,
            batch_size=batch_size,
        )
        explained[spec] = {}
        dims[spec] = {}
        for layer in layers:
            codes = np.asarray(store.layer(layer))
            explained[spec][layer] = pca_explained_variance(codes, n_components).tolist()
            dims[spec][layer] = int(codes.shape[1])
        n_samples[spec] = int(store.n)
    return {
        "models": list(models),
        "layers": list(layers),
        "explained": explained,
        "n_samples": n_samples,
        "code_dims": dims,
    }


def summarize(data: dict) -> str:
    lines = ["explained variance of the top axes of the vector codes (cumulative)"]
    lines.append(
        f"{'model':<22}{'layer':<7}{'dim':>6}{'n':>7}{'top1':>8}{'top10':>8}{'top30':>8}{'axes90%':>9}"
    )
    for spec in data["models"]:
        for layer in data["layers"]:
            ev = np.asarray(data["explained"][spec][layer])
            cum = np.cumsum(ev)
            k90 = int(np.searchsorted(cum, 0.9) + 1) if cum[-1] >= 0.9 else f">{len(ev)}"
            lines.append(
                f"{spec:<22}{layer:<7}{data['code_dims'][spec][layer]:>6}{data['n_samples'][spec]:>7}"
                f"{cum[0]:>8.3f}{cum[min(9, len(cum) - 1)]:>8.3f}{cum[-1]:>8.3f}{k90!s:>9}"
            )
    return "\n".join(lines)


def _ev_rises_fastest_in_cl1(data, k: int = 10):
    res, nums = {}, {}
    for spec in data["models"]:
        cum = {ly: float(np.sum(data["explained"][spec][ly][:k])) for ly in data["layers"]}
        first, deep = data["layers"][0], data["layers"][2:] or data["layers"][1:]
        res[spec] = all(cum[first] > cum[ly] for ly in deep)
        nums[f"{spec} EV of the top {k} axes"] = r3(list(cum.values()))
    return all_of(res), nums


CLAIMS = [
    Claim(
        "EV in CL1 increases quite rapidly with the number of principal axes; the growth is "
        "substantially smaller in the deep layers, especially CL3 and CL4 (top-10 EV of CL1 "
        "above that of every layer from CL3 on)",
        "Lee & Vijayan 2023, Sec. 3 and Fig. 3",
        _ev_rises_fastest_in_cl1,
    ),
]
