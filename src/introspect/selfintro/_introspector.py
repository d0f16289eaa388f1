"""The self-introspective map of a classifier and the record of its training.

Private module of :mod:`introspect.selfintro`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import sklearn.base
import torch

from .._checks import check_finite, check_images, check_labels
from .._estimator import Estimator
from .._utils import check_is_fitted, to_numpy
from ._maps import (
    KDE_OUTSIDE_TOLERANCE,
    KDEWindowWarning,
    brainbow_colors,
    classifier_error,
    kde_expectation,
    order_units,
    outside_fraction,
    suggested_extent,
)
from ._vae import ErrorEstimator, InfoVAE, _check_2d

__all__ = ["SelfIntrospector", "TrainingRecorder"]


# ------------------------------------------------------------------- the introspector


@dataclass
class _Layout:
    names: list[str]
    sizes: list[int]
    slices: dict[str, slice] = field(default_factory=dict)

    def __post_init__(self):
        start = 0
        for n, s in zip(self.names, self.sizes):
            self.slices[n] = slice(start, start + s)
            start += s

    @property
    def total(self) -> int:
        return int(sum(self.sizes))


def _concat_hidden(hidden, layers: Sequence[str] | None):
    """(N, D) array + layout from a dict of per-layer arrays or a 2-D array."""
    if isinstance(hidden, Mapping):
        names = list(layers) if layers is not None else list(hidden)
        missing = [n for n in names if n not in hidden]
        if missing:
            raise ValueError(f"hidden has no layer(s) {missing}; it has {list(hidden)}")
        parts = [np.asarray(to_numpy(hidden[n]), dtype=np.float32) for n in names]
        parts = [p.reshape(p.shape[0], -1) for p in parts]
        n_rows = {p.shape[0] for p in parts}
        if len(n_rows) != 1:
            raise ValueError(f"the layers have different numbers of rows: {sorted(n_rows)}")
        return np.concatenate(parts, axis=1), _Layout(names, [p.shape[1] for p in parts])
    H = np.asarray(to_numpy(hidden), dtype=np.float32)
    _check_2d(H, "hidden")
    return H, _Layout(["h"], [H.shape[1]])


class SelfIntrospector(Estimator):
    """A classifier's self-introspective map: InfoVAE + error estimator on its hidden layers.

    Parameters
    ----------
    model : torch.nn.Module or None
        The trained classifier (an :class:`~introspect.models.IntrospectableModel`).
        None is allowed when only :meth:`fit_hidden` and the array methods are used.
    layers : sequence of str or None
        Hidden layers to concatenate (aliases or ``named_modules`` paths), kept in
        model order. None: every alias the model declares (Net1: H1..H12; Net2: D1..D3).
    vae : InfoVAE or None
        Unfitted template (its hyperparameters are used; a fitted copy is stored in
        ``vae_``). None: ``InfoVAE(device=device, seed=seed)``.
    estimator : ErrorEstimator or None
        Likewise for the error estimator.
    output : {"auto", "sigmoid", "softmax"}
        How the classifier's logits become ``y_hat`` for the error ``e``; "auto" reads the
        model's ``output`` attribute (``"sigmoid"`` for Pardo's nets, else softmax).
    batch_size : int, default 256
        Batch size for forward passes through the classifier.
    device : str, default "cpu"
    seed : int, default 0

    Attributes
    ----------
    vae_ : InfoVAE
    estimator_ : ErrorEstimator
    layers_ : list of str
        The layers in model order.
    layer_slices_ : dict of str to slice
        Where each layer's units sit in the concatenated vector ``h``.
    classes_ : ndarray of shape (n_classes,)
        Class indices seen by :meth:`fit`.
    codes_ : ndarray of shape (n_samples, 2)
        ``z`` of the fitting data; ``labels_`` their labels; ``errors_`` their ``e``;
        ``preds_`` the classifier's answers (when fitted from logits).
    class_means_ : ndarray of shape (n_classes, n_features_in_)
        Mean hidden state of each class.
    expected_codes_ : ndarray of shape (n_classes, 2)
        ``E[z | H_k]`` (Eq. 8) with the default KDE settings of :meth:`expected_codes`
        (absent when a class's codes lie outside the KDE's window).
    expected_activations_ : ndarray of shape (n_classes, n_features_in_)
        ``decode(expected_codes_)`` (Eq. 9): what :meth:`unit_order`,
        :meth:`unit_assignment` and :meth:`brainbow` use unless given ``expected=``.

    Notes
    -----
    :func:`sklearn.base.clone` gives an unfitted copy that shares ``model`` (the trained
    classifier is an input of the map, not state of it) and clones ``vae`` and
    ``estimator``.
    """

    _fitted_attr = "vae_"

    def __init__(
        self,
        model=None,
        layers: Sequence[str] | None = None,
        *,
        vae: InfoVAE | None = None,
        estimator: ErrorEstimator | None = None,
        output: str = "auto",
        batch_size: int = 256,
        device: str = "cpu",
        seed: int = 0,
    ):
        self.model = model
        self.layers = layers
        self.vae = vae
        self.estimator = estimator
        self.output = output
        self.batch_size = batch_size
        self.device = device
        self.seed = seed

    def __sklearn_clone__(self) -> SelfIntrospector:
        params = {
            k: sklearn.base.clone(v, safe=False)
            for k, v in self.get_params(deep=False).items()
            if k != "model"
        }
        return type(self)(model=self.model, **params)

    # ---------------------------------------------------------------- classifier side
    def _model_layers(self) -> list[str]:
        if self.model is None:
            raise ValueError(
                "this SelfIntrospector has no model: pass model=... or use fit_hidden()"
            )
        from ..models import resolve_layer

        names = list(self.layers) if self.layers is not None else None
        if names is None:
            aliases = getattr(self.model, "layer_aliases", None)
            if not aliases:
                raise ValueError("layers=None needs a model with layer_aliases; pass layers=[...]")
            names = list(aliases)
        paths = [resolve_layer(self.model, n) for n in names]
        position = {p: i for i, (p, _) in enumerate(self.model.named_modules())}
        return [n for _, n in sorted(zip([position[p] for p in paths], names))]

    def _output_kind(self) -> str:
        if self.output != "auto":
            return self.output
        return "sigmoid" if getattr(self.model, "output", "logits") == "sigmoid" else "softmax"

    def hidden(self, inputs) -> dict[str, np.ndarray]:
        """Per-layer hidden states of ``inputs`` (images in [0, 1], shape (N, C, H, W))."""
        return self._hidden(_as_images(inputs, "SelfIntrospector.hidden"))

    def _hidden(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        from ..capture import activations

        layers = getattr(self, "layers_", None) or self._model_layers()
        return activations(
            self.model, x, layers, reducer="flatten", batch_size=self.batch_size, device=self.device
        )

    def _logits(self, x: torch.Tensor) -> np.ndarray:
        from ..attacks import predict

        return to_numpy(predict(self.model, x, batch_size=self.batch_size, device=self.device))

    # ---------------------------------------------------------------------- fitting
    def fit(self, X, y=None, *, progress: bool = False) -> SelfIntrospector:
        """Capture the hidden layers of ``X`` and fit the map and the estimator.

        Parameters
        ----------
        X : dataset with ``.tensors()`` or Tensor of shape (N, C, H, W) in [0, 1]
        y : array-like of shape (N,) or None
            Labels; taken from the dataset when None.
        progress : bool, default False
            Show progress bars over the epochs of the InfoVAE and the estimator.

        Returns
        -------
        self
        """
        x, labels = _images_and_labels(X, y, "SelfIntrospector.fit")
        self.layers_ = self._model_layers()
        hidden = self._hidden(x)
        logits = self._logits(x)
        check_labels(labels, logits.shape[1], where="SelfIntrospector.fit")
        return self.fit_hidden(
            hidden, labels, logits=logits, output=self._output_kind(), progress=progress
        )

    def fit_hidden(
        self,
        hidden,
        labels,
        *,
        logits=None,
        errors=None,
        output: str = "sigmoid",
        progress: bool = False,
    ) -> SelfIntrospector:
        """Fit from hidden states already captured.

        Parameters
        ----------
        hidden : dict of str to ndarray of shape (N, D_l), or ndarray of shape (N, D)
            One array per layer, in model order (a dict keeps its order unless
            ``layers`` was given), or the concatenated vector.
        labels : array-like of shape (N,)
        logits : array-like of shape (N, n_classes), optional
            The classifier's outputs, used for ``e`` (see :func:`classifier_error`).
        errors : array-like of shape (N,), optional
            ``e`` directly; one of ``logits`` and ``errors`` is required.
        output : str
            Passed to :func:`classifier_error`.
        progress : bool, default False
            Show progress bars over the epochs of the InfoVAE and the estimator.

        Returns
        -------
        self
        """
        where = "SelfIntrospector.fit_hidden"
        H, layout = _concat_hidden(hidden, self.layers if isinstance(hidden, Mapping) else None)
        check_finite(H, where=where, what="hidden states")
        if errors is None and logits is not None:
            logits = np.asarray(to_numpy(logits))
            if logits.ndim != 2:
                raise ValueError(
                    f"{where}: logits must have shape (N, n_classes); got {logits.shape}"
                )
            check_finite(logits, where=where, what="logits")
        n_classes = logits.shape[1] if errors is None and logits is not None else None
        labels = check_labels(labels, n_classes, where=where)
        if labels.shape[0] != H.shape[0]:
            raise ValueError(f"hidden has {H.shape[0]} rows but labels has {labels.shape[0]}")
        if errors is None:
            if logits is None:
                raise ValueError("pass logits=... (the classifier outputs) or errors=...")
            errors = classifier_error(logits, labels, output)
            preds = np.asarray(to_numpy(logits)).argmax(1)
        else:
            preds = None
        errors = np.asarray(to_numpy(errors), dtype=np.float64).reshape(-1)
        self.layers_ = layout.names
        self.layer_slices_ = dict(layout.slices)
        self.n_features_in_ = layout.total
        # (1) the classifier is already trained; (2) the autoencoder on frozen h;
        # (3) the estimator on frozen z: numpy arrays between the stages stop gradients.
        vae = self.vae if self.vae is not None else InfoVAE(device=self.device, seed=self.seed)
        self.vae_ = sklearn.base.clone(vae).fit(H, progress=progress)
        Z = self.vae_.encode(H)
        est = (
            self.estimator
            if self.estimator is not None
            else ErrorEstimator(device=self.device, seed=self.seed)
        )
        self.estimator_ = sklearn.base.clone(est).fit(Z, errors, progress=progress)
        self.codes_ = Z
        self.labels_ = labels
        self.errors_ = errors
        if preds is not None:
            self.preds_ = preds
        else:
            self.__dict__.pop("preds_", None)  # a refit from errors has no answers
        self.classes_ = np.unique(labels)
        self.class_means_ = np.stack([H[labels == k].mean(0) for k in self.classes_])
        for stale in ("expected_codes_", "expected_activations_"):
            self.__dict__.pop(stale, None)
        try:
            ez = self.expected_codes()
        except ValueError:  # codes outside the KDE's window: expected_codes() says so on use
            return self
        self.expected_codes_ = ez
        self.expected_activations_ = self.vae_.decode(ez)
        return self

    # ------------------------------------------------------------------ using the map
    def concat(self, hidden) -> np.ndarray:
        """Concatenate per-layer arrays in the fitted layout: (N, D)."""
        check_is_fitted(self, "vae_")
        if isinstance(hidden, Mapping):
            H, _ = _concat_hidden(hidden, self.layers_)
            return H
        H = np.asarray(to_numpy(hidden), dtype=np.float32)
        _check_2d(H, "hidden", self.n_features_in_)
        return H

    def encode_hidden(self, hidden) -> np.ndarray:
        """``z`` of hidden states (dict per layer or concatenated), shape (N, 2)."""
        return self.vae_.encode(self.concat(hidden))

    def transform(self, X) -> np.ndarray:
        """``z`` of input images, shape (N, 2)."""
        check_is_fitted(self, "vae_")
        return self.encode_hidden(self._hidden(_as_images(X, "SelfIntrospector.transform")))

    def analyze(self, X) -> dict:
        """Everything the map says about input images, in one forward pass.

        Returns
        -------
        dict with ``z`` (N, 2), ``log10_error_hat`` (N,), ``confidence`` (N,),
        ``logits`` (N, n_classes), ``pred`` (N,) and ``hidden`` (N, D) concatenated.
        """
        check_is_fitted(self, "vae_")
        x = _as_images(X, "SelfIntrospector.analyze")
        H = self.concat(self._hidden(x))
        z = self.vae_.encode(H)
        log_e = self.estimator_.predict_log10(z)
        logits = self._logits(x)
        return {
            "z": z,
            "log10_error_hat": log_e,
            "confidence": -log_e,
            "logits": logits,
            "pred": logits.argmax(1),
            "hidden": H,
        }

    def estimate_error(self, Z) -> np.ndarray:
        """``e_hat(z)`` for codes, shape (N,)."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(Z)

    def confidence(self, Z) -> np.ndarray:
        """``c = -log10 e_hat(z)`` for codes, shape (N,)."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.confidence(Z)

    def embed_trajectory(self, inputs) -> np.ndarray:
        """``z`` along a sequence of inputs (a noise sweep, an attack's steps).

        Parameters
        ----------
        inputs : Tensor of shape (..., C, H, W)
            Any leading shape, e.g. (N, steps + 1, C, H, W) from
            :func:`introspect.attacks.iterative_fgsm` or (n_draws, N, C, H, W) from
            :func:`introspect.attacks.awgn`.

        Returns
        -------
        Z : ndarray of shape (..., 2)
        """
        check_is_fitted(self, "vae_")
        x = torch.as_tensor(inputs) if not isinstance(inputs, torch.Tensor) else inputs
        if x.ndim < 4:
            raise ValueError(f"inputs must have shape (..., C, H, W); got {tuple(x.shape)}")
        lead = tuple(x.shape[:-3])
        flat = _as_images(x.reshape(-1, *x.shape[-3:]), "SelfIntrospector.embed_trajectory")
        z = self.encode_hidden(self._hidden(flat))
        return z.reshape(*lead, z.shape[-1])

    # --------------------------------------------------------------- unit reordering
    def expected_codes(
        self, *, extent: float = 4.0, grid_size: int = 201, bandwidth=None, normalize=True
    ) -> np.ndarray:
        """``E[z | H_k]`` for every class by KDE + Riemann sum (Eq. 8), shape (K, 2).

        The KDE lives on the grid ``[-extent, extent]^2``. Codes outside it lose their
        mass, so a class whose codes leave the window gets an ``E[z | H_k]`` pulled toward
        it: a :class:`KDEWindowWarning` says how many codes lie outside (overall and for
        the worst class) and which ``extent`` holds them all.
        """
        check_is_fitted(self, "vae_")
        fracs = {k: outside_fraction(self.codes_[self.labels_ == k], extent) for k in self.classes_}
        worst = max(fracs, key=fracs.get)
        if fracs[worst] > KDE_OUTSIDE_TOLERANCE:
            warnings.warn(
                f"{outside_fraction(self.codes_, extent):.1%} of the codes (of class {worst!r}: "
                f"{fracs[worst]:.1%}) lie outside the KDE window [-{extent:g}, {extent:g}]^2 of "
                "expected_codes, so E[z | H_k] is pulled toward the window and the unit order "
                "and brainbow built on it are off; pass "
                f"extent={suggested_extent(self.codes_, bandwidth):g} "
                "to expected_codes / expected_activations (it holds every code and its kernel).",
                KDEWindowWarning,
                stacklevel=2,
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KDEWindowWarning)  # said once above, for all classes
            return np.stack(
                [
                    kde_expectation(
                        self.codes_[self.labels_ == k],
                        extent=extent,
                        grid_size=grid_size,
                        bandwidth=bandwidth,
                        normalize=normalize,
                    )
                    for k in self.classes_
                ]
            )

    def expected_activations(self, **kde_kwargs) -> np.ndarray:
        """``E[h | H_k] ~ decode(E[z | H_k])`` (Eq. 9), shape (K, D).

        Keyword arguments go to :meth:`expected_codes`. Without any, this is
        ``expected_activations_`` (computed by ``fit``). Pass the result as
        ``expected=`` to :meth:`unit_order`, :meth:`unit_assignment` and
        :meth:`brainbow` to use other KDE settings there.
        """
        check_is_fitted(self, "vae_")
        if not kde_kwargs and "expected_activations_" in self.__dict__:
            return self.expected_activations_
        return self.vae_.decode(self.expected_codes(**kde_kwargs))

    def _expected_or_compute(self, expected):
        if expected is not None:
            E = np.asarray(expected, dtype=np.float64)
            if E.ndim != 2 or E.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"expected must have shape (n_classes, {self.n_features_in_}); got {E.shape}"
                )
            return E
        return self.expected_activations()

    def unit_order(self, expected=None) -> dict[str, np.ndarray]:
        """Per layer, the permutation of its units by preferred class then strength.

        Parameters
        ----------
        expected : ndarray of shape (K, D), optional
            ``E[h | H_k]``; default :meth:`expected_activations`. Pass
            ``class_means_`` to order by the plain class means instead.

        Returns
        -------
        dict of layer name to ndarray of shape (D_l,): local unit indices.
        """
        check_is_fitted(self, "vae_")
        E = self._expected_or_compute(expected)
        return {n: order_units(E[:, s])[0] for n, s in self.layer_slices_.items()}

    def unit_assignment(self, expected=None) -> dict[str, np.ndarray]:
        """Per layer, ``argmax_k E[h_i | H_k]`` for every unit (original order), as class labels."""
        check_is_fitted(self, "vae_")
        E = self._expected_or_compute(expected)
        return {n: self.classes_[order_units(E[:, s])[1]] for n, s in self.layer_slices_.items()}

    def reorder(self, H, expected=None) -> np.ndarray:
        """Concatenated vectors with each layer's units in :meth:`unit_order`, (N, D)."""
        order = self.global_order(expected)
        return np.asarray(H)[..., order]

    def global_order(self, expected=None) -> np.ndarray:
        """One permutation of all D units: every layer reordered in place, shape (D,)."""
        orders = self.unit_order(expected)
        return np.concatenate(
            [self.layer_slices_[n].start + orders[n] for n in self.layers_]
        ).astype(np.int64)

    def brainbow(self, colors=None, expected=None, normalize: bool = True) -> dict[str, np.ndarray]:
        """Per layer, the brainbow colour of every unit (Eq. 11), original order.

        Parameters
        ----------
        colors : array-like of shape (K, 3), optional
            One RGB in [0, 1] per class; default :func:`default_class_colors`.
        expected : ndarray of shape (K, D), optional
        normalize : bool, default True
            See :func:`brainbow_colors`; each layer is scaled on its own.

        Returns
        -------
        dict of layer name to ndarray of shape (D_l, 3)
        """
        check_is_fitted(self, "vae_")
        E = self._expected_or_compute(expected)
        return {
            n: brainbow_colors(E[:, s], colors, normalize=normalize)
            for n, s in self.layer_slices_.items()
        }


def _as_images(X, where: str = "SelfIntrospector") -> torch.Tensor:
    """Float images in [0, 1] of shape (N, C, H, W) from a tensor, an array or a dataset."""
    if hasattr(X, "tensors") and not isinstance(X, torch.Tensor):
        X = X.tensors()[0]
    x = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))
    if x.ndim != 4:
        raise ValueError(
            f"{where}: inputs must be images of shape (N, C, H, W); got {tuple(x.shape)}"
        )
    check_images(x, where=where)  # before the cast: uint8 images must not pass as floats
    return x.float()


def _images_and_labels(X, y, where: str):
    if hasattr(X, "tensors") and not isinstance(X, torch.Tensor):
        x, labels = X.tensors()
        x = _as_images(x, where)
        if y is not None:
            labels = y
    else:
        x = _as_images(X, where)
        if y is None:
            raise ValueError("pass labels y=... with an image tensor (or pass a dataset)")
        labels = y
    labels = check_labels(labels, where=where)
    if labels.shape[0] != x.shape[0]:
        raise ValueError(f"{where}: {x.shape[0]} images but {labels.shape[0]} labels")
    return x, labels


# ----------------------------------------------------------------- training record


class TrainingRecorder:
    """A ``fit_classifier`` callback that records hidden states of fixed inputs each cycle.

    Parameters
    ----------
    inputs : Tensor of shape (N, C, H, W)
        The fixed inputs (the paper's Fig. 2a uses a few hundred digits).
    layers : sequence of str
        Hidden layers to record (concatenated in the given order).
    labels : array-like of shape (N,), optional
        Stored alongside for colouring.
    every : int, default 1
        Record every ``every``-th epoch (cycle).
    device : str, default "cpu"

    Attributes
    ----------
    epochs_ : list of int
    hidden_ : list of ndarray of shape (N, D)
    preds_ : list of ndarray of shape (N,)

    Use :meth:`record` with a model to add the state before training (epoch -1), pass
    the recorder as ``callback=`` to :func:`introspect.training.fit_classifier`, then
    :meth:`stacked` gives an (n_epochs, N, D) array for one :class:`InfoVAE` over the
    whole record.
    """

    def __init__(self, inputs, layers, labels=None, every: int = 1, device: str = "cpu"):
        self.inputs = inputs
        self.layers = layers
        self.labels = labels
        self.every = every
        self.device = device

    def record(self, epoch: int, model) -> None:
        """Add the hidden states and answers of the fixed inputs under ``model`` now."""
        from ..attacks import predict
        from ..capture import activations

        x = _as_images(self.inputs, "TrainingRecorder")
        was_training = model.training
        model.eval()
        try:
            acts = activations(model, x, list(self.layers), reducer="flatten", device=self.device)
            logits = to_numpy(predict(model, x, device=self.device))
        finally:
            model.train(was_training)
        H, _ = _concat_hidden(acts, list(self.layers))
        if "hidden_" not in self.__dict__:  # the first record starts the lists
            self.epochs_, self.hidden_, self.preds_ = [], [], []
        self.epochs_.append(int(epoch))
        self.hidden_.append(H)
        self.preds_.append(logits.argmax(1))

    def __call__(self, epoch: int, model, history=None) -> None:
        if int(epoch) % int(self.every) == 0:
            self.record(epoch, model)

    def stacked(self) -> np.ndarray:
        """All records, shape (n_records, N, D)."""
        if not getattr(self, "hidden_", None):
            raise ValueError(
                "nothing recorded yet: pass the recorder as callback= to fit_classifier"
            )
        return np.stack(self.hidden_)
