"""Self-organizing map on a torus, with QuickSOM's update rule and schedule.

The functional-telescope paper (Lee & Vijayan 2023) trained its SOMs with the QuickSOM
library (``sched="exp"``, ``periodic=True``, a cosine metric). :class:`ToroidalSOM`
reproduces that algorithm step for step, so that with the same initial weights and the
same batches it ends with the same weights (a test checks this against the ``quicksom``
package), but computes each batch update with two matrix products instead of the
``(batch, units, features)`` tensor QuickSOM materialises, which makes it much faster
and lets it run on large codes (8,192 features) with any batch size.

The algorithm, for step ``t`` (one batch ``X_b`` of ``B`` samples):

* ``s = t * batch_size`` counts the samples seen (QuickSOM adds ``batch_size`` even for a
  short last batch), ``T = n_samples * epochs``;
* ``f = exp(-5 s / T)`` (``decay="exp"``; ``"linear"``: ``1 - s/T``; ``"half"``:
  ``0.5 ** floor(20 s / T)``); ``alpha_t = alpha * f`` and ``sigma_t = sigma * f``;
* the BMU ``c(x)`` of each sample is the unit of smallest distance (cosine distance
  ``1 - cos`` or Euclidean) to the current weights;
* ``h[x, u] = alpha_t * exp(-d(c(x), u)**2 / (2 sigma_t**2 + 1e-5))`` with ``d`` the
  grid distance between units (on the torus when ``periodic``);
* all units move at once by the mean over the batch of their per-sample updates:
  ``W <- W + (1/B) sum_x h[x, u] (x - W_u)``
  ``= W * (1 - h.sum(0)/B)[:, None] + (h.T @ X_b) / B``;
* the batch's quantization error (mean distance of its samples to their BMUs, before the
  update) is recorded in ``history_["qe"]``: this is the "loss" of the paper's Fig. 4.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from introspect import progress as _progress
from introspect._checks import check_finite
from introspect._estimator import Estimator
from introspect._threads import intra_op_threads, threads_for
from introspect._utils import check_is_fitted, renamed_keyword, resolve_device

__all__ = ["ToroidalSOM", "grid_distance_squares"]

_DECAYS = ("exp", "linear", "half")
_METRICS = ("cosine", "euclidean")
_EPS_NEIGHBOURHOOD = 1e-5  # QuickSOM's term added to 2 sigma^2


def _decay_factor(decay: str, step: int, total: int) -> float:
    if decay == "exp":
        return float(np.exp(-5.0 * step / total))
    if decay == "linear":
        return 1.0 - step / total
    if decay == "half":
        return 0.5 ** int(20 * step / total)
    raise ValueError(f"decay must be one of {_DECAYS}, got {decay!r}.")


def grid_distance_squares(m: int, n: int, periodic: bool = True) -> np.ndarray:
    """Squared grid distances between all units of an ``m`` x ``n`` map.

    Unit ``u`` sits at row ``u // n`` and column ``u % n``. On the torus the distance is
    the shortest one over the 3 x 3 periodic images.

    Returns
    -------
    ndarray of shape (m * n, m * n), float64
    """
    rows, cols = np.divmod(np.arange(m * n), n)
    dr = np.abs(rows[:, None] - rows[None, :]).astype(np.float64)
    dc = np.abs(cols[:, None] - cols[None, :]).astype(np.float64)
    if periodic:
        dr = np.minimum(dr, m - dr)
        dc = np.minimum(dc, n - dc)
    return dr**2 + dc**2


def _as_tensor(X, device: torch.device) -> torch.Tensor:
    if isinstance(X, torch.Tensor):
        t = X.detach()
    else:
        arr = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
        with warnings.catch_warnings():
            # read-only inputs (memory-mapped stores) are shared, never written to
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            t = torch.from_numpy(arr)
    return t.to(device=device, dtype=torch.float32)


def _check_X(X, n_features: int | None = None) -> None:
    shape = tuple(X.shape)
    if len(shape) != 2:
        raise ValueError(
            f"X must be 2-D (n_samples, n_features), got shape {shape}; "
            "reshape a single sample with X[None, :]."
        )
    if shape[0] == 0:
        raise ValueError("X has no samples.")
    if n_features is not None and shape[1] != n_features:
        raise ValueError(f"X has {shape[1]} features but the SOM was fitted with {n_features}.")


def _refuse_nonfinite_chunk(X, chunk: torch.Tensor, where: str) -> None:
    """Refuse a chunk of ``X`` holding NaN or inf, naming the first bad row of all of ``X``.

    The chunk is checked on its own (cheap, on the device); only when it fails is the
    whole of ``X`` scanned to report the row number.
    """
    if bool(torch.isfinite(chunk).all()):
        return
    check_finite(X, where=where, what="codes")
    # X itself is finite: its values only overflowed when cast to float32
    raise ValueError(
        f"{where}: codes overflow float32 (|values| above 3.4e38); rescale them first."
    )


class ToroidalSOM(Estimator):
    """Self-organizing map on a (periodic) square grid, trained as QuickSOM trains it.

    Parameters
    ----------
    m, n : int, default=20
        Height (rows) and width (columns) of the grid; unit ``u`` is at ``(u // n, u % n)``.
    sigma : float, default=10.0
        Initial width of the Gaussian neighbourhood, in grid units (decays with ``decay``).
        The paper used 10 for every map size.
    alpha : float, default=0.1
        Initial learning rate (decays with ``decay``).
    decay : {"exp", "linear", "half"}, default="exp"
        QuickSOM's schedules of both ``alpha`` and ``sigma``: ``exp(-5 s/T)``, ``1 - s/T``,
        or halving 20 times, where ``s`` is the number of samples seen and ``T`` the number
        of samples over all epochs.
    metric : {"cosine", "euclidean"}, default="cosine"
        Distance between samples and unit weights, used to pick BMUs and in
        :meth:`transform` and the quantization error. Cosine distance is ``1 - cos``.
    periodic : bool, default=True
        Grid distances on a torus (no border effects), as in the paper.
    epochs : int, default=5
        Passes over the data.
    batch_size : int, default=10
        Samples per update; the update is the mean of the samples' updates. The paper used
        10 (50 for DenseNet121).
    shuffle : bool, default=True
        Draw a new random order of the samples each epoch (seeded by ``seed``).
    init : {"random", "sample"} or array of shape (m * n, n_features), default="random"
        Initial weights: ``"random"`` draws standard normal weights as QuickSOM does;
        ``"sample"`` copies randomly chosen training samples; an array is used as given.
    device : str or torch.device, default="cpu"
        Where the computation runs (``"cuda"`` works too); the learned arrays are NumPy.
    seed : int, default=0
        Seeds the initial weights and the shuffling.

    Attributes
    ----------
    weights_ : ndarray of shape (m * n, n_features), float32
        The unit weights ("functional codes" in the paper).
    history_ : dict of ndarrays of shape (n_steps,)
        Per step: ``"qe"`` (quantization error of the batch before its update),
        ``"alpha"``, ``"sigma"``, ``"epoch"`` and ``"samples"`` (samples seen before it).
    n_features_in_ : int
    n_steps_ : int
        Updates performed.

    Notes
    -----
    Rules of thumb: the neighbourhood starts at ``sigma`` and ends at ``sigma * exp(-5)``
    (0.07 for sigma = 10), so late updates move BMUs almost alone; the quantization error
    of the last epoch is close to that of the trained map. For reproducibility against
    QuickSOM use ``shuffle=False`` and the same initial weights (``init=array``).
    ``fit`` moves all of ``X`` to ``device`` once (50,000 x 8,192 float32 codes take 1.6 GB).
    Each step is a handful of small operations: on a CPU shared with other processes two
    intra-op threads wait for each other at every one of them, so ``fit`` gives a thread
    up when other processes are busy (see ``introspect._threads``; ``INTROSPECT_THREADS``
    overrides it) and restores torch's setting after; on a quiet machine it keeps them.

    Examples
    --------
    >>> som = ToroidalSOM(m=10, n=10, epochs=2).fit(X)            # doctest: +SKIP
    >>> top10 = som.bmus(X, top_k=10)                              # doctest: +SKIP
    """

    _fitted_attr = "weights_"

    def __init__(
        self,
        m: int = 20,
        n: int = 20,
        sigma: float = 10.0,
        alpha: float = 0.1,
        decay: str = "exp",
        metric: str = "cosine",
        periodic: bool = True,
        epochs: int = 5,
        batch_size: int = 10,
        shuffle: bool = True,
        init="random",
        device="cpu",
        seed: int = 0,
    ):
        self.m = m
        self.n = n
        self.sigma = sigma
        self.alpha = alpha
        self.decay = decay
        self.metric = metric
        self.periodic = periodic
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.init = init
        self.device = device
        self.seed = seed

    # ------------------------------------------------------------------ helpers
    @property
    def n_units(self) -> int:
        return int(self.m) * int(self.n)

    @property
    def shape(self) -> tuple[int, int]:
        """Grid shape ``(m, n)``."""
        return int(self.m), int(self.n)

    def _validate_params(self) -> None:
        if int(self.m) < 1 or int(self.n) < 1:
            raise ValueError(f"m and n must be >= 1, got m={self.m}, n={self.n}.")
        if self.decay not in _DECAYS:
            raise ValueError(f"decay must be one of {_DECAYS}, got {self.decay!r}.")
        if self.metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {self.metric!r}.")
        if int(self.epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}.")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}.")
        if float(self.sigma) <= 0 or float(self.alpha) <= 0:
            raise ValueError(
                f"sigma and alpha must be > 0, got sigma={self.sigma}, alpha={self.alpha}."
            )

    def _initial_weights(self, X: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        U, D = self.n_units, X.shape[1]
        init = self.init
        if isinstance(init, str):
            if init == "random":
                W = rng.standard_normal((U, D))
                return torch.from_numpy(W).float().to(X.device)
            if init == "sample":
                idx = rng.choice(X.shape[0], size=U, replace=X.shape[0] < U)
                return X[torch.from_numpy(idx).to(X.device)].clone()
            raise ValueError(f"init must be 'random', 'sample' or an array, got {init!r}.")
        W = _as_tensor(init, X.device)
        if tuple(W.shape) != (U, D):
            raise ValueError(
                f"init array has shape {tuple(W.shape)}, expected (m * n, n_features) = ({U}, {D})."
            )
        check_finite(W, where="ToroidalSOM.fit", what="init weights")
        return W.clone()

    @staticmethod
    def _distances(
        X: torch.Tensor,
        W: torch.Tensor,
        metric: str,
        w_norm: torch.Tensor | None = None,
        dots: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, U) distances by one matrix product (``dots`` = ``X @ W.T`` if already made)."""
        if dots is None:
            dots = X @ W.T
        if w_norm is None:
            w_norm = torch.linalg.vector_norm(W, dim=1)
        if metric == "cosine":
            x_norm = torch.linalg.vector_norm(X, dim=1)
            denom = (x_norm[:, None] * w_norm[None, :]).clamp_min(1e-12)
            return 1.0 - dots / denom
        x_sq = (X * X).sum(1)
        d2 = x_sq[:, None] + (w_norm * w_norm)[None, :] - 2.0 * dots
        return d2.clamp_min(0.0).sqrt()

    # ---------------------------------------------------------------------- fit
    def fit(
        self,
        X,
        y=None,
        *,
        callback: Callable[[int, int, dict], bool | None] | None = None,
        callback_every: int | None = None,
        progress: bool = False,
    ) -> ToroidalSOM:
        """Train the map on ``X``.

        Parameters
        ----------
        X : array-like or Tensor of shape (n_samples, n_features)
        y : ignored
        callback : callable, optional
            ``callback(step, n_steps, history)`` is called every ``callback_every`` steps
            and after the last one, with ``history`` the dict of per-step lists so far
            (``qe``, ``alpha``, ``sigma``, ``epoch``, ``samples``). If it returns ``False``
            training stops there; the map keeps the weights reached so far.
        callback_every : int, optional
            Default: about 200 calls over the whole training.
        progress : bool, default=False
            Show a tqdm progress bar.

        Returns
        -------
        self
        """
        self._validate_params()
        dev = resolve_device(self.device)
        Xt = _as_tensor(X, dev)
        _check_X(Xt)
        # NaN rows would make every BMU unit 0 and poison the weights
        check_finite(Xt, where="ToroidalSOM.fit", what="codes")
        N, D = Xt.shape
        B = int(self.batch_size)
        epochs = int(self.epochs)
        rng = np.random.default_rng(self.seed)

        W = self._initial_weights(Xt, rng)
        grid_d2 = torch.from_numpy(
            grid_distance_squares(self.m, self.n, bool(self.periodic)).astype(np.float32)
        ).to(dev)
        metric = self.metric
        total = N * epochs
        batches_per_epoch = math.ceil(N / B)
        n_steps = batches_per_epoch * epochs
        every = callback_every or max(1, n_steps // 200)
        history: dict[str, list] = {"qe": [], "alpha": [], "sigma": [], "epoch": [], "samples": []}
        qe_buf = torch.empty(n_steps, device=dev)
        cosine = metric == "cosine"
        x_norm = torch.linalg.vector_norm(Xt, dim=1).clamp_min_(1e-12) if cosine else None

        bar = _progress.bar(total=n_steps, desc="SOM", unit="batch", disable=not progress)

        # a step is two (batch x features x units) products: small ones give a thread up
        # as soon as other processes compete for the cores
        with intra_op_threads(threads_for(2.0 * B * self.n_units * D, dev)):
            step = 0
            stopped = False
            for epoch in range(epochs):
                order = rng.permutation(N) if self.shuffle else np.arange(N)
                order_t = torch.from_numpy(order).to(dev)
                for b in range(batches_per_epoch):
                    idx = order_t[b * B : (b + 1) * B]
                    Xb = Xt[idx] if self.shuffle else Xt[b * B : (b + 1) * B]
                    nb = Xb.shape[0]
                    f = _decay_factor(self.decay, step * B, total)
                    alpha_t = float(self.alpha) * f
                    sigma_t = float(self.sigma) * f

                    dots = torch.mm(Xb, W.T)  # (nb, U): the step's first product
                    if cosine:
                        # argmax of x.w / |w| is the cosine BMU (|x| is the same along a
                        # row); its distance 1 - max / |x| needs no (nb, U) division by |x|
                        w_norm = torch.linalg.vector_norm(W, dim=1).clamp_min_(1e-12)
                        best, bmu = dots.div_(w_norm).max(dim=1)
                        idx_b = idx if self.shuffle else slice(b * B, (b + 1) * B)
                        qe_buf[step] = 1.0 - (best / x_norm[idx_b]).mean()
                    else:
                        mind, bmu = self._distances(Xb, W, metric, dots=dots).min(dim=1)
                        qe_buf[step] = mind.mean()
                    # (nb, U) neighbourhood x learning rate
                    h = torch.exp(grid_d2[bmu] * (-1.0 / (2.0 * sigma_t**2 + _EPS_NEIGHBOURHOOD)))
                    h.mul_(alpha_t / nb)
                    # W <- W * (1 - sum_x h) + h^T X_b
                    keep = 1.0 - h.sum(dim=0)
                    W.mul_(keep[:, None]).addmm_(h.T, Xb)

                    history["alpha"].append(alpha_t)
                    history["sigma"].append(sigma_t)
                    history["epoch"].append(epoch)
                    history["samples"].append(step * B)
                    step += 1
                    bar.update(1)
                    if callback is not None and (step % every == 0 or step == n_steps):
                        history["qe"] = qe_buf[:step].cpu().tolist()
                        if callback(step, n_steps, history) is False:
                            stopped = True
                            break
                if stopped:
                    break
        bar.close()

        history["qe"] = qe_buf[:step].cpu().tolist()
        self.weights_ = W.cpu().numpy().astype(np.float32, copy=False)
        self.history_ = {
            "qe": np.asarray(history["qe"], dtype=np.float64),
            "alpha": np.asarray(history["alpha"], dtype=np.float64),
            "sigma": np.asarray(history["sigma"], dtype=np.float64),
            "epoch": np.asarray(history["epoch"], dtype=np.int64),
            "samples": np.asarray(history["samples"], dtype=np.int64),
        }
        self.n_features_in_ = int(D)
        self.n_steps_ = int(step)
        return self

    # ---------------------------------------------------------------- inference
    def _chunks(self, X, chunk: int = 4096, *, where: str = "ToroidalSOM"):
        check_is_fitted(self, "weights_")
        dev = resolve_device(self.device)
        _check_X(X, self.n_features_in_)
        W = torch.from_numpy(self.weights_).to(dev)
        w_norm = torch.linalg.vector_norm(W, dim=1)
        for start in range(0, X.shape[0], chunk):
            Xc = _as_tensor(X[start : start + chunk], dev)
            _refuse_nonfinite_chunk(X, Xc, where)
            yield self._distances(Xc, W, self.metric, w_norm)

    def transform(self, X) -> np.ndarray:
        """Distances from every sample to every unit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, m * n), float32
        """
        chunks = self._chunks(X, where="ToroidalSOM.transform")
        return np.concatenate([d.cpu().numpy() for d in chunks], axis=0)

    @renamed_keyword("k", "top_k")
    def bmus(self, X, top_k: int = 10) -> np.ndarray:
        """Indices of the ``top_k`` nearest units of every sample, nearest first.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        top_k : int, default=10
            The paper's analyses use the top-10 BMUs; ``top_k=1`` gives the BMU alone.
            (``k=`` is a deprecated alias.)

        Returns
        -------
        ndarray of shape (n_samples, top_k), int64
            Unit indices; unit ``u`` is at grid row ``u // n``, column ``u % n``
            (see :meth:`unit_coords`). ``top_k=1`` still returns a 2-D array.
        """
        return self._bmus(X, top_k, where="ToroidalSOM.bmus")

    def _bmus(self, X, k: int, *, where: str) -> np.ndarray:
        check_is_fitted(self, "weights_")
        if not 1 <= int(k) <= self.n_units:
            raise ValueError(f"top_k must be between 1 and m * n = {self.n_units}, got {k}.")
        out = []
        for d in self._chunks(X, where=where):
            if k == 1:
                out.append(d.argmin(dim=1, keepdim=True).cpu().numpy())
            else:
                out.append(torch.topk(d, int(k), dim=1, largest=False).indices.cpu().numpy())
        return np.concatenate(out, axis=0).astype(np.int64)

    def unit_coords(self, units=None) -> np.ndarray:
        """Grid coordinates ``(row, col)`` of units (all of them by default).

        Returns
        -------
        ndarray of shape (*units.shape, 2), int64
        """
        units = np.arange(self.n_units) if units is None else np.asarray(units, dtype=np.int64)
        return np.stack(np.divmod(units, int(self.n)), axis=-1)

    def quantization_error(self, X) -> float:
        """Mean distance (in ``metric``) from each sample to its BMU's weights."""
        total = 0.0
        count = 0
        for d in self._chunks(X, where="ToroidalSOM.quantization_error"):
            total += float(d.min(dim=1).values.double().sum())
            count += d.shape[0]
        return total / count

    def topographic_error(self, X) -> float:
        """Fraction of samples whose two nearest units are not grid neighbours.

        As in QuickSOM, neighbours are the 4 units at grid distance 1 (on the torus when
        ``periodic``); a diagonal second BMU counts as an error.
        """
        if self.n_units < 2:
            raise ValueError("The topographic error needs at least 2 units.")
        top2 = self._bmus(X, 2, where="ToroidalSOM.topographic_error")
        d2 = grid_distance_squares(self.m, self.n, bool(self.periodic))
        return float(np.mean(d2[top2[:, 0], top2[:, 1]] > 1.0))

    # -------------------------------------------------------------- persistence
    def _json_params(self) -> dict:
        """The hyperparameters as JSON values (an ``init`` array is written as ``"array"``)."""
        params = self.get_params(deep=False)
        params["init"] = self.init if isinstance(self.init, str) else "array"
        params["device"] = str(params["device"])
        return params

    def save(self, path) -> Path:
        """Write the hyperparameters, weights and history to one ``.npz`` file."""
        check_is_fitted(self, "weights_")
        path = Path(path)
        if path.suffix != ".npz":
            path = (
                path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"history_{k}": v for k, v in self.history_.items()}
        np.savez(
            path,
            weights=self.weights_,
            params=np.array(json.dumps(self._json_params())),
            n_steps=np.array(self.n_steps_),
            **arrays,
        )
        return path

    @classmethod
    def load(cls, path, device=None) -> ToroidalSOM:
        """Read a map written by :meth:`save` (optionally onto another ``device``)."""
        with np.load(Path(path), allow_pickle=False) as z:
            params = json.loads(str(z["params"]))
            if params.get("init") == "array":
                params["init"] = "random"
            if device is not None:
                params["device"] = str(device)
            som = cls(**params)
            som.weights_ = z["weights"].astype(np.float32)
            som.history_ = {k[len("history_") :]: z[k] for k in z.files if k.startswith("history_")}
            som.n_steps_ = int(z["n_steps"])
        som.n_features_in_ = int(som.weights_.shape[1])
        return som
