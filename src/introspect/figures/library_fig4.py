"""Lee 2019, Fig. 4: the same as Fig. 2 for ResNet44 on CIFAR-10, with Table 1's theta levels."""

from __future__ import annotations

from ._base import Claim, Param
from ._claims import need, r3
from ._library import CNN_LAYERS, RESNET_LAYERS, TABLE1_LEVELS
from ._library_claims import agreement_reliable, top3_helps
from .library_fig2 import compute, summarize  # noqa: F401  (the same sweep and table)

ID = "library.fig4"
PAPER = "library"
TITLE = "Library networks of ResNet44 on CIFAR-10: size and agreement at Table 1's theta levels"
DESCRIPTION = (
    "Per-block library size and top-1/top-3 agreement with the ResNet's answers at the eight "
    "per-layer theta levels of the paper's Table 1 (each block needs its own range)."
)

PARAMS = {
    "model": Param("mnist_cnn@digits", "model recipe (paper: cifar_resnet44, akamaster weights)"),
    "layers": Param(CNN_LAYERS, "layers with a library network"),
    "thetas": Param(
        {
            "CN1": [0.8, 0.82, 0.84, 0.86, 0.88, 0.9, 0.92, 0.94],
            "CN2": [0.76, 0.78, 0.8, 0.82, 0.84, 0.86, 0.88, 0.9],
            "FC1": [0.76, 0.78, 0.8, 0.82, 0.84, 0.86, 0.88, 0.9],
            "FC2": [0.7, 0.72, 0.74, 0.76, 0.78, 0.8, 0.82, 0.84],
        },
        "theta levels per layer (dict layer -> list; paper: Table 1)",
        "dict",
    ),
    "top_k": Param(8, "most active library nodes summed into the scores (the ResNet: 8)"),
    "n_train_per_class": Param(
        None, "training images per class that build the libraries (None: all)"
    ),
    "n_test_per_class": Param(None, "test images per class for the agreement (None: all)"),
    "batch_size": Param(256, "capture batch size"),
}
PROFILES = {
    "quick": {},
    "paper": {
        "model": "cifar_resnet44",
        "layers": RESNET_LAYERS,
        "thetas": TABLE1_LEVELS,
        "device": "cuda",
    },
}


def _cl1_most_homogeneous(data):
    need(
        "CL1" in data["layers"],
        f"{data['model']} has no CL1 block (layers {data['layers']}): the claim is about "
        "ResNet44's first composite layer (the paper profile)",
    )
    others = [ly for ly in data["layers"] if ly != "CL1"]
    n = len(data["sizes"]["CL1"])
    ok = all(data["sizes"]["CL1"][i] < min(data["sizes"][ly][i] for ly in others) for i in range(n))
    return ok, {f"{ly} sizes": data["sizes"][ly] for ly in data["layers"]}


def _reliable_top3(data, level: float = 0.8):
    res = {ly: data["top3"][ly][-1] >= level for ly in data["layers"]}
    nums = {f"{ly} top-3 at the last theta set": r3(data["top3"][ly][-1]) for ly in data["layers"]}
    return all(res.values()), nums


CLAIMS = [
    Claim(
        "The libraries still reliably predict the ResNet's decisions on test examples "
        "(top-3 agreement >= 0.8 at the last theta set, every layer)",
        "Lee 2019, Sec. 2.2.2 and Fig. 4B-C",
        _reliable_top3,
    ),
    Claim(
        "Top-1 agreement rises with the theta set to >= 0.8 at the last one, in every layer",
        "Lee 2019, Fig. 4B",
        agreement_reliable,
    ),
    Claim(
        "The three best answers recover at least half of the single best's disagreement, "
        "in every layer",
        "Lee 2019, Fig. 4C",
        top3_helps,
    ),
    Claim(
        "HAPs in CL1 are more homogeneous than in any other block: CL1's library is the "
        "smallest at every theta set (unlike the CNN's gradual trend)",
        "Lee 2019, Sec. 2.2.2 and Fig. 4A",
        _cl1_most_homogeneous,
    ),
]
