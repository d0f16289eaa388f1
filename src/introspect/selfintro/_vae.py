"""InfoVAE and error estimator of the self-introspective map (Pardo et al. 2022).

Private module of :mod:`introspect.selfintro`; the networks and the minibatch training
loop are in :mod:`introspect._selfintro_nets`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .._checks import check_finite
from .._estimator import Estimator
from .._selfintro_nets import elu_mlp, gaussian_mmd, train_minibatches
from .._utils import check_is_fitted, resolve_device, to_numpy

__all__ = ["InfoVAE", "ErrorEstimator"]


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

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(h))


class InfoVAE(Estimator):
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

    _fitted_attr = "module_"

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

    def fit(self, H, y=None, *, progress: bool = False) -> InfoVAE:
        """Fit on hidden-state vectors.

        Parameters
        ----------
        H : array-like of shape (n_samples, n_features)
        y : ignored
        progress : bool, default False
            Show a progress bar over epochs.

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
            progress=progress,
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


class ErrorEstimator(Estimator):
    """Regressor of ``log10 e`` on the codes ``z`` (Table 2: 3 x 200 ELU, linear output).

    Parameters
    ----------
    hidden : sequence of int, default (200, 200, 200)
    floor : float, default 1e-8
        Errors below ``floor`` are clipped to it before the logarithm (a saturated sigmoid
        net can reach e = 0 exactly).
    epochs, batch_size, lr, clr, device, seed : as for :class:`InfoVAE`
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

    _fitted_attr = "module_"

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
    ):
        self.hidden = hidden
        self.floor = floor
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.clr = clr
        self.device = device
        self.seed = seed

    def fit(self, Z, e, *, progress: bool = False) -> ErrorEstimator:
        """Fit ``log10 e_hat(z)``.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_features)
            Codes from :meth:`InfoVAE.encode`.
        e : array-like of shape (n_samples,)
            The classifier's error ``1/2 ||y - y_hat||^2`` (not its logarithm), >= 0.
        progress : bool, default False
            Show a progress bar over epochs.

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
            progress=progress,
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
