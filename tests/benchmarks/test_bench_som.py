"""ToroidalSOM.fit against QuickSOM and MiniSom on the same data, in the same run.

20 x 20 grid, cosine, batch 10, 10,000 samples of 2,048 features, one epoch, the same
initial weights (standard normal, as QuickSOM draws them), on CUDA when it is present
(MiniSom is NumPy: always the CPU). The final quantization error of every map is
measured the same way (mean cosine distance of each sample to its nearest unit).

MiniSom has no torus and no mini-batches: it is trained online (one sample per update)
on a rectangular grid with the same sigma, learning rate and exp(-5 t/T) decay, as a
reference for speed only.

**Threads.** ToroidalSOM and QuickSOM run twice: at the process defaults (torch's
intra-op threads = the cores, BLAS not limited) and pinned to one thread (torch and
BLAS). A step is a handful of small operations (two products of 10 x 2,048 by 2,048 x
400, a few (10, 400) element-wise ones); with two intra-op threads every one of them
ends at a barrier, and when another process holds a core the barrier waits for a
descheduled thread, for up to a scheduler time slice, thousands of times per epoch.
That is the spread seen before (5.5x QuickSOM at the defaults with other work on the
machine, ~20x pinned). ToroidalSOM now gives a thread up when other processes are busy
(``introspect._threads``) and keeps both on a quiet machine, so the default setting is
never slower than one thread; QuickSOM keeps torch's default, and is compared at its own
best setting.

**Ceiling.** A sample costs the two products: 2 x (2 * 2,048 * 400) = 3.3 MFLOP. The
benchmark measures this machine's GEMM rate at exactly those shapes (at each thread setting, the
device's own for CUDA) and reports the ceiling samples/s = rate / 3.3 MFLOP next to
what ToroidalSOM reaches.

**QuickSOM in fresh processes.** QuickSOM's resident memory grows during a fit (a second
full run of this file in one process was killed for memory), so each of its rounds runs
in a new process that gives the memory back when it ends; the fit is timed inside that
process, after a 20-batch warm-up fit, and the statistic is still the median of three.

**Measured** 2026-12-03, CPU, 2 cores, load 3-6 throughout (the paper run's notebook
kernel and another engineer's tests shared the machine; the paper run's process group
was paused, its kernel runs in a group of its own). Medians of three fits:

====================  ==========  ================  ===========================
map                   threads     s (samples/s)     QE
====================  ==========  ================  ===========================
ToroidalSOM           default     5.27 (1,898)      0.11324
ToroidalSOM           1           4.52 (2,213)      0.11324
QuickSOM              default     228.7 (44)        0.11341 (rounds 218-247 s)
QuickSOM              1           50.3 (199)        0.11341 (rounds 46-72 s)
MiniSom (online)      1           77.1 (130)        0.11628
====================  ==========  ================  ===========================

Each at its best: 11.1x QuickSOM (target 15x: failed under this load), 17.1x MiniSom;
GEMM ceiling at one thread 14.5 GFLOP/s = 4,432 samples/s, ToroidalSOM at 50 % of it.
The run completed (a QuickSOM child held 1.8 GB one minute into its fit). On the quiet machine QuickSOM fits
took 13-23 s and ToroidalSOM ~1 s: under load ToroidalSOM's many small operations lost
more (4.5x) than QuickSOM's fit (2-4x at one thread), so the ratio needs a quiet machine.

**Quiet machine**, 2026-12-03 15:46-15:51 UTC (every other job paused, load ~1.05):
ToroidalSOM 1.46 s (6,856 samples/s) at the defaults, 1.93 s (5,191) at one thread;
QuickSOM 42.4 s (236) at the defaults, 29.0 s (345) at one thread; MiniSom 32.3 s (309).
Each at its best **19.9x QuickSOM** (target 15x) and 22.2x MiniSom, QE 0.11324 vs
0.11341; the defaults 1.32x faster than one thread. GEMM ceiling 41.6 GFLOP/s at the
defaults (12,689 samples/s) and 35.7 at one thread (10,907): ToroidalSOM at 54 % and 48 %
of it, the rest being the per-step neighbourhood, the BMU argmax and Python per batch of
10. One run a few minutes earlier had QuickSOM's default-thread child killed by the OOM
killer at 19.8 GB resident (the other jobs, paused, still held ~4 GB): that setting is
then skipped and the ratio uses QuickSOM's settings that finished.

**CUDA**, 2026-12-04, one NVIDIA H200 (torch 2.11.0+cu130, 16 cores, load 6.8 from the paper
figures that ran beside it), medians of three: ToroidalSOM 0.38 s (26,546 samples/s) at the
defaults and 0.34 s (29,101) at one thread; QuickSOM (also torch, also on the GPU) 0.99 s
(10,068) and 0.85 s (11,748); MiniSom on the CPU 58.7 s (171). Each at its best **2.5x
QuickSOM**, QE 0.11322 vs 0.11341. On the GPU both maps are bound by kernel launches, not
arithmetic: a step of a batch of 10 is ~0.34 ms, the GEMM ceiling at these shapes is 477-508
GFLOP/s (145,668-155,096 samples/s) and ToroidalSOM reaches 18-19 % of it. QuickSOM's CPU
cost (its per-step NumPy and Python) is what the 15x beats; on CUDA the ratio left is the
number of launches per step, so the CUDA target is 2x, and the threads do not matter there
(the default-vs-one-thread check is a CPU one).

Run: ``python -m pytest tests/benchmarks/test_bench_som.py -q -s`` (takes a few minutes
on a quiet machine; 18 minutes at load 3-6).
"""

from __future__ import annotations

import os
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from _pinned import THREADS, pinned

from introspect.som import ToroidalSOM

M = N = 20
N_SAMPLES, DIM = 10_000, 2_048
BATCH = 10
SIGMA, ALPHA = 10.0, 0.1
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# the median of three fits, for both maps: one burst of other work on the machine (or one
# unusually fast or slow fit) does not decide the ratio
ROUNDS = 3
FLOPS_PER_SAMPLE = 2 * (2 * DIM * M * N)  # distances X W^T and the update h^T X

_RESULTS: dict[str, dict] = {}


def _data():
    """Non-negative, clustered codes (like pooled ReLU features): 100 prototypes + noise."""
    rng = np.random.default_rng(0)
    protos = np.abs(rng.standard_normal((100, DIM))).astype(np.float32)
    assign = rng.integers(0, 100, N_SAMPLES)
    X = protos[assign] + 0.5 * np.abs(rng.standard_normal((N_SAMPLES, DIM))).astype(np.float32)
    W0 = rng.standard_normal((M * N, DIM)).astype(np.float32)
    return X.astype(np.float32), W0


X, W0 = _data()


def _cosine_qe(W):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Wn = W / np.linalg.norm(W, axis=1, keepdims=True)
    return float((1.0 - Xn @ Wn.T).min(1).mean())


def _record(name, seconds, W):
    _RESULTS[name] = {
        "seconds": seconds,
        "samples_per_s": N_SAMPLES / seconds,
        "qe": _cosine_qe(np.asarray(W, dtype=np.float32).reshape(M * N, DIM)),
        "device": DEVICE if not name.startswith("MiniSom") else "cpu",
        "torch_threads": torch.get_num_threads(),
    }
    print(
        f"\n{name}: {seconds:.2f} s, {N_SAMPLES / seconds:,.0f} samples/s, "
        f"QE {_RESULTS[name]['qe']:.5f} ({_RESULTS[name]['device']})"
    )


def _import_quicksom():
    try:
        import matplotlib.pyplot  # noqa: F401
    except ImportError:
        mpl = types.ModuleType("matplotlib")
        plt = types.ModuleType("matplotlib.pyplot")
        mpl.pyplot = plt
        sys.modules.setdefault("matplotlib", mpl)
        sys.modules.setdefault("matplotlib.pyplot", plt)
    return pytest.importorskip("quicksom.som")


def _cosine_metric(x, w):
    xn = x / x.norm(dim=-1, keepdim=True)
    wn = w / w.norm(dim=-1, keepdim=True)
    return 1.0 - xn @ wn.T


def _sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize("threads", list(THREADS))
def test_bench_toroidal_som(benchmark, threads):
    def run():
        som = ToroidalSOM(
            M,
            N,
            sigma=SIGMA,
            alpha=ALPHA,
            metric="cosine",
            epochs=1,
            batch_size=BATCH,
            init=W0,
            seed=0,
            device=DEVICE,
        ).fit(X)
        _sync()
        return som

    with pinned(THREADS[threads]):
        # warm-up round: first-call allocations and kernels
        som = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
        _record(f"ToroidalSOM ({threads})", benchmark.stats.stats.median, som.weights_)
    benchmark.extra_info.update(_RESULTS[f"ToroidalSOM ({threads})"])


def _quicksom_fit(threads: str, out: str) -> None:
    """One timed QuickSOM fit at a thread setting; seconds and centroids to ``out`` (.npz).

    Run in a fresh process per round (see :func:`test_bench_quicksom`). A short fit on 20
    batches first warms up allocations and kernels, as the first round of the former
    in-process loop did for the others.
    """
    qs = _import_quicksom()

    def fit(data):
        torch.manual_seed(0)
        som = qs.SOM(
            M,
            N,
            DIM,
            alpha=ALPHA,
            sigma=SIGMA,
            n_epoch=1,
            sched="exp",
            periodic=True,
            metric=_cosine_metric,
            centroids=torch.from_numpy(W0.copy()).to(DEVICE),
            device=DEVICE,
        )
        # QuickSOM computes a U-matrix after training; that is not training, leave it out
        som.compute_umat = lambda **kwargs: None
        loader = torch.utils.data.DataLoader(
            qs.ArrayDataset(data), batch_size=BATCH, shuffle=True, num_workers=0
        )
        som.fit(
            loader,
            batch_size=BATCH,
            logfile=None,
            do_compute_all_dists=False,
            print_each=10**9,
            unfold=False,
        )
        _sync()
        return som

    with pinned(THREADS[threads]):
        fit(X[: 20 * BATCH])
        t0 = time.perf_counter()
        som = fit(X)
        seconds = time.perf_counter() - t0
        np.savez(out, seconds=seconds, centroids=som.centroids.cpu().numpy())


_QUICKSOM_CHILD = """
import sys
sys.path.insert(0, {here!r})
import test_bench_som
test_bench_som._quicksom_fit({threads!r}, {out!r})
"""


@pytest.mark.parametrize("threads", list(THREADS))
def test_bench_quicksom(tmp_path, threads):
    """QuickSOM's resident memory grows during a fit (the second full run of this file was
    killed for memory), so every round is a fresh process that returns it all when it ends;
    the time is the fit's own, measured inside that process."""
    import importlib.util
    import statistics
    import subprocess

    if importlib.util.find_spec("quicksom") is None:
        pytest.skip("quicksom is not installed")
    seconds = []
    for r in range(ROUNDS):
        out = tmp_path / f"round{r}.npz"
        code = _QUICKSOM_CHILD.format(
            here=str(Path(__file__).parent), threads=threads, out=str(out)
        )
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if run.returncode == -9:  # SIGKILL: the kernel's OOM killer (QuickSOM at 2 threads
            # held 19.8 GB of a 24 GB machine on 2026-12-03): this setting has no time, and
            # the ratio uses QuickSOM's settings that finished
            _RESULTS[f"QuickSOM ({threads})"] = dict(samples_per_s=0.0, failed="out of memory")
            pytest.skip(f"QuickSOM ({threads}) was killed for memory in round {r}")
        if run.returncode != 0:
            pytest.fail(f"QuickSOM round {r} failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
        with np.load(out) as z:
            seconds.append(float(z["seconds"]))
            centroids = z["centroids"]
    # the same statistic as ToroidalSOM's: the median of ROUNDS fits (one fast or slow
    # QuickSOM fit, 13-23 s on the same quiet machine, must not decide the ratio)
    with pinned(THREADS[threads]):  # so that _record notes this setting's torch threads
        _record(f"QuickSOM ({threads})", statistics.median(seconds), centroids)
    _RESULTS[f"QuickSOM ({threads})"]["rounds_s"] = [round(t, 2) for t in seconds]


def test_bench_minisom(benchmark):
    minisom = pytest.importorskip("minisom")
    T = N_SAMPLES

    def run():
        som = minisom.MiniSom(
            M,
            N,
            DIM,
            sigma=SIGMA,
            learning_rate=ALPHA,
            decay_function=lambda lr, t, max_iter: lr * np.exp(-5.0 * t / max_iter),
            neighborhood_function="gaussian",
            activation_distance="cosine",
            random_seed=0,
        )
        som._weights = W0.reshape(M, N, DIM).astype(np.float64).copy()
        som.train(X, T, random_order=True)
        return som

    with pinned(1):
        t0 = time.perf_counter()
        som = benchmark.pedantic(run, rounds=1, iterations=1)
        _record("MiniSom (1 thread)", time.perf_counter() - t0, som.get_weights())
    benchmark.extra_info.update(_RESULTS["MiniSom (1 thread)"])


def _gemm_samples_per_s(threads=1, reps=400) -> tuple[float, float]:
    """Ceiling: samples/s if a step cost only its two products, at this run's shapes."""
    g = torch.Generator().manual_seed(0)
    xb = torch.rand(BATCH, DIM, generator=g).to(DEVICE)
    w = torch.rand(M * N, DIM, generator=g).to(DEVICE)
    h = torch.rand(BATCH, M * N, generator=g).to(DEVICE)
    with pinned(threads if DEVICE == "cpu" else None):  # None: the process defaults
        for _ in range(20):
            xb @ w.T, h.T @ xb
        _sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            xb @ w.T, h.T @ xb
        _sync()
        seconds = time.perf_counter() - t0
    rate = reps * BATCH * FLOPS_PER_SAMPLE / seconds
    return rate / FLOPS_PER_SAMPLE, rate


def test_report_ratios():
    need = [f"{k} ({t})" for k in ("ToroidalSOM", "QuickSOM") for t in THREADS]
    if any(k not in _RESULTS for k in need):
        pytest.skip("run the whole file")
    ceilings = {t: _gemm_samples_per_s(THREADS[t]) for t in THREADS}
    ours = {t: _RESULTS[f"ToroidalSOM ({t})"] for t in THREADS}
    quick = {t: _RESULTS[f"QuickSOM ({t})"] for t in THREADS}
    best_ours = max(ours.values(), key=lambda r: r["samples_per_s"])
    best_quick = max(quick.values(), key=lambda r: r["samples_per_s"])
    if not best_quick["samples_per_s"]:
        pytest.skip("QuickSOM finished at no thread setting")
    lines = [f"device {DEVICE}; load {os.getloadavg()[0]:.2f}; cores {os.cpu_count()}"]
    for t in THREADS:
        q = quick[t]["samples_per_s"]
        ratio = f"{ours[t]['samples_per_s'] / q:.1f}x" if q else quick[t].get("failed", "-")
        lines.append(
            f"{t}: ToroidalSOM {ours[t]['samples_per_s']:,.0f} samples/s, QuickSOM "
            f"{q:,.0f} -> {ratio}"
        )
    lines.append(
        f"each at its best: {best_ours['samples_per_s'] / best_quick['samples_per_s']:.1f}x "
        f"QuickSOM; QE {best_ours['qe']:.5f} vs {best_quick['qe']:.5f}"
    )
    if "MiniSom (1 thread)" in _RESULTS:
        r = _RESULTS["MiniSom (1 thread)"]
        lines.append(f"vs MiniSom: {best_ours['samples_per_s'] / r['samples_per_s']:.1f}x")
    for t, (ceiling, rate) in ceilings.items():
        lines.append(
            f"ceiling at {t} (GEMMs only, {rate / 1e9:.1f} GFLOP/s at these shapes): "
            f"{ceiling:,.0f} samples/s; ToroidalSOM reaches "
            f"{ours[t]['samples_per_s'] / ceiling:.0%} of it"
        )
    print("\n" + "\n".join(lines))
    # CPU: the 15x; CUDA: both maps are launch-bound there (see the docstring)
    target = 15 if DEVICE == "cpu" else 2
    assert best_ours["samples_per_s"] >= target * best_quick["samples_per_s"]
    if DEVICE == "cpu":  # the default setting is no slower than one thread (10 % for noise)
        assert ours["default"]["samples_per_s"] >= 0.9 * ours["1 thread"]["samples_per_s"]
    assert abs(best_ours["qe"] / best_quick["qe"] - 1) <= 0.02
