"""Shared pieces of the cross-lens figures (issue 11): one study per model recipe.

The quick profile builds :class:`~introspect.Study` objects from the same recipes, splits
and layers as the library figures' quick profile (``mnist_cnn@digits``, every training
and test image, layers CN1 CN2 FC1 FC2), so its captures, libraries and PGD attacks
(200 test images, 40 steps of 0.01, seed 0) are the ones those figures already cached.
"""

from __future__ import annotations

from ._library import CNN_LAYERS, RESNET_LAYERS

__all__ = ["QUICK_MODELS", "PAPER_MODELS", "study_for", "detector_options"]

_SMALL_VAE = dict(hidden=[128, 128], epochs=5, batch_size=128)  # lists: papermill YAML
_SMALL_EST = dict(hidden=[64, 64], epochs=5, batch_size=64)

QUICK_MODELS = {
    "mnist_cnn@digits": dict(
        layers=CNN_LAYERS, eps=[0.1, 0.2], theta=0.9, top_k=3, som_size=20,
        selfintro=dict(vae=_SMALL_VAE, estimator=_SMALL_EST), n_per_class=None,
    ),
}  # fmt: skip
PAPER_MODELS = {
    "mnist_cnn": dict(
        layers=CNN_LAYERS, eps=[0.1, 0.2, 0.3], theta=0.9, top_k=3, som_size=20,
        selfintro=dict(layers=["CN2", "FC1", "FC2"]), n_per_class=500,
    ),
    "cifar_resnet44": dict(
        layers=RESNET_LAYERS, eps=[2 / 255, 4 / 255, 8 / 255], theta=0.7, top_k=8,
        som_size=20, selfintro=dict(layers=["CL2", "CL3", "FC"]), n_per_class=500,
    ),
    "timm:resnet50": dict(
        layers=["CL2", "CL3", "CL4", "FC"], eps=[1 / 255, 2 / 255, 4 / 255],
        theta=0.7, top_k=8, som_size=20, selfintro=dict(layers=["CL4", "FC"]),
        n_per_class=10,
    ),
}  # fmt: skip


def study_for(spec: str, cfg: dict, *, workdir, device, data_root, seed):
    """The study of recipe ``spec`` with the figure's layers and subsample."""
    from ..study import Study

    return Study.from_recipe(
        spec, workdir=workdir, device=device, data_root=data_root, layers=list(cfg["layers"]),
        n_per_class=cfg.get("n_per_class"), seed=seed, progress=False,
    )  # fmt: skip


def detector_options(cfg: dict, seed: int = 0) -> dict:
    """Per-lens settings of :func:`introspect.detect.make_detectors` from a model config."""
    return dict(
        library=dict(theta=cfg.get("theta", 0.9), top_k=cfg.get("top_k", 3)),
        telescope=dict(size=cfg.get("som_size", 20), seed=seed),
        selfintro={**cfg.get("selfintro", {}), "seed": seed},
    )
