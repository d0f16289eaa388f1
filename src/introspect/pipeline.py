"""Shared, cached stages of the figure pipeline: datasets, trained models, captures.

Figure modules call these instead of training or capturing themselves, so figures of
one paper that ask for the same model and data share one artifact in the workdir.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from ._utils import resolve_device
from .cache import Workdir, param_hash
from .capture import capture
from .data import load_dataset
from .fingerprint import dataset_fingerprint, file_fingerprint, model_fingerprint
from .models import create_model
from .progress import Cancelled
from .store import ActivationStore
from .training import fit_classifier

__all__ = [
    "dataset",
    "trained_model",
    "train_val_split",
    "captured",
    "as_workdir",
    "attacked",
    "attack_fn",
    "fitted_som",
    "fitted_library",
    "StageCancelled",
    "ATTACKS",
]


def as_workdir(workdir) -> Workdir:
    return workdir if isinstance(workdir, Workdir) else Workdir(workdir)


def dataset(
    name: str,
    split: str = "train",
    *,
    data_root=None,
    n_per_class=None,
    image_size=None,
    channels=None,
    seed: int = 0,
    download: bool = False,
    transform=None,
):
    """:func:`introspect.data.load_dataset` that remembers its parameters as ``cache_key``."""
    ds = load_dataset(
        name,
        split,
        root=data_root,
        download=download,
        n_per_class=n_per_class,
        image_size=image_size,
        channels=channels,
        seed=seed,
        transform=transform,
    )
    ds.cache_key = dict(
        name=name,
        split=split,
        n_per_class=n_per_class,
        image_size=image_size,
        channels=channels,
        seed=seed,
        **({"transform": repr(transform)} if transform is not None else {}),
        root=None if name == "digits" else str(data_root),
        fingerprint=dataset_fingerprint(ds),
    )
    return ds


def train_val_split(name, data_root=None, image_size=None, channels=None, val_fraction=0.1):
    """The training data and the validation data that early stopping watches.

    ``digits`` has its own validation split. For every other dataset a fixed, stratified
    ``val_fraction`` of the training split is held out (seed 0), so that early stopping
    never looks at the test set (torchvision's sets have no validation split).
    """
    from sklearn.model_selection import train_test_split

    from .data import _Subset

    full = load_dataset(name, "train", root=data_root, image_size=image_size, channels=channels)
    if name == "digits":
        val = load_dataset(name, "val", root=data_root, image_size=image_size, channels=channels)
        return full, val
    idx = np.arange(len(full))
    fit_idx, val_idx = train_test_split(
        idx, test_size=val_fraction, stratify=full.targets, random_state=0
    )
    return _Subset(full, np.sort(fit_idx)), _Subset(full, np.sort(val_idx))


def trained_model(
    name: str,
    *,
    dataset: str = "digits",
    image_size=None,
    channels=None,
    model_kwargs: dict | None = None,
    train: dict | None = None,
    pretrained: bool = False,
    checkpoint=None,
    workdir="introspect-work",
    device="cpu",
    data_root=None,
    seed: int = 0,
    progress: bool = True,
    snapshot_every: int | None = None,
):
    """A model ready for analysis: created, then trained (cached) or loaded.

    Parameters
    ----------
    name : str
        Registry name or ``timm:<name>``.
    dataset, image_size, channels : training data: ``dataset``'s ``train`` split, less
        the validation data of :func:`train_val_split` that early stopping watches.
    model_kwargs : dict
        Constructor arguments (e.g. ``{"depth": 4, "width": 64}``).
    train : dict, optional
        Keyword arguments of :func:`introspect.training.fit_classifier`. ``None`` means
        no training: the model is used as created (``pretrained`` / ``checkpoint``) - a
        random initialisation when neither is given.
    workdir : path or Workdir
        Trained weights and the history are cached there, keyed by all of the above.
    snapshot_every : int, optional
        Also keep the weights before training and after every ``snapshot_every``-th epoch
        (0, k, 2k, ...), so a training trajectory (self-introspection Fig. 2a) replays the
        one training run instead of training the model again.

    Returns
    -------
    IntrospectableModel in eval mode on ``device``, with ``history_`` (the training
    history or ``None``), ``snapshots_`` (list of ``{"epoch", "state_dict"}``, epoch -1
    = before training; empty without ``snapshot_every``) and ``cache_key``.
    """
    dev = resolve_device(device)
    model_kwargs = dict(model_kwargs or {})
    key = dict(
        name=name,
        dataset=dataset,
        image_size=image_size,
        channels=channels,
        model_kwargs=model_kwargs,
        train=train,
        pretrained=pretrained,
        checkpoint=str(checkpoint) if checkpoint else None,
        seed=seed,
        data_root=None if dataset == "digits" else str(data_root),
    )
    if snapshot_every is not None:
        if int(snapshot_every) < 1:
            raise ValueError(f"snapshot_every must be >= 1 or None, got {snapshot_every!r}.")
        key["snapshot_every"] = int(snapshot_every)
    torch.manual_seed(seed)
    weights_dir = (
        Path(data_root) / "weights" if data_root and not name.startswith("timm:") else None
    )
    model = create_model(
        name, pretrained=pretrained, checkpoint=checkpoint, weights_dir=weights_dir, **model_kwargs
    )
    history, snapshots = None, []
    if train is not None:
        wd = as_workdir(workdir)
        inputs = {"checkpoint": file_fingerprint(checkpoint) if checkpoint else None}
        if pretrained or checkpoint:
            inputs["initial weights"] = model_fingerprint(model)

        # an interrupted run resumes from its last epoch: fit_classifier's checkpoint and
        # the snapshots so far live beside the result until it is complete
        folder = wd.path("train", key)
        snap_dir = folder / "snapshots"

        def fit():
            tr, va = train_val_split(dataset, data_root, image_size, channels)
            snaps = {}
            if snap_dir.is_dir():
                for f in snap_dir.glob("*.pt"):
                    snaps[int(f.stem)] = torch.load(f, map_location="cpu", weights_only=True)

            def keep(epoch, m, history=None):
                if epoch < 0 or epoch % int(snapshot_every) == 0:
                    state = {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}
                    snaps[int(epoch)] = state
                    snap_dir.mkdir(exist_ok=True)
                    tmp = snap_dir / f".{epoch}.tmp"
                    torch.save(state, tmp)
                    tmp.replace(snap_dir / f"{epoch}.pt")

            if snapshot_every is not None:
                keep(-1, model)
            extra = {"callback": keep} if snapshot_every is not None else {}
            hist = fit_classifier(
                model, tr, va, device=dev, seed=seed, progress=progress,
                resume=folder / "resume.pt", **extra, **train,
            )  # fmt: skip
            return {
                "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                "history": hist,
                "snapshots": [{"epoch": e, "state_dict": snaps[e]} for e in sorted(snaps)],
            }

        inputs["data"] = dataset_fingerprint(
            load_dataset(dataset, "train", root=data_root, image_size=image_size, channels=channels)
        )
        result = wd.memo("train", key, fit, inputs=inputs)
        (folder / "resume.pt").unlink(missing_ok=True)  # the result is complete now
        shutil.rmtree(snap_dir, ignore_errors=True)
        model.load_state_dict(result["state_dict"])
        history = result["history"]
        snapshots = result.get("snapshots") or []
    model.history_ = history
    model.snapshots_ = snapshots
    # downstream stages key on the weights themselves: a replaced checkpoint or a retrained
    # model changes every capture, attack and fit made from it
    model.cache_key = {**key, "weights": model_fingerprint(model)}
    return model.eval().to(dev)


def _layer_keys(model, layers) -> list[str]:
    """Layer names for a cache key: an alias carries the module it resolves to.

    Paper aliases can move (issue 9 moved ``CN1`` of the library CNN and ResNet from the
    post-ReLU output to the raw convolution); keyed by the alias alone, a store captured
    at the old point would be reopened under the new meaning. Plain paths key as before.
    """
    from .capture import resolve_target

    keys = []
    for name in layers:
        path, use_input = resolve_target(model, name)
        target = f"{path}:input" if use_input else path
        keys.append(name if target == name else f"{name}={target}")
    return keys


def captured(
    model,
    data,
    layers,
    *,
    reducer="flatten",
    workdir="introspect-work",
    device="cpu",
    batch_size: int = 128,
    com: str = "flat",
    progress: bool = True,
    callback=None,
    distributed: bool | None = None,
) -> ActivationStore:
    """The one cached capture stage: :func:`introspect.capture.capture` into an on-disk
    store under the workdir.

    Any model and dataset: the store is keyed by content (the model's weights, the data's
    fingerprint, see :mod:`introspect.fingerprint`), the layers, the reducer and its code,
    so figures, :class:`introspect.Study` and panels share one store per parameter set. A
    complete store is reopened (its checksums verified), an interrupted one resumes, and
    a stale or damaged one is captured again with a warning.

    ``distributed``: shard the capture over the ranks of a ``torchrun`` job (see
    :func:`introspect.capture.capture`); ``None``, the default, shards inside
    :func:`introspect.distributed.sharding` only. The workdir must then be on a filesystem
    that every rank sees.
    """
    from .capture import input_fingerprints

    if not isinstance(reducer, str):
        raise ValueError("cached captures need a named reducer ('flatten', 'codes', 'gap').")
    fp = input_fingerprints(model, data, reducer)  # read once: the key and the store's check
    params = dict(
        model=fp["model weights"],
        data=fp["data"],
        layers=_layer_keys(model, layers),
        reducer=reducer,
        com=com,
        code=fp["reducer code"],
    )
    wd = as_workdir(workdir)
    folder = wd.path("capture", params)
    key = param_hash(params)
    return capture(
        model,
        data,
        layers,
        reducer=reducer,
        batch_size=batch_size,
        device=device,
        store=Path(folder) / "store",
        progress=progress,
        com=com,
        meta={"key": key},
        stale="recompute",
        callback=callback,
        fingerprints=fp,
        distributed=distributed,
    )


ATTACKS = ("pgd", "fgsm", "ifgsm_targeted", "cw", "uniform", "uniform_positive", "gaussian")


def attacked(
    model,
    x: torch.Tensor,
    y,
    kind: str = "pgd",
    eps: float = 8 / 255,
    *,
    nb_iter: int = 10,
    eps_iter: float | None = None,
    rand_init: bool = True,
    loss: str = "ce",
    seed: int = 0,
    batch_size: int = 256,
    device="cpu",
    workdir="introspect-work",
    cw_search_steps: int = 5,
    distributed: bool | None = None,
) -> dict:
    """The one cached attack stage: perturbed images and the model's answers on both.

    Every lens, figure and panel attacks through here, so one set of attacks per model,
    inputs and parameters is computed once and shared. The key is by content: the
    model's weights, the images and labels, and the attack's parameters.

    Parameters
    ----------
    kind : {"pgd", "fgsm", "ifgsm_targeted", "cw", "uniform", "uniform_positive", "gaussian"}
        L-inf PGD (advertorch; ``nb_iter`` steps of ``eps_iter``, default
        ``2.5 * eps / nb_iter``, random start when ``rand_init``); one FGSM step of size
        ``eps``; targeted iterative FGSM (``nb_iter`` signed-gradient steps of ``eps_iter``
        towards a seeded random other class, projected on the L-inf ball of ``eps``,
        no random start); L2 Carlini-Wagner (``cw``: no budget, so ``eps`` is ignored
        (pass 0); ``nb_iter`` Adam steps per round of
        ``cw_search_steps`` binary-search rounds); the noise controls U[-eps, eps],
        U[0, eps] (the telescope paper's) and N(0, eps^2) per pixel. All in [0, 1] pixel
        units, clipped to [0, 1].
    cw_search_steps : int
        Binary-search rounds of the Carlini-Wagner constant (``cw`` only).
    distributed : bool or None
        Shard the attack over the ranks of a ``torchrun`` job: rank ``r`` of ``W``
        attacks batches ``r, r + W, ...`` (``batch_size`` images each, batch ``k`` seeded
        by ``(seed, k)``: :func:`introspect.attacks.batch_seed`), the results are gathered
        on every rank, and rank 0 caches them. The result equals a single-process run's.
        The noise controls are cheap and run whole on every rank.
        ``None``, the default: sharded inside :func:`introspect.distributed.sharding` only.

    Returns
    -------
    dict with ``x_adv`` (Tensor like ``x``), ``pred`` and ``pred_adv`` (int arrays (n,)).
    """
    from ._checks import check_eps, check_images, check_labels
    from .attacks import carlini_wagner_l2, pgd, predict
    from .fingerprint import array_fingerprint

    if kind not in ATTACKS:
        raise ValueError(f"unknown attack {kind!r}; use one of {', '.join(ATTACKS)}.")
    eps = check_eps(eps, where="attacked")
    check_images(x, where="attacked")
    y = torch.as_tensor(check_labels(y, where="attacked"))
    if kind == "pgd":
        step = float(eps_iter) if eps_iter is not None else 2.5 * eps / max(int(nb_iter), 1)
        attack = dict(nb_iter=int(nb_iter), eps_iter=step, rand_init=bool(rand_init))
    elif kind == "ifgsm_targeted":
        step = float(eps_iter) if eps_iter is not None else 2.5 * eps / max(int(nb_iter), 1)
        attack = dict(nb_iter=int(nb_iter), eps_iter=step)
    elif kind == "cw":
        attack = dict(nb_iter=int(nb_iter), cw_search_steps=int(cw_search_steps))
    else:
        attack = {}
    params = dict(
        model=model_fingerprint(model),
        inputs=array_fingerprint(x, y),
        kind=kind,
        eps=eps,
        loss=loss,
        seed=int(seed),
        **attack,
    )

    from .distributed import group as dist_group
    from .distributed import rank_device

    grp = dist_group(distributed, device, where="attacked")
    dev = rank_device(device) if grp.active else device
    bs = int(batch_size)

    if kind == "ifgsm_targeted":  # one seeded random other class per input, for all inputs
        g = torch.Generator().manual_seed(int(seed))
        k = int(predict(model, x[:1], 1, dev).shape[1])
        target = (y + torch.randint(1, k, y.shape, generator=g)) % k

    def batches(b):
        """x_adv, pred, pred_adv of batch ``b`` (``bs`` images from ``b * bs``)."""
        rows = slice(b * bs, (b + 1) * bs)
        xb, yb = x[rows], y[rows]
        common = dict(loss=loss, seed=seed, device=dev, batch_size=bs, first_batch=b)
        if eps == 0 and kind != "cw":
            adv = xb.clone()
        elif kind == "pgd":
            adv = pgd(model, xb, yb, eps, **attack, **common)
        elif kind == "fgsm":
            adv = pgd(model, xb, yb, eps, nb_iter=1, eps_iter=eps, rand_init=False, **common)
        elif kind == "ifgsm_targeted":
            adv = pgd(model, xb, target[rows], eps, nb_iter=attack["nb_iter"],
                      eps_iter=attack["eps_iter"], rand_init=False, targeted=True,
                      **common)  # fmt: skip
        else:  # cw: deterministic per batch
            adv = carlini_wagner_l2(
                model, xb, yb, max_iterations=attack["nb_iter"],
                binary_search_steps=attack["cw_search_steps"], seed=seed, device=dev,
                batch_size=bs,
            )  # fmt: skip
        pred = predict(model, xb, bs, dev).argmax(1).numpy()
        return adv, pred, predict(model, adv, bs, dev).argmax(1).numpy()

    def run():
        if kind in ("pgd", "fgsm", "ifgsm_targeted", "cw"):
            n_batches = -(-len(x) // bs)
            mine = {b: batches(b) for b in grp.shard(n_batches)}
            parts = {}
            for got in grp.all_gather(mine):
                parts.update(got)
            x_adv, pred, pred_adv = (
                [parts[b][i] for b in range(n_batches)] for i in range(3)
            )  # fmt: skip
            return {
                "x_adv": torch.cat(x_adv) if x_adv else x.clone(),
                "pred": np.concatenate(pred) if pred else np.zeros(0, np.int64),
                "pred_adv": np.concatenate(pred_adv) if pred_adv else np.zeros(0, np.int64),
            }
        if eps == 0:
            x_adv = x.clone()
        else:
            g = torch.Generator().manual_seed(int(seed))
            if kind == "uniform":
                noise = (torch.rand(x.shape, generator=g) * 2 - 1) * eps
            elif kind == "uniform_positive":
                noise = torch.rand(x.shape, generator=g) * eps
            else:
                noise = torch.randn(x.shape, generator=g) * eps
            x_adv = (x + noise).clamp_(0.0, 1.0)
        return {
            "x_adv": x_adv,
            "pred": predict(model, x, bs, dev).argmax(1).numpy(),
            "pred_adv": predict(model, x_adv, bs, dev).argmax(1).numpy(),
        }

    wd = as_workdir(workdir)
    if not grp.active:
        return wd.memo("attack", params, run)
    # every rank joins the collective; rank 0 decides whether the cache serves it, and
    # caches the gathered result (the others never wait on the stage's lock meanwhile)
    hit = grp.broadcast(wd.cached("attack", params, fn=run)[0] if grp.rank == 0 else None)
    if hit:
        found, result = wd.cached("attack", params, fn=run)
        if not found:
            raise RuntimeError(
                f"attacked: rank {grp.rank} does not see the attack that rank 0 cached under "
                f"{wd.root}; a distributed job needs its workdir on a filesystem every rank sees."
            )
        return result
    result = run()
    if grp.rank == 0:
        wd.memo("attack", params, lambda: result)
    grp.barrier()
    return result


def attack_fn(workdir, **fixed):
    """``attack(model, x, y, eps, **kw) -> x_adv`` through :func:`attacked` (cached), in the
    form :func:`introspect.manifolds.classwise_robustness` takes."""

    def attack(model, x, y, eps, nb_iter=10, eps_iter=None, rand_init=True, batch_size=256,
               device="cpu", loss="ce", seed=0, **_):  # fmt: skip
        return attacked(
            model, x, y, fixed.get("kind", "pgd"), eps, nb_iter=nb_iter, eps_iter=eps_iter,
            rand_init=rand_init, loss=loss, seed=seed, batch_size=batch_size, device=device,
            workdir=workdir,
        )["x_adv"]  # fmt: skip

    return attack


class StageCancelled(Cancelled):
    """A progress callback asked a cached stage to stop; nothing was cached.

    The same stop as a watcher's :class:`introspect.progress.Cancelled` (a panel's
    Cancel), of which it is a kind: one ``except progress.Cancelled`` handles both ways
    of stopping, and no ``except Exception`` fallback swallows either.
    """


def fitted_som(
    X, *, workdir="introspect-work", progress: bool = False, callback=None, **som_params
):
    """The one cached SOM stage: a :class:`~introspect.som.ToroidalSOM` fitted on codes ``X``.

    Keyed by the content of ``X`` and the map's parameters (``device`` excluded: a map
    fitted on CUDA is reused on the CPU and back). ``callback(step, total, info)`` sees
    the fit's progress (:meth:`ToroidalSOM.fit`); when it returns True the fit stops and
    :class:`StageCancelled` is raised, so a map stopped half-way is never cached.
    """
    from .fingerprint import array_fingerprint
    from .som import ToroidalSOM

    X = np.asarray(X, dtype=np.float32)
    device = som_params.pop("device", "cpu")
    params = dict(codes=array_fingerprint(X), som=som_params)

    def fit():
        stopped = []

        def cb(*args):
            if callback is not None and callback(*args):
                stopped.append(True)
                return True
            return None

        som = ToroidalSOM(**som_params, device=str(device))
        som.fit(X, progress=progress, callback=cb if callback is not None else None)
        if stopped:
            raise StageCancelled("the SOM fit was cancelled; nothing was cached.")
        return som

    som = as_workdir(workdir).memo("som", params, fit)
    som.device = str(device)
    return som


def fitted_library(
    store: ActivationStore,
    layer: str,
    theta: float,
    top_k: int,
    n_classes: int,
    *,
    workdir="introspect-work",
    device="cpu",
):
    """The one cached library stage: a :class:`~introspect.library.LibraryNetwork` of one
    layer of a capture, built and linked with the network's answers (``store.preds``).

    Keyed by the capture's content key, the layer, ``theta`` and ``top_k``, so the
    library figures and :meth:`introspect.Study.library` share every library.
    """
    from .library import LibraryNetwork

    key = dict(train=store.meta.get("key"), layer=layer, theta=float(theta), top_k=int(top_k))

    def build():
        net = LibraryNetwork(float(theta), int(top_k), device=device)
        # read in row blocks as the library consumes them: a flatten layer larger than
        # memory never has to be in memory at once
        return net.fit(
            store.layer(layer, lazy=True), np.asarray(store.preds), int(n_classes), layer=layer
        )

    net = as_workdir(workdir).memo("library", key, build)
    net.device = device
    return net
