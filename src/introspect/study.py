"""``Study``: one model, its data and layers, and every lens on them, cached in a workdir.

The public middle layer between the core estimators and everything a user touches::

    from introspect import Study
    study = Study(model, train=train_ds, test=test_ds, layers=["layer1", "layer4"])
    study.capture(reducer="codes")            # ActivationStore per split (cached)
    study.attack("pgd", eps=8/255, n=500)     # AttackResult, shared by every lens
    study.telescope(layer="layer4", size=20)  # TelescopeResult: ToroidalSOM, BMUs, D_class
    study.library(theta=0.8, top_k=3)         # LibraryResult: LibraryStack, agreement, CPL
    study.selfintro()                         # fitted SelfIntrospector
    study.manifolds(layer="penultimate")      # ManifoldResult: ClassManifolds (+ robustness)
    study.detect(["pgd", "cw", "uniform"])    # DetectionTable: every lens's detector + baselines

Every stage is cached under ``workdir`` by :class:`introspect.cache.Workdir`, keyed by
content fingerprints of the model's weights and of the data (see
:mod:`introspect.fingerprint`) and by its parameters, so a rerun, another figure or a
panel on the same workdir never recomputes what is there, and a changed model or data
never gets a stale result.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._utils import resolve_device
from .cache import Workdir
from .fingerprint import dataset_fingerprint, model_fingerprint

__all__ = [
    "Study",
    "AttackResult",
    "TelescopeResult",
    "LibraryResult",
    "ManifoldResult",
]

_SPLITS = ("train", "test")


def _classifier_path(model: nn.Module) -> str | None:
    path = getattr(model, "classifier_path", None)
    if path:
        return path
    last = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = name
    return last


def _dataset_classes(ds) -> list[str] | None:
    classes = getattr(ds, "classes", None)
    return [str(c) for c in classes] if classes is not None else None


def _labels_of(ds) -> np.ndarray:
    targets = getattr(ds, "targets", None)
    if targets is not None:
        return np.asarray(targets, dtype=np.int64)
    if isinstance(ds, (tuple, list)) and len(ds) == 2:
        return np.asarray(ds[1], dtype=np.int64)
    return np.asarray([int(ds[i][1]) for i in range(len(ds))], dtype=np.int64)


def _images(ds, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(ds, (tuple, list)) and len(ds) == 2:
        x, y = torch.as_tensor(ds[0]), torch.as_tensor(ds[1])
        return x[index].float(), y[index].long()
    items = [ds[int(i)] for i in index]
    if not items:
        x0 = torch.as_tensor(ds[0][0])
        return torch.zeros((0, *x0.shape)), torch.zeros(0, dtype=torch.long)
    return torch.stack([torch.as_tensor(x) for x, _ in items]).float(), torch.tensor(
        [int(y) for _, y in items]
    )


@dataclass
class AttackResult:
    """Adversarial (or noisy) versions of ``n`` inputs of a split, and the model's answers.

    Attributes
    ----------
    kind : str
        One of :data:`introspect.pipeline.ATTACKS` (``"pgd"``, ``"fgsm"``, ``"cw"``...).
    eps : float
        L-inf radius (pgd, fgsm), noise amplitude (uniform: U[-eps, eps]) or std
        (gaussian), in [0, 1] pixel units.
    index : ndarray of shape (n,)
        Positions of the attacked inputs in the split.
    x, x_adv : Tensor of shape (n, C, H, W)
        Clean and perturbed images in [0, 1].
    y, pred, pred_adv : ndarray of shape (n,)
        Labels, and the model's answers on the clean and perturbed images.
    params : dict
        Everything that defines the attack.
    """

    kind: str
    eps: float
    index: np.ndarray
    x: torch.Tensor
    x_adv: torch.Tensor
    y: np.ndarray
    pred: np.ndarray
    pred_adv: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def success(self) -> np.ndarray:
        """Inputs the model got right clean and wrong perturbed, shape (n,) of bool."""
        return (self.pred == self.y) & (self.pred_adv != self.y)

    @property
    def success_rate(self) -> float:
        """Fraction of the correctly classified inputs that the perturbation flipped."""
        right = self.pred == self.y
        return float(self.success.sum() / max(int(right.sum()), 1))

    @property
    def clean_accuracy(self) -> float:
        return float((self.pred == self.y).mean())

    @property
    def accuracy(self) -> float:
        """Accuracy on the perturbed inputs."""
        return float((self.pred_adv == self.y).mean())

    def __repr__(self) -> str:
        return (
            f"AttackResult({self.kind}, eps={self.eps:g}, n={len(self.y)}, clean acc "
            f"{self.clean_accuracy:.3f} -> {self.accuracy:.3f}, success rate {self.success_rate:.3f})"
        )


@dataclass
class TelescopeResult:
    """A self-organising map over one layer's vector codes (Lee & Vijayan 2023).

    Attributes
    ----------
    layer : str
    som : ToroidalSOM
        Fitted on the training split's codes.
    bmus : dict of split -> ndarray of shape (n, top_k)
        Top-k best-matching units of every input (unit numbers, best first).
    labels : dict of split -> ndarray of shape (n,)
    centres : ndarray of shape (n_classes, 2)
        Class centres on the torus (from the training split).
    d_class : dict of split -> ndarray of shape (n,)
        Torus distance of each input's BMUs to its class's centre (D_class).
    density : ndarray of shape (m, n)
        Periodic KDE density of the training split's BMUs.
    """

    layer: str
    som: object
    bmus: dict
    labels: dict
    centres: np.ndarray
    d_class: dict
    density: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.som.m), int(self.som.n))


@dataclass
class LibraryResult:
    """Library networks of several layers (Lee 2019), scored on the test split.

    Attributes
    ----------
    stack : LibraryStack
        Built and linked on the training split, with the network's answers as targets.
    agreement : dict of layer -> {"top1": float, "top3": float}
        How often each layer's library predicts the network's answer on the test split.
    confusion : dict of layer -> ndarray of shape (n_classes, n_classes)
        Confusion index CI(d1, d2) on the test split (true labels).
    cpl : ndarray of shape (n_test,) or None
        Cross-layer consistency (CPL) of every test input; low values are suspicious
        (None for a single layer).
    """

    stack: object
    agreement: dict
    confusion: dict
    cpl: np.ndarray


@dataclass
class ManifoldResult:
    """Class activation manifolds of one layer, and class-wise robustness when attacked.

    Attributes
    ----------
    manifolds : ClassManifolds
        Per-class dimension (with the number of samples ``n`` of each class).
    robustness : ClasswiseRobustness or None
        Class-wise clean and PGD accuracy at ``eps`` (None when no eps was given).
    """

    manifolds: object
    robustness: object | None = None


class Study:
    """A model, its data and the layers to look at, with every lens cached in a workdir.

    Parameters
    ----------
    model : nn.Module
        Takes images in [0, 1] and returns logits. A model that expects normalised input
        is wrapped first: ``introspect.models.normalized(model, mean, std)``. It is put in
        eval mode.
    train, test : torch Dataset of (image, label), or a tuple (X, y) of tensors
        Images as float tensors (C, H, W) in [0, 1]. ``train`` fits the lenses (SOM,
        library, introspector); ``test`` is what they are scored and attacked on.
    layers : list of str, optional
        ``named_modules()`` paths (``"layer1"``), the aliases a registered model declares
        (``"CL1"``), ``"<path>:input"`` or ``"penultimate"``. Defaults to the model's
        declared aliases.
    classes : list of str, optional
        Class names; default the dataset's ``classes``, else ``"0".."K-1"``.
    workdir : path or Workdir
        Where every stage's results are kept.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
    batch_size : int
    progress : bool
        Progress bars for the long stages.
    distributed : bool or None
        ``True`` in a ``torchrun`` job (every rank builds the same study): :meth:`capture`
        and :meth:`attack` shard their batches over the ranks (see
        :mod:`introspect.distributed`) into the shared ``workdir``; the lenses after them
        read the store. ``None`` (default): sharded inside
        :func:`introspect.distributed.sharding` only; ``False``: never.
    """

    def __init__(
        self,
        model: nn.Module,
        train=None,
        test=None,
        layers: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
        workdir: str | Path | Workdir = "introspect-work",
        device: str = "auto",
        batch_size: int = 128,
        progress: bool = True,
        distributed: bool | None = None,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"Study needs a torch.nn.Module as its model; got {type(model).__name__}. For a "
                "registered recipe use Study.from_recipe(name)."
            )
        if train is None and test is None:
            raise ValueError("Study needs data: pass train=..., test=... (torch datasets).")
        self.distributed = distributed
        self.device = resolve_device(device)
        if distributed:
            from .distributed import rank_device

            self.device = rank_device(self.device)  # cuda -> cuda:<LOCAL_RANK>
        self._model_loader = None  # Study.from_recipe(lazy=True): trains at first use
        self._model_lock = threading.Lock()
        self._model = self._adopt(model)
        self.datasets = {k: v for k, v in (("train", train), ("test", test)) if v is not None}
        if layers is None:
            layers = list(getattr(model, "layer_aliases", {}) or {})
            if not layers:
                raise ValueError(
                    "this model declares no layers: pass layers=[...] (named_modules paths, "
                    "see introspect.models.available_layers(model))."
                )
        self.layers = [layers] if isinstance(layers, str) else list(layers)
        from .capture import resolve_target

        for name in self.layers:
            if name != "penultimate":
                resolve_target(model, name)  # an unknown name lists the available layers
        if classes is None:
            classes = _dataset_classes(next(iter(self.datasets.values())))
        self._classes = list(classes) if classes is not None else None
        self.workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
        self.batch_size = int(batch_size)
        self.progress = bool(progress)

    # ------------------------------------------------------------------- model
    def _adopt(self, model: nn.Module) -> nn.Module:
        """``model`` in eval mode on the study's device, its classifier path recorded."""
        model = model.eval().to(self.device)
        if getattr(model, "classifier_path", None) is None and _classifier_path(model):
            try:
                model.classifier_path = _classifier_path(model)
            except (AttributeError, TypeError):  # pragma: no cover - frozen modules
                pass
        return model

    @property
    def model(self) -> nn.Module:
        """The model, in eval mode on the study's device.

        A study made by ``Study.from_recipe(..., lazy=True)`` trains (or loads) its
        recipe's model here, at the first use, in the thread that asks (a panel's worker,
        which shows the training's progress and can cancel it; a cancelled training leaves
        the study unloaded, and the next use starts it again from its checkpoint).
        """
        if self._model_loader is not None:
            with self._model_lock:
                if self._model_loader is not None:
                    self._model, self._model_loader = self._adopt(self._model_loader()), None
        return self._model

    @model.setter
    def model(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"Study.model must be a torch.nn.Module; got {type(model).__name__}.")
        with self._model_lock:
            self._model, self._model_loader = self._adopt(model), None

    @property
    def architecture(self) -> nn.Module:
        """The model's modules, for their names, aliases and shapes, without training a
        lazy study's model (before :attr:`model_ready` its weights are untrained: use
        :attr:`model` for anything computed from them)."""
        return self._model

    @property
    def model_ready(self) -> bool:
        """Whether the model is trained or loaded (``False`` only for a lazy recipe study
        before its first use)."""
        return self._model_loader is None

    # ----------------------------------------------------------------- recipes
    @classmethod
    def from_recipe(
        cls,
        name: str,
        *,
        workdir="introspect-work",
        device: str = "auto",
        data_root=None,
        layers=None,
        n_per_class: int | None = None,
        seed: int = 0,
        progress: bool = True,
        batch_size: int = 128,
        distributed: bool | None = None,
        lazy: bool = False,
    ) -> Study:
        """A study of a registered recipe (see :data:`introspect.recipes.RECIPES`).

        The recipe's model is trained (cached in ``workdir``) or loaded, and its dataset's
        train and test splits are the study's data (``n_per_class`` subsamples both).
        ``batch_size`` and ``distributed`` are :class:`Study`'s.

        ``lazy=True`` defers the training of a recipe that trains its model (a loaded
        checkpoint or pretrained weights load now, so a missing file is named at once):
        the study is ready at once, with its layers and data, and :attr:`model` trains the
        model at its first use, with the training's progress and Cancel in the caller's
        :func:`introspect.progress.watch` (what the panels do, so they are on screen
        before the training starts). :attr:`model_ready` says whether it happened.
        """
        from . import recipes

        dev = resolve_device(device)
        if distributed:
            from .distributed import rank_device

            dev = rank_device(dev)
        dev = str(dev)

        def load():
            return recipes.load_recipe(
                name, workdir=workdir, device=dev, data_root=data_root, seed=seed,
                progress=progress,
            )  # fmt: skip

        deferred = lazy and recipes.recipe(name).get("train") is not None
        model = recipes.recipe_architecture(name) if deferred else load()
        kw = dict(data_root=data_root, n_per_class=n_per_class, seed=seed)
        study = cls(
            model,
            train=recipes.recipe_data(name, "train", **kw),
            test=recipes.recipe_data(name, "test", **kw),
            layers=layers,
            workdir=workdir,
            device=dev,
            progress=progress,
            batch_size=batch_size,
            distributed=distributed,
        )
        study.recipe = name
        if deferred:
            study._model_loader = load
        return study

    # ------------------------------------------------------------------ basics
    @property
    def classes(self) -> list[str]:
        if self._classes is None:
            n = int(max(_labels_of(d).max() for d in self.datasets.values())) + 1
            self._classes = [str(i) for i in range(n)]
        return self._classes

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def data(self, split: str):
        if split not in self.datasets:
            raise ValueError(f"this study has no {split!r} split; it has {sorted(self.datasets)}.")
        return self.datasets[split]

    def labels(self, split: str) -> np.ndarray:
        """Labels of a split, int64 of shape (n,)."""
        return _labels_of(self.data(split))

    def images(self, split: str, index=None) -> torch.Tensor:
        """Images of a split (all, or those at ``index``, in that order), float (n, C, H, W)."""
        ds = self.data(split)
        if index is None:
            index = np.arange(len(ds[0]) if isinstance(ds, tuple) else len(ds))
        return _images(ds, np.asarray(index, dtype=np.int64))[0]

    def fingerprints(self) -> dict:
        """Content fingerprints of the model's weights and of each split (computed now, so
        a replaced file or an updated weight shows)."""
        out = {"model": model_fingerprint(self.model)}
        out.update({split: dataset_fingerprint(ds) for split, ds in self.datasets.items()})
        return out

    def _key(self, split: str) -> dict:
        return {
            "model": model_fingerprint(self.model),
            "data": dataset_fingerprint(self.data(split)),
        }

    # ----------------------------------------------------------------- capture
    def capture(
        self,
        reducer: str = "codes",
        split: str | None = None,
        layers: Sequence[str] | None = None,
        com: str = "flat",
        *,
        callback=None,
    ):
        """Activations of the study's layers, cached per split, reducer and layers.

        ``callback(done, total)`` is called after every stored batch (for progress bars;
        not part of the cache key).

        Returns
        -------
        ActivationStore for ``split``, or a dict split -> ActivationStore of every split.
        """
        from .pipeline import captured

        if split is None:
            return {s: self.capture(reducer, s, layers, com, callback=callback)
                    for s in self.datasets}  # fmt: skip
        layers = list(layers or self.layers)
        return captured(
            self.model, self.data(split), layers, reducer=reducer, workdir=self.workdir,
            device=self.device, batch_size=self.batch_size, com=com, progress=self.progress,
            callback=callback, distributed=self.distributed,
        )  # fmt: skip

    # ----------------------------------------------------------------- attacks
    def attack(
        self,
        kind: str = "pgd",
        eps: float = 8 / 255,
        n: int | None = 500,
        split: str = "test",
        *,
        nb_iter: int = 10,
        eps_iter: float | None = None,
        rand_init: bool = True,
        loss: str = "ce",
        seed: int = 0,
        cw_search_steps: int = 5,
    ) -> AttackResult:
        """Perturbed copies of ``n`` inputs of ``split`` (a seeded subset), cached.

        Parameters
        ----------
        kind : {"pgd", "fgsm", "ifgsm_targeted", "cw", "uniform", "uniform_positive", "gaussian"}
            See :func:`introspect.pipeline.attacked`, the one cached attack stage that
            every lens, figure and panel shares.
        eps : float or None
            In [0, 1] pixel units (8/255 is the usual CIFAR radius). ``cw`` has no budget:
            its ``eps`` is ignored (0 is kept in the result).
        n : int or None
            How many inputs (a seeded random subset, in split order); None for all.
        """
        from ._checks import check_eps
        from .pipeline import ATTACKS as kinds
        from .pipeline import attacked

        if kind not in kinds:
            raise ValueError(f"unknown attack {kind!r}; use one of {', '.join(kinds)}.")
        if kind == "cw":
            eps = 0.0  # no budget: one cached run whatever eps was passed
        eps = check_eps(eps, where="Study.attack")
        ds = self.data(split)
        total = len(ds[0]) if isinstance(ds, tuple) else len(ds)
        if n is None or n >= total:
            index = np.arange(total)
        else:
            index = np.sort(np.random.default_rng(seed).choice(total, int(n), replace=False))
        x, y = _images(ds, index)
        out = attacked(
            self.model, x, y, kind, eps, nb_iter=nb_iter, eps_iter=eps_iter, rand_init=rand_init,
            loss=loss, seed=seed, batch_size=self.batch_size, device=self.device,
            workdir=self.workdir, cw_search_steps=cw_search_steps,
            distributed=self.distributed,
        )  # fmt: skip
        params = dict(split=split, kind=kind, eps=eps, n=len(index), nb_iter=nb_iter,
                      eps_iter=eps_iter, rand_init=rand_init, loss=loss, seed=seed)  # fmt: skip
        if kind == "cw":
            params["cw_search_steps"] = int(cw_search_steps)
        return AttackResult(
            kind=kind, eps=eps, index=index, x=x, x_adv=out["x_adv"], y=y.numpy(),
            pred=np.asarray(out["pred"]), pred_adv=np.asarray(out["pred_adv"]), params=params,
        )  # fmt: skip

    def activations(self, x: torch.Tensor, reducer: str = "codes", layers=None, com="flat"):
        """Reduced activations of in-memory images (e.g. ``attack(...).x_adv``), not cached.

        Returns ``(dict layer -> ndarray (n, D), logits ndarray (n, n_classes))``.
        """
        from .capture import activations

        return activations(
            self.model, x, list(layers or self.layers), reducer=reducer,
            batch_size=self.batch_size, device=self.device, com=com, return_logits=True,
        )  # fmt: skip

    # --------------------------------------------------------------- telescope
    def telescope(
        self,
        layer: str | None = None,
        size: int = 20,
        *,
        epochs: int = 5,
        batch_size: int = 64,
        sigma: float | None = None,
        alpha: float = 0.1,
        top_k: int = 10,
        bandwidth: float = 1.0,
        seed: int = 0,
        callback=None,
    ) -> TelescopeResult:
        """A toroidal SOM over the vector codes of ``layer`` (Lee & Vijayan 2023).

        Fitted on the training split's codes (cached), then every split is mapped to its
        ``top_k`` BMUs; class centres come from the training split. ``callback(step,
        total, info)`` follows the SOM fit (returning True cancels it; nothing is cached).
        """
        from . import telescope as tel
        from .pipeline import fitted_som

        layer = layer or self.layers[-1]
        stores = self.capture("codes", layers=[layer])
        fit_split = "train" if "train" in stores else next(iter(stores))
        X = np.asarray(stores[fit_split].layer(layer), dtype=np.float32)
        som_params = dict(
            m=int(size), n=int(size), sigma=float(sigma if sigma is not None else size / 2),
            alpha=float(alpha), decay="exp",
            metric="cosine", periodic=True, epochs=int(epochs), batch_size=int(batch_size),
            seed=int(seed),
        )  # fmt: skip
        som = fitted_som(X, workdir=self.workdir, progress=self.progress, device=str(self.device),
                         callback=callback, **som_params)  # fmt: skip
        shape = (int(size), int(size))
        bmus, labels, d = {}, {}, {}
        for split, st in stores.items():
            bmus[split] = som.bmus(np.asarray(st.layer(layer), dtype=np.float32), top_k=int(top_k))
            labels[split] = np.asarray(st.labels)
        classes = np.arange(self.n_classes)
        centres = tel.class_centres(bmus[fit_split], labels[fit_split], shape, classes=classes)
        for split in stores:
            d[split] = tel.distance_to_centres(
                bmus[split], labels[split], centres, shape, classes=classes
            )
        density = tel.bmu_density(bmus[fit_split], shape, bandwidth=bandwidth)
        return TelescopeResult(layer, som, bmus, labels, centres, d, density)

    # ----------------------------------------------------------------- library
    def library(
        self,
        theta: float | dict = 0.8,
        top_k: int = 3,
        layers: Sequence[str] | None = None,
    ) -> LibraryResult:
        """Library networks of ``layers`` (Lee 2019), built on the training split.

        ``theta`` is one similarity threshold for every layer or a dict layer -> theta.
        Each layer's library is cached on its own, so other theta sets reuse it.
        """
        from .library import LibraryStack, confusion_index
        from .pipeline import fitted_library

        layers = list(layers or self.layers)
        thetas = theta if isinstance(theta, dict) else {k: float(theta) for k in layers}
        train = self.capture("flatten", "train", layers=layers)
        test = self.capture("flatten", "test", layers=layers) if "test" in self.datasets else train
        nets = {
            layer: fitted_library(train, layer, thetas[layer], top_k, self.n_classes,
                                  workdir=self.workdir, device=self.device)
            for layer in layers
        }  # fmt: skip
        stack = LibraryStack.from_networks(nets)
        H = {k: test.layer(k) for k in layers}
        scores = stack.predict_scores(H)
        agreement = stack.agreement(H, np.asarray(test.preds), scores=scores)
        confusion = {k: confusion_index(scores[k], np.asarray(test.labels), self.n_classes)
                     for k in layers}  # fmt: skip
        cpl = stack.cpl(H, scores=scores) if len(layers) > 1 else None  # CPL needs two layers
        return LibraryResult(stack, agreement, confusion, cpl)

    # --------------------------------------------------------------- selfintro
    def selfintro(
        self,
        layers: Sequence[str] | None = None,
        *,
        vae=None,
        estimator=None,
        seed: int = 0,
    ):
        """A self-introspective InfoVAE over the hidden activations (Pardo et al. 2022).

        Fitted on the training split (cached). ``vae`` / ``estimator`` are unfitted
        :class:`~introspect.selfintro.InfoVAE` / ``ErrorEstimator`` objects with the
        hyperparameters to use (their defaults otherwise).

        Returns
        -------
        SelfIntrospector, fitted, with this study's model attached.
        """
        from .selfintro import ErrorEstimator, InfoVAE, SelfIntrospector

        layers = list(layers or self.layers)
        vae = vae if vae is not None else InfoVAE(device=str(self.device), seed=seed)
        estimator = (
            estimator
            if estimator is not None
            else ErrorEstimator(device=str(self.device), seed=seed)
        )
        from .pipeline import _layer_keys  # an alias keys by the module it names

        key = dict(**self._key("train"), layers=_layer_keys(self.model, layers),
                   vae=_params(vae), estimator=_params(estimator), seed=int(seed))  # fmt: skip

        def fit():
            si = SelfIntrospector(
                self.model, layers, vae=vae, estimator=estimator, device=str(self.device),
                seed=seed, batch_size=self.batch_size,
            ).fit(*self._train_images())  # fmt: skip
            si.model = None  # the model is the study's; it is not cached with the map
            return si

        si = self.workdir.memo("selfintro", key, fit)
        si.model = self.model
        return si

    def _train_images(self):
        """The training split as ``(dataset,)`` when it has ``.tensors()``, else (x, y)."""
        ds = self.data("train")
        if hasattr(ds, "tensors") and not isinstance(ds, tuple):
            return (ds,)
        return self.images("train"), self.labels("train")

    # --------------------------------------------------------------- manifolds
    def manifolds(
        self,
        layer: str = "penultimate",
        split: str = "test",
        *,
        threshold: float = 0.95,
        eps: float | None = None,
        n: int | None = None,
        nb_iter: int = 10,
        seed: int = 0,
    ) -> ManifoldResult:
        """Class activation manifold dimension of ``layer`` (Rajesh), with class-wise PGD
        accuracy from :meth:`attack` when ``eps`` is given (one float or a list)."""
        from .manifolds import ClasswiseRobustness, class_manifold_dims, classwise_accuracy

        store = self.capture("flatten", split, layers=[layer])
        manifolds = class_manifold_dims(
            np.asarray(store.layer(layer)), np.asarray(store.labels), threshold=threshold,
            layer=layer, class_names=self.classes if len(self.classes) else None,
        )  # fmt: skip
        robustness = None
        if eps is not None:
            eps_list = [float(e) for e in np.atleast_1d(eps)]
            runs = [self.attack("pgd", e, n=n, split=split, nb_iter=nb_iter, seed=seed)
                    for e in eps_list]  # fmt: skip
            classes = np.arange(self.n_classes)
            y = runs[0].y
            clean, _ = classwise_accuracy(y, runs[0].pred, classes)
            adv = np.stack([classwise_accuracy(y, r.pred_adv, classes)[0] for r in runs])
            right = runs[0].pred == y
            given = np.stack([
                classwise_accuracy(y[right], r.pred_adv[right], classes)[0] if right.any()
                else np.full(len(classes), np.nan) for r in runs
            ])  # fmt: skip
            robustness = ClasswiseRobustness(
                classes=classes, class_names=list(self.classes),
                n=np.bincount(y, minlength=len(classes)), eps=np.asarray(eps_list),
                clean_acc=clean, adv_acc=adv, adv_acc_given_clean=given,
                clean_accuracy=float(right.mean()),
                adv_accuracy=np.asarray([r.accuracy for r in runs]),
                attack=dict(kind="pgd", nb_iter=nb_iter, seed=seed, n=len(y)),
            )  # fmt: skip
        return ManifoldResult(manifolds, robustness)

    # ------------------------------------------------------------------ detect
    def detect(
        self,
        attacks: Sequence[str] = ("pgd", "fgsm", "cw", "uniform", "gaussian"),
        eps: float | Sequence[float] = (0.05, 0.1, 0.2),
        n: int | None = 500,
        *,
        detectors: Sequence[str] | None = None,
        split: str = "test",
        options: dict | None = None,
        nb_iter: int = 10,
        eps_iter: float | None = None,
        cw_steps: int = 50,
        cw_search_steps: int = 3,
        seed: int = 0,
        callback=None,
    ):
        """Which lens sees the attack: every detector against attacks and noise controls.

        Detectors (:mod:`introspect.detect`: one per lens, and pytorch-ood's baselines)
        are fitted on the **train** split only; ``n`` inputs of the held-out ``split``
        are attacked through :meth:`attack` (cached, so every lens and figure shares one
        set of attacks).

        Negatives and positives: for an attack, the inputs the model gets right clean
        and wrong perturbed (the attack's successes) are the pairs; their clean versions
        are the negatives and their adversarial versions the positives. For a noise
        control (``uniform``, ``gaussian``) every input the model gets right clean is a
        pair, flipped or not: clean negative, noisy positive. A detector that sees only
        the perturbation's size, not its direction, has AUROC near 0.5 on the controls.

        Parameters
        ----------
        attacks : list of {"pgd", "fgsm", "ifgsm_targeted", "cw", "uniform", "gaussian"}
            ``ifgsm_targeted``: ``nb_iter`` signed-gradient steps towards a seeded random
            other class inside the L-inf ball; ``cw``: L2 Carlini-Wagner (no eps; one
            column); ``uniform``: U[-eps, eps] per pixel; ``gaussian``: N(0, eps^2 / 3)
            per pixel, the same expected L2 norm as ``uniform`` at that eps.
        eps : float or list of float
            L-inf radius (noise amplitude for the controls), each in (0, 1].
        n : int or None
            Held-out inputs attacked (a seeded subset; None: the whole split).
        detectors : list of str, optional
            Names or lenses (see :func:`introspect.detect.make_detectors`); default all.
        options : dict lens -> dict, optional
            Per-lens settings (theta, SOM size, InfoVAE...), see ``make_detectors``.
        nb_iter, eps_iter : int, float or None
            PGD and targeted I-FGSM steps and step size (default ``2.5 * eps / nb_iter``).
        cw_steps, cw_search_steps : int
            Adam steps per binary-search round, and rounds, of Carlini-Wagner.
        callback : callable, optional
            ``callback(done, total, info)`` after every fit, attack and scoring step
            (without one, a tqdm bar when the study's ``progress`` is on);
            returning True stops (:class:`introspect.pipeline.StageCancelled`); what
            finished is cached, so a rerun resumes.

        Returns
        -------
        DetectionTable
            Rows detector x attack x eps with AUROC, AUPR, TPR at 5 % FPR, ``n`` pairs
            and the attack's success rate; the scores for ROC curves; run times.

        Notes
        -----
        These detectors face non-adaptive attacks: an attacker who also optimises
        against the detector usually evades it (see :mod:`introspect.detect`).
        """
        from .detect import run_detection

        return run_detection(
            self, attacks, eps, n, detectors=detectors, split=split, options=options,
            nb_iter=nb_iter, eps_iter=eps_iter, cw_steps=cw_steps,
            cw_search_steps=cw_search_steps, seed=seed, callback=callback,
        )  # fmt: skip

    def __repr__(self) -> str:
        data = ", ".join(f"{k}={len(v[0]) if isinstance(v, tuple) else len(v)}"
                         for k, v in self.datasets.items())  # fmt: skip
        return (
            f"Study({type(self._model).__name__}, {data}, layers={self.layers}, "
            f"workdir={str(self.workdir.root)!r}, device={str(self.device)!r})"
        )


def _params(est) -> dict:
    get = getattr(est, "get_params", None)
    params = get(deep=False) if callable(get) else dict(vars(est))
    return {k: v if isinstance(v, (int, float, str, bool, type(None), list, tuple)) else str(v)
            for k, v in params.items()}  # fmt: skip
