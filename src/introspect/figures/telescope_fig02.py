"""Lee & Vijayan 2023, Fig. 2: BMUs of one class on the torus and on its 3x3 unfolding."""

from __future__ import annotations

import numpy as np

from .. import telescope
from ._base import Claim, Param
from ._claims import r3
from ._telescope import SOM_PAPER, SOM_PARAMS, som_kwargs, som_run

ID = "telescope.fig02"
PAPER = "telescope"
TITLE = "Torus unfolding: one class's BMUs on the SOM and on the 3x3 unfolded SOM, with its centre"
DESCRIPTION = (
    "Where the top-k BMUs of one class's SOM-tr inputs fall on each layer's SOM, and how "
    "moving them next to the most frequent BMU (3x3 tiling) gives the class centre."
)

PARAMS = {
    "model": Param("small_cnn@digits", "model recipe"),
    "class_index": Param(0, "class whose BMUs are shown"),
    **SOM_PARAMS,
}
PROFILES = {"quick": {}, "paper": {"model": "timm:resnet18", **SOM_PAPER}}


def compute(*, model, class_index, **params) -> dict:
    run = som_run(model, splits=("train",), **som_kwargs(params))
    m, n = run.shape
    c = int(class_index)
    sel = run.labels["train"] == c
    if not sel.any():
        raise ValueError(
            f"class_index={c} has no SOM-tr inputs; classes are 0..{len(run.classes) - 1}."
        )
    layers = {}
    for layer in run.layers:
        units = run.bmus["train"][layer][sel].ravel()
        counts = np.bincount(units, minlength=m * n)
        used = np.flatnonzero(counts)
        coords = telescope.unit_coords(used, run.shape)
        mode = int(counts.argmax())
        ref = telescope.unit_coords(mode, run.shape)
        moved = telescope.unfold(coords, ref, run.shape) + [m, n]  # on the 3m x 3n canvas
        centre = telescope.class_centres(units, np.zeros(units.size, int), run.shape)[0]
        moved_centre = telescope.unfold(centre, ref, run.shape) + [m, n]
        layers[layer] = {
            "units": used.tolist(),
            "counts": counts[used].tolist(),
            "rows": coords[:, 0].tolist(),
            "cols": coords[:, 1].tolist(),
            "unfolded_rows": moved[:, 0].tolist(),
            "unfolded_cols": moved[:, 1].tolist(),
            "mode_unit": mode,
            "centre": centre.tolist(),
            "unfolded_centre": moved_centre.tolist(),
            # the plain mean, which ignores the seam, for comparison
            "naive_centre": ((coords * counts[used, None]).sum(0) / counts[used].sum()).tolist(),
            "d_class": float(telescope.d_class(units, np.zeros(units.size, int), run.shape)[0]),
        }
    return {
        "model": model,
        "class_index": c,
        "class_name": run.classes[c],
        "shape": [m, n],
        "n_inputs": int(sel.sum()),
        "top_k": int(params["top_k"]),
        "layers": layers,
        "layer_names": run.layers,
    }


def summarize(data: dict) -> str:
    m, n = data["shape"]
    lines = [
        f"class {data['class_index']} ({data['class_name']}): {data['n_inputs']} SOM-tr inputs x "
        f"top-{data['top_k']} BMUs on a {m}x{n} torus",
        f"{'layer':<7}{'units':>6}{'mode':>6}{'centre (row, col)':>22}{'naive mean':>20}{'D_class':>9}",
    ]
    for layer in data["layer_names"]:
        d = data["layers"][layer]
        c, nc = d["centre"], d["naive_centre"]
        lines.append(
            f"{layer:<7}{len(d['units']):>6}{d['mode_unit']:>6}"
            f"{f'({c[0]:.2f}, {c[1]:.2f})':>22}{f'({nc[0]:.2f}, {nc[1]:.2f})':>20}{d['d_class']:>9.3f}"
        )
    return "\n".join(lines)


def _unfolded_centre_is_closer(data):
    """The unfolded centre vs the plain mean of the coordinates, by torus distance."""
    shape, out, ok = data["shape"], {}, []
    for layer in data["layer_names"]:
        d = data["layers"][layer]
        coords, w = np.stack([d["rows"], d["cols"]], 1), np.asarray(d["counts"], float)
        unf, naive = (
            float(np.average(telescope.torus_distance(coords, c, shape), weights=w))
            for c in (d["centre"], d["naive_centre"])
        )
        out[layer] = f"{unf:.2f} vs {naive:.2f}"
        ok.append(unf <= naive + 1e-9)
    return all(ok), {"mean torus distance to the unfolded / naive centre": out}


def _spread_shrinks(data):
    d = [data["layers"][layer]["d_class"] for layer in data["layer_names"]]
    return d[-1] < d[0], {"D_class per layer": r3(d)}


CLAIMS = [
    Claim(
        "Unfolding the torus (BMUs moved to the 3x3-tiling copy nearest the most frequent "
        "unit) gives a class centre at least as close to the class's BMUs as the plain mean, "
        "which ignores the seam",
        "Lee & Vijayan 2023, Sec. 2.4 and Fig. 2",
        _unfolded_centre_is_closer,
    ),
    Claim(
        "The class's BMUs spread less in the deepest layer than in the first (D_class CL4 < CL1)",
        "Lee & Vijayan 2023, Fig. 2B and Sec. 3.1",
        _spread_shrinks,
    ),
]
