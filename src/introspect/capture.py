"""Run a model once over data and record reduced activations of named layers."""

from __future__ import annotations

import contextlib
import shutil
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import progress as _progress
from ._checks import check_images, check_labels
from ._threads import for_model
from ._utils import resolve_device
from .codes import vector_codes
from .data import ArrayDataset
from .models import resolve_layer
from .store import ActivationStore, StoreDamagedError

__all__ = [
    "capture",
    "activations",
    "REDUCERS",
    "resolve_target",
    "LayerHooks",
    "StoreMismatchError",
    "ModuleReuseWarning",
    "reducer_fingerprint",
    "input_fingerprints",
]

PENULTIMATE = "penultimate"


def _flatten(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def _gap(t: torch.Tensor) -> torch.Tensor:
    return t.mean(dim=tuple(range(2, t.ndim))) if t.ndim > 2 else t


def _token_codes(t: torch.Tensor, com: str = "flat") -> torch.Tensor:
    return vector_codes(t, com=com, channel_dim=-1 if t.ndim == 3 else None)


REDUCERS: dict[str, Callable] = {
    "flatten": _flatten,
    "codes": vector_codes,
    "codes_tokens": _token_codes,  # (B, N, C) transformer tokens: channels last
    "gap": _gap,
}


def _reducer(reducer, com: str) -> Callable:
    if callable(reducer):
        return reducer
    if reducer not in REDUCERS:
        raise ValueError(
            f"unknown reducer {reducer!r}; use one of {sorted(REDUCERS)} or a callable."
        )
    fn = REDUCERS[reducer]

    def reduce(t):
        return fn(t, com=com) if fn in (vector_codes, _token_codes) else fn(t)

    # a NaN or inf anywhere in the map shows in the output of these reducers (in the mean,
    # at least), so the hook checks their small output instead of the whole map
    reduce.nonfinite_shows_in_output = True
    return reduce


def resolve_target(model: nn.Module, name: str) -> tuple[str, bool]:
    """``(module path, use_input)`` for a layer name.

    Names are aliases (``CL1``), ``named_modules`` paths (``layer1``), a path followed by
    ``:input`` to record what enters the module, or ``"penultimate"``: the input of the
    model's final classifier layer.
    """
    if name == PENULTIMATE:
        path = getattr(model, "classifier_path", None)
        if not path:
            raise ValueError(
                "this model declares no classifier_path, so it has no 'penultimate' layer."
            )
        return path, True
    if name.endswith(":input"):
        return resolve_layer(model, name[: -len(":input")]), True
    return resolve_layer(model, name), False


class ModuleReuseWarning(UserWarning):
    """A hooked module ran more than once in one forward pass; only its last call is kept."""


class LayerHooks:
    """Forward hooks that reduce and collect named layers; always removed on exit.

    Used as a context manager: ``with LayerHooks(model, layers, reduce) as hooks:
    model(x); hooks.take()``. Non-finite activations raise an error naming the layer.

    A module that runs several times in one forward pass (one ``nn.ReLU`` applied after
    every convolution of a block, as torchvision's ResNet blocks do) is recorded at its
    last call only; :meth:`take` warns (:class:`ModuleReuseWarning`, once per layer)
    naming the module and how many times it ran.

    Only the forward passes of the thread that entered the hooks are recorded: a panel
    capturing in a worker thread is not disturbed by a notebook cell that runs the same
    model meanwhile (``torch.nn.DataParallel``, which runs replicas in threads, is not
    supported; use ``torch.distributed``, see :mod:`introspect.distributed`).
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], reduce: Callable):
        if isinstance(layers, str):
            layers = [layers]
        if not layers:
            raise ValueError(
                "no layers given; pass layer names (see introspect.models.available_layers(model))."
            )
        self.model, self.layers, self.reduce = model, list(layers), reduce
        self.targets = {name: resolve_target(model, name) for name in self.layers}
        self.handles: list = []
        self.out: dict[str, torch.Tensor] = {}
        self._calls: dict[str, int] = {}  # hook calls per layer in the current forward pass
        self._reused: dict[str, int] = {}  # layer -> most calls seen in one pass
        self._warned: set[str] = set()
        self._owner = threading.get_ident()

    def _new_pass(self, module, args):
        if threading.get_ident() == self._owner:
            self._calls = {}

    def _hook(self, name: str, use_input: bool):
        def fn(module, args, output):
            if threading.get_ident() != self._owner:
                return  # another thread's forward pass (a notebook cell using the model)
            n = self._calls[name] = self._calls.get(name, 0) + 1
            if n > 1:
                self._reused[name] = max(n, self._reused.get(name, 0))
            t = args[0] if use_input else output
            if isinstance(t, (tuple, list)):
                t = t[0]
            t = t.detach()
            check_output = getattr(self.reduce, "nonfinite_shows_in_output", False)
            if not check_output and not torch.isfinite(t).all():
                self._nonfinite(name)
            r = self.reduce(t).float().reshape(t.shape[0], -1)
            if check_output and not torch.isfinite(r).all():
                self._nonfinite(name)
            self.out[name] = r

        return fn

    @staticmethod
    def _nonfinite(name: str):
        raise ValueError(
            f"non-finite activations (NaN or inf) in layer {name!r}: check that the inputs are "
            "images in [0, 1] and that the weights loaded correctly."
        )

    def __enter__(self):
        self._owner = threading.get_ident()  # only this thread's forward passes are recorded
        modules = dict(self.model.named_modules())
        try:
            # each forward pass of the model starts the per-pass call counts afresh
            self.handles.append(self.model.register_forward_pre_hook(self._new_pass))
            for name, (path, use_input) in self.targets.items():
                self.handles.append(
                    modules[path].register_forward_hook(self._hook(name, use_input))
                )
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def __exit__(self, *exc):
        self.remove()
        return False

    def _warn_reuse(self) -> None:
        for name, n in self._reused.items():
            if name in self._warned:
                continue
            self._warned.add(name)
            path, use_input = self.targets[name]
            what = "its input" if use_input else "its output"
            warnings.warn(
                f"layer {name!r}: module {path!r} ran {n} times in one forward pass (the model "
                f"applies the same module at several places), so {what} is recorded at its "
                "last call only. Hook a distinct module instead (a neighbour on the path that "
                "runs once, e.g. the convolution or block around it), or give each use its own "
                "module in the model (a separate nn.ReLU per call).",
                ModuleReuseWarning,
                stacklevel=3,
            )

    def take(self) -> dict[str, torch.Tensor]:
        self._warn_reuse()
        self._calls = {}
        missing = [n for n in self.layers if n not in self.out]
        if missing:
            raise RuntimeError(
                f"layers {missing} did not run in the forward pass; pick layers on the forward path."
            )
        out, self.out = self.out, {}
        return {n: out[n] for n in self.layers}  # the caller's order, not the forward order


def _check_eval(model: nn.Module) -> None:
    if model.training:
        raise RuntimeError(
            "the model is in train mode (dropout and batch-norm statistics would change the "
            "activations); call model.eval() before capturing."
        )


def _batch(dataset, b: int, batch_size: int, n: int):
    """``(x, y)`` of batch ``b``: rows ``b * batch_size`` up to ``n``, in order."""
    s, e = b * batch_size, min((b + 1) * batch_size, n)
    if (
        isinstance(dataset, ArrayDataset)
        and dataset.image_size is None
        and dataset.channels is None
    ):
        return dataset.images[s:e], dataset.labels[s:e]
    if (
        isinstance(dataset, (tuple, list))
        and len(dataset) == 2
        and isinstance(dataset[0], torch.Tensor)
    ):
        x_all, y_all = dataset
        return x_all[s:e], torch.as_tensor(y_all[s:e])
    items = [dataset[i] for i in range(s, e)]
    return torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items])


def reducer_fingerprint(reducer) -> str:
    """Fingerprint of a reducer's code: a callable's source, or the built-in reducers' modules."""
    from .fingerprint import callable_fingerprint, code_fingerprint

    if callable(reducer):
        return callable_fingerprint(reducer)
    return code_fingerprint("introspect.capture", "introspect.codes")


def input_fingerprints(model, dataset, reducer) -> dict:
    """What a capture reads, by content: weights, data, the reducer's code and the version."""
    from . import __version__
    from .fingerprint import dataset_fingerprint, model_fingerprint

    return {
        "model weights": model_fingerprint(model),
        "data": dataset_fingerprint(dataset),
        "reducer code": reducer_fingerprint(reducer),
        "introspect version": __version__,
    }


def _describe(model, dataset, layers, reducer, com, meta, fingerprints=None) -> dict:
    info = {
        "model": getattr(model, "name", type(model).__name__),
        "dataset": getattr(dataset, "name", type(dataset).__name__),
        "n": len(dataset) if not isinstance(dataset, tuple) else len(dataset[0]),
        "layers": list(layers),
        "reducer": reducer
        if isinstance(reducer, str)
        else getattr(reducer, "__name__", "callable"),
        "com": com,
        "classes": list(getattr(dataset, "classes", []) or []),
    }
    info.update(meta or {})
    info["fingerprint"] = fingerprints or input_fingerprints(model, dataset, reducer)
    return info


class StoreMismatchError(ValueError):
    """An activation store was made from other inputs than the capture asked for."""


def _check_same(st: ActivationStore, info: dict) -> None:
    """Refuse to resume or reopen a store made from other inputs, naming what changed."""
    old_fp, new_fp = st.meta.get("fingerprint") or {}, info["fingerprint"]
    changed = [k for k in new_fp if old_fp.get(k) != new_fp[k]]
    params = {k: (st.meta.get(k), info[k]) for k in info if k != "fingerprint"}
    diff = {k: v for k, v in params.items() if v[0] != v[1]}
    if not changed and not diff:
        return
    parts = []
    if changed:
        parts.append(f"its {', '.join(changed)} differ from this call's")
    if diff:
        parts.append(f"other parameters {diff} (stored, requested)")
    raise StoreMismatchError(
        f"the store at {st.path} was made from other inputs: {'; '.join(parts)}. Resuming or "
        "reusing it would mix or serve activations of another model or data; use another "
        "store path or delete that folder."
    )


def capture(
    model: nn.Module,
    dataset,
    layers: Sequence[str],
    reducer: str | Callable = "flatten",
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    store: str | Path | ActivationStore | None = None,
    progress: bool = True,
    com: str = "flat",
    meta: dict | None = None,
    callback: Callable[[int, int], None] | None = None,
    stale: str = "raise",
    fingerprints: dict | None = None,
    distributed: bool | None = False,
) -> ActivationStore:
    """Run ``model`` once over ``dataset`` and record reduced activations of ``layers``.

    Parameters
    ----------
    model : nn.Module in eval mode
        Taking images in [0, 1]. A model in train mode is refused.
    dataset : ImageDataset, or a tuple (X, y) of tensors
        Visited in order, never shuffled.
    layers : list of str
        Aliases (``CL1``), ``named_modules`` paths, ``"<path>:input"``, or
        ``"penultimate"`` (the input of the final classifier layer). An unknown name
        raises an error that lists the available layers.
    reducer : {"flatten", "codes", "codes_tokens", "gap"} or callable
        ``flatten``: the whole layer output (library networks); ``codes``: vector codes
        (max, mean, std, centre of mass per channel; dense layers pass through; a 3-D
        output is refused as ambiguous); ``codes_tokens``: vector codes of a
        transformer's (B, N, C) tokens, channels last, over the N tokens; ``gap``:
        mean over spatial positions; a callable maps a (B, ...) tensor to (B, D).
    batch_size : int
        Also the rows per chunk of an on-disk store. A store being resumed keeps the
        batch size it was started with.
    device : str or torch.device
        Under ``distributed``, a bare ``"cuda"`` means ``cuda:<LOCAL_RANK>``.
    store : path or ActivationStore, optional
        Where to keep the arrays. A path makes an on-disk store (zarr v3, see
        :class:`~introspect.store.ActivationStore`) that an interrupted capture resumes
        (the batches it lacks) and that reopens without recomputing once complete.
        ``None`` keeps everything in memory.
    progress : bool
        Show a tqdm progress bar (rank 0 only).
    com : {"flat", "yx"}
        Centre-of-mass variant of the ``codes`` reducer.
    meta : dict, optional
        Extra facts recorded in the store's manifest.
    callback : callable, optional
        ``callback(done, total)`` after every stored batch (and once when a complete store
        is reopened), e.g. to drive a progress bar in a panel; ``done`` counts this
        process's rows.
    stale : {"raise", "recompute"}
        What to do when ``store`` holds a capture of other inputs (other weights, data or
        reducer code: :class:`StoreMismatchError`) or a damaged one
        (:class:`~introspect.store.StoreDamagedError`): raise, or warn and capture again
        (for stores that the pipeline owns, under a workdir).
    fingerprints : dict, optional
        :func:`input_fingerprints` of these inputs when the caller has computed them
        already (the pipeline keys its stores by them), so they are not computed twice.
    distributed : bool or None
        ``True`` inside a ``torchrun`` job (every rank calls ``capture`` with the same
        arguments): rank ``r`` of ``W`` computes batches ``r, r + W, ...`` and writes
        them into the one shared ``store`` (which must be a path on a filesystem every
        rank sees); rank 0 takes the store's lock, allocates it, checks the inputs'
        fingerprints and, after a barrier, seals it (checksums, manifest). A rank killed
        part-way leaves its finished batches; running the job again computes only the
        missing ones. The finished store equals a single-process capture bit for bit
        (with the same kind of device and threads per process: each batch is computed
        exactly as one process computes it).
        The process group is initialised from torchrun's environment when it is not yet.
        ``None``: sharded inside :func:`introspect.distributed.sharding` only.

    Returns
    -------
    ActivationStore
    """
    from .distributed import group as dist_group
    from .distributed import rank_device

    _check_eval(model)
    n = len(dataset[0]) if isinstance(dataset, tuple) else len(dataset)
    if n == 0:
        raise ValueError("the dataset is empty: there is nothing to capture.")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}.")
    if stale not in ("raise", "recompute"):
        raise ValueError(f"stale must be 'raise' or 'recompute'; got {stale!r}.")
    if distributed and (
        store is None or (isinstance(store, ActivationStore) and store.path is None)
    ):
        raise ValueError(
            "capture(distributed=True) writes one store that every rank shares: pass "
            "store=<a folder on a filesystem all ranks see>, not an in-memory store."
        )
    grp = dist_group(distributed, device, where="capture")
    if grp.active and store is None:
        grp = type(grp)()  # sharding was asked by context: an in-memory capture stays local
    dev = resolve_device(rank_device(device) if grp.active else device)
    reduce = _reducer(reducer, com)
    info = _describe(model, dataset, layers, reducer, com, meta, fingerprints)
    run = _Run(model, dataset, layers, reduce, info, n, dev, int(batch_size), progress, callback)
    if store is None or (isinstance(store, ActivationStore) and store.path is None):
        st = store if isinstance(store, ActivationStore) else ActivationStore(None)
        return run.in_memory(st)
    path = store.path if isinstance(store, ActivationStore) else Path(store)
    return run.on_disk(path, grp, stale)


class _Run:
    """One capture: the forward passes of its batches and the protocol of its store."""

    def __init__(
        self, model, dataset, layers, reduce, info, n, dev, batch_size, progress, callback
    ):
        self.model, self.dataset, self.layers, self.reduce = model, dataset, layers, reduce
        self.info, self.n, self.dev, self.batch_size = info, n, dev, batch_size
        self.progress, self.callback = progress, callback

    def forward(self, hooks, batch: int, batch_size: int):
        """Activations, labels, predictions and logits of one batch (numpy, on the CPU)."""
        x, y = _batch(self.dataset, batch, batch_size, self.n)
        check_images(x, where="capture")
        logits = self.model(x.to(self.dev))
        labels = check_labels(y, logits.shape[1], where="capture")
        acts = {k: v.cpu().numpy() for k, v in hooks.take().items()}
        logits = logits.float().cpu()
        if not torch.isfinite(logits).all():
            raise ValueError("non-finite logits: check the inputs and the weights.")
        return acts, np.asarray(labels), logits.argmax(1).numpy(), logits.numpy()

    @contextlib.contextmanager
    def _running(self, total: int, initial: int, show: bool):
        model_device = next(iter(self.model.parameters()), torch.empty(0)).device
        if model_device != self.dev:
            self.model.to(self.dev)
        bar = _progress.bar(
            total=total, initial=initial, desc="capture", unit="img", disable=not show
        )
        x0 = _batch(self.dataset, 0, 1, self.n)[0].to(self.dev)
        threads = for_model(self.model, x0, self.batch_size)  # decided before the hooks exist
        with bar, threads, LayerHooks(self.model, self.layers, self.reduce) as hooks:
            with torch.no_grad():
                yield bar, hooks

    def _allocate(self, st: ActivationStore, first) -> None:
        acts, _, _, logits = first
        dims = {k: v.shape[1] for k, v in acts.items()}
        st._allocate(self.n, dims, logits.shape[1], self.info, self.batch_size)

    def _run_batches(self, st: ActivationStore, batches, show: bool, first=None) -> None:
        """Compute and store ``batches`` (``first``: batch 0's results when computed)."""
        todo = [b for b in batches if not st.batch_done(b)]
        mine = sum(st._rows_of(b) for b in batches) if st.n else self.n
        with self._running(mine, mine - sum(st._rows_of(b) for b in todo), show) as (bar, hooks):
            for b in todo:
                out = (
                    first
                    if (b == 0 and first is not None)
                    else self.forward(hooks, b, st.batch_size)
                )
                st._write_batch(b, *out)
                bar.update(len(out[1]))
                if self.callback is not None:
                    self.callback(st.done, st.n)

    def in_memory(self, st: ActivationStore) -> ActivationStore:
        if st.complete:  # an in-memory store passed again: served if made from these inputs
            _check_same(st, self.info)
            if self.callback is not None:
                self.callback(st.done, st.n)
            return st
        with self._running(self.n, 0, False) as (_, hooks):  # batch 0 tells the widths
            first = self.forward(hooks, 0, self.batch_size)
        self._allocate(st, first)
        self._run_batches(st, range(st.n_batches), self.progress, first)
        st._finish()
        return st

    def on_disk(self, path: Path, grp, stale: str) -> ActivationStore:
        lead = grp.rank == 0
        lock = ActivationStore(path).lock() if lead else contextlib.nullcontext()
        with lock:
            if lead:
                try:
                    state = self._prepare(path, stale)
                except BaseException as e:
                    grp.broadcast(("error", f"{type(e).__name__}: {e}"))
                    raise
                grp.broadcast(("ok", state))
            else:
                status, state = grp.broadcast()
                if status == "error":
                    raise RuntimeError(f"capture: rank 0 could not open the store: {state}")
            st = ActivationStore.open(path, verify=False)
            if state != "complete":
                self._run_batches(st, grp.shard(st.n_batches), self.progress and lead)
                grp.barrier()
                if lead:
                    try:
                        st._finish()
                        sealed = ("ok", None)
                    except BaseException as e:
                        sealed = ("error", f"{type(e).__name__}: {e}")
                        grp.broadcast(sealed)
                        raise
                    grp.broadcast(sealed)
                else:
                    status, msg = grp.broadcast()
                    if status == "error":
                        raise RuntimeError(f"capture: rank 0 could not seal the store: {msg}")
                    st = ActivationStore.open(path, verify=False)
            elif self.callback is not None:
                self.callback(st.done, st.n)
        return st

    def _prepare(self, path: Path, stale: str) -> str:
        """Rank 0, under the lock: reopen, check or (re)allocate the store.

        Returns ``"complete"`` (verified, nothing to do) or ``"run"`` (allocated, batches
        to compute). A new store's widths come from a forward pass of its first input
        (not stored: batch 0 is computed whole by its rank, like every batch).
        """
        if (path / "manifest.json").is_file():
            try:
                st = ActivationStore.open(path, verify=False)
                if st.n and st.done:
                    _check_same(st, self.info)
                    if st.complete:
                        st.verify()
                        return "complete"
                    return "run"
            except (StoreMismatchError, StoreDamagedError) as e:
                if stale == "raise":
                    raise
                from .cache import CacheWarning

                warnings.warn(f"{e} Capturing again.", CacheWarning, stacklevel=5)
                for p in path.iterdir():
                    if p.name != ".lock":
                        shutil.rmtree(p) if p.is_dir() else p.unlink()
        st = ActivationStore(path)
        st._prepare_folder()  # refuse a user's folder before any forward pass
        with self._running(self.n, 0, False) as (_, hooks):
            probe = self.forward(hooks, 0, 1)  # one input tells the arrays' widths
        self._allocate(st, probe)
        return "run"


def activations(
    model: nn.Module,
    x: torch.Tensor,
    layers: Sequence[str],
    reducer: str | Callable = "flatten",
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    com: str = "flat",
    return_logits: bool = False,
):
    """Reduced activations of ``layers`` for an in-memory batch of images.

    Returns
    -------
    dict of str -> ndarray of shape (N, D)
        One array per layer; with ``return_logits=True`` also ``(acts, logits)``.
    """
    _check_eval(model)
    dev = resolve_device(device)
    model.to(dev)
    reduce = _reducer(reducer, com)
    parts: dict[str, list] = {name: [] for name in layers}
    logit_parts = []
    check_images(x, where="activations")
    threads = for_model(model, x[:1].to(dev), batch_size)  # before the hooks exist
    with threads, LayerHooks(model, layers, reduce) as hooks, torch.no_grad():
        for s in range(0, len(x), batch_size):
            logit_parts.append(model(x[s : s + batch_size].to(dev)).cpu())
            for k, v in hooks.take().items():
                parts[k].append(v.cpu().numpy())
    acts = {k: np.concatenate(v) for k, v in parts.items()}
    if return_logits:
        return acts, torch.cat(logit_parts).numpy()
    return acts
