"""Lee & Vijayan 2023, Supplementary Fig. 1: BMU density (Gaussian KDE on the torus), CL1..CL4, per model."""

from __future__ import annotations

from ._base import Claim, Param
from ._claims import all_of, r3
from ._telescope import (
    DENSITY_PARAMS,
    PAPER_MODELS,
    SOM_PAPER,
    SOM_PARAMS,
    density_data,
    density_summary,
)

ID = "telescope.figS1"
PAPER = "telescope"
TITLE = "BMU density (periodic Gaussian KDE) of every layer's SOM, per model"
DESCRIPTION = (
    "Some SOM units are chosen as BMUs far more often than others: a finite set of "
    "functional codes. Density of the SOM-tr BMUs on the SOMs of CL1..CL4."
)

PARAMS = {
    "models": Param(["small_cnn@digits"], "model recipes"),
    **SOM_PARAMS,
    "show_layers": Param(["CL1", "CL2", "CL3", "CL4"], "layers shown"),
    **DENSITY_PARAMS,
}
PROFILES = {"quick": {}, "paper": {"models": PAPER_MODELS, **SOM_PAPER}}


def compute(*, models, show_layers, bandwidth, resolution, density_top_k, **params) -> dict:
    return density_data(
        models,
        show_layers,
        bandwidth=bandwidth,
        resolution=resolution,
        density_top_k=density_top_k,
        params=params,
    )


def summarize(data: dict) -> str:
    return density_summary(data)


def _some_units_preferred(data):
    """The busiest unit takes >= 3x the share a uniform spread gives each unit."""
    m, n = data["shape"]
    uniform = 1.0 / (m * n)
    res, nums = {}, {}
    for spec in data["models"]:
        for layer in data["layers"]:
            s = data["stats"][spec][layer]
            res[f"{spec} {layer}"] = s["top_unit_share"] >= 3 * uniform
            nums[f"{spec} {layer} top-unit share / uniform"] = r3(s["top_unit_share"] / uniform)
            nums[f"{spec} {layer} effective units of {m * n}"] = r3(s["effective_units"])
    return all_of(res), nums


CLAIMS = [
    Claim(
        "Some SOM units are chosen as BMUs far more often than others: a finite set of "
        "functional codes (the busiest unit takes at least 3x a uniform share)",
        "Lee & Vijayan 2023, Sec. 3.1, Fig. 5 and Supplementary Fig. 1",
        _some_units_preferred,
    ),
]
