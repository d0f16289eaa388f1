"""Run a model once over data and record reduced activations of named layers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

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
    "reducer_fingerprint",
    "input_fingerprints",
]

PENULTIMATE = "penultimate"


def _flatten(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def _gap(t: torch.Tensor) -> torch.Tensor:
    return t.mean(dim=tuple(range(2, t.ndim))) if t.ndim > 2 else t


REDUCERS: dict[str, Callable] = {
    "flatten": _flatten,
    "codes": vector_codes,
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
        return fn(t, com=com) if fn is vector_codes else fn(t)

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


class LayerHooks:
    """Forward hooks that reduce and collect named layers; always removed on exit.

    Used as a context manager: ``with LayerHooks(model, layers, reduce) as hooks:
    model(x); hooks.take()``. Non-finite activations raise an error naming the layer.
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

    def _hook(self, name: str, use_input: bool):
        def fn(module, args, output):
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
        modules = dict(self.model.named_modules())
        try:
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

    def take(self) -> dict[str, torch.Tensor]:
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


def _batches(dataset, start: int, batch_size: int):
    """Yield (offset, x, y) over ``dataset[start:]`` in order."""
    if (
        isinstance(dataset, ArrayDataset)
        and dataset.image_size is None
        and dataset.channels is None
    ):
        for s in range(start, len(dataset), batch_size):
            yield s, dataset.images[s : s + batch_size], dataset.labels[s : s + batch_size]
        return
    if (
        isinstance(dataset, (tuple, list))
        and len(dataset) == 2
        and isinstance(dataset[0], torch.Tensor)
    ):
        x_all, y_all = dataset
        for s in range(start, len(x_all), batch_size):
            yield s, x_all[s : s + batch_size], torch.as_tensor(y_all[s : s + batch_size])
        return
    for s in range(start, len(dataset), batch_size):
        items = [dataset[i] for i in range(s, min(s + batch_size, len(dataset)))]
        yield s, torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items])


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
    reducer : {"flatten", "codes", "gap"} or callable
        ``flatten``: the whole layer output (library networks); ``codes``: vector codes
        (max, mean, std, centre of mass per channel; dense layers pass through); ``gap``:
        mean over spatial positions; a callable maps a (B, ...) tensor to (B, D).
    batch_size : int
    device : str or torch.device
    store : path or ActivationStore, optional
        Where to keep the arrays. A path makes an on-disk, memory-mapped store that an
        interrupted capture resumes from its last complete batch and that reopens without
        recomputing once complete. ``None`` keeps everything in memory.
    progress : bool
        Show a tqdm progress bar.
    com : {"flat", "yx"}
        Centre-of-mass variant of the ``codes`` reducer.
    meta : dict, optional
        Extra facts recorded in the store's manifest.
    callback : callable, optional
        ``callback(done, total)`` after every stored batch (and once when a complete store
        is reopened), e.g. to drive a progress bar in a panel.
    stale : {"raise", "recompute"}
        What to do when ``store`` holds a capture of other inputs (other weights, data or
        reducer code: :class:`StoreMismatchError`) or a damaged one
        (:class:`~introspect.store.StoreDamagedError`): raise, or warn and capture again
        (for stores that the pipeline owns, under a workdir).
    fingerprints : dict, optional
        :func:`input_fingerprints` of these inputs when the caller has computed them
        already (the pipeline keys its stores by them), so they are not computed twice.

    Returns
    -------
    ActivationStore
    """
    _check_eval(model)
    n = len(dataset[0]) if isinstance(dataset, tuple) else len(dataset)
    if n == 0:
        raise ValueError("the dataset is empty: there is nothing to capture.")
    dev = resolve_device(device)
    reduce = _reducer(reducer, com)
    info = _describe(model, dataset, layers, reducer, com, meta, fingerprints)

    if stale not in ("raise", "recompute"):
        raise ValueError(f"stale must be 'raise' or 'recompute'; got {stale!r}.")
    args = (model, dataset, layers, reduce, info, n, dev, batch_size, progress, callback)
    if stale == "raise" or store is None or isinstance(store, ActivationStore):
        return _capture_into(store, *args)
    try:
        return _capture_into(store, *args)
    except (StoreMismatchError, StoreDamagedError) as e:
        import shutil
        import warnings

        from .cache import CacheWarning

        warnings.warn(f"{e} Capturing again.", CacheWarning, stacklevel=2)
        with ActivationStore(store).lock():
            for p in Path(store).iterdir():
                if p.name != ".lock":
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
        return _capture_into(store, *args)


def _capture_into(
    store, model, dataset, layers, reduce, info, n, dev, batch_size, progress, callback
):
    if isinstance(store, ActivationStore):
        st = store
    elif store is not None and (Path(store) / "manifest.json").is_file():
        st = ActivationStore.open(store, verify=False)
    else:
        st = ActivationStore(store)
    lock = st.lock() if st.path is not None else contextlib.nullcontext()
    with lock:
        if st.path is not None and (st.path / "manifest.json").is_file():
            st = ActivationStore.open(st.path, verify=False)  # another process may have written it
        if st.n and st.done:
            _check_same(st, info)
            if st.complete:
                st.verify()
                if callback is not None:
                    callback(st.done, st.n)
                return st
        elif st.n:  # allocated but no batch committed: start afresh
            st.n = 0
        _run_capture(
            model, dataset, layers, reduce, st, info, n, dev, batch_size, progress, callback
        )
    return st


def _run_capture(model, dataset, layers, reduce, st, info, n, dev, batch_size, progress, callback):
    model_device = next(iter(model.parameters()), torch.empty(0)).device
    if model_device != dev:
        model.to(dev)
    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, initial=st.done, desc="capture", unit="img", disable=not progress)
    except ImportError:  # pragma: no cover
        bar = contextlib.nullcontext()
    first = next(_batches(dataset, st.done, 1), None)
    threads = (
        for_model(model, first[1].to(dev), batch_size)  # decided before the hooks exist
        if first is not None
        else contextlib.nullcontext()
    )
    with bar, threads, LayerHooks(model, layers, reduce) as hooks, torch.no_grad():
        for start, x, y in _batches(dataset, st.done, batch_size):
            check_images(x, where="capture")
            logits = model(x.to(dev))
            labels = check_labels(y, logits.shape[1], where="capture")
            acts = {k: v.cpu().numpy() for k, v in hooks.take().items()}
            if not np.isfinite(logits.detach().cpu().numpy()).all():
                raise ValueError("non-finite logits: check the inputs and the weights.")
            if st.n == 0:
                st._allocate(n, {k: v.shape[1] for k, v in acts.items()}, logits.shape[1], info)
            st._write(
                start, acts, labels, logits.argmax(1).cpu().numpy(), logits.float().cpu().numpy()
            )
            st._commit(start + len(y))
            if hasattr(bar, "update"):
                bar.update(len(y))
            if callback is not None:
                callback(start + len(y), n)


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
