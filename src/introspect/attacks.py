"""Adversarial attacks and noise controls, in [0, 1] pixel space.

advertorch is the engine. advertorch 0.2.3 (the newest release) imports
``torch.autograd.gradcheck.zero_gradients``, which torch removed in 1.9; :func:`_advertorch`
puts a compatible function on that module before the first import, once.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn

from . import progress as _progress
from ._checks import check_eps, check_images, check_labels
from ._threads import for_model
from ._utils import resolve_device

__all__ = [
    "pgd",
    "batch_seed",
    "carlini_wagner_l2",
    "iterative_fgsm",
    "uniform_noise",
    "awgn",
    "noise_path",
    "predict",
    "accuracy",
]


def _zero_gradients(x):
    """What ``torch.autograd.gradcheck.zero_gradients`` did before torch 1.9."""
    if isinstance(x, torch.Tensor):
        if x.grad is not None:
            x.grad.detach_()
            x.grad.zero_()
    else:
        for elem in x:
            _zero_gradients(elem)


def _advertorch():
    """Import advertorch's attacks with the ``zero_gradients`` shim in place."""
    import importlib

    gradcheck = importlib.import_module("torch.autograd.gradcheck")
    sys.modules["torch.autograd.gradcheck"] = gradcheck
    if not hasattr(gradcheck, "zero_gradients"):
        gradcheck.zero_gradients = _zero_gradients
    import advertorch.attacks as attacks

    return attacks


def _check_images(x: torch.Tensor, where: str) -> None:
    """Float images in [0, 1] of shape (N, ...): attacks work in pixel space."""
    if not torch.is_tensor(x) or x.ndim < 2:
        raise ValueError(f"{where}: x must be a tensor of images of shape (N, C, H, W).")
    check_images(x, where=where)


def _check_labels(y, n: int, where: str, name: str = "y") -> torch.Tensor:
    """Integer labels, one per image, as a long tensor (on the device they came on)."""
    check_labels(y, where=f"{where} ({name})")
    y = torch.as_tensor(y, dtype=torch.long)
    if y.shape[0] != n:
        raise ValueError(f"{where}: {name} has {y.shape[0]} labels but x has {n} images.")
    return y


def _prepare(model: nn.Module, device):
    dev = resolve_device(device)
    if model.training:
        raise RuntimeError("the model is in train mode; call model.eval() before attacking it.")
    model.to(dev)
    return dev


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256, device="cpu") -> torch.Tensor:
    """Logits of ``model`` for images ``x`` (N, C, H, W), on the CPU."""
    _check_images(x, "predict")
    dev = _prepare(model, device)
    with for_model(model, x[:1].to(dev), batch_size), torch.no_grad():
        return torch.cat(
            [model(x[s : s + batch_size].to(dev)).cpu() for s in range(0, len(x), batch_size)]
        )


def accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256, device="cpu"
) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    y = _check_labels(y, len(x), "accuracy").cpu()
    return float((predict(model, x, batch_size, device).argmax(1) == y).float().mean())


def _loss(kind: str, num_classes: int | None = None):
    if kind == "ce":
        return nn.CrossEntropyLoss(reduction="sum")
    if kind == "mse":

        def mse(outputs, y):
            onehot = F.one_hot(y, outputs.shape[1]).to(outputs.dtype)
            return 0.5 * ((torch.sigmoid(outputs) - onehot) ** 2).sum()

        return mse
    raise ValueError(f"loss must be 'ce' or 'mse'; got {kind!r}.")


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    nb_iter: int = 40,
    eps_iter: float = 0.01,
    rand_init: bool = True,
    targeted: bool = False,
    batch_size: int = 256,
    device="cpu",
    loss: str = "ce",
    seed: int | None = 0,
    first_batch: int = 0,
) -> torch.Tensor:
    """L-inf projected gradient descent (advertorch ``LinfPGDAttack``).

    Parameters
    ----------
    model : nn.Module in eval mode, taking images in [0, 1]
    x : Tensor of shape (N, C, H, W) in [0, 1]
    y : Tensor of shape (N,)
        True labels (untargeted) or target labels (``targeted=True``).
    eps : float
        Radius of the L-inf ball, in pixel units (e.g. 8/255).
    nb_iter, eps_iter : int, float
        Number of steps and step size (the telescope paper uses 50 steps of
        ``eps * 2 / 100``; the library paper 40 of 0.01).
    rand_init : bool
        Start from a uniform random point in the ball (Madry et al.).
    loss : {"ce", "mse"}
        Cross-entropy on logits, or 1/2 squared error on sigmoid outputs.
    seed : int or None
        Seeds the random start so runs repeat: batch ``k`` (``batch_size`` images) starts
        from torch's generator seeded by ``(seed, first_batch + k)``, so a set attacked in
        shards of whole batches (one per rank) equals the set attacked at once.
    first_batch : int
        Number of the first batch of ``x`` in the whole set that is being attacked in
        shards (0 when ``x`` is the whole set).

    Returns
    -------
    Tensor of shape (N, C, H, W) on the CPU
        Inside the eps ball around ``x`` and clipped to [0, 1].
    """
    _check_images(x, "pgd")
    y = _check_labels(y, len(x), "pgd")
    eps = check_eps(eps, where="pgd")
    eps_iter = check_eps(eps_iter, where="pgd", name="eps_iter")
    dev = _prepare(model, device)
    if eps == 0:
        return x.clone()
    attack = _advertorch().LinfPGDAttack(
        model,
        loss_fn=_loss(loss),
        eps=eps,
        nb_iter=nb_iter,
        eps_iter=eps_iter,
        rand_init=rand_init,
        clip_min=0.0,
        clip_max=1.0,
        targeted=targeted,
    )
    out = []
    with for_model(model, x[:1].to(dev), batch_size):
        for k, s in enumerate(range(0, len(x), batch_size)):
            if seed is not None:
                torch.manual_seed(batch_seed(seed, first_batch + k))
            xb, yb = x[s : s + batch_size].to(dev), y[s : s + batch_size].to(dev)
            _progress.report("pgd", s, len(x))
            adv = attack.perturb(xb, yb).detach()
            # advertorch already projects and clips; enforce it exactly against float round-off.
            adv = torch.min(torch.max(adv, xb - eps), xb + eps).clamp_(0.0, 1.0)
            out.append(adv.cpu())
    _progress.report("pgd", len(x), len(x))
    return torch.cat(out)


def batch_seed(seed: int, batch: int) -> int:
    """The seed of batch ``batch`` of an attack seeded ``seed`` (independent streams per
    batch, the same whichever process computes the batch)."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(batch)]).generate_state(1)[0])


def carlini_wagner_l2(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int | None = None,
    *,
    confidence: float = 0.0,
    max_iterations: int = 100,
    binary_search_steps: int = 5,
    initial_const: float = 1e-2,
    learning_rate: float = 1e-2,
    targeted: bool = False,
    batch_size: int = 256,
    device="cpu",
    seed: int | None = 0,
) -> torch.Tensor:
    """L2 Carlini-Wagner attack (advertorch ``CarliniWagnerL2Attack``).

    Minimises ``||delta||_2^2 + c * f(x + delta)`` with Adam in tanh space, where ``f`` is
    the margin of the true (or target) logit over the best other one plus ``confidence``;
    ``c`` is found by a binary search of ``binary_search_steps`` rounds starting at
    ``initial_const``. There is no norm budget: the attack returns the smallest successful
    perturbation it found (the clean image where it found none).

    Parameters
    ----------
    model : nn.Module in eval mode, taking images in [0, 1]
    x : Tensor of shape (N, C, H, W) in [0, 1]
    y : Tensor of shape (N,)
        True labels (untargeted) or targets (``targeted=True``).
    num_classes : int, optional
        Number of logits (default: from one forward pass).
    confidence, max_iterations, binary_search_steps, initial_const, learning_rate
        As in Carlini & Wagner (2017); the defaults trade strength for speed (advertorch's
        own are 10000 iterations and 9 search steps).

    Returns
    -------
    Tensor of shape (N, C, H, W) on the CPU, in [0, 1].
    """
    _check_images(x, "carlini_wagner_l2")
    y = _check_labels(y, len(x), "carlini_wagner_l2")
    for name, v in (
        ("max_iterations", max_iterations),
        ("binary_search_steps", binary_search_steps),
    ):
        if int(v) != v or v < 1:
            raise ValueError(f"carlini_wagner_l2: {name} must be an integer >= 1; got {v!r}.")
    dev = _prepare(model, device)
    if num_classes is None:
        with torch.no_grad():
            num_classes = int(model(x[:1].to(dev)).shape[1])
    attack = _advertorch().CarliniWagnerL2Attack(
        model,
        int(num_classes),
        confidence=float(confidence),
        targeted=targeted,
        learning_rate=float(learning_rate),
        binary_search_steps=int(binary_search_steps),
        max_iterations=int(max_iterations),
        initial_const=float(initial_const),
        clip_min=0.0,
        clip_max=1.0,
    )
    if seed is not None:
        torch.manual_seed(seed)
    out = []
    with for_model(model, x[:1].to(dev), batch_size):
        for s in range(0, len(x), batch_size):
            _progress.report("cw", s, len(x))
            xb, yb = x[s : s + batch_size].to(dev), y[s : s + batch_size].to(dev)
            out.append(attack.perturb(xb, yb).detach().clamp_(0.0, 1.0).cpu())
    return torch.cat(out)


def iterative_fgsm(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor | int,
    steps: int = 100,
    step_size: float = 0.01,
    loss: str = "mse",
    record: bool = True,
    device="cpu",
    batch_size: int = 256,
) -> torch.Tensor:
    """Targeted iterative FGSM (Pardo et al.): ``steps`` signed-gradient steps towards ``target``.

    Each step is advertorch's targeted ``GradientSignAttack`` of size ``step_size`` on the
    current image, clipped to [0, 1]; there is no eps-ball projection (the paper lets the
    trajectory run).

    Returns
    -------
    Tensor of shape (N, steps + 1, C, H, W) with ``record=True`` (index 0 is the clean
    input), else the final images (N, C, H, W); on the CPU.
    """
    _check_images(x, "iterative_fgsm")
    step_size = check_eps(step_size, where="iterative_fgsm", name="step_size")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"iterative_fgsm: steps must be an integer >= 0; got {steps!r}.")
    dev = _prepare(model, device)
    if torch.as_tensor(target).ndim == 0:
        target = torch.as_tensor(target).reshape(1)
        check_labels(target, where="iterative_fgsm (target)")
        target = target.long().expand(len(x))
    else:
        target = _check_labels(target, len(x), "iterative_fgsm", name="target")
    step = _advertorch().GradientSignAttack(
        model, loss_fn=_loss(loss), eps=step_size, clip_min=0.0, clip_max=1.0, targeted=True
    )
    results = []
    with for_model(model, x[:1].to(dev), batch_size):
        for s in range(0, len(x), batch_size):
            cur, tb = x[s : s + batch_size].to(dev), target[s : s + batch_size].to(dev)
            traj = [cur.cpu()] if record else None
            for k in range(steps):
                _progress.report("fgsm", s * steps + k * len(cur), len(x) * steps)
                cur = step.perturb(cur, tb).detach()
                if record:
                    traj.append(cur.cpu())
            results.append(torch.stack(traj, 1) if record else cur.cpu())
    return torch.cat(results)


def uniform_noise(x: torch.Tensor, high: float, seed: int = 0) -> torch.Tensor:
    """``x`` plus uniform noise in ``[0, high]`` per pixel, clipped to [0, 1]
    (the telescope paper's control for PGD: ``high = 1/255``)."""
    _check_images(x, "uniform_noise")
    high = check_eps(high, where="uniform_noise", name="high")
    g = torch.Generator().manual_seed(seed)
    return (x + torch.rand(x.shape, generator=g) * high).clamp_(0.0, 1.0)


def _check_noise(x, sigma, count, where: str, sigma_name: str, count_name: str) -> float:
    """Images in [0, 1], a finite std >= 0 and a whole count >= 1 for the noise functions."""
    if not torch.is_tensor(x):
        raise ValueError(f"{where}: x must be a tensor of images (C, H, W) or (N, C, H, W).")
    check_images(x, where=where)
    sigma = check_eps(sigma, where=where, name=sigma_name)
    if int(count) != count or count < 1:
        raise ValueError(f"{where}: {count_name} must be an integer >= 1; got {count!r}.")
    return sigma


def awgn(x: torch.Tensor, sigma: float, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` draws of additive white Gaussian noise of std ``sigma`` on ``x``, clipped to [0, 1].

    Returns a tensor of shape ``(n, *x.shape)``.
    """
    sigma = _check_noise(x, sigma, n, "awgn", "sigma", "n (the number of draws)")
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn((n, *x.shape), generator=g) * sigma
    return (x.unsqueeze(0) + noise).clamp_(0.0, 1.0)


def noise_path(x: torch.Tensor, sigma_max: float, steps: int, seed: int = 0) -> torch.Tensor:
    """One fixed Gaussian noise pattern on ``x``, scaled from 0 to ``sigma_max`` in ``steps``.

    The images follow one continuous path away from ``x`` (step 0 is ``x`` itself), e.g.
    to draw an input's trajectory on a map as noise grows (Pardo et al. 2022, Fig. 6).

    Parameters
    ----------
    x : Tensor of shape (C, H, W)
        One image in [0, 1].
    sigma_max : float
        Std of the noise at the last step, in [0, 1] pixel units.
    steps : int
        Number of steps after the clean image.
    seed : int

    Returns
    -------
    Tensor of shape (steps + 1, C, H, W), clipped to [0, 1].
    """
    sigma_max = _check_noise(x, sigma_max, steps, "noise_path", "sigma_max", "steps")
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(x.shape, generator=g)
    sig = torch.linspace(0.0, float(sigma_max), int(steps) + 1).view(-1, *([1] * x.ndim))
    return (x.unsqueeze(0) + sig * n.unsqueeze(0)).clamp(0.0, 1.0)
