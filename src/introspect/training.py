"""Fit a classifier the ways the papers did: cross-entropy or sigmoid + squared error,
Adam or SGD, a triangular cyclic learning rate, early stopping, noise injection and PGD
adversarial training (Madry et al.)."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import progress as _progress
from ._checks import check_images, check_labels
from ._threads import for_model
from ._utils import resolve_device, seed_everything

__all__ = [
    "fit_classifier",
    "evaluate",
    "classifier_loss",
    "confusion_matrix",
    "cyclic_lr",
    "lr_schedule",
]

_CLR_KEYS = ("base_lr", "max_lr", "step_size", "max_lr_decay")


class _CycleDecay:
    """``scale_fn`` of :class:`~torch.optim.lr_scheduler.CyclicLR`: cycle ``c`` (from 1) peaks
    at ``decay ** (c - 1)`` of the first. A callable object, not a lambda, so the
    scheduler's ``state_dict`` keeps it (as ``{"decay": ...}``) and a resumed run decays alike."""

    def __init__(self, decay: float):
        self.decay = float(decay)

    def __call__(self, cycle):
        return self.decay ** (cycle - 1)


def cyclic_lr(opt, clr: dict, lr: float, cycle_momentum: bool = False):
    """The triangular cyclic learning rate (Smith 2017) of a ``clr`` dict, stepped per iteration.

    Parameters
    ----------
    opt : torch.optim.Optimizer
    clr : dict
        ``base_lr`` (default ``lr / 10``), ``max_lr`` (default ``lr``), ``step_size``
        (iterations from the bottom to the top of a cycle; a cycle is two step sizes;
        default 2000) and ``max_lr_decay`` (default 1: the peak of cycle ``c`` (from 1) is
        ``base_lr + (max_lr - base_lr) * max_lr_decay ** (c - 1)``; Pardo et al.'s Net2
        uses 0.95).
    lr : float
        The fallback of ``base_lr`` / ``max_lr``.

    Returns
    -------
    torch.optim.lr_scheduler.CyclicLR
        Iteration ``k`` (counting from 0) runs at ``base_lr`` plus ``k / step_size`` of the
        cycle's height on the way up, and back down to ``base_lr`` at ``k = 2 step_size``.
    """
    unknown = sorted(set(clr) - set(_CLR_KEYS))
    if unknown:
        raise ValueError(
            f"clr: unknown key(s) {', '.join(map(repr, unknown))}; use {', '.join(_CLR_KEYS)}."
        )
    decay = float(clr.get("max_lr_decay", 1.0))
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"clr: max_lr_decay must lie in (0, 1], got {decay!r}.")
    extra = {} if decay == 1.0 else dict(scale_fn=_CycleDecay(decay), scale_mode="cycle")
    return torch.optim.lr_scheduler.CyclicLR(
        opt,
        base_lr=clr.get("base_lr", lr / 10),
        max_lr=clr.get("max_lr", lr),
        step_size_up=int(clr.get("step_size", 2000)),
        mode="triangular",
        cycle_momentum=cycle_momentum,
        **extra,
    )


def lr_schedule(clr: dict, n_steps: int, lr: float = 1e-3) -> np.ndarray:
    """The learning rate :func:`fit_classifier` uses at iterations ``0 .. n_steps - 1`` for ``clr``.

    Computed by stepping the very scheduler training uses (:func:`cyclic_lr`) on a dummy
    parameter, without training anything.
    """
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = cyclic_lr(opt, clr, lr)
    out = np.empty(int(n_steps))
    opt.step()  # a no-op (no gradient) that tells the scheduler the optimizer has stepped
    group = opt.param_groups[0]
    for k in range(int(n_steps)):
        out[k] = group["lr"]
        sched.step()
    return out


def classifier_loss(logits: torch.Tensor, y: torch.Tensor, kind: str = "ce") -> torch.Tensor:
    """Mean loss over the batch: ``"ce"`` cross-entropy, or ``"mse"`` = 1/2 ||y - sigmoid(logits)||^2."""
    if kind == "ce":
        return F.cross_entropy(logits, y)
    if kind == "mse":
        onehot = F.one_hot(y, logits.shape[1]).to(logits.dtype)
        return 0.5 * ((torch.sigmoid(logits) - onehot) ** 2).sum(1).mean()
    raise ValueError(f"loss must be 'ce' or 'mse'; got {kind!r}.")


def _as_tensors(dataset, where: str | None = None, n_classes: int | None = None):
    """Images as float32 and labels as int64; checked against the contract when ``where``."""
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        x, y = torch.as_tensor(dataset[0]), torch.as_tensor(dataset[1])
    else:
        x, y = dataset.tensors()
    if where is not None:
        check_images(x, where=where)
        check_labels(y, n_classes, where=where)
    return x.float(), y.long()


def confusion_matrix(labels, preds, n_classes: int | None = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Parameters
    ----------
    labels, preds : array-like of int, shape (n_samples,)
    n_classes : int, optional
        Default: one more than the largest class in either.

    Returns
    -------
    ndarray of shape (n_classes, n_classes), int64
        Row ``i``, column ``j``: inputs of class ``i`` predicted as ``j``; the diagonal
        holds the correct answers, ``cm.sum(1)`` the class sizes.
    """
    labels = check_labels(labels, n_classes, where="confusion_matrix (labels)")
    preds = check_labels(preds, n_classes, where="confusion_matrix (preds)")
    if labels.shape != preds.shape:
        raise ValueError(
            f"confusion_matrix: labels has {labels.shape[0]} entries but preds has "
            f"{preds.shape[0]}."
        )
    if n_classes is None:
        n_classes = int(max(labels.max(initial=-1), preds.max(initial=-1))) + 1
    cm = np.zeros((int(n_classes), int(n_classes)), dtype=np.int64)
    np.add.at(cm, (labels, preds), 1)
    return cm


def evaluate(
    model: nn.Module, dataset, batch_size: int = 256, device="cpu", loss: str | None = None
) -> dict:
    """Accuracy, predictions, logits and labels of ``model`` on ``dataset``.

    Returns
    -------
    dict
        ``accuracy`` (float), ``preds``, ``labels`` (int arrays of shape (N,)),
        ``logits`` (float array (N, n_classes)) and ``loss`` when ``loss`` is given.
    """
    dev = resolve_device(device)
    x, y = _as_tensors(dataset)
    was_training = model.training
    model.eval().to(dev)
    with for_model(model, x[:1].to(dev), batch_size), torch.no_grad():
        logits = torch.cat(
            [model(x[s : s + batch_size].to(dev)).cpu() for s in range(0, len(x), batch_size)]
        )
    model.train(was_training)
    out = {
        "accuracy": float((logits.argmax(1) == y).float().mean()),
        "preds": logits.argmax(1).numpy(),
        "labels": y.numpy(),
        "logits": logits.numpy(),
    }
    if loss is not None:
        out["loss"] = float(classifier_loss(logits, y, loss))
    return out


def fit_classifier(
    model: nn.Module,
    train,
    val=None,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    optimizer: str = "adam",
    loss: str = "ce",
    clr: dict | None = None,
    patience: int | None = None,
    noise_sigma_max: float = 0.0,
    adversarial: dict | None = None,
    weight_decay: float = 0.0,
    device="cpu",
    seed: int = 0,
    callback: Callable | None = None,
    progress: bool = True,
    resume: str | Path | None = None,
) -> dict:
    """Train ``model`` on ``train``; return the history. The model ends in eval mode.

    Parameters
    ----------
    model : nn.Module taking images in [0, 1]
    train, val : ImageDataset or (X, y) tensors
        ``val`` drives early stopping and is reported each epoch.
    epochs, batch_size, lr : int, int, float
    optimizer : {"adam", "sgd"}
        SGD uses momentum 0.9.
    loss : {"ce", "mse"}
        ``"mse"`` is Pardo et al.'s 1/2 ||y - y_hat||^2 on sigmoid outputs.
    clr : dict, optional
        Triangular cyclic learning rate, e.g. ``dict(base_lr=1e-4, max_lr=1e-3,
        step_size=2000)`` (step size in iterations; one cycle is two step sizes), with an
        optional per-cycle ``max_lr_decay`` (see :func:`cyclic_lr`; :func:`lr_schedule`
        lists the rates without training).
    patience : int, optional
        Stop when the validation loss has not improved for this many epochs and restore
        the best weights (needs ``val``).
    noise_sigma_max : float
        Gaussian noise injection: each minibatch gets noise of std sigma ~ U[0,
        noise_sigma_max], clipped to [0, 1] (Pardo et al.'s noise-trained clone uses 1).
    adversarial : dict, optional
        PGD adversarial training (Madry et al.): every minibatch is replaced by its PGD
        adversarial examples, e.g. ``dict(eps=0.3, nb_iter=40, eps_iter=0.01)``.
    weight_decay : float
    device : str
    seed : int
        Seeds the initial shuffle, the noise and the attacks.
    callback : callable(epoch, model, history), optional
        Called after every epoch with the model in eval mode (e.g. to record hidden
        states through training).
    progress : bool
        A tqdm bar over epochs with the running loss and accuracy.
    resume : path, optional
        A checkpoint file written (atomically) after every epoch: the weights, the
        optimizer, the schedule, the random states, the history and the early-stopping
        state. When it exists, training continues after its last epoch, so an interrupted
        run resumes and ends with the weights and history of an uninterrupted one (the
        ``callback`` is not called again for the epochs already done). A checkpoint of a
        finished run returns at once. It is read with ``weights_only=True`` (no code runs)
        and refused, with an error, when it belongs to another run (data size, batch size,
        epochs, lr, schedule, loss, optimizer, seed, patience, noise or attack differ).

    Returns
    -------
    dict
        Lists ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``lr`` per epoch,
        and ``best_epoch``.

    Raises
    ------
    KeyboardInterrupt
        A Ctrl-C (or a ``KeyboardInterrupt`` raised by ``callback``, e.g. a panel's
        Cancel) restores the best weights seen so far (with ``val``), leaves the model in
        eval mode and propagates, so that no caller can mistake the half-trained model for
        a finished one (the pipeline's cache stores nothing).
    """

    dev = resolve_device(device)
    if val is None and patience is not None:
        raise ValueError("early stopping (patience=...) needs a validation set: pass val=...")
    gen = seed_everything(seed)
    n_classes = getattr(model, "num_classes", None)
    x, y = _as_tensors(train, "fit_classifier (train)", n_classes)
    if len(x) == 0:
        raise ValueError("the training set is empty.")
    if val is not None:
        _as_tensors(val, "fit_classifier (val)", n_classes)
    model.to(dev)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd'; got {optimizer!r}.")
    sched = None
    if clr is not None:
        sched = cyclic_lr(opt, clr, lr, cycle_momentum=optimizer == "sgd")
    attack = None
    if adversarial is not None:
        from .attacks import pgd

        adv = dict(adversarial)

        def attack(xb, yb):
            model.eval()
            xa = pgd(model, xb, yb, device=dev, seed=None, **adv)
            model.train()
            return xa

    history: dict = {k: [] for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr")}
    history.update(best_epoch=None)
    best_state, best_val, bad = None, np.inf, 0
    run = dict(
        n_train=len(x), batch_size=int(batch_size), epochs=int(epochs), lr=float(lr),
        loss=str(loss), optimizer=str(optimizer), seed=int(seed),
        other=repr(dict(clr=clr, patience=patience, noise_sigma_max=noise_sigma_max,
                        adversarial=adversarial, weight_decay=weight_decay)),
    )  # fmt: skip
    resume = Path(resume) if resume is not None else None
    start = 0
    if resume is not None and resume.is_file():
        ck = torch.load(resume, map_location="cpu", weights_only=True)
        if ck.get("run") != run:
            raise ValueError(
                f"{resume} is the checkpoint of another training run ({ck.get('run')}, this "
                f"one is {run}); delete it or pass another resume=... path."
            )
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None:
            sched.load_state_dict(ck["scheduler"])
        gen.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        if ck.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ck["cuda_rng"])
        history, best_state, best_val, bad = (
            ck["history"], ck["best_state"], ck["best_val"], ck["bad"]
        )  # fmt: skip
        start = epochs if ck["finished"] else ck["epoch"] + 1

    def checkpoint(epoch, finished):
        ck = dict(
            run=run, epoch=int(epoch), finished=bool(finished), model=model.state_dict(),
            optimizer=opt.state_dict(), scheduler=sched.state_dict() if sched else None,
            generator=gen.get_state(), torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            history=history, best_state=best_state, best_val=float(best_val), bad=int(bad),
        )  # fmt: skip
        tmp = resume.with_name(f".{resume.name}.{os.getpid()}.tmp")
        torch.save(ck, tmp)
        os.replace(tmp, resume)

    bar = _progress.bar(
        range(start, epochs), desc="train", initial=start, total=epochs, disable=not progress
    )
    threads = for_model(model, x[:1].to(dev), batch_size)  # one thread for small models
    threads.__enter__()
    try:
        for epoch in bar:
            model.train()
            perm = torch.randperm(len(x), generator=gen)
            tot_loss, tot_correct = 0.0, 0
            for s in range(0, len(x), batch_size):
                _progress.report("train", epoch, epochs)  # a Cancel stops between batches
                idx = perm[s : s + batch_size]
                xb, yb = x[idx], y[idx]
                if noise_sigma_max > 0:
                    sigma = float(torch.rand((), generator=gen)) * noise_sigma_max
                    xb = (xb + torch.randn(xb.shape, generator=gen) * sigma).clamp(0.0, 1.0)
                if attack is not None:
                    xb = attack(xb, yb)
                xb, yb = xb.to(dev), yb.to(dev)
                logits = model(xb)
                batch_loss = classifier_loss(logits, yb, loss)
                opt.zero_grad(set_to_none=True)
                batch_loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                tot_loss += batch_loss.item() * len(idx)
                tot_correct += int((logits.argmax(1) == yb).sum())
            history["train_loss"].append(tot_loss / len(x))
            history["train_acc"].append(tot_correct / len(x))
            history["lr"].append(opt.param_groups[0]["lr"])
            model.eval()
            if val is not None:
                ev = evaluate(model, val, device=dev, loss=loss)
                history["val_loss"].append(ev["loss"])
                history["val_acc"].append(ev["accuracy"])
                if ev["loss"] < best_val - 1e-6:
                    best_val, bad, history["best_epoch"] = ev["loss"], 0, epoch
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad += 1
            bar.set_postfix(
                loss=f"{history['train_loss'][-1]:.4f}",
                acc=f"{history['train_acc'][-1]:.3f}",
                val_acc=f"{history['val_acc'][-1]:.3f}" if history["val_acc"] else "-",
            )
            if callback is not None:
                callback(epoch, model, history)
            stop = patience is not None and bad >= patience
            if resume is not None:
                checkpoint(epoch, stop or epoch == epochs - 1)
            if stop:
                break
    except KeyboardInterrupt:
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        raise
    finally:
        threads.__exit__(None, None, None)
    if patience is not None and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history
