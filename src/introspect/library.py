"""Library networks of hidden activity patterns (Lee 2019).

A library network stores unit-normalised hidden activity patterns (HAPs, the flattened
output of one layer). An input is *novel* when its largest cosine similarity to the
patterns stored so far is below ``theta``; novel inputs are appended, in data order, and
the very first input is always stored. A second pass over the same data links every
stored pattern ("library node") to the network's answers with a Hebbian rule

    W[m, n] = sum_k g(h_n^k) O_m^k,   g(x) = exp(-(1 - x) / tau),  tau = 0.01,

where ``h^k`` are the cosine similarities of input ``k`` to the stored patterns and
``O^k`` is +1 for the class the network predicted and -1 for the others. The score of
class ``m`` for an input is ``P_m = sum_a W[m, a] h_a`` over its ``top_k`` most active
library nodes ``a`` (``top_k`` = 3 for the paper's CNN, 8 for its ResNet44).

:class:`LibraryNetwork` is one layer's library; :class:`LibraryStack` holds one per
layer of a model and gives agreement with the network's answers, confusion index
matrices and the consistency of the layers' predictions (CPL), which separates clean
from adversarial inputs (:func:`auroc`).

Building is exact and fast. The one-input-at-a-time definition is the reference; the
implementation compares a *block* of inputs against the library with one matrix product
per library segment, drops inputs as soon as one stored pattern reaches ``theta`` (they
can never become novel again: the library only grows), and resolves the remaining
candidates of the block among themselves in data order with their Gram matrix, which
gives exactly the library the sequential loop would give (up to floating-point
rounding of the similarities; use ``dtype="float64"`` when a similarity may sit within
~1e-6 of ``theta``). Data are read in blocks, so an on-disk array (``np.memmap``, an
:class:`~introspect.store.ActivationStore` layer) or an iterable of row chunks of
tens of thousands of dimensions never has to be in memory at once; only the library
itself is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from introspect import progress as _progress
from introspect._checks import check_labels, check_scores
from introspect._estimator import Estimator
from introspect._threads import intra_op_threads, threads_for
from introspect._utils import check_is_fitted, renamed_keyword, resolve_device

__all__ = [
    "LibraryNetwork",
    "LibraryStack",
    "agreement",
    "auroc",
    "confusion_index",
    "cpl",
    "hebbian_kernel",
    "theta_grid",
    "explore",
    "explore_arrays",
]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ----------------------------------------------------------------------------- helpers
def _torch_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ValueError(f"dtype must be float32 or float64, got {dtype}.")
        return dtype
    key = np.dtype(dtype).name
    if key not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}.")
    return _DTYPES[key]


def _is_array_like(H) -> bool:
    return isinstance(H, (np.ndarray, torch.Tensor)) or (
        hasattr(H, "shape") and hasattr(H, "__getitem__") and len(getattr(H, "shape", ())) >= 1
    )


def _iter_chunks(H, rows: int, prefetch: bool = False) -> Iterator[np.ndarray | torch.Tensor]:
    """Yield consecutive row chunks of ``H`` (an array-like or an iterable of arrays).

    ``prefetch``: an iterable's next chunk is produced in a helper thread while this one
    computes (see :func:`_prefetched`).
    """
    if _is_array_like(H):
        n = H.shape[0]
        for start in range(0, n, rows):
            yield H[start : start + rows]
        return
    if isinstance(H, (str, bytes)) or not isinstance(H, Iterable):
        raise TypeError(
            "H must be an array of shape (n_samples, ...) (numpy, torch, np.memmap) or an "
            f"iterable of such row chunks; got {type(H).__name__}."
        )
    for chunk in _prefetched(H) if prefetch else H:
        if not _is_array_like(chunk):
            chunk = np.asarray(chunk)
        for start in range(0, chunk.shape[0], rows):
            yield chunk[start : start + rows]


_DONE = object()


def _prefetched(source: Iterable, depth: int = 2) -> Iterator:
    """``source``'s items, each produced in a helper thread while the caller uses the last.

    A library built from a stream (chunks read from a file, a store, a generator) spent a
    third of its time waiting for the next chunk on one core while the other was idle:
    reading, decompressing and page-faulting the chunk now overlaps the matrix products
    of the previous one (torch's products release the GIL). At most ``depth`` chunks wait. The helper
    runs in a copy of the caller's context (a progress watcher set by the caller sees its
    reports); an exception in ``source`` (a Cancel included) is raised here, at the item
    where it happened, and when the caller stops early the helper stops at its next item.
    """
    import contextvars
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for x in source:
                if not _is_array_like(x):
                    x = np.asarray(x)
                if not put((x, None)):
                    return
            put((_DONE, None))
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            put((_DONE, err))

    ctx = contextvars.copy_context()
    helper = threading.Thread(
        target=ctx.run, args=(produce,), name="introspect-library-prefetch", daemon=True
    )
    helper.start()
    try:
        while True:
            x, err = q.get()
            if x is _DONE:
                if err is not None:
                    raise err
                return
            yield x
    finally:
        stop.set()


def _to_rows(chunk, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(b, ...) array-like -> (b, D) tensor on ``device``; higher dims are flattened."""
    if isinstance(chunk, torch.Tensor):
        t = chunk.detach()
    else:
        chunk = np.ascontiguousarray(chunk)
        if not chunk.flags.writeable:  # read-only memmaps: torch wants writable memory
            chunk = chunk.copy()
        t = torch.from_numpy(chunk)
    if t.ndim == 1:
        raise ValueError(
            "Got a 1-d array; pass patterns as rows of shape (n_samples, n_features) "
            "(use x[None] for one pattern)."
        )
    return t.reshape(t.shape[0], -1).to(device=device, dtype=dtype)


class _Workspace:
    """Reused block-sized buffers of a build.

    A block of 1,024 rows of a wide layer is tens of MB; allocated afresh for every block,
    each such temporary costs its page faults again (allocations that large bypass the
    allocator's free lists), which took a third of a build's time on the CPU.
    """

    def __init__(self):
        self._bufs: dict[str, torch.Tensor] = {}

    def get(self, name: str, like: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """A (rows, *like.shape[1:]) buffer of ``like``'s dtype and device, reused by name."""
        rows = like.shape[0] if rows is None else int(rows)
        buf = self._bufs.get(name)
        if (
            buf is None
            or buf.shape[0] < rows
            or buf.shape[1:] != like.shape[1:]
            or buf.dtype != like.dtype
            or buf.device != like.device
        ):
            buf = torch.empty(
                (max(rows, like.shape[0]), *like.shape[1:]), dtype=like.dtype, device=like.device
            )
            self._bufs[name] = buf
        return buf[:rows]

    def take(self, name: str, X: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``X[idx]`` (rows) into the buffer ``name``."""
        return torch.index_select(X, 0, idx, out=self.get(name, X, idx.numel()))


def _normalise(
    x: torch.Tensor, where: str = "LibraryNetwork", offset: int = 0, ws: _Workspace | None = None
) -> torch.Tensor:
    """Unit-normalise rows; an all-zero row stays zero (cosine 0 with everything).

    Rows holding NaN or inf are refused (``offset`` is the block's first row in the data,
    so the message names the row of the caller's array).
    """
    norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    if not torch.isfinite(norm).all():  # a NaN or inf anywhere in a row shows in its norm
        bad = torch.nonzero(~torch.isfinite(norm[:, 0])).squeeze(1)
        first = offset + int(bad[0])
        if bool(torch.isfinite(x[bad]).all()):
            raise ValueError(
                f"{where}: the norm of activity pattern row {first} overflows {x.dtype}; "
                "rescale the activations or pass dtype='float64'."
            )
        raise ValueError(
            f"{where}: activity patterns hold NaN or inf in {bad.numel()} row(s) of rows "
            f"{offset}-{offset + x.shape[0] - 1} (first: row {first}); drop or repair those "
            "rows first."
        )
    denom = torch.where(norm > 0, norm, torch.ones_like(norm))
    if ws is None:
        return x / denom
    return torch.div(x, denom, out=ws.get("normalised", x))


def _check_y_pred(y_pred, n_classes, where: str) -> tuple[np.ndarray, int]:
    """The network's answers as int64 class numbers in [0, n_classes), and n_classes."""
    if n_classes is not None and int(n_classes) < 1:
        raise ValueError(f"{where}: n_classes must be >= 1; got {n_classes}.")
    y_pred = check_labels(y_pred, n_classes, where=f"{where} (y_pred)")
    if y_pred.size == 0:
        raise ValueError(f"{where}: y_pred is empty; pass one answer per pattern.")
    if n_classes is None:
        n_classes = int(y_pred.max()) + 1
    return y_pred, int(n_classes)


def hebbian_kernel(h, tau: float = 0.01):
    """The paper's sharpening kernel ``g(h) = exp(-(1 - h) / tau)`` (works on arrays and tensors)."""
    if isinstance(h, torch.Tensor):
        return torch.exp(-(1.0 - h) / tau)
    return np.exp(-(1.0 - np.asarray(h, dtype=np.float64)) / tau)


def _warn_one_node(layer: str | None, theta: float, n_seen: int) -> None:
    import os
    import sys
    import warnings

    what = f"layer {layer!r}" if layer is not None else "this layer (pass layer= to name it)"
    # point at the first caller outside introspect (a figure, a Study, the user's code)
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    level, frame = 1, sys._getframe(0)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(
        f"The library of {what} at theta={theta:g} has 1 node: all {n_seen} patterns have "
        f"a cosine similarity >= {theta:g} to the first one, so its scores cannot tell "
        f"inputs apart. Raise theta for {what} (patterns that share a large common part, "
        "as after a ReLU or batch norm, need a higher theta).",
        UserWarning,
        stacklevel=level,
    )


# ----------------------------------------------------------------------------- one layer
class LibraryNetwork(Estimator):
    """Library of novel hidden activity patterns of one layer, linked to a network's answers.

    Parameters
    ----------
    theta : float
        Novelty threshold on the cosine similarity, in [-1, 1]. An input is stored when its
        largest similarity to the stored patterns is below ``theta``. Higher ``theta`` ->
        bigger library. Rules of thumb from the paper: 0.6-0.9 for the MNIST CNN; for a
        CIFAR ResNet44 the useful range differs per block (CN1 ~0.2-0.34, CL1 ~0.64-0.78,
        CL2 ~0.48-0.62, CL3 ~0.5-0.64, FC ~0.8-0.94).
    top_k : int, default 3
        Number of most active library nodes used by :meth:`predict_scores`.
    tau : float, default 0.01
        Width of the Hebbian kernel ``g(h) = exp(-(1 - h) / tau)``.
    block_size : int, default 1024
        Inputs compared with the library in one matrix product. Memory of one step is
        about ``block_size * (n_features + segment rows)`` numbers.
    device : str or torch.device, default "cpu"
        Where the library lives and the products run ("cuda" works).
    dtype : {"float32", "float64"}, default "float32"

    Attributes
    ----------
    patterns_ : ndarray of shape (size_, n_features)
        The stored unit-normalised patterns, in the order they were stored.
    indices_ : ndarray of shape (size_,)
        Row of the build data each stored pattern came from.
    size_ : int
        Number of library nodes.
    n_features_ : int
    n_seen_ : int
        Number of inputs presented to :meth:`build`.
    links_ : ndarray of shape (n_classes_, size_)
        Hebbian functional connections ``W[m, n]`` (after :meth:`link`).
    n_classes_ : int
    """

    _fitted_attr = "links_"

    def __init__(
        self,
        theta: float,
        top_k: int = 3,
        *,
        tau: float = 0.01,
        block_size: int = 1024,
        device: str | torch.device = "cpu",
        dtype: str = "float32",
    ):
        self.theta = theta
        self.top_k = top_k
        self.tau = tau
        self.block_size = block_size
        self.device = device
        self.dtype = dtype

    # -- internal state ------------------------------------------------------------------
    def _check_params(self):
        if not -1.0 - 1e-12 <= float(self.theta) <= 1.0 + 1e-12:
            raise ValueError(f"theta must lie in [-1, 1] (a cosine similarity), got {self.theta}.")
        if int(self.top_k) < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}.")
        if int(self.block_size) < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}.")
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}.")
        return resolve_device(self.device), _torch_dtype(self.dtype)

    def _library(self) -> torch.Tensor:
        """The stored patterns as a tensor on the working device (rebuilt after unpickling)."""
        lib = self.__dict__.get("_lib")
        if lib is None:
            device, dtype = self._check_params()
            lib = torch.from_numpy(self.patterns_).to(device=device, dtype=dtype)
            self._lib = lib
        return lib

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_lib", None)
        state.pop("_links_t", None)
        return state

    # -- pass 1 ----------------------------------------------------------------------------
    def build(self, H, *, progress: bool = False, layer: str | None = None) -> LibraryNetwork:
        """Store the novel patterns of ``H``, in data order (pass 1).

        Parameters
        ----------
        H : array-like of shape (n_samples, ...) or iterable of such chunks
            Hidden activity patterns; trailing dimensions are flattened (a conv layer's
            (C, H, W) output is one pattern). Numpy, torch (any device), ``np.memmap`` or
            an iterable of row chunks; only ``block_size`` rows are on the device at once.
        progress : bool
            Show a tqdm bar.
        layer : str, optional
            The layer ``H`` comes from; only named in messages.

        Returns
        -------
        self

        Warns
        -----
        UserWarning
            When more than one pattern builds a library of one node: every pattern is at
            least ``theta`` similar to the first, so the library cannot tell inputs
            apart. Raise ``theta``. (Typical cause: a layer whose patterns share a large
            common part, e.g. a post-BN-ReLU stem, where the paper's thresholds were set
            for the raw convolution.)
        """
        return self._build(H, progress=progress, where="LibraryNetwork.build", layer=layer)

    def _build(self, H, *, progress: bool, where: str, layer: str | None = None) -> LibraryNetwork:
        device, dtype = self._check_params()
        theta = float(self.theta)
        bs = int(self.block_size)
        seg_rows = max(bs, 1024)  # library rows per matrix product (early-exit granularity)
        segments: list[torch.Tensor] = []  # the library, in storage order
        kept: list[np.ndarray] = []
        n_seen = 0
        n_features = None
        sketch = None  # random projection that proposes candidate matches (wide layers)
        ws = _Workspace()
        bar = _progress.bar(
            total=H.shape[0] if _is_array_like(H) else None,
            desc=f"library theta={theta:g}",
            unit="pattern",
            disable=not progress,
        )
        with contextlib.ExitStack() as threads:  # the thread policy, decided at the first block
            # an iterable's reads overlap the products when there is a second thread to use
            prefetch = torch.get_num_threads() > 1
            for chunk in _iter_chunks(H, bs, prefetch=prefetch):
                X = _normalise(_to_rows(chunk, device, dtype), where, n_seen, ws)
                if n_features is None:
                    n_features = X.shape[1]
                    if n_features >= _SKETCH_MIN_FEATURES:
                        sketch = _Sketch(n_features, device, dtype)
                    # a block's products against the library are (bs x D) @ (D x seg_rows): under
                    # load two threads of them ran 4.5x slower than one (the module docstring of
                    # introspect._threads); the policy gives a thread up when others need it
                    threads.enter_context(
                        intra_op_threads(threads_for(2.0 * bs * seg_rows * n_features, device))
                    )
                elif X.shape[1] != n_features:
                    raise ValueError(
                        f"Patterns changed length from {n_features} to {X.shape[1]} features "
                        f"at row {n_seen}; one library holds one layer."
                    )
                if sketch is not None and sum(g.shape[0] for g in segments) >= _SKETCH_MIN_LIBRARY:
                    # most stored-before patterns are settled by checking a few candidates
                    # exactly; only the rest need the full scan (same library either way)
                    todo = torch.nonzero(~sketch.settled(X, segments, theta)).squeeze(1)
                    new = todo[_novel_in_block(ws.take("todo", X, todo), segments, theta, ws)]
                else:
                    new = _novel_in_block(X, segments, theta, ws)
                if new.numel():
                    rows = X[new]
                    if segments and segments[-1].shape[0] < seg_rows:
                        segments[-1] = torch.cat([segments[-1], rows])
                    else:
                        segments.append(rows)
                    kept.append(new.cpu().numpy() + n_seen)
                n_seen += X.shape[0]
                bar.update(X.shape[0])
        bar.close()
        if n_seen == 0:
            raise ValueError("H is empty: a library needs at least one pattern.")
        lib = _concat_freeing(segments)
        self._lib = lib
        self.patterns_ = lib.cpu().numpy() if lib.device.type != "cpu" else lib.numpy()
        self.indices_ = np.concatenate(kept).astype(np.int64)
        self.size_ = int(lib.shape[0])
        self.n_features_ = int(n_features)
        self.n_seen_ = int(n_seen)
        for stale in ("links_", "n_classes_", "_links_t"):  # a new library has no links yet
            self.__dict__.pop(stale, None)
        if self.size_ == 1 and n_seen > 1:
            _warn_one_node(layer, theta, n_seen)
        return self

    # -- similarities ----------------------------------------------------------------------
    def _check_built(self):
        check_is_fitted(self, "patterns_")

    def _rows(self, H, where: str = "LibraryNetwork"):
        """Yield (normalised rows on device) for ``H`` in blocks, checking the width."""
        device, dtype = self._check_params()
        start = 0
        for chunk in _iter_chunks(H, int(self.block_size)):
            X = _to_rows(chunk, device, dtype)
            if X.shape[1] != self.n_features_:
                raise ValueError(
                    f"Patterns have {X.shape[1]} features but the library was built on "
                    f"{self.n_features_}; pass the same layer's activations."
                )
            yield _normalise(X, where, start)
            start += X.shape[0]

    def similarities(self, H) -> np.ndarray:
        """Cosine similarity of each input to each library node (the paper's ``h``).

        Parameters
        ----------
        H : array-like of shape (n_samples, ...)

        Returns
        -------
        h : ndarray of shape (n_samples, size_)
        """
        self._check_built()
        lib = self._library()
        out = [(X @ lib.T).cpu().numpy() for X in self._rows(H, "LibraryNetwork.similarities")]
        return np.concatenate(out) if out else np.zeros((0, self.size_), np.float32)

    @renamed_keyword("k", "top_k")
    def most_active(self, H, top_k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``top_k`` (default: the library's ``top_k``) most active nodes of each input.

        ``k=`` is a deprecated alias of ``top_k``.

        Returns
        -------
        values : ndarray of shape (n_samples, top_k)
            Their similarities, in descending order.
        nodes : ndarray of shape (n_samples, top_k)
            Their node numbers (rows of ``patterns_``; ``indices_[nodes]`` gives the build
            data rows).
        """
        self._check_built()
        lib = self._library()
        k = min(int(top_k or self.top_k), self.size_)
        vals, idxs = [], []
        for X in self._rows(H, "LibraryNetwork.most_active"):
            v, i = torch.topk(X @ lib.T, k, dim=1)
            vals.append(v.cpu().numpy())
            idxs.append(i.cpu().numpy())
        return np.concatenate(vals), np.concatenate(idxs)

    # -- pass 2 ----------------------------------------------------------------------------
    @renamed_keyword("dnn_pred", "y_pred")
    def link(self, H, y_pred, n_classes: int | None = None) -> LibraryNetwork:
        """Build the Hebbian functional connections to the network's answers (pass 2).

        Parameters
        ----------
        H : array-like of shape (n_samples, ...) or iterable of row chunks
            Usually the same data as :meth:`build`.
        y_pred : array-like of int of shape (n_samples,)
            The network's predicted class for each input (``O = +1`` for it, -1 otherwise).
            (``dnn_pred=`` is a deprecated alias.)
        n_classes : int, optional
            Defaults to ``max(y_pred) + 1``.

        Returns
        -------
        self
        """
        return self._link(H, y_pred, n_classes, where="LibraryNetwork.link")

    def _link(self, H, y_pred, n_classes, *, where: str) -> LibraryNetwork:
        self._check_built()
        y_pred, n_classes = _check_y_pred(y_pred, n_classes, where)
        device, dtype = self._check_params()
        lib = self._library()
        W = torch.zeros(n_classes, self.size_, dtype=torch.float64, device=device)
        start = 0
        for X in self._rows(H, where):
            b = X.shape[0]
            if start + b > y_pred.shape[0]:
                raise ValueError(f"y_pred has {y_pred.shape[0]} entries, H has more rows.")
            g = hebbian_kernel(X @ lib.T, self.tau)
            out_ = -torch.ones(b, n_classes, dtype=dtype, device=device)
            y = torch.tensor(y_pred[start : start + b], device=device)  # copies read-only answers
            out_[torch.arange(b, device=device), y] = 1.0
            W += (out_.T @ g).to(torch.float64)
            start += b
        if start != y_pred.shape[0]:
            raise ValueError(f"y_pred has {y_pred.shape[0]} entries but H has {start} rows.")
        self.links_ = W.cpu().numpy()
        self.n_classes_ = int(n_classes)
        self._links_t = W.to(dtype)
        return self

    @renamed_keyword("dnn_pred", "y_pred")
    def fit(
        self,
        H,
        y_pred,
        n_classes: int | None = None,
        *,
        progress: bool = False,
        layer: str | None = None,
    ):
        """:meth:`build` then :meth:`link` on the same data.

        Parameters
        ----------
        H : array-like of shape (n_samples, ...) or iterable of row chunks
        y_pred : array-like of int of shape (n_samples,)
            The network's predicted classes (``dnn_pred=`` is a deprecated alias).
        n_classes : int, optional
        progress : bool, default False
            Show a tqdm bar over the build pass.
        layer : str, optional
            The layer ``H`` comes from; only named in messages (see :meth:`build`, which
            warns about a 1-node library).

        Returns
        -------
        self
        """
        return self._fit(
            H, y_pred, n_classes, progress=progress, where="LibraryNetwork.fit", layer=layer
        )

    def _fit(
        self, H, y_pred, n_classes, *, progress: bool, where: str, layer: str | None = None
    ) -> LibraryNetwork:
        # the answers are checked before the (long) build pass
        y_pred, n_classes = _check_y_pred(y_pred, n_classes, where)
        self._build(H, progress=progress, where=where, layer=layer)
        return self._link(H, y_pred, n_classes, where=where)

    # -- prediction ------------------------------------------------------------------------
    def predict_scores(self, H) -> np.ndarray:
        """Class scores ``P_m = sum_a W[m, a] h_a`` over the ``top_k`` most active nodes.

        Parameters
        ----------
        H : array-like of shape (n_samples, ...)

        Returns
        -------
        P : ndarray of shape (n_samples, n_classes_)
        """
        check_is_fitted(self, "links_")
        lib = self._library()
        Wt = self.__dict__.get("_links_t")
        if Wt is None:
            _, dtype = self._check_params()
            Wt = torch.from_numpy(self.links_).to(device=lib.device, dtype=dtype)
            self._links_t = Wt
        k = min(int(self.top_k), self.size_)
        out = []
        for X in self._rows(H, "LibraryNetwork.predict_scores"):
            v, i = torch.topk(X @ lib.T, k, dim=1)  # (b, k)
            out.append(torch.einsum("bkm,bk->bm", Wt.T[i], v).cpu().numpy())
        if not out:
            return np.zeros((0, self.n_classes_), np.float32)
        return np.concatenate(out)

    def predict(self, H) -> np.ndarray:
        """The class with the largest score, shape (n_samples,)."""
        return self.predict_scores(H).argmax(axis=1)


def _concat_freeing(segments: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate the library segments, releasing each one once copied.

    The output's pages are only touched as it is filled (large CPU allocations are lazy),
    so the peak stays near one library plus one segment instead of two libraries.
    """
    if len(segments) == 1:
        return segments.pop()
    first = segments[0]
    size = sum(s.shape[0] for s in segments)
    out = torch.empty((size, first.shape[1]), dtype=first.dtype, device=first.device)
    pos = 0
    for i in range(len(segments)):
        seg = segments[i]
        segments[i] = None
        out[pos : pos + seg.shape[0]] = seg
        pos += seg.shape[0]
        del seg
    segments.clear()
    return out


_SKETCH_DIM = 128  # random-projection width of the candidate search
_SKETCH_MIN_FEATURES = 1024  # narrower layers: the full scan is already cheap
_SKETCH_MIN_LIBRARY = 1024  # smaller libraries: one segment, nothing to skip
_N_CANDIDATES = 2  # stored patterns checked exactly per input before the full scan
_CHECK_ROWS = 128  # rows per exact candidate check (temporaries of 128 x n_features)


class _Sketch:
    """Random projections of the stored patterns, to propose each input's likely match.

    ``x @ R`` with a Gaussian ``R / sqrt(r)`` keeps inner products of unit vectors within
    about ``1/sqrt(r)``, so an input's best stored match is almost always among the
    top candidates of the sketched similarities. The candidates are then checked with the
    exact similarity: an input with an exact similarity >= theta is settled (it is not
    novel, whatever the full scan would add), and every other input goes through the full
    scan as before. The library is therefore the same; only the work differs.

    ``parts[k]`` sketches the rows of library segment ``k``; :meth:`settled` first sketches
    whatever rows the segments gained since the last call.
    """

    def __init__(self, n_features: int, device, dtype, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        R = torch.randn(n_features, _SKETCH_DIM, generator=g) / _SKETCH_DIM**0.5
        self.R = R.to(device=device, dtype=dtype)
        self.parts: list[torch.Tensor] = []

    def _sync(self, segments) -> None:
        for k, seg in enumerate(segments):
            have = self.parts[k].shape[0] if k < len(self.parts) else 0
            if have < seg.shape[0]:
                new = seg[have:] @ self.R
                if k < len(self.parts):
                    self.parts[k] = torch.cat([self.parts[k], new])
                else:
                    self.parts.append(new)

    def settled(self, X: torch.Tensor, segments, theta: float) -> torch.Tensor:
        """Boolean (b,): rows of ``X`` with a checked stored match of similarity >= theta."""
        self._sync(segments)
        Xs = X @ self.R
        c = _N_CANDIDATES
        vals, segs, rows = [], [], []
        for k, part in enumerate(self.parts):
            v, i = torch.topk(Xs @ part.T, min(c, part.shape[0]), dim=1)
            vals.append(v)
            rows.append(i)
            segs.append(torch.full_like(i, k))
        j = torch.topk(torch.cat(vals, 1), c, dim=1).indices
        seg = torch.cat(segs, 1).gather(1, j)
        row = torch.cat(rows, 1).gather(1, j)
        # exact similarity with each candidate, in row chunks whose temporaries stay small
        # (a block-sized gather is a fresh 40 MB allocation, page faults and all)
        done = torch.zeros(X.shape[0], dtype=torch.bool, device=X.device)
        for s in range(0, X.shape[0], _CHECK_ROWS):
            Xc, dc = X[s : s + _CHECK_ROWS], done[s : s + _CHECK_ROWS]
            for col in range(c):
                sc, rc = seg[s : s + _CHECK_ROWS, col], row[s : s + _CHECK_ROWS, col]
                for k, lib in enumerate(segments):
                    m = (sc == k) & ~dc
                    if m.any():
                        dc[m] = (Xc[m] * lib[rc[m]]).sum(1) >= theta
        return done


def _novel_in_block(
    X: torch.Tensor,
    segments: Sequence[torch.Tensor],
    theta: float,
    ws: _Workspace | None = None,
) -> torch.Tensor:
    """Rows of the normalised block ``X`` the sequential definition would store.

    Each row is compared with every library segment; rows whose best similarity reaches
    ``theta`` are settled (not novel) and skip the remaining segments. The survivors are
    novel with respect to the library as it was before the block; among themselves they
    are resolved in data order: the first survivor is stored, and every later survivor
    is stored only if it is also below ``theta`` against all survivors stored before it
    in the block. Returns their row numbers (ascending, on X's device).
    """
    b = X.shape[0]
    device = X.device
    alive = torch.arange(b, device=device)
    best = torch.full((b,), -float("inf"), dtype=X.dtype, device=device)
    for seg in segments:
        if alive.numel() == b:
            Xa = X
        else:
            Xa = X[alive] if ws is None else ws.take("alive", X, alive)
        s = (Xa @ seg.T).amax(dim=1)
        best_a = torch.maximum(best[alive], s)
        best[alive] = best_a
        alive = alive[best_a < theta]
        if alive.numel() == 0:
            return alive
    c = alive.numel()
    if c == 1:
        return alive
    C = X if c == b else X[alive]
    G = (C @ C.T).cpu().numpy()
    m = best[alive].cpu().numpy().copy()
    take = []
    pos = 0
    while pos < c:
        rel = np.flatnonzero(m[pos:] < theta)
        if rel.size == 0:
            break
        j = pos + int(rel[0])
        take.append(j)
        np.maximum(m, G[:, j], out=m)
        pos = j + 1
    return alive[torch.as_tensor(take, dtype=torch.long, device=device)]


# ----------------------------------------------------------------------------- analyses
@renamed_keyword("dnn_pred", "y_pred")
def agreement(scores, y_pred, k: int = 1) -> float:
    """Fraction of inputs whose network answer is among the ``k`` best library scores.

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_classes)
    y_pred : array-like of int of shape (n_samples,)
        The network's predicted classes (``dnn_pred=`` is a deprecated alias).
    k : int
        1 for top-1 agreement, 3 for the paper's "three best answers".
    """
    P, y = check_scores(scores, y_pred, where="agreement", names=("scores", "y_pred"))
    if P.shape[0] == 0:
        return float("nan")
    k = min(int(k), P.shape[1])
    # rank of the answer = number of classes scored strictly higher (ties go in our favour
    # only as far as argmax does: a tie with an earlier class counts as higher)
    own = P[np.arange(P.shape[0]), y][:, None]
    cls = np.arange(P.shape[1])[None, :]
    higher = (P > own) | ((P == own) & (cls < y[:, None]))
    return float(np.mean(higher.sum(axis=1) < k))


def _softmax(P: np.ndarray) -> np.ndarray:
    Z = P - P.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def confusion_index(scores, labels, n_classes: int | None = None) -> np.ndarray:
    """Confusion index matrix ``CI(d1, d2) = CA(d1, d2) / CA(d1, d1)`` (the paper's Eq. 4).

    ``CA(d1, d2) = sum_k softmax(P^k)_d1 softmax(P^k)_d2`` over the inputs ``k`` of class
    ``d1`` whose largest score is ``d1`` (the trials the library gets right).

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_classes)
    labels : array-like of int of shape (n_samples,)
        The class presented (the paper uses the true digit).
    n_classes : int, optional

    Returns
    -------
    CI : ndarray of shape (n_classes, n_classes)
        Rows ``d1``, columns ``d2``; the diagonal is 1; a row with no correct trial is NaN.
    """
    P = np.asarray(scores, dtype=np.float64)
    if P.ndim != 2:
        raise ValueError(
            f"confusion_index: scores must have shape (n_samples, n_classes); got {P.shape}."
        )
    C = int(n_classes or P.shape[1])
    y = check_labels(labels, C, where="confusion_index (labels)")
    if P.shape[0] != y.shape[0]:
        raise ValueError(f"scores has {P.shape[0]} rows but labels has {y.shape[0]}.")
    S = _softmax(P)
    ok = P.argmax(axis=1) == y
    CA = np.zeros((C, C))
    np.add.at(CA, y[ok], S[ok] * S[ok, y[ok]][:, None])
    diag = np.diag(CA).copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        CI = CA / diag[:, None]
    CI[diag == 0] = np.nan
    return CI


def cpl(scores: Sequence | Mapping) -> np.ndarray:
    """Consistency of the layers' predictions (the paper's Eq. 5), one value per input.

    Mean over all pairs of layers of the cosine similarity of their score vectors.

    Parameters
    ----------
    scores : sequence or mapping of arrays of shape (n_samples, n_classes), one per layer

    Returns
    -------
    cpl : ndarray of shape (n_samples,)
    """
    mats = list(scores.values()) if isinstance(scores, Mapping) else list(scores)
    if len(mats) < 2:
        raise ValueError("CPL compares layers: pass the scores of at least two layers.")
    U = []
    for P in mats:
        P = np.asarray(P, dtype=np.float64)
        n = np.linalg.norm(P, axis=1, keepdims=True)
        U.append(P / np.where(n > 0, n, 1.0))
    total = np.zeros(U[0].shape[0])
    pairs = 0
    for i in range(len(U)):
        for j in range(i):
            total += np.einsum("nm,nm->n", U[i], U[j])
            pairs += 1
    return total / pairs


def auroc(clean, adversarial) -> float:
    """Area under the ROC curve of a score separating clean (positive) from adversarial inputs.

    Parameters
    ----------
    clean, adversarial : array-like of shape (n_clean,), (n_adversarial,)
        E.g. CPL values; higher should mean "clean".
    """
    from sklearn.metrics import roc_auc_score

    a = np.asarray(clean, dtype=np.float64).ravel()
    b = np.asarray(adversarial, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("auroc needs at least one clean and one adversarial value.")
    y = np.r_[np.ones(a.size), np.zeros(b.size)]
    return float(roc_auc_score(y, np.r_[a, b]))


# ----------------------------------------------------------------------------- many layers
def _layer(layers, name):
    if hasattr(layers, "layer") and callable(layers.layer):
        return layers.layer(name)
    try:
        return layers[name]
    except KeyError:
        raise KeyError(
            f"No activations for layer {name!r}; got {list(layers)}. Pass a mapping "
            "layer -> array or an ActivationStore that holds every layer of the stack."
        ) from None


class LibraryStack(Estimator):
    """One :class:`LibraryNetwork` per layer of a model, with the paper's analyses.

    Parameters
    ----------
    thetas : mapping of str to float
        Layer name -> novelty threshold, in the model's layer order (e.g. one row "Set"
        of the paper's Table 1: ``{"CN1": 0.24, "CL1": 0.72, ...}``).
    top_k : int, default 3
        3 for the paper's CNN, 8 for its ResNet44.
    tau, block_size, device, dtype
        Passed to every :class:`LibraryNetwork`.

    Attributes
    ----------
    libraries_ : dict of str to LibraryNetwork
    layers_ : list of str
    n_classes_ : int
    """

    _fitted_attr = "libraries_"

    def __init__(
        self,
        thetas: Mapping[str, float],
        top_k: int = 3,
        *,
        tau: float = 0.01,
        block_size: int = 1024,
        device: str | torch.device = "cpu",
        dtype: str = "float32",
    ):
        self.thetas = thetas
        self.top_k = top_k
        self.tau = tau
        self.block_size = block_size
        self.device = device
        self.dtype = dtype

    @renamed_keyword("dnn_pred", "y_pred")
    def fit(self, layers, y_pred, n_classes: int | None = None, *, progress: bool = False):
        """Build and link one library per layer.

        Parameters
        ----------
        layers : mapping of str to array-like of shape (n_samples, ...) or ActivationStore
            Training activations of every layer named in ``thetas``.
        y_pred : array-like of int of shape (n_samples,)
            The network's answers on those inputs (``dnn_pred=`` is a deprecated alias).
        n_classes : int, optional
        progress : bool, default False
            Show a tqdm bar over each layer's build pass.

        Returns
        -------
        self
        """
        if not isinstance(self.thetas, Mapping) or not self.thetas:
            raise ValueError("thetas must be a non-empty mapping layer name -> theta.")
        y_pred, n_classes = _check_y_pred(y_pred, n_classes, "LibraryStack.fit")
        libs = {}
        for name, theta in self.thetas.items():
            lib = LibraryNetwork(
                theta,
                self.top_k,
                tau=self.tau,
                block_size=self.block_size,
                device=self.device,
                dtype=self.dtype,
            )
            libs[name] = lib._fit(
                _layer(layers, name),
                y_pred,
                n_classes,
                progress=progress,
                where=f"LibraryStack.fit (layer {name!r})",
                layer=name,
            )
        self.libraries_ = libs
        self.layers_ = list(libs)
        self.n_classes_ = n_classes
        return self

    @classmethod
    def from_networks(cls, networks: Mapping[str, LibraryNetwork]) -> LibraryStack:
        """A fitted stack made of already built and linked networks (e.g. from a cache)."""
        if not networks:
            raise ValueError("from_networks needs at least one LibraryNetwork.")
        nets = dict(networks)
        for net in nets.values():
            check_is_fitted(net, "links_")
        first = next(iter(nets.values()))
        n_classes = {net.n_classes_ for net in nets.values()}
        if len(n_classes) != 1:
            raise ValueError(f"the networks were linked to different class counts {n_classes}.")
        stack = cls(
            {k: v.theta for k, v in nets.items()},
            first.top_k,
            tau=first.tau,
            block_size=first.block_size,
            device=first.device,
            dtype=first.dtype,
        )
        stack.libraries_ = nets
        stack.layers_ = list(nets)
        stack.n_classes_ = n_classes.pop()
        return stack

    @property
    def sizes_(self) -> dict[str, int]:
        """Library size per layer."""
        check_is_fitted(self, "libraries_")
        return {k: v.size_ for k, v in self.libraries_.items()}

    def predict_scores(self, layers) -> dict[str, np.ndarray]:
        """Scores ``P`` per layer: dict layer -> ndarray of shape (n_samples, n_classes_)."""
        check_is_fitted(self, "libraries_")
        return {k: lib.predict_scores(_layer(layers, k)) for k, lib in self.libraries_.items()}

    @renamed_keyword("dnn_pred", "y_pred")
    def agreement(self, layers, y_pred, ks: Sequence[int] = (1, 3), scores=None):
        """Agreement with the network's answers per layer: ``{layer: {"top1": .., "top3": ..}}``.

        ``y_pred`` are the network's predicted classes (``dnn_pred=`` is a deprecated
        alias); ``scores`` (from :meth:`predict_scores`) skips recomputing them.
        """
        scores = scores if scores is not None else self.predict_scores(layers)
        return {k: {f"top{kk}": agreement(P, y_pred, kk) for kk in ks} for k, P in scores.items()}

    def confusion_index(self, layers, labels, scores=None) -> dict[str, np.ndarray]:
        """Confusion index matrix per layer (see :func:`confusion_index`)."""
        scores = scores if scores is not None else self.predict_scores(layers)
        return {k: confusion_index(P, labels, self.n_classes_) for k, P in scores.items()}

    def cpl(self, layers, scores=None) -> np.ndarray:
        """CPL of each input across the stack's layers, shape (n_samples,)."""
        scores = scores if scores is not None else self.predict_scores(layers)
        return cpl(scores)

    @staticmethod
    def auroc(clean, adversarial) -> float:
        """See :func:`auroc`."""
        return auroc(clean, adversarial)


# ----------------------------------------------------------------------------- explorer
def theta_grid(thetas, layers) -> dict[str, list[float]]:
    """``thetas`` as layer -> list: a list applies to every layer, a dict is per layer."""
    if isinstance(thetas, Mapping):
        missing = [layer for layer in layers if layer not in thetas]
        if missing:
            raise ValueError(f"thetas has no values for layers {missing}; it has {list(thetas)}.")
        return {layer: [float(t) for t in np.atleast_1d(thetas[layer])] for layer in layers}
    return {layer: [float(t) for t in np.atleast_1d(thetas)] for layer in layers}


def explore_arrays(
    *,
    grid: dict,
    library,
    test_layers: dict,
    test_pred,
    test_labels,
    attack_clean: dict,
    attack_adv: dict,
    attack_labels,
    attack_pred_clean,
    attack_pred_adv: dict,
    n_classes: int,
    classes=None,
    images_clean=None,
    images_adv: dict | None = None,
) -> dict:
    """Library size, agreement, confusion index and scores for every layer and theta of a grid.

    What a library explorer shows, precomputed so that moving a theta slider needs no
    new library (see :func:`explore` for a :class:`~introspect.Study`).

    Parameters
    ----------
    grid : dict layer -> list of theta
    library : callable (layer, theta) -> fitted LibraryNetwork
    test_layers : dict layer -> (n_test, D) activations; ``test_pred`` / ``test_labels``
        the network's answers and the true classes (agreement, confusion index).
    attack_clean : dict layer -> (n, D) activations of the attacked subset, clean.
    attack_adv : dict eps -> (dict layer -> (n, D)) activations of their PGD versions.
    attack_labels, attack_pred_clean : (n,) true classes and network answers (clean).
    attack_pred_adv : dict eps -> (n,) network answers on the PGD inputs.
    images_clean, images_adv : optional (n, C, H, W) images (clean, and per eps).

    Returns
    -------
    dict with ``layers``, ``grid``, ``eps`` (sorted), ``sizes`` / ``top1`` / ``top3`` /
    ``ci`` (layer -> list over thetas), ``scores_clean`` (layer -> list over thetas of
    (n, n_classes)), ``scores_adv`` (layer -> list over thetas of list over eps), the
    labels and answers, and the images.
    """
    eps = sorted(float(e) for e in attack_adv)
    adv_by_eps = {float(k): v for k, v in attack_adv.items()}
    pred_adv_by_eps = {float(k): np.asarray(v) for k, v in attack_pred_adv.items()}
    test_pred = np.asarray(test_pred)
    test_labels = np.asarray(test_labels)
    out = dict(
        layers=list(grid),
        grid={k: [float(t) for t in v] for k, v in grid.items()},
        eps=eps,
        n_classes=int(n_classes),
        classes=[str(c) for c in (classes if classes is not None else range(n_classes))],
        sizes={},
        top1={},
        top3={},
        ci={},
        scores_clean={},
        scores_adv={},
        attack_labels=np.asarray(attack_labels),
        attack_pred_clean=np.asarray(attack_pred_clean),
        attack_pred_adv=[pred_adv_by_eps[e] for e in eps],
        images_clean=None if images_clean is None else np.asarray(images_clean),
        images_adv=None
        if images_adv is None
        else [np.asarray({float(k): v for k, v in images_adv.items()}[e]) for e in eps],
        n_test=int(len(test_pred)),
    )
    for layer, thetas in grid.items():
        for key in ("sizes", "top1", "top3", "ci", "scores_clean", "scores_adv"):
            out[key][layer] = []
        for t in thetas:
            net = library(layer, t)
            P = net.predict_scores(test_layers[layer])
            out["sizes"][layer].append(int(net.size_))
            out["top1"][layer].append(agreement(P, test_pred, 1))
            out["top3"][layer].append(agreement(P, test_pred, 3))
            out["ci"][layer].append(confusion_index(P, test_labels, n_classes))
            out["scores_clean"][layer].append(net.predict_scores(attack_clean[layer]))
            out["scores_adv"][layer].append([net.predict_scores(adv_by_eps[e][layer]) for e in eps])
    return out


def explore(
    study,
    layers: Sequence[str] | None = None,
    thetas=(0.8, 0.85, 0.9, 0.95),
    eps=(0.05, 0.1, 0.2),
    *,
    top_k: int = 3,
    n: int | None = 200,
    nb_iter: int = 40,
    eps_iter: float | None = 0.01,
    seed: int = 0,
) -> dict:
    """:func:`explore_arrays` for a :class:`~introspect.Study`: every stage through its cache.

    The libraries come from ``study.library`` (one per layer and theta, built on the
    training split), the scores of the test split from its flattened capture, and the
    attacked inputs from ``study.attack("pgd", eps, n)`` (the same seeded subset of the
    test split at every eps), so a figure, a panel and a user on one workdir share them.

    Parameters
    ----------
    study : introspect.Study
        With a train and a test split.
    layers : list of str, optional
        At least two (CPL compares layers); default the study's layers.
    thetas : list of float, or dict layer -> list of float
        The theta grid of every layer (a list) or of each layer.
    eps : list of float
        PGD budgets (L-inf, [0, 1] pixel units).
    top_k : int
        Library nodes per prediction (3 for the paper's CNN, 8 for its ResNet44).
    n : int or None
        Test inputs attacked (None: all).
    nb_iter, eps_iter, seed
        PGD steps, step size (None: ``2.5 * eps / nb_iter``) and seed of the subset.
    """
    layers = list(layers or study.layers)
    if len(layers) < 2:
        raise ValueError(f"the library explorer compares layers: pass at least two; got {layers}.")
    eps = [float(e) for e in np.atleast_1d(eps)]
    if not eps:
        raise ValueError("give at least one eps, e.g. eps=(0.05, 0.1).")
    grid = theta_grid(thetas, layers)
    if not all(grid.values()):
        raise ValueError("give at least one theta per layer, e.g. thetas=(0.8, 0.9).")
    nets = {}
    for i in range(max(len(g) for g in grid.values())):
        theta = {k: g[min(i, len(g) - 1)] for k, g in grid.items()}
        stack = study.library(theta=theta, top_k=top_k, layers=layers).stack
        for k in layers:
            nets[(k, theta[k])] = stack.libraries_[k]
    test = study.capture("flatten", "test", layers=layers)
    runs = {e: study.attack("pgd", e, n=n, split="test", nb_iter=nb_iter, eps_iter=eps_iter,
                            seed=seed) for e in eps}  # fmt: skip
    first = runs[eps[0]]
    clean, _ = study.activations(first.x, "flatten", layers)
    adv = {e: study.activations(r.x_adv, "flatten", layers)[0] for e, r in runs.items()}
    return explore_arrays(
        grid=grid,
        library=lambda layer, t: nets[(layer, float(t))],
        test_layers={k: test.layer(k) for k in layers},
        test_pred=test.preds,
        test_labels=test.labels,
        attack_clean=clean,
        attack_adv=adv,
        attack_labels=first.y,
        attack_pred_clean=first.pred,
        attack_pred_adv={e: r.pred_adv for e, r in runs.items()},
        n_classes=study.n_classes,
        classes=study.classes,
        images_clean=first.x.numpy(),
        images_adv={e: r.x_adv.numpy() for e, r in runs.items()},
    )
