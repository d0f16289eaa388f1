"""Lee 2019, Fig. 2: library size and agreement with the CNN's answers vs theta, per layer."""

from __future__ import annotations

from ._base import Claim, Param
from ._library import CNN_LAYERS, library_run, theta_grid
from ._library_claims import (
    agreement_reliable,
    common_theta_sizes_fall,
    later_layers_predict_better,
    sizes_grow_with_theta,
    top3_helps,
)

ID = "library.fig2"
PAPER = "library"
TITLE = "Library networks of the MNIST CNN: size, top-1 and top-3 agreement vs theta, per layer"
DESCRIPTION = (
    "How many hidden activity patterns each layer's library keeps as the novelty threshold "
    "rises, and how often its scores name the CNN's own answer on test inputs."
)

PARAMS = {
    "model": Param("mnist_cnn@digits", "model recipe (see introspect.recipes)"),
    "layers": Param(CNN_LAYERS, "layers with a library network (flattened outputs)"),
    "thetas": Param(
        [0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95],
        "novelty thresholds: a list for every layer, or a dict layer -> list",
        "list",
    ),
    "top_k": Param(3, "most active library nodes summed into the scores (the CNN: 3)"),
    "n_train_per_class": Param(
        None, "training images per class that build the libraries (None: all)"
    ),
    "n_test_per_class": Param(None, "test images per class for the agreement (None: all)"),
    "batch_size": Param(256, "capture batch size"),
}
PROFILES = {
    "quick": {},
    "paper": {"model": "mnist_cnn", "device": "cuda"},
}


def compute(*, model, layers, thetas, top_k, **run_params) -> dict:
    """``run_params``: the sizes and places of :func:`library_run` (its keyword arguments)."""
    run = library_run(model=model, layers=layers, top_k=top_k, **run_params)
    grid = theta_grid(thetas, layers)
    out = run.sweep(grid)
    return {
        "model": model,
        "layers": list(layers),
        "thetas": grid,
        "top_k": int(top_k),
        **out,
        "n_train": int(run.train_store.n),
        "n_test": int(run.test_store.n),
        "dims": {layer: int(run.train_store.dims[layer]) for layer in layers},
        "dnn_test_accuracy": float((run.test_preds == run.test_labels).mean()),
    }


def summarize(data: dict) -> str:
    lines = [
        f"{data['model']}: {data['n_train']} training inputs build the libraries, "
        f"{data['n_test']} test inputs; DNN test accuracy {data['dnn_test_accuracy']:.4f}; "
        f"top_k={data['top_k']}",
        f"{'layer':<6}{'dim':>7}{'theta':>7}{'size':>8}{'top1':>8}{'top3':>8}",
    ]
    for layer in data["layers"]:
        for i, t in enumerate(data["thetas"][layer]):
            lines.append(
                f"{layer:<6}{data['dims'][layer]:>7}{t:>7.3g}{data['sizes'][layer][i]:>8}"
                f"{data['top1'][layer][i]:>8.3f}{data['top3'][layer][i]:>8.3f}"
            )
    return "\n".join(lines)


CLAIMS = [
    Claim(
        "With the same threshold for all layers, the libraries of the earlier hidden layers "
        "are bigger than those of the later layers: HAPs become homogeneous as information "
        "propagates (CN1's library bigger than FC2's at every common theta)",
        "Lee 2019, Sec. 2.2.1 and Fig. 2A",
        common_theta_sizes_fall,
    ),
    Claim(
        "Library size grows with theta in every layer",
        "Lee 2019, Fig. 2A",
        sizes_grow_with_theta,
    ),
    Claim(
        "The library networks reliably predict the CNN's answers on test examples, especially "
        "at the higher thresholds (top-1 agreement >= 0.8 at the largest theta, above the smallest)",
        "Lee 2019, Sec. 2.2.1 and Fig. 2B",
        agreement_reliable,
    ),
    Claim(
        "Allowing the three best answers dramatically enhances the predictive power "
        "(top-3 recovers at least half of top-1's disagreement with the CNN, on average "
        "over theta, in every layer)",
        "Lee 2019, Fig. 2C",
        top3_helps,
    ),
    Claim(
        "The predictive power of the libraries of later layers is higher than that of earlier "
        "layers (mean top-1 agreement over theta: FC2 above CN1)",
        "Lee 2019, Sec. 2.2.1 (after Fig. 2)",
        later_layers_predict_better,
    ),
]
