"""Self-introspection (Pardo et al. 2022, "Coloring the black box").

The hidden layers of a trained classifier are concatenated into one vector ``h`` per
input; an InfoVAE maps ``h`` to a 2-D code ``z`` whose marginal is pushed towards
``N(0, I)`` (maximum mean discrepancy with a Gaussian kernel), and an error estimator
regresses ``log10 e`` on ``z``, with ``e = 1/2 ||y - y_hat||^2`` the classifier's squared
error. The three parts are trained in that order, each on the frozen output of the
previous one (the paper's "gradients stopped between them").

On top of the map:

- :meth:`SelfIntrospector.expected_codes` and :meth:`~SelfIntrospector.expected_activations`:
  ``E[z | H_k]`` by a Gaussian KDE evaluated on a grid over ``[-4, 4]^2`` and summed
  as a Riemann sum (Eq. 8), decoded to ``E[h | H_k]`` (Eq. 9);
- :meth:`~SelfIntrospector.unit_order`: every layer's units sorted by
  ``argmax_k E[h_i | H_k]`` (Eq. 10), then by strength;
- :meth:`~SelfIntrospector.brainbow`: a colour per unit, ``(1/K) sum_k c_k E[h_i | H_k]``
  (Eq. 11);
- :meth:`~SelfIntrospector.embed_trajectory`: ``z`` along a noise sweep, an attack or
  training (see :class:`TrainingRecorder`).

The array-level pieces (:class:`InfoVAE`, :class:`ErrorEstimator`,
:func:`kde_expectation`, :func:`order_units`, :func:`brainbow_colors`,
:meth:`SelfIntrospector.fit_hidden`) take plain arrays, so they work with hidden states
from any source.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ._checks import check_finite, check_images, check_labels
from ._selfintro_nets import elu_mlp, gaussian_mmd, train_minibatches
from ._utils import check_is_fitted, resolve_device, to_numpy

__all__ = [
    "InfoVAE",
    "ErrorEstimator",
    "SelfIntrospector",
    "TrainingRecorder",
    "classifier_error",
    "kde_density",
    "kde_expectation",
    "order_units",
    "brainbow_colors",
    "default_class_colors",
]

# d3's category10 palette as RGB in [0, 1] (the usual 10-class colours).
_CATEGORY10 = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _hex_to_rgb(h: str) -> tuple[float, float, float]:
    h = h.lstrip("#")
    return tuple(int(h[i : i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def default_class_colors(n_classes: int) -> np.ndarray:
    """One RGB colour per class, shape (n_classes, 3) in [0, 1].

    Up to 10 classes: d3's category10; more: evenly spaced hues at full saturation.
    """
    if n_classes <= len(_CATEGORY10):
        return np.array([_hex_to_rgb(c) for c in _CATEGORY10[:n_classes]])
    return np.array([colorsys.hsv_to_rgb(k / n_classes, 0.85, 0.95) for k in range(n_classes)])


def _as_float_tensor(a) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().to("cpu", torch.float32)
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def _check_2d(a: np.ndarray | torch.Tensor, name: str, n_features: int | None = None):
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {tuple(a.shape)}")
    if n_features is not None and a.shape[1] != n_features:
        raise ValueError(
            f"{name} has {a.shape[1]} features but the model was fitted on {n_features}"
        )


def _batched_apply(module: torch.nn.Module, x: torch.Tensor, device, batch_size=4096):
    out = []
    with torch.no_grad():
        for s in range(0, x.shape[0], batch_size):
            out.append(module(x[s : s + batch_size].to(device)).cpu())
    if not out:
        return torch.zeros(0)
    return torch.cat(out)


# --------------------------------------------------------------------------- InfoVAE


class _AutoEncoder(torch.nn.Module):
    def __init__(self, n_in: int, hidden: Sequence[int], latent_dim: int):
        super().__init__()
        self.encoder = elu_mlp(n_in, hidden, latent_dim)
        self.decoder = elu_mlp(latent_dim, hidden, n_in)


class InfoVAE:
    """MMD-regularised autoencoder (InfoVAE / MMD-VAE) of hidden-state vectors.

    Encoder ``D -> hidden ELU -> latent_dim`` (linear), decoder the mirror image, loss
    ``1/2 ||h_hat - h||^2 / D + mmd_weight * MMD^2(z, N(0, I))`` (on scaled ``h``, see ``scale``) with a Gaussian kernel
    ``exp(-||a - b||^2 / kernel_width2)``. The code is deterministic, as in Table 2 of the
    paper (a 2x1 linear bottleneck); the MMD term alone makes the code distribution
    close to the standard normal, which is what the KDE on ``[-4, 4]^2`` relies on.

    Parameters
    ----------
    latent_dim : int, default 2
        Size of the code ``z``.
    hidden : sequence of int, default (200, 200, 200)
        ELU widths of the encoder (the decoder uses them reversed).
    mmd_weight : float, default 10.0
        Weight of the MMD term. The reconstruction term is averaged over units, so the
        balance does not depend on the number of hidden units. With weight 1 the
        reconstruction wins and the codes drift far from ``N(0, I)`` (where the kernel's
        gradient vanishes); 10 keeps them within the ``[-4, 4]^2`` window of the KDE.
    kernel_width2 : float or None, default None
        ``2 sigma^2`` of the Gaussian kernel; None uses ``2 * latent_dim`` (sigma^2 = 2
        for a 2-D code: wide enough to pull in codes that start far from the prior).
    scale : {"global", "unit", None}, default "global"
        How ``h`` is scaled before encoding (and scaled back when decoding).
        ``"global"``: centred per unit and divided by one number, the overall standard
        deviation, so the units keep their relative weights in the loss (as in the
        paper, which uses the raw activations) while the balance between reconstruction
        and MMD no longer depends on the activations' magnitude (ELU layers of a conv
        net reach hundreds; unscaled, the reconstruction swamps the MMD and the codes
        leave the prior's window). ``"unit"``: per-unit z-scores. None: raw ``h``.
    epochs, batch_size, lr : training schedule (Adam). The paper uses batch 128.
    clr : dict or None
        Triangular cyclic learning rate ``dict(base_lr=, max_lr=, step_size=)``
        (``step_size`` in iterations, half a cycle); None keeps ``lr`` constant.
    device : str, default "cpu"
    seed : int, default 0
        Seeds the initial weights, the minibatch order and the prior samples.
    progress : bool, default False
        Show a progress bar over epochs.

    Attributes
    ----------
    module_ : torch.nn.Module
        ``encoder`` and ``decoder`` (on ``device``, eval mode).
    mean_, scale_ : ndarray of shape (n_features,)
        ``(h - mean_) / scale_`` is what the autoencoder sees.
    history_ : dict of list of float
        Per epoch: ``loss``, ``recon`` and ``mmd``.
    n_features_in_ : int
    """

    def __init__(
        self,
        latent_dim: int = 2,
        hidden: Sequence[int] = (200, 200, 200),
        mmd_weight: float = 10.0,
        kernel_width2: float | None = None,
        scale: str | None = "global",
        epochs: int = 100,
        batch_size: int = 128,
        lr: float = 1e-3,
        clr: dict | None = None,
        device: str = "cpu",
        seed: int = 0,
        progress: bool = False,
    ):
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.mmd_weight = mmd_weight
        self.kernel_width2 = kernel_width2
        self.scale = scale
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.clr = clr
        self.device = device
        self.seed = seed
        self.progress = progress

    def fit(self, H, y=None) -> InfoVAE:
        """Fit on hidden-state vectors.

        Parameters
        ----------
        H : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
        """
        H = _as_float_tensor(H)
        _check_2d(H, "H")
        check_finite(H, where="InfoVAE.fit", what="hidden states H")
        dev = resolve_device(self.device)
        d = int(H.shape[1])
        if self.scale == "unit":
            mean = H.mean(0)
            scale = H.std(0)
            scale = torch.where(scale > 1e-8, scale, torch.ones_like(scale))
        elif self.scale == "global":
            mean = H.mean(0)
            total = float((H - mean).pow(2).mean().sqrt())
            scale = torch.full((d,), total if total > 1e-8 else 1.0)
        elif self.scale is None:
            mean, scale = torch.zeros(d), torch.ones(d)
        else:
            raise ValueError(f"scale must be 'global', 'unit' or None; got {self.scale!r}")
        Hs = (H - mean) / scale
        width2 = float(self.kernel_width2 or 2 * self.latent_dim)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            module = _AutoEncoder(d, self.hidden, self.latent_dim).to(dev)
        gen = torch.Generator().manual_seed(self.seed)
        prior_gen = torch.Generator().manual_seed(self.seed + 1)
        mmd_weight = float(self.mmd_weight)
        latent = int(self.latent_dim)

        def loss_fn(h):
            z = module.encoder(h)
            h_hat = module.decoder(z)
            recon = 0.5 * (h_hat - h).pow(2).sum(1).mean() / d
            prior = torch.randn(h.shape[0], latent, generator=prior_gen).to(h.device)
            mmd = gaussian_mmd(z, prior, width2)
            return {"loss": recon + mmd_weight * mmd, "recon": recon, "mmd": mmd}

        self.history_ = train_minibatches(
            module,
            [Hs],
            loss_fn,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            clr=self.clr,
            generator=gen,
            device=dev,
            progress=self.progress,
            desc="InfoVAE",
        )
        self.module_ = module
        self.mean_ = mean.numpy()
        self.scale_ = scale.numpy()
        self.n_features_in_ = d
        return self

    def encode(self, H) -> np.ndarray:
        """Codes of hidden-state vectors.

        Parameters
        ----------
        H : array-like of shape (n_samples, n_features)

        Returns
        -------
        Z : ndarray of shape (n_samples, latent_dim)
        """
        check_is_fitted(self, "module_")
        H = _as_float_tensor(H)
        _check_2d(H, "H", self.n_features_in_)
        Hs = (H - torch.from_numpy(self.mean_)) / torch.from_numpy(self.scale_)
        dev = resolve_device(self.device)
        return _batched_apply(self.module_.encoder, Hs, dev).reshape(-1, self.latent_dim).numpy()

    transform = encode

    def decode(self, Z) -> np.ndarray:
        """Hidden-state vectors decoded from codes.

        Parameters
        ----------
        Z : array-like of shape (n_samples, latent_dim)

        Returns
        -------
        H_hat : ndarray of shape (n_samples, n_features), on the scale of the input
        """
        check_is_fitted(self, "module_")
        Z = _as_float_tensor(Z)
        _check_2d(Z, "Z", self.latent_dim)
        dev = resolve_device(self.device)
        out = _batched_apply(self.module_.decoder, Z, dev).reshape(-1, self.n_features_in_)
        return (out * torch.from_numpy(self.scale_) + torch.from_numpy(self.mean_)).numpy()

    def reconstruction_error(self, H) -> np.ndarray:
        """Per-sample ``1/2 ||decode(encode(h)) - h||^2 / D`` in the units of ``h``, (n_samples,)."""
        H = np.asarray(to_numpy(H), dtype=np.float32)
        R = self.decode(self.encode(H))
        return 0.5 * ((R - H) ** 2).sum(1) / H.shape[1]


# ------------------------------------------------------------------ error estimator


class ErrorEstimator:
    """Regressor of ``log10 e`` on the codes ``z`` (Table 2: 3 x 200 ELU, linear output).

    Parameters
    ----------
    hidden : sequence of int, default (200, 200, 200)
    floor : float, default 1e-8
        Errors below ``floor`` are clipped to it before the logarithm (a saturated sigmoid
        net can reach e = 0 exactly).
    epochs, batch_size, lr, clr, device, seed, progress : as for :class:`InfoVAE`
        (the paper trains the estimator with minibatches of 32).

    Attributes
    ----------
    module_ : torch.nn.Module
    target_mean_, target_scale_ : float
        The regression target ``log10 e`` is standardised with these while training;
        predictions are on the original ``log10`` scale.
    history_ : dict with ``loss`` per epoch (``1/2`` squared error, standardised units)
    n_features_in_ : int
    """

    def __init__(
        self,
        hidden: Sequence[int] = (200, 200, 200),
        floor: float = 1e-8,
        epochs: int = 100,
        batch_size: int = 32,
        lr: float = 1e-3,
        clr: dict | None = None,
        device: str = "cpu",
        seed: int = 0,
        progress: bool = False,
    ):
        self.hidden = hidden
        self.floor = floor
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.clr = clr
        self.device = device
        self.seed = seed
        self.progress = progress

    def fit(self, Z, e) -> ErrorEstimator:
        """Fit ``log10 e_hat(z)``.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_features)
            Codes from :meth:`InfoVAE.encode`.
        e : array-like of shape (n_samples,)
            The classifier's error ``1/2 ||y - y_hat||^2`` (not its logarithm), >= 0.

        Returns
        -------
        self
        """
        Z = _as_float_tensor(Z)
        _check_2d(Z, "Z")
        check_finite(Z, where="ErrorEstimator.fit", what="codes Z")
        e = np.asarray(to_numpy(e), dtype=np.float64).reshape(-1)
        if e.shape[0] != Z.shape[0]:
            raise ValueError(f"Z has {Z.shape[0]} rows but e has {e.shape[0]} values")
        if np.any(e < 0) or not np.all(np.isfinite(e)):
            bad = int(np.sum(~(np.isfinite(e) & (e >= 0))))
            raise ValueError(
                f"ErrorEstimator.fit: e must be finite and >= 0 (it is 1/2 ||y - y_hat||^2); "
                f"{bad} value(s) are not: drop or repair those rows first."
            )
        t = np.log10(np.maximum(e, self.floor))
        self.target_mean_ = float(t.mean())
        self.target_scale_ = float(t.std()) if t.std() > 1e-12 else 1.0
        T = torch.from_numpy(((t - self.target_mean_) / self.target_scale_).astype(np.float32))
        dev = resolve_device(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            module = elu_mlp(int(Z.shape[1]), self.hidden, 1).to(dev)
        gen = torch.Generator().manual_seed(self.seed)

        def loss_fn(z, target):
            pred = module(z).squeeze(1)
            return {"loss": 0.5 * (pred - target).pow(2).mean()}

        self.history_ = train_minibatches(
            module,
            [Z, T],
            loss_fn,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            clr=self.clr,
            generator=gen,
            device=dev,
            progress=self.progress,
            desc="ErrorEstimator",
        )
        self.module_ = module
        self.n_features_in_ = int(Z.shape[1])
        return self

    def predict_log10(self, Z) -> np.ndarray:
        """``log10 e_hat(z)``, shape (n_samples,)."""
        check_is_fitted(self, "module_")
        Z = _as_float_tensor(Z)
        _check_2d(Z, "Z", self.n_features_in_)
        out = _batched_apply(self.module_, Z, resolve_device(self.device)).reshape(-1).numpy()
        return out * self.target_scale_ + self.target_mean_

    def predict(self, Z) -> np.ndarray:
        """Estimated error ``e_hat(z)`` (not its logarithm), shape (n_samples,)."""
        return 10.0 ** self.predict_log10(Z)

    def confidence(self, Z) -> np.ndarray:
        """Confidence ``c = -log10 e_hat(z)`` (the paper's Sec. 2.7), shape (n_samples,)."""
        return -self.predict_log10(Z)


# ----------------------------------------------------------------- array-level maths


def classifier_error(logits, labels, output: str = "sigmoid") -> np.ndarray:
    """The classifier's per-sample error ``e = 1/2 ||y - y_hat||^2``.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_classes)
        Pre-activation outputs.
    labels : array-like of shape (n_samples,)
        Integer class labels; ``y`` is their one-hot vector.
    output : {"sigmoid", "softmax", "logits", "probs"}
        How ``y_hat`` is obtained from ``logits``: the sigmoid of each output (the
        paper's nets), a softmax (``"logits"`` means the same: a cross-entropy net), or
        ``"probs"`` when the values already are ``y_hat``.

    Returns
    -------
    e : ndarray of shape (n_samples,)
    """
    z = torch.as_tensor(np.asarray(to_numpy(logits), dtype=np.float64))
    if z.ndim != 2:
        raise ValueError(
            f"classifier_error: logits must have shape (n_samples, n_classes); got {tuple(z.shape)}"
        )
    y = check_labels(labels, z.shape[1], where="classifier_error")
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"logits has {z.shape[0]} rows but labels has {y.shape[0]}")
    if output == "sigmoid":
        p = torch.sigmoid(z)
    elif output in ("softmax", "logits"):
        p = torch.softmax(z, dim=1)
    elif output == "probs":
        p = z
    else:
        raise ValueError(
            f"output must be 'sigmoid', 'softmax', 'logits' or 'probs'; got {output!r}"
        )
    onehot = np.zeros(tuple(p.shape))
    onehot[np.arange(len(y)), y] = 1.0
    return 0.5 * ((onehot - p.numpy()) ** 2).sum(1)


def _grid(extent: float, grid_size: int) -> tuple[np.ndarray, float]:
    g = np.linspace(-extent, extent, int(grid_size))
    return g, float(g[1] - g[0])


def _scott_bandwidth(Z: np.ndarray, floor: float) -> float:
    n = Z.shape[0]
    spread = float(np.sqrt(np.mean(Z.var(0)))) if n > 1 else 0.0
    return max(spread * n ** (-1.0 / (Z.shape[1] + 4)), floor)


def kde_density(
    Z, *, extent: float = 4.0, grid_size: int = 201, bandwidth: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian KDE of 2-D codes on a square grid.

    Parameters
    ----------
    Z : array-like of shape (n_samples, 2)
    extent : float, default 4.0
        The grid covers ``[-extent, extent]^2``.
    grid_size : int, default 201
        Points per axis (spacing ``dz = 2 extent / (grid_size - 1)``).
    bandwidth : float or None
        Kernel standard deviation. None: Scott's rule on the pooled standard deviation,
        ``sigma n^(-1/6)``, never below the grid spacing (so a point mass still covers a
        few grid cells).

    Returns
    -------
    grid : ndarray of shape (grid_size,)
        Coordinates along each axis.
    density : ndarray of shape (grid_size, grid_size)
        ``density[i, j] = f_hat(grid[i], grid[j])``; it integrates to ~1 over the grid.
    """
    Z = np.asarray(to_numpy(Z), dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] != 2:
        raise ValueError(f"Z must have shape (n_samples, 2); got {Z.shape}")
    if Z.shape[0] == 0:
        raise ValueError("cannot estimate a density from 0 codes")
    g, dz = _grid(extent, grid_size)
    h = float(bandwidth) if bandwidth is not None else _scott_bandwidth(Z, dz)
    # The isotropic kernel factorises over the two axes: f = Phi_1^T Phi_2 / n.
    norm = 1.0 / (np.sqrt(2 * np.pi) * h)
    phi1 = norm * np.exp(-0.5 * ((g[None, :] - Z[:, :1]) / h) ** 2)  # (n, G)
    phi2 = norm * np.exp(-0.5 * ((g[None, :] - Z[:, 1:2]) / h) ** 2)
    return g, phi1.T @ phi2 / Z.shape[0]


def kde_expectation(
    Z,
    *,
    extent: float = 4.0,
    grid_size: int = 201,
    bandwidth: float | None = None,
    normalize: bool = True,
) -> np.ndarray:
    """``E[z]`` as the Riemann sum of ``z f_hat(z) dz^2`` over the grid (Eq. 8).

    Parameters
    ----------
    Z : array-like of shape (n_samples, 2)
    extent, grid_size, bandwidth : see :func:`kde_density`
    normalize : bool, default True
        Divide by the Riemann sum of ``f_hat dz^2`` (the KDE's mass inside the grid),
        which removes the bias of truncating the domain; False is Eq. 8 literally.

    Returns
    -------
    ez : ndarray of shape (2,)
        For codes well inside the grid this is their sample mean (a KDE has the mean of
        its sample); a point mass gives the point itself.
    """
    g, f = kde_density(Z, extent=extent, grid_size=grid_size, bandwidth=bandwidth)
    dz = g[1] - g[0]
    w = f * dz * dz
    mass = w.sum()
    ez = np.array([(g[:, None] * w).sum(), (g[None, :] * w).sum()])
    if normalize:
        if mass <= 0:
            raise ValueError(
                f"the codes lie outside the grid [-{extent}, {extent}]^2; widen `extent`"
            )
        ez = ez / mass
    return ez


def order_units(expected: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort units by their preferred class, then by strength (Eq. 10).

    Parameters
    ----------
    expected : ndarray of shape (n_classes, n_units)
        ``E[h_i | H_k]`` of one layer.

    Returns
    -------
    order : ndarray of shape (n_units,)
        Permutation: ``units[order]`` puts class 0's units first (strongest first), then
        class 1's, and so on.
    assignment : ndarray of shape (n_units,)
        ``argmax_k E[h_i | H_k]`` for every unit, in the original order.
    strength : ndarray of shape (n_units,)
        ``max_k E[h_i | H_k]``, in the original order.
    """
    E = np.asarray(expected, dtype=np.float64)
    if E.ndim != 2:
        raise ValueError(f"expected must have shape (n_classes, n_units); got {E.shape}")
    assignment = E.argmax(0)
    strength = E.max(0)
    order = np.lexsort((-strength, assignment))
    return order, assignment, strength


def brainbow_colors(expected: np.ndarray, colors=None, *, normalize: bool = True) -> np.ndarray:
    """Artificial brainbow (Eq. 11): ``alpha_i = (1/K) sum_k c_k E[h_i | H_k]``.

    Parameters
    ----------
    expected : ndarray of shape (n_classes, n_units)
        ``E[h_i | H_k]`` of one layer (use one call per layer so each layer is scaled on
        its own, as in the paper's figure).
    colors : array-like of shape (n_classes, 3) or None
        RGB in [0, 1], one per class; None uses :func:`default_class_colors`.
    normalize : bool, default True
        Clip negative values (inhibition has no colour) and divide by the layer's
        largest channel value, so the strongest unit is at full brightness and the
        result is a displayable RGB in [0, 1]. False returns Eq. 11 as it is.

    Returns
    -------
    rgb : ndarray of shape (n_units, 3)
        A unit driven by one class only has that class's hue; a unit driven equally by
        all classes has the mean colour (grey for a balanced palette).
    """
    E = np.asarray(expected, dtype=np.float64)
    if E.ndim != 2:
        raise ValueError(f"expected must have shape (n_classes, n_units); got {E.shape}")
    K = E.shape[0]
    C = default_class_colors(K) if colors is None else np.asarray(colors, dtype=np.float64)
    if C.shape != (K, 3):
        raise ValueError(f"colors must have shape ({K}, 3) (RGB per class); got {C.shape}")
    alpha = E.T @ C / K
    if not normalize:
        return alpha
    alpha = np.clip(alpha, 0.0, None)
    top = alpha.max()
    return alpha / top if top > 0 else alpha


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


class SelfIntrospector:
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
        ``z`` of the fitting data; ``labels_`` their labels; ``errors_`` their ``e``.
    """

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

    # ---------------------------------------------------------------- classifier side
    def _model_layers(self) -> list[str]:
        if self.model is None:
            raise ValueError(
                "this SelfIntrospector has no model: pass model=... or use fit_hidden()"
            )
        from .models import resolve_layer

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
        from .capture import activations

        layers = getattr(self, "layers_", None) or self._model_layers()
        return activations(
            self.model, x, layers, reducer="flatten", batch_size=self.batch_size, device=self.device
        )

    def _logits(self, x: torch.Tensor) -> np.ndarray:
        from .attacks import predict

        return to_numpy(predict(self.model, x, batch_size=self.batch_size, device=self.device))

    # ---------------------------------------------------------------------- fitting
    def fit(self, X, y=None) -> SelfIntrospector:
        """Capture the hidden layers of ``X`` and fit the map and the estimator.

        Parameters
        ----------
        X : dataset with ``.tensors()`` or Tensor of shape (N, C, H, W) in [0, 1]
        y : array-like of shape (N,) or None
            Labels; taken from the dataset when None.

        Returns
        -------
        self
        """
        x, labels = _images_and_labels(X, y, "SelfIntrospector.fit")
        self.layers_ = self._model_layers()
        hidden = self._hidden(x)
        logits = self._logits(x)
        check_labels(labels, logits.shape[1], where="SelfIntrospector.fit")
        return self.fit_hidden(hidden, labels, logits=logits, output=self._output_kind())

    def fit_hidden(
        self, hidden, labels, *, logits=None, errors=None, output: str = "sigmoid"
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
            self.preds_ = np.asarray(to_numpy(logits)).argmax(1)
        errors = np.asarray(to_numpy(errors), dtype=np.float64).reshape(-1)
        self.layers_ = layout.names
        self.layer_slices_ = dict(layout.slices)
        self.n_features_in_ = layout.total
        # (1) the classifier is already trained; (2) the autoencoder on frozen h;
        # (3) the estimator on frozen z: numpy arrays between the stages stop gradients.
        vae = self.vae if self.vae is not None else InfoVAE(device=self.device, seed=self.seed)
        self.vae_ = _clone(vae).fit(H)
        Z = self.vae_.encode(H)
        est = (
            self.estimator
            if self.estimator is not None
            else ErrorEstimator(device=self.device, seed=self.seed)
        )
        self.estimator_ = _clone(est).fit(Z, errors)
        self.codes_ = Z
        self.labels_ = labels
        self.errors_ = errors
        self.classes_ = np.unique(labels)
        self.class_means_ = np.stack([H[labels == k].mean(0) for k in self.classes_])
        self._expected = None
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
        """``E[z | H_k]`` for every class by KDE + Riemann sum (Eq. 8), shape (K, 2)."""
        check_is_fitted(self, "vae_")
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

        Keyword arguments go to :meth:`expected_codes`. The result is cached for
        :meth:`unit_order` and :meth:`brainbow` (the last call's arguments win).
        """
        ez = self.expected_codes(**kde_kwargs)
        self._expected = self.vae_.decode(ez)
        self.expected_codes_ = ez
        return self._expected

    def _expected_or_compute(self, expected):
        if expected is not None:
            E = np.asarray(expected, dtype=np.float64)
            if E.ndim != 2 or E.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"expected must have shape (n_classes, {self.n_features_in_}); got {E.shape}"
                )
            return E
        if getattr(self, "_expected", None) is None:
            self.expected_activations()
        return self._expected

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


def _clone(obj):
    """An unfitted copy with the same hyperparameters (scikit-learn's ``clone``)."""
    import inspect

    params = {
        k: getattr(obj, k) for k in inspect.signature(type(obj).__init__).parameters if k != "self"
    }
    return type(obj)(**params)


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
        self.epochs_: list[int] = []
        self.hidden_: list[np.ndarray] = []
        self.preds_: list[np.ndarray] = []

    def record(self, epoch: int, model) -> None:
        from .attacks import predict
        from .capture import activations

        x = _as_images(self.inputs, "TrainingRecorder")
        was_training = model.training
        model.eval()
        try:
            acts = activations(model, x, list(self.layers), reducer="flatten", device=self.device)
            logits = to_numpy(predict(model, x, device=self.device))
        finally:
            model.train(was_training)
        H, _ = _concat_hidden(acts, list(self.layers))
        self.epochs_.append(int(epoch))
        self.hidden_.append(H)
        self.preds_.append(logits.argmax(1))

    def __call__(self, epoch: int, model, history=None) -> None:
        if int(epoch) % int(self.every) == 0:
            self.record(epoch, model)

    def stacked(self) -> np.ndarray:
        """All records, shape (n_records, N, D)."""
        if not self.hidden_:
            raise ValueError(
                "nothing recorded yet: pass the recorder as callback= to fit_classifier"
            )
        return np.stack(self.hidden_)
