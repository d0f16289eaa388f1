"""Lee & Vijayan 2023, Fig. 4: SOM loss (quantization error) during training, per layer."""

from __future__ import annotations

import numpy as np

from ._base import Claim, Param
from ._claims import all_of, r3, trend
from ._telescope import PAPER_MODELS, SOM_PAPER, SOM_PARAMS, downsample, som_kwargs, som_run

ID = "telescope.fig04"
PAPER = "telescope"
TITLE = "SOM loss (batch quantization error) during training, per layer and model"
DESCRIPTION = (
    "The cosine quantization error of each SOM batch while the SOMs learn CL1..CL4: "
    "where it saturates says how diverse the layer's codes are."
)

PARAMS = {
    "models": Param(["small_cnn@digits"], "model recipes (see introspect.recipes)"),
    **SOM_PARAMS,
    "max_points": Param(500, "loss curves are averaged over windows down to this many points"),
}
PROFILES = {"quick": {}, "paper": {"models": PAPER_MODELS, **SOM_PAPER}}


def compute(*, models, max_points, **params) -> dict:
    curves: dict[str, dict] = {}
    final: dict[str, dict] = {}
    epochs_qe: dict[str, dict] = {}
    for spec in models:
        run = som_run(spec, splits=("train",), **som_kwargs(params))
        curves[spec], final[spec], epochs_qe[spec] = {}, {}, {}
        for layer in run.layers:
            h = run.soms[layer].history_
            x, y = downsample(h["qe"], max_points)
            curves[spec][layer] = {"step": x, "qe": y}
            ep = np.asarray(h["epoch"])
            qe = np.asarray(h["qe"])
            epochs_qe[spec][layer] = [float(qe[ep == e].mean()) for e in np.unique(ep)]
            final[spec][layer] = epochs_qe[spec][layer][-1]
    return {
        "models": list(models),
        "layers": list(params["layers"]),
        "som_size": int(params["som_size"]),
        "curves": curves,
        "epoch_qe": epochs_qe,
        "final_qe": final,
    }


def summarize(data: dict) -> str:
    lines = [
        f"SOM {data['som_size']}x{data['som_size']} mean batch quantization error (cosine) per epoch"
    ]
    for spec in data["models"]:
        for layer in data["layers"]:
            ep = data["epoch_qe"][spec][layer]
            lines.append(f"{spec:<24}{layer:<6}" + " ".join(f"{v:8.4f}" for v in ep))
    lines.append("last-epoch QE by layer (the paper: saturates higher in deeper layers):")
    for spec in data["models"]:
        vals = [data["final_qe"][spec][layer] for layer in data["layers"]]
        lines.append(
            f"  {spec}: " + " < ".join(f"{v:.4f}" for v in vals)
            if all(a <= b for a, b in zip(vals, vals[1:]))
            else f"  {spec}: " + ", ".join(f"{v:.4f}" for v in vals)
        )
    return "\n".join(lines)


def _saturates_higher_deeper(data):
    res, nums = {}, {}
    for spec in data["models"]:
        vals = [data["final_qe"][spec][ly] for ly in data["layers"]]
        res[spec] = vals[-1] > vals[0]
        nums[f"{spec} last-epoch QE"] = r3(vals)
        nums[f"{spec} trend"] = trend(vals)
    return all_of(res), nums


CLAIMS = [
    Claim(
        "The SOM loss saturates at a higher quantization error in deeper layers, whose "
        "codes are more diverse (last-epoch QE of CL4 above CL1)",
        "Lee & Vijayan 2023, Fig. 4 and Sec. 3.1",
        _saturates_higher_deeper,
    ),
]
