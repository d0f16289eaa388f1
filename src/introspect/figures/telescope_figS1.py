"""Lee & Vijayan 2023, Supplementary Fig. 1: BMU density (Gaussian KDE on the torus), CL1..CL4, per model."""

from __future__ import annotations

from ._base import Param
from ._telescope import (
    DENSITY_PARAMS,
    PAPER_MODELS,
    SOM_PAPER,
    SOM_PARAMS,
    density_data,
    density_summary,
)
from ._telescope_claims import DENSITY_CLAIMS

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


CLAIMS = DENSITY_CLAIMS
