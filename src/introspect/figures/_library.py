"""Shared, cached stages of the library-network figures (Lee 2019).

    recipe -> model (trained on digits, or the paper's weights) -> flattened activations
    of its layers on the training and test sets (``pipeline.captured``, reducer
    "flatten", on disk) -> one LibraryNetwork per (layer, theta, top_k), built on the
    training activations and linked to the model's own training answers
    (``Workdir.memo("library", ...)``) -> scores on test / attacked inputs.

Every figure of one profile shares the model, the two captures and the libraries of a
given (layer, theta); fig2/fig3 sweep thetas, fig5 reuses the libraries of its theta
sets and adds PGD images (the shared attack stage, ``pipeline.attacked``).

The layer names are the models' aliases onto the authors' hook points (their code,
``giscard88/hypothesis-building``): the MNIST CNN's ``CN1, CN2, FC1, FC2`` are the
pre-activation, pre-pool outputs of ``conv1, conv2, fc1, fc2``; the ResNet44's ``CN1``
is the raw stem ``conv1`` (before BN), ``CL1..CL3`` the blocks, ``FC`` the logits. The
post-ReLU points are their own paths (``pool1``, ``relu3``, the ResNet's ``relu``).
PGD eps are [0, 1] pixels; fig5 also gives them in the paper's normalised units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import pipeline
from ..cache import Workdir
from ..capture import activations
from ..library import (  # noqa: F401 (theta_grid, explore_arrays: public there)
    LibraryNetwork,
    LibraryStack,
    agreement,
    explore_arrays,
    theta_grid,
)
from ..recipes import load_recipe, recipe_data

__all__ = [
    "CNN_LAYERS",
    "RESNET_LAYERS",
    "TABLE1_LEVELS",
    "TABLE1_SETS",
    "CNN_SETS",
    "LibRun",
    "library_run",
    "theta_grid",
    "explore_arrays",
]

CNN_LAYERS = ["CN1", "CN2", "FC1", "FC2"]
RESNET_LAYERS = ["CN1", "CL1", "CL2", "CL3", "FC"]

# The paper's Table 1 (ResNet44 / CIFAR-10): eight theta levels per block ...
TABLE1_LEVELS = {
    "CN1": [0.18, 0.2, 0.22, 0.24, 0.26, 0.3, 0.32, 0.34],
    "CL1": [0.64, 0.66, 0.68, 0.7, 0.72, 0.74, 0.76, 0.78],
    "CL2": [0.48, 0.5, 0.52, 0.54, 0.56, 0.58, 0.6, 0.62],
    "CL3": [0.5, 0.52, 0.54, 0.56, 0.58, 0.6, 0.62, 0.64],
    "FC": [0.8, 0.82, 0.84, 0.86, 0.88, 0.9, 0.92, 0.94],
}
# ... and the seven sets used for CPL (rows CN1, L1, L2, L3, FC of the table).
TABLE1_SETS = {
    f"Set{i + 1}": dict(zip(RESNET_LAYERS, row))
    for i, row in enumerate(
        [
            (0.24, 0.72, 0.58, 0.62, 0.94),
            (0.26, 0.72, 0.56, 0.58, 0.88),
            (0.3, 0.74, 0.58, 0.6, 0.9),
            (0.32, 0.76, 0.6, 0.62, 0.92),
            (0.34, 0.78, 0.62, 0.64, 0.94),
            (0.26, 0.72, 0.6, 0.62, 0.92),
            (0.26, 0.72, 0.62, 0.64, 0.94),
        ]
    )
}
# The paper does not list the CNN's theta sets of Fig. 5B; these are one theta for all
# layers, spanning the range of its Fig. 2 and Fig. 3 (0.65, 0.75).
CNN_SETS = {f"theta {t}": dict.fromkeys(CNN_LAYERS, t) for t in (0.6, 0.65, 0.7, 0.75, 0.8)}


@dataclass
class LibRun:
    """One model with its captured train/test activations and a cache of libraries."""

    spec: str
    model: torch.nn.Module
    layers: list
    train_store: object
    test_store: object
    test_data: object
    top_k: int
    workdir: Workdir
    device: str
    seed: int

    @property
    def n_classes(self) -> int:
        return int(self.model.num_classes)

    def library(self, layer: str, theta: float) -> LibraryNetwork:
        """The library of ``layer`` at ``theta``, built and linked on the training set."""
        return pipeline.fitted_library(
            self.train_store,
            layer,
            theta,
            self.top_k,
            self.n_classes,
            workdir=self.workdir,
            device=self.device,
        )  # the shared library stage (Study.library builds through it too)

    def stack(self, thetas: dict) -> LibraryStack:
        """A fitted stack from the cached libraries of ``thetas`` (layer -> theta)."""
        return LibraryStack.from_networks({k: self.library(k, t) for k, t in thetas.items()})

    def test_layers(self) -> dict:
        return {layer: self.test_store.layer(layer) for layer in self.layers}

    @property
    def test_preds(self) -> np.ndarray:
        return np.asarray(self.test_store.preds)

    @property
    def test_labels(self) -> np.ndarray:
        return np.asarray(self.test_store.labels)

    def sweep(self, grid: dict) -> dict:
        """Library size and top-1 / top-3 agreement on the test set per layer and theta."""
        sizes, top1, top3 = {}, {}, {}
        preds = self.test_preds
        for layer, thetas in grid.items():
            H = self.test_store.layer(layer)
            sizes[layer], top1[layer], top3[layer] = [], [], []
            for t in thetas:
                net = self.library(layer, t)
                P = net.predict_scores(H)
                sizes[layer].append(int(net.size_))
                top1[layer].append(agreement(P, preds, 1))
                top3[layer].append(agreement(P, preds, 3))
        return dict(sizes=sizes, top1=top1, top3=top3)

    def attacked(self, n: int, eps: float, nb_iter: int, eps_iter: float, batch_size: int = 256):
        """``n`` test images (a fixed random subset) and their PGD versions at ``eps``.

        Returns dict(index, x, labels, x_adv) with tensors on the CPU (cached).
        """
        labels = self.test_labels
        rng = np.random.default_rng(self.seed)
        idx = np.sort(rng.choice(len(labels), size=min(n, len(labels)), replace=False))
        x = torch.stack([self.test_data[int(i)][0] for i in idx])
        y = torch.as_tensor(labels[idx], dtype=torch.long)
        if eps == 0:
            return dict(index=idx, x=x, labels=y.numpy(), x_adv=x.clone())
        x_adv = pipeline.attacked(
            self.model, x, y, "pgd", float(eps), nb_iter=int(nb_iter), eps_iter=float(eps_iter),
            batch_size=batch_size, device=self.device, seed=self.seed, workdir=self.workdir,
        )["x_adv"]  # fmt: skip
        return dict(index=idx, x=x, labels=y.numpy(), x_adv=x_adv)

    def layer_activations(self, x: torch.Tensor, batch_size: int = 256):
        """Flattened activations of the run's layers and the model's answers for images ``x``."""
        acts, logits = activations(
            self.model,
            x,
            self.layers,
            reducer="flatten",
            batch_size=batch_size,
            device=self.device,
            return_logits=True,
        )
        return acts, np.asarray(logits).argmax(axis=1)


def library_run(
    *,
    model,
    layers,
    top_k,
    n_train_per_class,
    n_test_per_class,
    batch_size,
    workdir,
    device,
    data_root,
    seed,
) -> LibRun:
    """Load/train the model of a recipe and capture its layers on train and test (cached)."""
    net = load_recipe(model, workdir=workdir, device=device, data_root=data_root, seed=seed)
    train = recipe_data(
        model, "train", data_root=data_root, n_per_class=n_train_per_class, seed=seed
    )
    test = recipe_data(model, "test", data_root=data_root, n_per_class=n_test_per_class, seed=seed)
    common = dict(reducer="flatten", workdir=workdir, device=device, batch_size=batch_size)
    return LibRun(
        spec=model,
        model=net,
        layers=list(layers),
        train_store=pipeline.captured(net, train, layers, progress=False, **common),
        test_store=pipeline.captured(net, test, layers, progress=False, **common),
        test_data=test,
        top_k=int(top_k),
        workdir=pipeline.as_workdir(workdir),
        device=device,
        seed=seed,
    )
