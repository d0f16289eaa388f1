"""Networks and the training loop behind :mod:`introspect.selfintro`.

Private: the public estimators (:class:`~introspect.selfintro.InfoVAE`,
:class:`~introspect.selfintro.ErrorEstimator`) own these modules and call the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from . import progress as _progress
from ._threads import for_model

__all__ = ["elu_mlp", "gaussian_mmd", "train_minibatches", "make_scheduler"]


def elu_mlp(n_in: int, hidden: Sequence[int], n_out: int) -> nn.Sequential:
    """``n_in -> hidden[0] ELU -> ... -> hidden[-1] ELU -> n_out`` (linear output)."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ELU()]
        width = int(h)
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, width2: float) -> torch.Tensor:
    """``exp(-||a_i - b_j||^2 / width2)`` for every pair: (n, d), (m, d) -> (n, m)."""
    d2 = torch.cdist(a, b, p=2.0).pow(2)
    return torch.exp(-d2 / width2)


def gaussian_mmd(z: torch.Tensor, prior: torch.Tensor, width2: float) -> torch.Tensor:
    """Biased (V-statistic) squared MMD between two samples with a Gaussian kernel.

    ``MMD^2 = mean k(z, z') + mean k(p, p') - 2 mean k(z, p)``; zero when both samples
    are the same, positive otherwise (the Gaussian kernel is characteristic).
    """
    kzz = gaussian_kernel(z, z, width2).mean()
    kpp = gaussian_kernel(prior, prior, width2).mean()
    kzp = gaussian_kernel(z, prior, width2).mean()
    return kzz + kpp - 2.0 * kzp


def make_scheduler(opt: torch.optim.Optimizer, clr: dict | None, steps_per_epoch: int):
    """Triangular cyclic learning rate (Smith 2017) from ``dict(base_lr, max_lr, step_size)``.

    ``step_size`` is in iterations (half a cycle); the optimizer's own ``lr`` is used when
    ``clr`` is None. Returns None for a constant rate.
    """
    if clr is None:
        return None
    unknown = set(clr) - {"base_lr", "max_lr", "step_size"}
    if unknown:
        raise ValueError(
            f"clr takes keys base_lr, max_lr, step_size; got unknown {sorted(unknown)}"
        )
    step = int(clr.get("step_size", max(1, 2 * steps_per_epoch)))
    return torch.optim.lr_scheduler.CyclicLR(
        opt,
        base_lr=float(clr.get("base_lr", 0.0)),
        max_lr=float(clr["max_lr"]),
        step_size_up=step,
        mode="triangular",
        cycle_momentum=False,
    )


def train_minibatches(
    module: nn.Module,
    tensors: Sequence[torch.Tensor],
    loss_fn: Callable[..., dict[str, torch.Tensor]],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    clr: dict | None,
    generator: torch.Generator,
    device: torch.device,
    progress: bool = False,
    desc: str = "train",
) -> dict[str, list[float]]:
    """Adam over shuffled minibatches of ``tensors`` (all on CPU, moved per batch).

    ``loss_fn(*batch)`` returns a dict whose ``"loss"`` entry is minimised; every entry
    is averaged over the epoch (weighted by batch size) into the returned history.
    """
    n = int(tensors[0].shape[0])
    if n == 0:
        raise ValueError("cannot train on an empty array (0 rows)")
    batch_size = max(1, min(int(batch_size), n))
    steps = int(np.ceil(n / batch_size))
    opt = torch.optim.Adam(module.parameters(), lr=float(lr))
    sched = make_scheduler(opt, clr, steps)
    history: dict[str, list[float]] = {}
    iterator = _progress.bar(range(int(epochs)), desc=desc, leave=False, disable=not progress)
    module.train()
    with for_model(module, tensors[0][:1].to(device), batch_size):  # small MLPs: 1 thread
        for _ in iterator:
            perm = torch.randperm(n, generator=generator)
            sums: dict[str, float] = {}
            for s in range(steps):
                idx = perm[s * batch_size : (s + 1) * batch_size]
                batch = [t[idx].to(device) for t in tensors]
                parts = loss_fn(*batch)
                opt.zero_grad(set_to_none=True)
                parts["loss"].backward()
                opt.step()
                if sched is not None:
                    sched.step()
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
            for k, v in sums.items():
                history.setdefault(k, []).append(v / n)
    module.eval()
    return history
