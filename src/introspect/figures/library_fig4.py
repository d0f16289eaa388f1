"""Lee 2019, Fig. 4: the same as Fig. 2 for ResNet44 on CIFAR-10, with Table 1's theta levels."""

from __future__ import annotations

from ._base import Param
from ._library import CNN_LAYERS, RESNET_LAYERS, TABLE1_LEVELS
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
