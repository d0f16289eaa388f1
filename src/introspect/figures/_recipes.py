"""Model recipes used by the figure profiles.

A recipe names a model and how to get it ready (pretrained weights, a checkpoint, or a
short training run, cached in the workdir) together with the data it sees. Figure
parameters refer to recipes by name, e.g. ``"small_cnn@digits"`` (quick) or
``"timm:resnet50"`` (paper). Any ``timm:<name>`` not listed is a pretrained ImageNet
model.
"""

from __future__ import annotations

from .. import pipeline

__all__ = ["RECIPES", "recipe", "load_recipe", "recipe_data"]

_QUICK_TRAIN = dict(epochs=8, lr=3e-3, batch_size=64)

RECIPES: dict[str, dict] = {
    # quick profile: the embedded digits, models trained in seconds on CPU
    "small_cnn@digits": dict(
        model="small_cnn", dataset="digits", image_size=16, channels=1, train=_QUICK_TRAIN
    ),
    "small_cnn_rgb@digits": dict(
        model="small_cnn",
        model_kwargs={"in_channels": 3},
        dataset="digits",
        image_size=16,
        channels=3,
        train=_QUICK_TRAIN,
    ),
    "mnist_cnn@digits": dict(
        model="mnist_cnn",
        dataset="digits",
        image_size=28,
        channels=1,
        train=dict(epochs=6, lr=1e-3, batch_size=64),
    ),
    # manifolds (issue 6): the same small CNN untrained and PGD-trained (Madry et al.)
    "small_cnn_random@digits": dict(
        model="small_cnn", dataset="digits", image_size=16, channels=1, train=None
    ),
    "small_cnn_pgd@digits": dict(
        model="small_cnn",
        dataset="digits",
        image_size=16,
        channels=1,
        train={**_QUICK_TRAIN, "adversarial": dict(eps=0.1, nb_iter=7, eps_iter=0.03)},
    ),
    # manifolds paper profile: Kolter & Madry's tutorial CNN on MNIST, random / normal /
    # PGD-trained (eps 0.3, 40 steps of 0.01, random start), trained here
    "kolter_madry_cnn_random@mnist": dict(
        model="kolter_madry_cnn", dataset="mnist", image_size=None, channels=1, train=None
    ),
    "kolter_madry_cnn_normal@mnist": dict(
        model="kolter_madry_cnn",
        dataset="mnist",
        image_size=None,
        channels=1,
        train=dict(epochs=10, lr=1e-3, batch_size=64),
    ),
    "kolter_madry_cnn_pgd@mnist": dict(
        model="kolter_madry_cnn",
        dataset="mnist",
        image_size=None,
        channels=1,
        train=dict(
            epochs=10, lr=1e-3, batch_size=64, adversarial=dict(eps=0.3, nb_iter=40, eps_iter=0.01)
        ),
    ),
    # manifolds: the published MNIST checkpoints (introspect.models.mnist_zoo; weights in
    # $INTROSPECT_WEIGHTS or <data root>/weights) and random copies of their architectures
    **{
        f"{name}@mnist": dict(
            model=name, pretrained=True, dataset="mnist", image_size=None, channels=1
        )
        for name in (
            "advertorch_lenet5_clntrained",
            "advertorch_lenet5_advtrained",
            "kolter_madry_cnn",
            "kolter_madry_cnn_robust",
        )
    },
    "advertorch_lenet5_random@mnist": dict(
        model="advertorch_lenet5_clntrained", dataset="mnist", image_size=None, channels=1
    ),
    # paper profile: published weights on the papers' datasets
    "mnist_cnn": dict(
        model="mnist_cnn", pretrained=True, dataset="mnist", image_size=None, channels=1
    ),
    **{
        f"cifar_resnet{n}": dict(
            model=f"cifar_resnet{n}",
            pretrained=True,
            dataset="cifar10",
            image_size=None,
            channels=3,
        )
        for n in (20, 32, 44, 56)
    },
}


def recipe(spec: str | dict) -> dict:
    """The recipe dict of a name (or a dict passed through)."""
    if isinstance(spec, dict):
        return dict(spec)
    if spec in RECIPES:
        return dict(RECIPES[spec])
    if spec.startswith("timm:"):
        return dict(model=spec, pretrained=True, dataset="imagenet", image_size=224, channels=3)
    raise ValueError(
        f"unknown model recipe {spec!r}; known: {', '.join(RECIPES)} or 'timm:<name>'."
    )


def load_recipe(spec, *, workdir, device="cpu", data_root=None, seed=0, progress=False):
    """The model of a recipe, trained (cached) or loaded, in eval mode on ``device``."""
    r = recipe(spec)
    model = pipeline.trained_model(
        r["model"],
        dataset=r.get("dataset", "digits"),
        image_size=r.get("image_size"),
        channels=r.get("channels"),
        model_kwargs=r.get("model_kwargs"),
        train=r.get("train"),
        pretrained=r.get("pretrained", False),
        checkpoint=r.get("checkpoint"),
        workdir=workdir,
        device=device,
        data_root=data_root,
        seed=seed,
        progress=progress,
    )
    model.recipe = spec if isinstance(spec, str) else r["model"]
    return model


def recipe_data(spec, split="test", *, data_root=None, n_per_class=None, seed=0, dataset=None):
    """The data a recipe's model expects (its dataset, or ``dataset`` at its input format)."""
    r = recipe(spec)
    return pipeline.dataset(
        dataset or r.get("dataset", "digits"),
        split,
        data_root=data_root,
        n_per_class=n_per_class,
        image_size=r.get("image_size"),
        channels=r.get("channels"),
        seed=seed,
    )
