"""Capture throughput with vector codes vs a plain forward pass of the same model.

The same model, the same batches (64 images), the same thread setting, in one test that
alternates the two round by round:
``forward`` is ``model(x)`` under ``no_grad``; ``capture_codes`` is
:func:`introspect.capture.capture` of four layers with ``reducer="codes"`` into an
in-memory store. Both run at the process defaults and pinned to one thread, on CUDA when
it is present. The target is capture / forward <= 1.10.

What capture adds (measured 2026-12-03 on the 2-core machine this was written on, CPU
time at one thread, so that other processes' load does not count):

- the vector codes of the four layers, per batch of 64: ~98 -> ~44 ms for resnet18's
  (CL1's 56 x 56 maps alone: 63 -> 16 ms), ~13 -> ~8 ms for resnet44's.
  :func:`introspect.codes.vector_codes` reduces a map in ~2 MB blocks of rows, so each
  statistic after a block's first read (max, mean, the centred copy and its norm for
  the std, the rows' minima that tell a post-ReLU map, the position-weighted sum for the
  centre of mass) finds it in the cache, and the centred copy is one reused block buffer.
  Before, a 49 MB whole-map temporary was fresh memory every call, and its page faults
  cost more than all the statistics. Left: one read of the map from memory plus the
  in-cache passes; resnet18's CL4 (reductions over 7 x 7 = 49 numbers) vectorises badly.
- the input check (:func:`introspect._checks.check_images`), per batch of 64 at 224 px:
  ~65 -> ~3 ms (one ``aminmax`` pass instead of ``isfinite(x).all()``, which wrote a
  boolean copy of the batch, plus a min and a max).
- once per capture: the BLAKE2b fingerprint of the data recorded in the store (~0.1 s
  CPU, 0.15-0.19 s wall for the 77 MB of 128 x 3 x 224 x 224 images; unchanged, since
  its value keys every stored artifact): now the largest single cost for resnet18, about
  as much as all its codes, and it grows with the data, not the model. The thread
  policy's 50 ms window is no longer spent at one thread (there is nothing to give up).
- the hooks, NaN checks on the (B, 4C) codes and the logits, NumPy copies: < 1 ms.

**Measured**, capture / forward (medians of per-round ratios):

=================  ==========  ========  ==================================
model              threads     before    after (this file, load 5-7)
=================  ==========  ========  ==================================
cifar_resnet44     default     1.072     0.369
cifar_resnet44     1           1.081     1.148
timm:resnet18      default     1.108     0.919
timm:resnet18      1           1.064     0.946
=================  ==========  ========  ==================================

"Before" is the last run of this file, on a quieter machine. The run after the change
(2026-12-03 14:10-14:28 UTC) had load 5-7 on 2 cores (another engineer's browser tests
and the paper run's notebook kernel: the paper run's process group was paused, but its
kernel runs in a group of its own), and it does not measure the change: at the defaults
capture's thread policy (``introspect._threads``) went to one thread while ``forward``
kept two contended ones (hence 0.37), and at one thread the scheduler decided the
rounds. What capture adds was therefore measured in CPU time, one thread, three rounds,
the base commit and this one back to back (ms per capture; forward of the same images):

=================  =========  ======  ============  ===========  ==========
model              code       codes   input check   fingerprint  forward
=================  =========  ======  ============  ===========  ==========
cifar_resnet44     before     106     8             12           3,447
cifar_resnet44     after      65      1             13           3,118
timm:resnet18      before     197     130           112          11,932
timm:resnet18      after      88      6             105          12,151
=================  =========  ======  ============  ===========  ==========

So for resnet18 what capture adds fell from ~440 to ~200 ms per 128 images (3.7 % ->
1.6 % of its forward at one thread), the fingerprint now the larger half. The CPU-time
ratios of those rounds (resnet44 1.109 -> 1.105, resnet18 0.984 -> 1.054) scatter by more
than that under this load; resnet44's exceeds its codes (2 %) and fingerprint: its
forward passes ran slower inside capture (caches shared with the codes' passes and with
the other processes), not explained in detail. The default-thread target needs a quiet
machine to be measured.

**Quiet machine**, 2026-12-03 15:27-15:34 UTC (every other job paused; load 2.8 falling
to 1.0, the load average still counting the paused jobs' last minutes), this file as it
is: capture / forward = 1.027 (cifar_resnet44, default), 0.978 (cifar_resnet44, 1
thread), 0.961 (timm:resnet18, default), 0.955 (timm:resnet18, 1 thread): within the
1.10 target at both settings; ratios under 1 are the rounds' noise (a few per cent), not
a capture that is cheaper than its forward.

Run: ``python -m pytest tests/benchmarks/test_bench_capture.py -q -s``
"""

from __future__ import annotations

import os

import pytest
import torch
from _pinned import THREADS, pinned

from introspect.capture import capture
from introspect.data import ArrayDataset
from introspect.models import create_model

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = {
    "cifar_resnet44": dict(n=512, layers=["CN1", "CL1", "CL2", "CL3"]),
    "timm:resnet18": dict(n=128, layers=["CL1", "CL2", "CL3", "CL4"], size=(3, 224, 224)),
}
BATCH = 64
RESULTS: dict = {}


@pytest.fixture(params=list(THREADS))
def threads(request):
    with pinned(THREADS[request.param]):
        yield request.param


def _data(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10).to(DEVICE)
    spec = CASES[name]
    x = torch.rand(spec["n"], *spec.get("size", model.input_size))
    return model, ArrayDataset(x, torch.zeros(len(x), dtype=torch.long))


def _sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize("name", list(CASES))
def test_capture_throughput(benchmark, name, threads):
    """Forward and capture alternate round by round (the order flips each round), and the
    ratio is the median of the per-round ratios: a drift of the machine's speed between
    two separately timed tests (other work, a thread given up) cannot make the ratio."""
    import statistics
    import time

    model, data = _data(name)
    benchmark.group = f"capture {name} ({threads})"

    def forward():
        with torch.no_grad():
            for s in range(0, len(data), BATCH):
                model(data.images[s : s + BATCH].to(DEVICE))
        _sync()

    def capture_codes():
        capture(
            model,
            data,
            CASES[name]["layers"],
            reducer="codes",
            batch_size=BATCH,
            device=DEVICE,
            progress=False,
        )
        _sync()

    times = {"forward": [], "capture_codes": []}

    def pair():
        order = [forward, capture_codes] if len(times["forward"]) % 2 == 0 else [
            capture_codes, forward,
        ]  # fmt: skip
        for fn in order:
            t0 = time.perf_counter()
            fn()
            times[fn.__name__].append(time.perf_counter() - t0)

    forward(), capture_codes()  # warm-up: first-call allocations and kernels
    benchmark.pedantic(pair, rounds=7, iterations=1)
    ratio = statistics.median(c / f for f, c in zip(times["forward"], times["capture_codes"]))
    for mode, t in times.items():
        RESULTS[(name, threads, mode)] = statistics.median(t)
    RESULTS[(name, threads, "ratio")] = ratio
    benchmark.extra_info.update(
        images_per_s=len(data) / RESULTS[(name, threads, "forward")],
        capture_over_forward=ratio,
        device=DEVICE,
        threads=threads,
        load=round(os.getloadavg()[0], 2),
    )


def test_report_ratios():
    lines, ratios = [f"device {DEVICE}; load {os.getloadavg()[0]:.2f}"], {}
    for name in CASES:
        for t in THREADS:
            f, r = RESULTS.get((name, t, "forward")), RESULTS.get((name, t, "ratio"))
            if f is None or r is None:
                pytest.skip("run the whole file")
            ratios[(name, t)] = r
            lines.append(
                f"{name} ({t}): forward {CASES[name]['n'] / f:,.1f} img/s, capture with codes "
                f"/ forward = {r:.3f} (median of per-round ratios)"
            )
    print("\n" + "\n".join(lines))
    assert all(r <= 1.10 for r in ratios.values()), ratios
