"""Shared, cached stages of the functional-telescope figures (Lee & Vijayan 2023).

Every telescope figure uses the same chain, and each link is cached in the workdir, so
the figures of one profile share one trained model, one capture per split and one SOM per
layer:

    recipe -> model (trained or pretrained) -> vector codes of CL1..CL4 on SOM-tr / SOM-val
    (``pipeline.captured``, reducer "codes") -> a ToroidalSOM per layer fitted on SOM-tr
    (the shared SOM stage, ``pipeline.fitted_som``) -> top-k BMUs of every input.

Layers CL1..CL4 are the model's aliases: resnets ``layer1..layer4``; densenet121
``features.denseblock1..3`` and ``features.norm5`` (after block 4); vgg19 the outputs of
its 2nd..5th max-pool stages (``features.8/17/26/35``); small_cnn ``block1..4``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import pipeline, telescope
from ..recipes import RECIPES, load_recipe, recipe_data
from ..som import ToroidalSOM
from ._base import Param

__all__ = [
    "SOM_PARAMS",
    "SOM_PAPER",
    "SomRun",
    "som_run",
    "som_kwargs",
    "box_stats",
    "downsample",
]

# Parameters shared by the figures that fit SOMs (defaults = quick profile).
SOM_PARAMS = {
    "layers": Param(["CL1", "CL2", "CL3", "CL4"], "layers whose vector codes get a SOM"),
    "n_per_class": Param(50, "SOM-tr: training images per class"),
    "val_n_per_class": Param(30, "SOM-val: validation images per class (digits has 36)"),
    "val_split": Param("val", "data split of SOM-val ('test' for train/test image folders)"),
    "som_size": Param(10, "side of the square SOM grid (the paper: 20)"),
    "som_epochs": Param(5, "SOM training epochs"),
    "som_batch_size": Param(10, "SOM batch size (the paper: 10)"),
    "som_batch_sizes": Param(
        {}, "per-model SOM batch size overrides, e.g. {'timm:densenet121': 50}", "dict"
    ),
    "sigma": Param(10.0, "initial neighbourhood width of the SOM (QuickSOM exp decay)"),
    "alpha": Param(0.1, "initial learning rate of the SOM"),
    "top_k": Param(10, "BMUs per input (the paper: top-10)"),
    "batch_size": Param(128, "capture batch size"),
}
# The paper profile of those parameters.
SOM_PAPER = {
    "n_per_class": 50,
    "val_n_per_class": 50,
    "som_size": 20,
    "som_batch_sizes": {"timm:densenet121": 50},
    "device": "cuda",
    "batch_size": 50,
}

PAPER_MODELS = ["timm:resnet18", "timm:resnet50", "timm:densenet121", "timm:vgg19"]

# Fig. 9/10 recipes: ResNet50 trained on CIFAR-10, CIFAR-100 and SVHN. The paper does not
# say how; here timm's ImageNet ResNet50 is fine-tuned on the images upsampled to 224 x 224
# (SGD with momentum 0.9, lr 0.01, weight decay 5e-4, batch 128, up to 10 epochs, early
# stopping on the validation split). Registered in the shared recipe table on import.
_RESNET50_FT = dict(
    epochs=10, batch_size=128, lr=0.01, optimizer="sgd", weight_decay=5e-4, patience=3
)
for _name, _n in (("cifar10", 10), ("cifar100", 100), ("svhn", 10)):
    RECIPES.setdefault(
        f"resnet50@{_name}",
        dict(
            model="timm:resnet50",
            pretrained=True,
            model_kwargs={"num_classes": _n},
            dataset=_name,
            image_size=224,
            channels=3,
            train=_RESNET50_FT,
        ),
    )


def som_kwargs(params: dict) -> dict:
    """The SOM-related keyword arguments of :func:`som_run` from a figure's params."""
    keys = (
        "layers",
        "n_per_class",
        "val_n_per_class",
        "val_split",
        "som_size",
        "som_epochs",
        "som_batch_size",
        "som_batch_sizes",
        "sigma",
        "alpha",
        "top_k",
        "batch_size",
        "workdir",
        "device",
        "data_root",
        "seed",
    )
    return {k: params[k] for k in keys if k in params}


@dataclass
class SomRun:
    """One model's codes, SOMs and BMUs (train = SOM-tr, val = SOM-val)."""

    spec: str
    shape: tuple[int, int]
    layers: list[str]
    soms: dict[str, ToroidalSOM]
    bmus: dict[str, dict[str, np.ndarray]]  # split -> layer -> (N, k)
    labels: dict[str, np.ndarray]  # split -> (N,)
    preds: dict[str, np.ndarray]
    classes: list[str]
    model: object = field(repr=False, default=None)
    code_dims: dict[str, int] = field(default_factory=dict)

    def centres(self, layer: str) -> np.ndarray:
        """Class centres from SOM-tr, one row per class index ``0..n_classes-1``."""
        return telescope.class_centres(
            self.bmus["train"][layer],
            self.labels["train"],
            self.shape,
            classes=np.arange(len(self.classes)),
        )

    def d_class(self, layer: str, split: str) -> np.ndarray:
        """D_class per class of ``split``, to the SOM-tr centres."""
        return telescope.d_class(
            self.bmus[split][layer],
            self.labels[split],
            self.shape,
            centres=self.centres(layer),
            classes=np.arange(len(self.classes)),
        )

    def accuracy(self, split: str) -> float:
        return float(np.mean(self.preds[split] == self.labels[split]))


def som_run(
    spec: str,
    *,
    layers,
    n_per_class,
    val_n_per_class,
    som_size,
    som_epochs,
    som_batch_size,
    som_batch_sizes=None,
    sigma,
    alpha,
    top_k,
    batch_size,
    workdir,
    device,
    data_root,
    seed,
    val_split="val",
    splits=("train", "val"),
) -> SomRun:
    """Codes, one SOM per layer (fitted on SOM-tr) and the top-k BMUs of each split."""
    model = load_recipe(spec, workdir=workdir, device=device, data_root=data_root, seed=seed)
    npc = {"train": n_per_class, "val": val_n_per_class}
    stores, datasets = {}, {}
    for split in splits:
        real = val_split if split == "val" else split
        data = recipe_data(spec, real, data_root=data_root, n_per_class=npc.get(split), seed=seed)
        datasets[split] = data
        stores[split] = pipeline.captured(
            model,
            data,
            list(layers),
            reducer="codes",
            workdir=workdir,
            device=device,
            batch_size=batch_size,
            progress=False,
        )
    train = stores["train"]
    overrides = som_batch_sizes or {}
    batch = int(overrides.get(spec, som_batch_size) if isinstance(spec, str) else som_batch_size)
    wd = pipeline.as_workdir(workdir)
    soms, bmus, dims = {}, {s: {} for s in splits}, {}
    for layer in layers:
        codes = np.asarray(train.layer(layer), dtype=np.float32)
        dims[layer] = int(codes.shape[1])
        som = pipeline.fitted_som(
            codes,
            workdir=wd,
            m=int(som_size),
            n=int(som_size),
            sigma=float(sigma),
            alpha=float(alpha),
            decay="exp",
            metric="cosine",
            periodic=True,
            epochs=int(som_epochs),
            batch_size=batch,
            device=device,
            seed=int(seed),
        )  # the shared SOM stage (Study.telescope fits through it too)
        soms[layer] = som
        for split in splits:
            X = np.asarray(stores[split].layer(layer), dtype=np.float32)
            bmus[split][layer] = som.bmus(X, top_k=int(top_k))
    classes = list(datasets["train"].classes)
    return SomRun(
        spec=spec if isinstance(spec, str) else str(spec.get("model")),
        shape=(int(som_size), int(som_size)),
        layers=list(layers),
        soms=soms,
        bmus=bmus,
        labels={s: np.asarray(stores[s].labels) for s in splits},
        preds={s: np.asarray(stores[s].preds) for s in splits},
        classes=classes,
        model=model,
        code_dims=dims,
    )


# --------------------------------------------------------------------------- small helpers
def box_stats(values, max_outliers: int = 200) -> dict:
    """Tukey box-plot numbers of ``values`` (NaNs dropped), JSON-friendly.

    Whiskers reach the most extreme values within 1.5 IQR of the quartiles; values beyond
    are outliers (at most ``max_outliers`` of them kept, the most extreme first).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return {"n": 0}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    iqr = q3 - q1
    lo_lim, hi_lim = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    inside = v[(v >= lo_lim) & (v <= hi_lim)]
    out = v[(v < lo_lim) | (v > hi_lim)]
    if out.size > max_outliers:
        out = out[np.argsort(-np.abs(out - med))[:max_outliers]]
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "min": float(v.min()),
        "q1": float(q1),
        "median": float(med),
        "q3": float(q3),
        "max": float(v.max()),
        "lower": float(inside.min() if inside.size else q1),
        "upper": float(inside.max() if inside.size else q3),
        "outliers": out.tolist(),
    }


def downsample(y, max_points: int = 500) -> tuple[list, list]:
    """Average ``y`` over consecutive windows so that at most ``max_points`` remain.

    Returns the window centres (as step indices) and the means.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.size <= max_points:
        return np.arange(y.size).tolist(), y.tolist()
    w = int(np.ceil(y.size / max_points))
    n = y.size // w
    head = y[: n * w].reshape(n, w).mean(1)
    x = (np.arange(n) * w + (w - 1) / 2).tolist()
    if y.size > n * w:
        head = np.append(head, y[n * w :].mean())
        x.append((n * w + y.size - 1) / 2)
    return x, head.tolist()


# --------------------------------------------------------------------------- BMU density
DENSITY_PARAMS = {
    "bandwidth": Param(1.0, "Gaussian kernel standard deviation, in grid units"),
    "resolution": Param(4, "density evaluation points per grid unit"),
    "density_top_k": Param(1, "BMUs per input pooled into the density (1: the BMU only)"),
}


def density_data(models, layers, *, bandwidth, resolution, density_top_k, params) -> dict:
    """BMU densities (periodic KDE) of SOM-tr inputs, per model and layer."""
    dens, stats = {}, {}
    shape = None
    for spec in models:
        # SOMs for all of params["layers"] (shared with the other figures), shown: ``layers``
        run = som_run(spec, splits=("train",), **som_kwargs(params))
        shape = run.shape
        dens[spec], stats[spec] = {}, {}
        for layer in layers:
            units = run.bmus["train"][layer][:, : int(density_top_k)]
            d = telescope.bmu_density(units, run.shape, float(bandwidth), int(resolution))
            counts = np.bincount(units.ravel(), minlength=run.shape[0] * run.shape[1])
            p = counts / counts.sum()
            nz = p[p > 0]
            dens[spec][layer] = d.tolist()
            stats[spec][layer] = {
                "units_used": int((counts > 0).sum()),
                "effective_units": float(np.exp(-(nz * np.log(nz)).sum())),
                "max_density": float(d.max()),
                "top_unit_share": float(p.max()),
            }
    return {
        "models": list(models),
        "layers": list(layers),
        "shape": list(shape),
        "resolution": int(resolution),
        "bandwidth": float(bandwidth),
        "density": dens,
        "stats": stats,
    }


def density_summary(data: dict) -> str:
    m, n = data["shape"]
    lines = [
        f"BMU density on the {m}x{n} torus (KDE, bandwidth {data['bandwidth']}; integrates to 1; "
        f"uniform = {1 / (m * n):.4f})",
        f"{'model':<24}{'layer':<6}{'units used':>11}{'eff. units':>11}{'max dens.':>10}{'top unit':>9}",
    ]
    for spec in data["models"]:
        for layer in data["layers"]:
            s = data["stats"][spec][layer]
            lines.append(
                f"{spec:<24}{layer:<6}{s['units_used']:>11}{s['effective_units']:>11.1f}"
                f"{s['max_density']:>10.4f}{s['top_unit_share']:>9.3f}"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- BMUs per class
def class_bmus_data(spec, classes, params) -> dict:
    """Top-k BMUs of the inputs of a few classes, SOM-tr and SOM-val, per layer (Fig. 6)."""
    run = som_run(spec, **som_kwargs(params))
    m, n = run.shape
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < len(run.classes)]
    if bad:
        raise ValueError(f"classes {bad} do not exist; the model has {len(run.classes)} classes.")
    out = {}
    for layer in run.layers:
        centres = run.centres(layer)
        out[layer] = {}
        for c in classes:
            out[layer][str(c)] = {"centre": centres[c].tolist()}
            for split in ("train", "val"):
                sel = run.labels[split] == c
                units = run.bmus[split][layer][sel].ravel()
                counts = np.bincount(units, minlength=m * n)
                used = np.flatnonzero(counts)
                d = telescope.distance_to_centres(
                    run.bmus[split][layer][sel],
                    np.full(sel.sum(), c),
                    centres[c : c + 1],
                    run.shape,
                    classes=[c],
                )
                out[layer][str(c)][split] = {
                    "units": used.tolist(),
                    "counts": counts[used].tolist(),
                    "n_inputs": int(sel.sum()),
                    "d_class": float(d.mean()) if d.size else float("nan"),
                }
    return {
        "model": spec,
        "shape": [m, n],
        "layers": run.layers,
        "classes": classes,
        "class_names": [run.classes[c] for c in classes],
        "top_k": int(params["top_k"]),
        "bmus": out,
    }


def class_bmus_summary(data: dict) -> str:
    m, n = data["shape"]
    lines = [
        f"{data['model']}: top-{data['top_k']} BMUs per input on {m}x{n} SOMs; per class: "
        "units used (SOM-tr / SOM-val) and D_class to the SOM-tr centre (tr / val)"
    ]
    for layer in data["layers"]:
        parts = []
        for c in data["classes"]:
            b = data["bmus"][layer][str(c)]
            parts.append(
                f"{c}: {len(b['train']['units'])}/{len(b['val']['units'])} units, "
                f"D {b['train']['d_class']:.2f}/{b['val']['d_class']:.2f}"
            )
        lines.append(f"{layer:<6}" + " | ".join(parts))
    return "\n".join(lines)
