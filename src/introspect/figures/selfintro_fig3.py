"""Pardo et al. 2022, Fig. 3: reordering a feedforward network with the expected activations."""

from __future__ import annotations

import numpy as np

from ._base import Claim, Param
from ._claims import r3
from ._selfintro import class_names, introspector, si_kwargs, spec_name

ID = "selfintro.fig3"
PAPER = "selfintro"
TITLE = "Network rearrangement: brainbow, preferred class, sorted layers, per-class activations"
DESCRIPTION = (
    "E[h|H_k] decoded from the KDE expectation E[z|H_k]; every layer's units coloured by "
    "Eq. 11 (a), their preferred class (b), sorted by it (c, d), and the reordered "
    "network's expected activation for each class, each layer normalised to 1."
)

PARAMS = {
    "model": Param("net1_mlp@digits", "model recipe (a Net1-like MLP)"),
    "grid_size": Param(201, "KDE grid points per axis over [-4, 4]^2"),
    "vae_epochs": Param(100, "InfoVAE epochs (batch 128)"),
    "vae_lr": Param(1e-3, "InfoVAE Adam learning rate"),
    "estimator_epochs": Param(60, "error-estimator epochs (batch 32)"),
    "estimator_lr": Param(1e-3, "error-estimator Adam learning rate"),
    "fit_per_class": Param(None, "training images per class for the map (None: all)", "int"),
}
PROFILES = {
    "quick": {},
    "paper": {
        "model": "net1_mlp@mnist",
        "device": "cuda",
        "vae_epochs": 192,
        "vae_lr": 1e-4,
        "estimator_epochs": 100,
        "estimator_lr": 1e-4,
    },
}


def _layer_normalised(M: np.ndarray, slices: dict) -> np.ndarray:
    """Each layer's block divided by its largest absolute value (the paper's 'normalised to 1')."""
    out = np.array(M, dtype=np.float64, copy=True)
    for s in slices.values():
        top = np.abs(out[..., s]).max()
        if top > 0:
            out[..., s] /= top
    return out


def compute(*, model, grid_size, workdir, device, data_root, seed, **params) -> dict:
    si = introspector(
        model, workdir=workdir, device=device, data_root=data_root, seed=seed, **si_kwargs(params)
    )
    ez = si.expected_codes(grid_size=grid_size)  # (K, 2)
    E = si.vae_.decode(ez)  # (K, D)
    orders = si.unit_order(E)
    assign = si.unit_assignment(E)
    rgb = si.brainbow(expected=E)
    glob = si.global_order(E)
    layers = list(si.layers_)
    widths = [si.layer_slices_[n].stop - si.layer_slices_[n].start for n in layers]
    per_layer = lambda d: np.stack([d[n] for n in layers])  # noqa: E731  (equal widths)
    equal = len(set(widths)) == 1
    counts = np.stack([np.bincount(assign[n], minlength=len(si.classes_)) for n in layers])
    return {
        "model": spec_name(model),
        "layers": layers,
        "widths": widths,
        "classes": class_names(model, data_root),
        "expected_codes": ez,
        "expected": E,
        "expected_reordered": _layer_normalised(E[:, glob], si.layer_slices_),
        "class_means_reordered": _layer_normalised(si.class_means_[:, glob], si.layer_slices_),
        "brainbow": per_layer(rgb) if equal else {n: rgb[n] for n in layers},
        "brainbow_reordered": (
            np.stack([rgb[n][orders[n]] for n in layers])
            if equal
            else {n: rgb[n][orders[n]] for n in layers}
        ),
        "assignment": per_layer(assign) if equal else {n: assign[n] for n in layers},
        "assignment_reordered": (
            np.stack([assign[n][orders[n]] for n in layers])
            if equal
            else {n: assign[n][orders[n]] for n in layers}
        ),
        "units_per_class": counts,
        "order_matches_class_means": float(
            np.mean(
                np.concatenate(
                    [si.unit_assignment(si.class_means_)[n] == assign[n] for n in layers]
                )
            )
        ),
    }


def summarize(data: dict) -> str:
    K = len(data["classes"])
    lines = [f"model {data['model']}: {len(data['layers'])} layers x {data['widths']} units"]
    lines.append("E[z|H_k] (KDE, Riemann sum on [-4,4]^2):")
    for k in range(K):
        z = data["expected_codes"][k]
        lines.append(f"  class {data['classes'][k]:>10}: ({z[0]:+.3f}, {z[1]:+.3f})")
    lines.append("units assigned to each class (argmax_k E[h_i|H_k]), per layer:")
    lines.append("  layer " + "".join(f"{c[:5]:>6}" for c in data["classes"]))
    for name, row in zip(data["layers"], data["units_per_class"]):
        lines.append(f"  {name:<5} " + "".join(f"{int(v):>6}" for v in row))
    lines.append(
        "fraction of units whose preferred class from the decoded E[h|H_k] equals the one "
        f"from the plain class means: {data['order_matches_class_means']:.3f}"
    )
    return "\n".join(lines)


def _decoded_preferences_match(data):
    """Units' preferred class from the decoded E[h|H_k] vs from the plain class means."""
    k = len(data["classes"])
    v = float(data["order_matches_class_means"])
    return v >= 0.5, {"agreement": r3(v), "chance": r3(1.0 / k)}


CLAIMS = [
    Claim(
        "E[z|H_k] decoded to E[h|H_k] tells each unit's preferred category, so every layer can "
        "be sorted by the output it drives (the preferred class from the decoded means agrees "
        "with the plain class means for at least half the units)",
        "Pardo et al. 2022, Sec. 2.8 and Fig. 3",
        _decoded_preferences_match,
    ),
]
