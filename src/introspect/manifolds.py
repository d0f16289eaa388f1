"""Class activation manifolds: their dimension and the class-wise adversarial robustness.

After Rajesh's thesis "Understanding CNN behaviour through neural manifolds": the images
of one class, seen through the penultimate representation of a classifier (the input
of its final linear layer), form a point cloud, the class activation manifold (CAM).
Its dimension is the number of principal components whose cumulative explained variance
first reaches a threshold (0.95). The thesis reports that classes with lower-dimensional
CAMs are more robust to L-inf PGD.

Three pieces, array in / array out:

- :func:`class_manifold_dims` -- per class: explained-variance curve, dimension at the
  threshold, number of samples ``n`` beside it, a ``capped`` flag (and a
  :class:`CappedDimensionWarning`) when the sample count limits the answer, and the
  participation ratio as a threshold-free cross-check.
- :func:`classwise_robustness` -- per class: clean and adversarial accuracy for each eps,
  through :func:`introspect.attacks.pgd` (or any attack with its signature).
- :func:`dim_robustness_correlation` -- Pearson and Spearman r with p-values and
  bootstrap confidence intervals over classes.

Three defects of the thesis code are avoided on purpose: the threshold is a parameter
(0.95 by default, never silently 0.90); images go through the model's own input
normalisation (:class:`introspect.models.IntrospectableModel` normalises inside, so
feed it images in [0, 1]); and the number of samples is reported beside every dimension
because PCA on ``n`` points has at most ``n - 1`` components.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from scipy import stats

from ._checks import check_eps, check_finite, check_images, check_labels

__all__ = [
    "CappedDimensionWarning",
    "ClassManifolds",
    "ClasswiseRobustness",
    "class_manifold_dims",
    "classwise_accuracy",
    "correlation_or_none",
    "is_capped",
    "manifold_summary",
    "classwise_robustness",
    "dim_robustness_correlation",
    "dimension_at",
    "explained_variance_curve",
    "participation_ratio",
    "penultimate_features",
    "pca_spectrum",
]

_TOL = 1e-10


class CappedDimensionWarning(UserWarning):
    """The CAM dimension of some class is limited by its number of samples."""


# --------------------------------------------------------------------------------------
# spectra and dimensions


def pca_spectrum(X) -> np.ndarray:
    """Variances along the principal axes of a point cloud.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Points; higher-rank inputs are flattened to (n_samples, -1).

    Returns
    -------
    ndarray of shape (min(n_samples - 1, n_features),)
        Eigenvalues of the sample covariance (ddof 1), descending, clipped at 0.
        Empty when ``n_samples < 2``. Computed in float64 from the smaller of the Gram
        and the covariance matrix, so 2048-d features of a few hundred images are cheap.
    """
    X = _as_2d(X)
    check_finite(X, where="pca_spectrum", what="points")
    return _spectrum(X)


def _spectrum(X: np.ndarray) -> np.ndarray:
    """:func:`pca_spectrum` of a 2-D float64 array already checked."""
    n, d = X.shape
    rank = min(n - 1, d)
    if rank < 1:
        return np.zeros(0)
    Xc = X - X.mean(axis=0, keepdims=True)
    M = Xc @ Xc.T if n <= d else Xc.T @ Xc
    lam = np.linalg.eigvalsh(M)[::-1][:rank] / (n - 1)
    return np.clip(lam, 0.0, None)


def explained_variance_curve(X) -> np.ndarray:
    """Cumulative explained-variance ratio of the principal components of ``X``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    ndarray of shape (min(n_samples - 1, n_features),)
        ``curve[k]`` = share of the total variance in the first ``k + 1`` components;
        ends at 1. Empty when there are fewer than 2 samples or no variance at all.
    """
    lam = pca_spectrum(X)
    total = lam.sum()
    if lam.size == 0 or total <= 0:
        return np.zeros(0)
    curve = np.cumsum(lam) / total
    curve[-1] = 1.0
    return curve


def dimension_at(curve, threshold: float = 0.95) -> int:
    """Number of components whose cumulative explained variance first reaches ``threshold``.

    Parameters
    ----------
    curve : array-like of shape (n_components,)
        A cumulative explained-variance ratio (non-decreasing, ending at 1).
    threshold : float in (0, 1]

    Returns
    -------
    int
        The smallest ``d`` with ``curve[d - 1] >= threshold`` (0 for an empty curve).
    """
    _check_threshold(threshold)
    curve = np.asarray(curve, dtype=np.float64)
    if curve.size == 0:
        return 0
    idx = int(np.searchsorted(curve, threshold - _TOL, side="left"))
    return min(idx + 1, curve.size)


def participation_ratio(X=None, *, spectrum=None) -> float:
    """Participation ratio ``(sum lambda)^2 / sum lambda^2`` of the PCA spectrum.

    A threshold-free effective dimension: ``k`` for ``k`` equal variances, close to 1
    when one axis dominates; like the PCA dimension it cannot exceed ``n - 1``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), optional
    spectrum : array-like of shape (n_components,), optional
        Eigenvalues, instead of ``X``.

    Returns
    -------
    float
        0.0 when there is no variance.
    """
    if spectrum is None:
        lam = pca_spectrum(X)
    else:
        lam = np.asarray(spectrum, dtype=np.float64)
        check_finite(lam, where="participation_ratio", what="spectrum values")
    s2 = float(np.sum(lam**2))
    return float(np.sum(lam) ** 2 / s2) if s2 > 0 else 0.0


# --------------------------------------------------------------------------------------
# class activation manifolds


@dataclass
class ClassManifolds:
    """Per-class dimensions of class activation manifolds (see :func:`class_manifold_dims`).

    Attributes
    ----------
    classes : ndarray of shape (n_classes,)
        Class labels, ascending.
    class_names : list of str
        Names of ``classes`` (the label as text when no names were given).
    n : ndarray of shape (n_classes,)
        Number of samples of each class used for its PCA.
    dims : ndarray of shape (n_classes,)
        Dimension at ``threshold``.
    max_dims : ndarray of shape (n_classes,)
        ``min(n - 1, n_features)``: the most components PCA can give.
    capped : ndarray of shape (n_classes,) of bool
        The sample count limits the dimension: ``dims > cap_fraction * (n - 1)`` (or
        ``n < 2``). See :func:`class_manifold_dims`.
    participation_ratio : ndarray of shape (n_classes,)
    curves : list of ndarray
        ``curves[i]``: cumulative explained-variance ratio of class ``i``, shape
        (max_dims[i],).
    threshold, cap_fraction : float
    n_features : int
    layer : str or None
    """

    classes: np.ndarray
    class_names: list
    n: np.ndarray
    dims: np.ndarray
    max_dims: np.ndarray
    capped: np.ndarray
    participation_ratio: np.ndarray
    curves: list
    threshold: float
    cap_fraction: float
    n_features: int
    layer: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def mean_dim(self) -> float:
        """Mean dimension over classes."""
        return float(np.mean(self.dims)) if len(self.dims) else float("nan")

    def with_threshold(self, threshold: float, warn: bool = True) -> ClassManifolds:
        """The same manifolds at another threshold, from the stored curves (no new PCA)."""
        _check_threshold(threshold)
        dims = np.array([dimension_at(c, threshold) for c in self.curves], dtype=np.int64)
        capped = is_capped(dims, self.n, self.cap_fraction)
        out = replace(self, dims=dims, capped=capped, threshold=float(threshold))
        if warn:
            _warn_capped(out)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> ClassManifolds:
        """The inverse of :meth:`to_dict` (e.g. a figure's saved data back as an object)."""
        return cls(
            classes=np.asarray(d["classes"], dtype=np.int64),
            class_names=list(d["class_names"]),
            n=np.asarray(d["n"], dtype=np.int64),
            dims=np.asarray(d["dims"], dtype=np.int64),
            max_dims=np.asarray(d["max_dims"], dtype=np.int64),
            capped=np.asarray(d["capped"], dtype=bool),
            participation_ratio=np.asarray(d["participation_ratio"], dtype=np.float64),
            curves=[np.asarray(c, dtype=np.float64) for c in d["curves"]],
            threshold=float(d["threshold"]),
            cap_fraction=float(d["cap_fraction"]),
            n_features=int(d["n_features"]),
            layer=d.get("layer"),
        )

    def to_dict(self) -> dict:
        """Plain data (lists and floats) for figures and JSON."""
        return {
            "classes": [int(c) for c in self.classes],
            "class_names": list(self.class_names),
            "n": [int(v) for v in self.n],
            "dims": [int(v) for v in self.dims],
            "max_dims": [int(v) for v in self.max_dims],
            "capped": [bool(v) for v in self.capped],
            "participation_ratio": [float(v) for v in self.participation_ratio],
            "curves": [np.asarray(c, dtype=float).tolist() for c in self.curves],
            "threshold": float(self.threshold),
            "cap_fraction": float(self.cap_fraction),
            "n_features": int(self.n_features),
            "layer": self.layer,
        }

    def summary(self) -> str:
        """One line per class: dimension with n, participation ratio, capped flag."""
        lines = [
            f"CAM dimension at {self.threshold:.2f} explained variance"
            + (f", layer {self.layer}" if self.layer else "")
            + f", {self.n_features} features; mean {self.mean_dim:.2f} over {len(self.dims)} classes",
            f"{'class':>24}  {'dim':>5}  {'n':>5}  {'PR':>7}  capped",
        ]
        for name, d, n, pr, cap in zip(
            self.class_names, self.dims, self.n, self.participation_ratio, self.capped
        ):
            lines.append(f"{str(name)[:24]:>24}  {d:5d}  {n:5d}  {pr:7.2f}  {'yes' if cap else ''}")
        return "\n".join(lines)


def class_manifold_dims(
    features,
    labels=None,
    threshold: float = 0.95,
    layer: str | None = None,
    *,
    classes=None,
    class_names=None,
    n_per_class: int | None = None,
    cap_fraction: float = 0.5,
    seed: int = 0,
    warn: bool = True,
) -> ClassManifolds:
    """Dimension of each class's activation manifold by PCA.

    For every class, the features of its samples are centred, their PCA spectrum is
    computed, and the dimension is the number of components whose cumulative explained
    variance first reaches ``threshold`` (Rajesh, Algorithm 2). The participation ratio
    of the same spectrum is reported as a threshold-free cross-check.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features) or ActivationStore
        Penultimate (or any layer's) features, one row per image. An
        :class:`~introspect.store.ActivationStore` is read at ``layer`` (which may be
        omitted when the store holds one layer), with its labels.
    labels : array-like of shape (n_samples,), optional
        Class of each row; required for arrays, defaults to ``store.labels``.
    threshold : float in (0, 1], default 0.95
        Explained-variance threshold.
    layer : str, optional
        Layer of the store to read; only recorded for arrays.
    classes : sequence of int, optional
        Classes to analyse (default: all present in ``labels``).
    class_names : sequence of str, optional
        Names indexed by class label (e.g. ``dataset.classes``); defaults to the store's
        ``meta["classes"]`` if any, else the labels as text.
    n_per_class : int, optional
        Use a random subset of at most this many samples per class (seeded), so that
        classes are compared at the same ``n``. Recommended: dimensions grow with ``n``
        until ``n`` is well above them.
    cap_fraction : float, default 0.5
        A class is flagged ``capped`` when ``dim > cap_fraction * (n - 1)``. Rule of
        thumb behind the default: ``n`` points span at most ``n - 1`` components, and a
        cloud whose true dimension is at least ``n - 1`` reaches 0.95 after roughly
        0.6 to 0.95 of them (Marchenko-Pastur), so a dimension above half the cap cannot
        be told apart from a sample-limited one. Use ``n >= 2 dim + 2`` images per class.
    seed : int
        Seed of the per-class subsampling.
    warn : bool, default True
        Emit a :class:`CappedDimensionWarning` naming the capped classes.

    Returns
    -------
    ClassManifolds
    """
    _check_threshold(threshold)
    store_names = None
    if _is_store(features):
        store = features
        if layer is None:
            if len(store.layers) != 1:
                raise ValueError(
                    f"the store holds layers {list(store.layers)}: pass layer=<one of them>"
                )
            layer = store.layers[0]
        X = np.asarray(store.layer(layer))
        if labels is None:
            labels = store.labels
        meta = getattr(store, "meta", None) or {}
        store_names = meta.get("classes")
    else:
        X = features
    X = _as_2d(X)
    if labels is None:
        raise ValueError("labels are required when features is an array: pass labels=y")
    check_finite(X, where="class_manifold_dims", what="features")
    labels = check_labels(_to_numpy(labels), where="class_manifold_dims")
    if labels.shape[0] != X.shape[0]:
        raise ValueError(
            f"features has {X.shape[0]} rows but labels has {labels.shape[0]}: one label per row"
        )
    if classes is None:
        classes = np.unique(labels)
    classes = np.asarray(sorted(int(c) for c in classes), dtype=np.int64)
    names = class_names if class_names is not None else store_names
    rng = np.random.default_rng(seed)

    ns, dims, maxd, prs, curves = [], [], [], [], []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        if n_per_class is not None and idx.size > n_per_class:
            idx = np.sort(rng.choice(idx, size=n_per_class, replace=False))
        lam = _spectrum(X[idx])
        total = lam.sum()
        if lam.size and total > 0:
            curve = np.cumsum(lam) / total
            curve[-1] = 1.0
        else:
            curve = np.zeros(0)
        ns.append(idx.size)
        maxd.append(max(min(idx.size - 1, X.shape[1]), 0))
        curves.append(curve)
        dims.append(dimension_at(curve, threshold))
        prs.append(participation_ratio(spectrum=lam))
    ns = np.asarray(ns, dtype=np.int64)
    dims = np.asarray(dims, dtype=np.int64)
    out = ClassManifolds(
        classes=classes,
        class_names=[_class_name(names, c) for c in classes],
        n=ns,
        dims=dims,
        max_dims=np.asarray(maxd, dtype=np.int64),
        capped=is_capped(dims, ns, cap_fraction),
        participation_ratio=np.asarray(prs, dtype=np.float64),
        curves=curves,
        threshold=float(threshold),
        cap_fraction=float(cap_fraction),
        n_features=int(X.shape[1]),
        layer=layer,
    )
    if warn:
        _warn_capped(out)
    return out


def is_capped(dims, n, cap_fraction: float = 0.5) -> np.ndarray:
    """Whether each dimension is limited by its number of samples.

    ``n`` points span at most ``n - 1`` principal components, so a dimension above
    ``cap_fraction * (n - 1)`` (or any class with ``n < 2``) cannot be told apart from a
    sample-limited one (see ``cap_fraction`` in :func:`class_manifold_dims`).

    Parameters
    ----------
    dims, n : array-like of int, shape (n_classes,)
        Dimension of each class and its number of samples.
    cap_fraction : float, default 0.5

    Returns
    -------
    ndarray of shape (n_classes,), bool
    """
    dims = np.asarray(dims)
    n = np.asarray(n)
    return (n < 2) | (dims > cap_fraction * (n - 1))


def _warn_capped(m: ClassManifolds) -> None:
    bad = np.flatnonzero(m.capped)
    if bad.size == 0:
        return
    shown = ", ".join(f"{m.class_names[i]} (dim {m.dims[i]}, n {m.n[i]})" for i in bad[:5]) + (
        " ..." if bad.size > 5 else ""
    )
    warnings.warn(
        f"{bad.size} of {len(m.dims)} classes have a CAM dimension limited by their number of "
        f"samples (dim > {m.cap_fraction:g} (n - 1); PCA on n points has at most n - 1 "
        f"components): {shown}. Use more images per class (n >= 2 dim + 2) and report n "
        "beside every dimension.",
        CappedDimensionWarning,
        stacklevel=3,
    )


# --------------------------------------------------------------------------------------
# class-wise robustness


def classwise_accuracy(labels, preds, classes=None) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy of the predictions within each class.

    Parameters
    ----------
    labels, preds : array-like of shape (n_samples,)
    classes : sequence of int, optional
        Default: the classes present in ``labels``, ascending.

    Returns
    -------
    acc : ndarray of shape (n_classes,)
        NaN for a class without samples.
    n : ndarray of shape (n_classes,)
    """
    labels = check_labels(_to_numpy(labels), where="classwise_accuracy (labels)")
    preds = check_labels(_to_numpy(preds), where="classwise_accuracy (preds)")
    if labels.shape != preds.shape:
        raise ValueError(f"labels {labels.shape} and preds {preds.shape} differ in shape")
    classes = np.unique(labels) if classes is None else np.asarray(classes, dtype=np.int64)
    correct = labels == preds
    n = np.array([(labels == c).sum() for c in classes], dtype=np.int64)
    acc = np.array(
        [correct[labels == c].mean() if k else np.nan for c, k in zip(classes, n)],
        dtype=np.float64,
    )
    return acc, n


@dataclass
class ClasswiseRobustness:
    """Per-class clean and adversarial accuracy (see :func:`classwise_robustness`).

    Attributes
    ----------
    classes : ndarray of shape (n_classes,)
    class_names : list of str
    n : ndarray of shape (n_classes,)
        Images attacked per class.
    eps : ndarray of shape (n_eps,)
    clean_acc : ndarray of shape (n_classes,)
    adv_acc : ndarray of shape (n_eps, n_classes)
        Accuracy under attack over all images of the class.
    adv_acc_given_clean : ndarray of shape (n_eps, n_classes)
        Accuracy under attack among the images the model got right when clean (NaN
        when it got none right).
    clean_accuracy : float
    adv_accuracy : ndarray of shape (n_eps,)
        Over all attacked images.
    attack : dict
        The attack's parameters.
    """

    classes: np.ndarray
    class_names: list
    n: np.ndarray
    eps: np.ndarray
    clean_acc: np.ndarray
    adv_acc: np.ndarray
    adv_acc_given_clean: np.ndarray
    clean_accuracy: float
    adv_accuracy: np.ndarray
    attack: dict = field(default_factory=dict)

    def acc_at(self, eps: float, given_clean: bool = False) -> np.ndarray:
        """Per-class adversarial accuracy at one of the attacked ``eps`` values."""
        i = np.flatnonzero(np.isclose(self.eps, eps, rtol=0, atol=1e-9))
        if i.size == 0:
            raise ValueError(f"eps {eps} was not attacked; attacked: {self.eps.tolist()}")
        table = self.adv_acc_given_clean if given_clean else self.adv_acc
        return table[i[0]]

    def to_dict(self) -> dict:
        """Plain data (lists and floats) for figures and JSON."""
        return {
            "classes": [int(c) for c in self.classes],
            "class_names": list(self.class_names),
            "n": [int(v) for v in self.n],
            "eps": [float(e) for e in self.eps],
            "clean_acc": [float(v) for v in self.clean_acc],
            "adv_acc": np.asarray(self.adv_acc, dtype=float).tolist(),
            "adv_acc_given_clean": np.asarray(self.adv_acc_given_clean, dtype=float).tolist(),
            "clean_accuracy": float(self.clean_accuracy),
            "adv_accuracy": [float(v) for v in self.adv_accuracy],
            "attack": dict(self.attack),
        }

    def summary(self) -> str:
        """Per-class table: n, clean accuracy, accuracy at each eps."""
        head = f"{'class':>24}  {'n':>5}  {'clean':>6}" + "".join(
            f"  {'eps ' + format(e, 'g'):>9}" for e in self.eps
        )
        lines = [
            f"class-wise accuracy under {self.attack.get('name', 'attack')}: clean "
            f"{self.clean_accuracy:.3f}, adversarial "
            + ", ".join(f"{a:.3f} (eps {e:g})" for e, a in zip(self.eps, self.adv_accuracy)),
            head,
        ]
        for i, name in enumerate(self.class_names):
            lines.append(
                f"{str(name)[:24]:>24}  {self.n[i]:5d}  {self.clean_acc[i]:6.3f}"
                + "".join(f"  {self.adv_acc[j, i]:9.3f}" for j in range(len(self.eps)))
            )
        return "\n".join(lines)


def classwise_robustness(
    model,
    dataset,
    eps_list,
    *,
    attack=None,
    nb_iter: int = 40,
    eps_iter: float | None = None,
    rand_init: bool = True,
    classes=None,
    class_names=None,
    n_per_class: int | None = None,
    batch_size: int = 256,
    device="cpu",
    seed: int = 0,
    attack_kwargs: dict | None = None,
) -> ClasswiseRobustness:
    """Clean and L-inf PGD accuracy of a classifier, class by class.

    Parameters
    ----------
    model : torch.nn.Module
        Takes images in [0, 1] (an :class:`~introspect.models.IntrospectableModel`
        normalises inside) and returns logits.
    dataset : ImageDataset or tuple (X, y)
        Images of shape (N, C, H, W) in [0, 1] and integer labels of shape (N,).
    eps_list : sequence of float
        L-inf budgets; 0 means no attack (the clean predictions).
    attack : callable, optional
        ``attack(model, x, y, eps, nb_iter=, eps_iter=, rand_init=, batch_size=,
        device=, **attack_kwargs) -> x_adv``; default :func:`introspect.attacks.pgd`
        (random start, sign steps, projection onto the eps-ball and [0, 1]).
    nb_iter : int, default 40
    eps_iter : float, optional
        Step size; default ``2.5 * eps / nb_iter`` (Madry et al.), so the steps can
        cross the ball whatever eps is.
    rand_init : bool, default True
    classes : sequence of int, optional
        Classes to attack (default: all present).
    class_names : sequence of str, optional
        Names indexed by label; default ``dataset.classes`` when present.
    n_per_class : int, optional
        Attack a seeded random subset of at most this many images per class.
    batch_size : int
    device : str or torch.device
    seed : int
        Seeds the subsampling and the attack's random start.
    attack_kwargs : dict, optional
        Extra keyword arguments for ``attack`` (e.g. ``loss="mse"``).

    Returns
    -------
    ClasswiseRobustness
    """
    where = "classwise_robustness"
    eps_arr = np.asarray([check_eps(e, where=where) for e in eps_list], dtype=np.float64)
    if eps_iter is not None:
        eps_iter = check_eps(eps_iter, where=where, name="eps_iter")
    if attack is None:
        from introspect.attacks import pgd as attack
    X, y = _dataset_tensors(dataset, where)
    names = class_names if class_names is not None else getattr(dataset, "classes", None)
    y_np = y.numpy().astype(np.int64)
    if classes is None:
        classes = np.unique(y_np)
    classes = np.asarray(sorted(int(c) for c in classes), dtype=np.int64)
    rng = np.random.default_rng(seed)
    keep = []
    for c in classes:
        idx = np.flatnonzero(y_np == c)
        if n_per_class is not None and idx.size > n_per_class:
            idx = np.sort(rng.choice(idx, size=n_per_class, replace=False))
        keep.append(idx)
    keep = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
    X, y, y_np = X[keep], y[keep], y_np[keep]

    was_training = model.training
    model.eval()  # attacks and accuracies are those of the deployed (eval-mode) model
    try:
        return _classwise_robustness(
            model,
            X,
            y,
            y_np,
            classes,
            names,
            eps_arr,
            attack,
            nb_iter,
            eps_iter,
            rand_init,
            batch_size,
            device,
            seed,
            dict(attack_kwargs or {}),
        )
    finally:
        model.train(was_training)


def _classwise_robustness(
    model,
    X,
    y,
    y_np,
    classes,
    names,
    eps_arr,
    attack,
    nb_iter,
    eps_iter,
    rand_init,
    batch_size,
    device,
    seed,
    kw,
) -> ClasswiseRobustness:
    clean_pred = _predict(model, X, batch_size, device)
    clean_correct = clean_pred == y_np
    clean_acc, n = classwise_accuracy(y_np, clean_pred, classes)
    adv_acc = np.zeros((eps_arr.size, classes.size))
    adv_given = np.zeros((eps_arr.size, classes.size))
    adv_all = np.zeros(eps_arr.size)
    takes_seed = "seed" in inspect.signature(attack).parameters
    for j, eps in enumerate(eps_arr):
        if eps == 0:
            pred = clean_pred
        else:
            step = eps_iter if eps_iter is not None else 2.5 * eps / nb_iter
            if takes_seed:
                kw["seed"] = seed + j
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + j)
                x_adv = attack(
                    model,
                    X,
                    y,
                    float(eps),
                    nb_iter=nb_iter,
                    eps_iter=step,
                    rand_init=rand_init,
                    batch_size=batch_size,
                    device=device,
                    **kw,
                )
            pred = _predict(model, torch.as_tensor(x_adv), batch_size, device)
        adv_acc[j], _ = classwise_accuracy(y_np, pred, classes)
        adv_all[j] = float(np.mean(pred == y_np)) if y_np.size else np.nan
        for i, c in enumerate(classes):
            m = (y_np == c) & clean_correct
            adv_given[j, i] = float(np.mean(pred[m] == c)) if m.any() else np.nan
    return ClasswiseRobustness(
        classes=classes,
        class_names=[_class_name(names, c) for c in classes],
        n=n,
        eps=eps_arr,
        clean_acc=clean_acc,
        adv_acc=adv_acc,
        adv_acc_given_clean=adv_given,
        clean_accuracy=float(np.mean(clean_correct)) if y_np.size else float("nan"),
        adv_accuracy=adv_all,
        attack={
            "name": getattr(attack, "__name__", str(attack)),
            "nb_iter": int(nb_iter),
            "eps_iter": None if eps_iter is None else float(eps_iter),
            "eps_iter_rule": "2.5 * eps / nb_iter" if eps_iter is None else "fixed",
            "rand_init": bool(rand_init),
            "seed": int(seed),
            **{
                k: v
                for k, v in kw.items()
                if k != "seed" and isinstance(v, (int, float, str, bool))
            },
        },
    )


# --------------------------------------------------------------------------------------
# correlation


def dim_robustness_correlation(
    dims, robust_acc, *, n_boot: int = 2000, ci: float = 0.95, seed: int = 0
) -> dict:
    """Pearson and Spearman correlation between CAM dimension and robust accuracy.

    Parameters
    ----------
    dims : array-like of shape (n_classes,)
    robust_acc : array-like of shape (n_classes,)
        Per-class adversarial accuracy (pairs with NaN in either are dropped).
    n_boot : int, default 2000
        Bootstrap resamples of the classes (pairs drawn with replacement); 0 skips the
        intervals (NaN), e.g. for a handful of models where resampling is meaningless.
    ci : float, default 0.95
        Level of the percentile bootstrap intervals.
    seed : int

    Returns
    -------
    dict
        ``n``, ``pearson_r``, ``pearson_p``, ``pearson_ci`` (lo, hi), ``spearman_r``,
        ``spearman_p``, ``spearman_ci``, ``spearman_p_method``, ``n_boot``, ``ci``. r and p
        are NaN when either input is constant. The Spearman p-value is exact (all
        permutations) for n <= 8, where scipy's t approximation fails (it gives p = 0 for
        a perfect rank correlation of 3 points); otherwise scipy's. The thesis's claim (more robust, lower dimension) is a
        negative r.
    """
    a = np.asarray(dims, dtype=np.float64).ravel()
    b = np.asarray(robust_acc, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"dims {a.shape} and robust_acc {b.shape} must have the same length")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 3:
        raise ValueError(f"need at least 3 classes with finite values, got {a.size}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    out: dict[str, Any] = {"n": int(a.size), "n_boot": int(n_boot), "ci": float(ci)}
    constant = np.ptp(a) == 0 or np.ptp(b) == 0
    if constant:
        warnings.warn(
            "dims or robust_acc is constant across classes: the correlation is undefined (NaN)",
            RuntimeWarning,
            stacklevel=2,
        )
        for k in ("pearson", "spearman"):
            out[f"{k}_r"] = out[f"{k}_p"] = float("nan")
            out[f"{k}_ci"] = (float("nan"), float("nan"))
        return out
    pr = stats.pearsonr(a, b)
    sr = stats.spearmanr(a, b)
    out["pearson_r"], out["pearson_p"] = float(pr[0]), float(pr[1])
    out["spearman_r"], out["spearman_p"] = float(sr[0]), float(sr[1])
    out["spearman_p_method"] = "t approximation (scipy)"
    if a.size <= _EXACT_SPEARMAN_MAX_N:
        out["spearman_p"] = _spearman_exact_p(a, b)
        out["spearman_p_method"] = "exact permutation"
    if int(n_boot) <= 0:
        out["pearson_ci"] = out["spearman_ci"] = (float("nan"), float("nan"))
        return out
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(int(n_boot), a.size))
    A, B = a[idx], b[idx]
    q = (100 * (1 - ci) / 2, 100 * (1 + ci) / 2)
    for k, (X, Y) in {
        "pearson": (A, B),
        "spearman": (stats.rankdata(A, axis=1), stats.rankdata(B, axis=1)),
    }.items():
        r = _rowwise_pearson(X, Y)
        if np.all(np.isnan(r)):
            out[f"{k}_ci"] = (float("nan"), float("nan"))
        else:
            lo, hi = np.nanpercentile(r, q)
            out[f"{k}_ci"] = (float(lo), float(hi))
    return out


_EXACT_SPEARMAN_MAX_N = 8


def correlation_or_none(x, robust_acc, *, n_boot: int = 1000, seed: int = 0) -> dict | None:
    """:func:`dim_robustness_correlation`, or None where it is undefined.

    Undefined: fewer than 3 classes with finite values, or ``x`` or ``robust_acc``
    constant over them (e.g. every class at accuracy 0, or equal dimensions). The
    intervals come back as lists (JSON-ready).
    """
    x, acc = np.asarray(x, dtype=float).ravel(), np.asarray(robust_acc, dtype=float).ravel()
    ok = np.isfinite(x) & np.isfinite(acc)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(acc[ok]) == 0:
        return None
    out = dim_robustness_correlation(x, acc, n_boot=n_boot, seed=seed)
    out["pearson_ci"], out["spearman_ci"] = list(out["pearson_ci"]), list(out["spearman_ci"])
    return out


def manifold_summary(
    manifolds: ClassManifolds,
    robustness: ClasswiseRobustness | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Plain data of one model's manifolds and robustness, with their correlation per eps.

    Returns
    -------
    dict with ``manifolds`` (:meth:`ClassManifolds.to_dict`), ``robustness``
    (:meth:`ClasswiseRobustness.to_dict`, or None), ``correlation`` (eps as text ->
    :func:`correlation_or_none` of dimension vs PGD accuracy), ``correlation_pr`` (the
    same with the participation ratio), ``mean_dim`` and ``mean_pr``: the shape of the
    per-model ``results`` of the ``manifolds.*`` figures.
    """
    corr, corr_pr = {}, {}
    if robustness is not None:
        rob_classes = [int(c) for c in robustness.classes]
        missing = [int(c) for c in manifolds.classes if int(c) not in rob_classes]
        if missing:
            raise ValueError(f"robustness has no accuracies for classes {missing}.")
        cols = [rob_classes.index(int(c)) for c in manifolds.classes]
        adv = np.asarray(robustness.adv_acc, dtype=float)[:, cols]
        for j, e in enumerate(np.asarray(robustness.eps)):
            key = format(float(e), "g")
            corr[key] = correlation_or_none(manifolds.dims, adv[j], n_boot=n_boot, seed=seed)
            corr_pr[key] = correlation_or_none(
                manifolds.participation_ratio, adv[j], n_boot=n_boot, seed=seed
            )
    return {
        "manifolds": manifolds.to_dict(),
        "robustness": None if robustness is None else robustness.to_dict(),
        "correlation": corr,
        "correlation_pr": corr_pr,
        "mean_dim": manifolds.mean_dim,
        "mean_pr": float(np.mean(manifolds.participation_ratio)),
    }


def _spearman_exact_p(a, b) -> float:
    """Two-sided p of Spearman's r over all n! orderings of ``b``'s ranks (ties kept)."""
    import itertools

    ra, rb = stats.rankdata(a), stats.rankdata(b)
    perms = np.array(list(itertools.permutations(rb)), dtype=np.float64)
    r_all = _rowwise_pearson(np.broadcast_to(ra, perms.shape), perms)
    r_obs = _rowwise_pearson(ra[None], rb[None])[0]
    return float(np.mean(np.abs(r_all) >= abs(r_obs) - 1e-12))


def _rowwise_pearson(X, Y) -> np.ndarray:
    Xc = X - X.mean(axis=1, keepdims=True)
    Yc = Y - Y.mean(axis=1, keepdims=True)
    den = np.sqrt((Xc**2).sum(axis=1) * (Yc**2).sum(axis=1))
    num = (Xc * Yc).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(r, -1.0, 1.0)


# --------------------------------------------------------------------------------------
# penultimate representation


def penultimate_features(model, data, *, batch_size: int = 256, device="cpu") -> np.ndarray:
    """The input of the model's final classifier layer, flattened, for a batch of images.

    Parameters
    ----------
    model : IntrospectableModel
        Must declare ``classifier_path`` (the named-modules path of the final Linear).
    data : Tensor of shape (N, C, H, W), or ImageDataset / tuple (X, y)
        Images in [0, 1].
    batch_size : int
    device : str or torch.device

    Returns
    -------
    ndarray of shape (N, D), float32
        D is the classifier's ``in_features`` (2048 for ResNet50).
    """
    from .capture import PENULTIMATE, activations

    if not getattr(model, "classifier_path", None):
        raise ValueError(
            "the model declares no classifier_path; create it with "
            "introspect.models.create_model so the penultimate layer is known"
        )
    if isinstance(data, torch.Tensor):
        X = data
        check_images(X, where="penultimate_features")
    else:
        X = _dataset_tensors(data, "penultimate_features")[0]
    was_training = model.training
    model.eval()
    try:
        feats = activations(model, X, [PENULTIMATE], batch_size=batch_size, device=device)
    finally:
        model.train(was_training)
    return feats[PENULTIMATE].astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------
# helpers


def _check_threshold(threshold) -> None:
    if not 0 < float(threshold) <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")


def _is_store(obj) -> bool:
    return hasattr(obj, "layer") and hasattr(obj, "layers") and hasattr(obj, "labels")


def _to_numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _as_2d(X) -> np.ndarray:
    X = _to_numpy(X).astype(np.float64, copy=False)
    if X.ndim == 1:
        raise ValueError(f"features must be (n_samples, n_features), got shape {X.shape}")
    return X.reshape(X.shape[0], -1)


def _class_name(names, c) -> str:
    if names is not None and 0 <= int(c) < len(names):
        return str(names[int(c)])
    return str(int(c))


def _dataset_tensors(dataset, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of a dataset or an ``(X, y)`` pair, checked before any cast."""
    if hasattr(dataset, "tensors") and callable(dataset.tensors):
        X, y = dataset.tensors()
    elif isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        X, y = dataset
    else:
        raise TypeError(
            "dataset must be an ImageDataset (with .tensors()) or a tuple (X, y) of images "
            f"(N, C, H, W) in [0, 1] and labels (N,); got {type(dataset).__name__}"
        )
    X = torch.as_tensor(X)
    check_images(X, where=where)  # before the cast: uint8 images must not pass as floats
    check_labels(y, where=where)
    y = torch.as_tensor(y).long()
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{where}: {X.shape[0]} images but {y.shape[0]} labels")
    return X.float(), y


def _predict(model, X: torch.Tensor, batch_size: int, device) -> np.ndarray:
    was_training = model.training
    model.eval()
    preds = []  # eval mode: introspect.attacks refuses models in train mode
    try:
        model.to(device)
        with torch.no_grad():
            for i in range(0, X.shape[0], batch_size):
                preds.append(model(X[i : i + batch_size].to(device)).argmax(1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------------------
# distance of an input to its class manifold


def class_subspaces(features, labels, threshold: float = 0.95, *, classes=None) -> dict:
    """Principal subspace of each class's activation manifold at ``threshold``.

    The subspace of class ``c`` is spanned by the first ``d`` principal axes of its
    samples, where ``d`` is the CAM dimension of :func:`class_manifold_dims` (the fewest
    components whose cumulative explained variance reaches ``threshold``), through the
    class mean.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        E.g. penultimate features of the training split.
    labels : array-like of int of shape (n_samples,)
    threshold : float in (0, 1], default 0.95
    classes : sequence of int, optional
        Classes to fit (default: all present in ``labels``).

    Returns
    -------
    dict of int -> (mean, basis)
        ``mean`` : ndarray of shape (n_features,); ``basis`` : ndarray of shape
        (d, n_features) with orthonormal rows (``d = 0`` for a class with fewer than
        two samples or no variance: its subspace is the mean alone).
    """
    _check_threshold(threshold)
    X = _as_2d(features)
    check_finite(X, where="class_subspaces", what="features")
    y = check_labels(_to_numpy(labels), where="class_subspaces")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"features has {X.shape[0]} rows but labels has {y.shape[0]}.")
    classes = np.unique(y) if classes is None else np.asarray(classes, dtype=np.int64)
    out = {}
    for c in classes:
        Xc = X[y == int(c)]
        if Xc.shape[0] == 0:
            raise ValueError(f"class_subspaces: class {int(c)} has no samples.")
        mean = Xc.mean(axis=0)
        basis = np.zeros((0, X.shape[1]))
        if Xc.shape[0] >= 2:
            _, s, vt = np.linalg.svd(Xc - mean, full_matrices=False)
            lam = (s**2)[: min(Xc.shape[0] - 1, X.shape[1])]
            if lam.sum() > 0:
                basis = vt[: dimension_at(np.cumsum(lam) / lam.sum(), threshold)]
        out[int(c)] = (mean, basis)
    return out


def subspace_residual(features, classes, subspaces: dict) -> np.ndarray:
    """Distance of each row to the principal subspace of its class (see :func:`class_subspaces`).

    ``||(x - mean_c) - B_c^T B_c (x - mean_c)||``: the part of ``x`` outside its class's
    manifold, in the units of the features.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    classes : int or array-like of int of shape (n_samples,)
        The class whose subspace each row is measured against (one int for all rows).
    subspaces : dict of int -> (mean, basis)
        From :func:`class_subspaces`.

    Returns
    -------
    ndarray of shape (n_samples,), float64
    """
    X = _as_2d(features)
    check_finite(X, where="subspace_residual", what="features")
    c = np.asarray(_to_numpy(classes))
    c = np.full(X.shape[0], int(c), dtype=np.int64) if c.ndim == 0 else c.astype(np.int64)
    if c.shape != (X.shape[0],):
        raise ValueError(f"subspace_residual: {X.shape[0]} rows but classes has shape {c.shape}.")
    out = np.zeros(X.shape[0])
    for k in np.unique(c):
        if int(k) not in subspaces:
            raise KeyError(f"no subspace for class {int(k)}; fitted: {sorted(subspaces)}.")
        mean, basis = subspaces[int(k)]
        rows = c == k
        R = X[rows] - np.asarray(mean, dtype=np.float64)
        B = np.asarray(basis, dtype=np.float64)
        if B.shape[0]:
            R = R - (R @ B.T) @ B
        out[rows] = np.linalg.norm(R, axis=1)
    return out


__all__ += ["class_subspaces", "subspace_residual"]
