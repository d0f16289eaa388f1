"""Intra-op thread policy for the toolkit's own loops over small models.

A loop of small torch operations (a 16x16 digits CNN, a SOM step of 10 samples, an MLP
VAE) gains little from a second intra-op thread on a quiet machine and collapses when
another process holds a core: every operation ends at a barrier that waits for the
descheduled thread, so each of thousands of tiny operations can cost a whole scheduler
time slice. Measured on the 2-core machine this was written on, with one other
CPU-bound process running: a ToroidalSOM epoch went from 0.5 s (one thread) to 1.3-5.4 s
(two threads), a small CNN forward from 3 to 7 ms median with 160 ms outliers.

Large operations collapse too once the cores are taken: a CIFAR ResNet44 forward of 64
images ran at 209 images/s on one thread and 51 on two while other processes kept the
machine busy. So the toolkit runs a loop

- with **one** intra-op thread when its operations are small (below
  :data:`SMALL_OP_FLOPS` floating-point operations per parametrised operation), and
- otherwise with no more threads than the cores other processes leave free (their CPU
  use measured from ``/proc/stat`` minus this process's own, over the time since the
  last decision or a 50 ms window), never more than torch's own setting,

on the CPU only; the previous setting is restored when the loop ends.
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
"""Per-operation work below which a toolkit loop runs on one intra-op thread."""

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


def free_cores() -> int:
    """Cores left to this process by the others' recent CPU use (at least 1)."""
    return max(1, math.floor(_cores() - others_busy() + 0.5))


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
    if flops_per_op < SMALL_OP_FLOPS:
        return 1
    n = min(torch.get_num_threads(), free_cores())
    return None if n == torch.get_num_threads() else n


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


def model_flops_per_op(model: torch.nn.Module, sample: torch.Tensor) -> float:
    """Forward FLOPs of one input divided by the number of parametrised leaf modules.

    Counted once per model and input shape with torch's ``FlopCounterMode`` on a single
    input (cached; a model whose weights change keeps its shape, so the count holds).
    """
    key = tuple(sample.shape[1:])
    per_model = _FLOPS_CACHE.setdefault(model, {})
    if key not in per_model:
        from torch.utils.flop_counter import FlopCounterMode

        n_ops = sum(
            1
            for m in model.modules()
            if next(m.children(), None) is None and next(m.parameters(False), None) is not None
        )
        was_training = model.training
        model.eval()
        try:
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                model(sample[:1])
        finally:
            model.train(was_training)
        per_model[key] = counter.get_total_flops() / max(1, n_ops)
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
    except Exception:  # a model FlopCounterMode cannot trace: leave torch's setting alone
        return contextlib.nullcontext()
    return intra_op_threads(threads_for(flops, sample.device))
