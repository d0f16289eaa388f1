"""Intra-op thread policy for the toolkit's own loops (training, capture, attacks, SOM).

A loop of small torch operations (a 16x16 digits CNN, a SOM step of 10 samples, an MLP
VAE) on two intra-op threads collapses when another process holds a core: every operation ends at a barrier that waits for the
descheduled thread, so each of thousands of tiny operations can cost a whole scheduler
time slice. Measured on the 2-core machine this was written on, with one other
CPU-bound process running: a ToroidalSOM epoch went from 0.5 s (one thread) to 1.3-5.4 s
(two threads), a small CNN forward from 3 to 7 ms median with 160 ms outliers.

Large operations collapse too once the cores are taken: a CIFAR ResNet44 forward of 64
images ran at 209 images/s on one thread and 51 on two while other processes kept the
machine busy. On a quiet machine the second thread pays, even for small models (1.2-2x
for the digits networks and a SOM step here), so the toolkit decides by what else is running. Before
each of its loops it measures the CPU the other processes used recently (``/proc/stat``
less this process's own CPU time, over the time since the last decision or a 50 ms
window) and runs with ``cores - ceil(others - slack)`` intra-op threads, never more than
torch's own setting: small operations (below :data:`SMALL_OP_FLOPS` per parametrised
operation) get a slack of 0.1 core, so a background process taking a third of a core
already moves them to one thread; larger ones a slack of 0.5 core. Thus, on 2 cores:
quiet, 2 threads; a busy process beside it, 1 thread. This holds on the CPU only (work on
an accelerator leaves the threads alone), and the previous setting is restored when the
loop ends.
``INTROSPECT_THREADS`` overrides the policy: ``auto`` (default), ``torch`` (never touch
torch's setting) or a number (use that many threads in every toolkit loop).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import weakref

import torch

SMALL_OP_FLOPS = 20e6
"""Per-operation work below which a loop gives up a thread at the first sign of other work."""

_FLOPS_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _override() -> int | str:
    raw = os.environ.get("INTROSPECT_THREADS", "auto").strip().lower()
    if raw in ("", "auto"):
        return "auto"
    if raw == "torch":
        return "torch"
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(
            f"INTROSPECT_THREADS={raw!r} is not understood: use 'auto', 'torch' or a thread count."
        ) from None
    if n < 1:
        raise ValueError(f"INTROSPECT_THREADS must be >= 1, got {n}.")
    return n


_WINDOW_S = 0.05  # the first measurement of the other processes' CPU use
_REUSE_S = 0.2  # decisions closer together than this reuse the last measurement
_STALE_S = 10.0  # a last sample older than this is measured afresh
_last_sample: tuple[float, float, float] | None = None
_last_others: float = 0.0


def _cpu_sample() -> tuple[float, float, float] | None:
    """(wall seconds, CPU-seconds busy on the whole machine, CPU-seconds of this process)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:  # not Linux: no measurement, no adaptation
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return time.monotonic(), busy, own.user + own.system


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def others_busy() -> float:
    """Cores' worth of CPU that other processes used recently (0 where it cannot be told)."""
    global _last_sample, _last_others
    now = _cpu_sample()
    if now is None:
        return 0.0
    last = _last_sample
    if last is not None and now[0] - last[0] < _REUSE_S:
        return _last_others
    if last is None or now[0] - last[0] > _STALE_S:
        last = now
        time.sleep(_WINDOW_S)
        now = _cpu_sample()
    wall = max(now[0] - last[0], 1e-3)
    _last_others = max(0.0, ((now[1] - last[1]) - (now[2] - last[2])) / wall)
    _last_sample = now
    return _last_others


def threads_for(flops_per_op: float, device="cpu") -> int | None:
    """The intra-op thread count a toolkit loop should use, or None to leave torch's.

    Parameters
    ----------
    flops_per_op : float
        Floating-point operations of a typical parametrised operation of one loop step
        (a convolution or matrix product of one batch).
    device : str or torch.device
        Work on an accelerator leaves the CPU threads alone (under ``auto``).
    """
    rule = _override()
    if rule == "torch":
        return None
    if isinstance(rule, int):
        return rule
    if torch.device(device).type != "cpu":
        return None
    current = torch.get_num_threads()
    if current == 1:  # nothing to give up: no need to measure (its first window sleeps 50 ms)
        return None
    slack = 0.1 if flops_per_op < SMALL_OP_FLOPS else 0.5
    busy = max(0.0, others_busy() - slack)
    n = max(1, min(current, _cores() - math.ceil(busy)))
    return None if n == current else n


@contextlib.contextmanager
def intra_op_threads(n: int | None):
    """Run the block with ``n`` intra-op torch threads (None: unchanged); restore after."""
    if n is None or n == torch.get_num_threads():
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _module_flops(module: torch.nn.Module, output) -> float:
    """Multiply-adds x 2 of one call of a parametrised leaf module (its output known)."""
    out = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(out, torch.Tensor):
        return 0.0
    weight = getattr(module, "weight", None)
    if isinstance(module, torch.nn.modules.conv._ConvNd) and weight is not None:
        return 2.0 * out.numel() * weight[0].numel()  # in_channels / groups * kernel size
    if isinstance(module, torch.nn.Linear):
        return 2.0 * out.numel() * module.in_features
    return 2.0 * out.numel()  # normalisation layers and the like: a few ops per output


def model_flops_per_op(model: torch.nn.Module, sample: torch.Tensor) -> float:
    """Forward FLOPs of one input divided by the number of parametrised leaf-module calls.

    Counted once per model and input shape, by forward hooks on the parametrised leaf
    modules during one forward pass of a single input (convolutions and linear layers
    exactly, other layers as two operations per output), and cached.
    """
    key = tuple(sample.shape[1:])
    per_model = _FLOPS_CACHE.setdefault(model, {})
    if key not in per_model:
        calls: list[float] = []
        leaves = [
            m
            for m in model.modules()
            if next(m.children(), None) is None and next(m.parameters(False), None) is not None
        ]
        handles = [
            m.register_forward_hook(lambda m, a, o: calls.append(_module_flops(m, o)))
            for m in leaves
        ]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                model(sample[:1])
        finally:
            model.train(was_training)
            for h in handles:
                h.remove()
        per_model[key] = sum(calls) / max(1, len(calls))
    return per_model[key]


def for_model(model: torch.nn.Module, sample: torch.Tensor, batch_size: int):
    """Context manager: the thread policy for a loop of ``model`` over batches of ``batch_size``.

    ``sample`` is one batch (or one input) of the loop, on the loop's device.
    """
    rule = _override()
    if rule == "torch":
        return contextlib.nullcontext()
    if isinstance(rule, int):
        return intra_op_threads(rule)
    if sample.device.type != "cpu":
        return contextlib.nullcontext()
    try:
        flops = model_flops_per_op(model, sample) * int(batch_size)
    except Exception:  # a model that does not run on one input: leave torch's setting alone
        return contextlib.nullcontext()
    return intra_op_threads(threads_for(flops, sample.device))
