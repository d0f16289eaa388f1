"""ToroidalSOM.fit against QuickSOM and MiniSom on the same data, in the same run.

20 x 20 grid, cosine, batch 10, 10,000 samples of 2,048 features, one epoch, CPU, the
same initial weights (standard normal, as QuickSOM draws them). The final quantization
error of every map is measured the same way (mean cosine distance of each sample to its
nearest unit, over all samples).

MiniSom has no torus and no mini-batches: it is trained online (one sample per update)
on a rectangular grid with the same sigma, learning rate and exp(-5 t/T) learning-rate
decay, as a reference for speed only.

All three run with one thread (torch and BLAS): on the shared 2-core machine this benchmark
was written on, two threads made small per-batch operations wait for each other whenever
another process took a core (ToroidalSOM went from ~1 s to ~20 s), so one thread gives
the stable, comparable numbers. ``SOM_BENCH_THREADS`` overrides it.

Run: ``python -m pytest tests/benchmarks/test_bench_som.py -q -s`` (takes a few minutes).
"""

from __future__ import annotations

import os
import sys
import time
import types

import numpy as np
import pytest
import torch

from introspect.som import ToroidalSOM

M = N = 20
N_SAMPLES, DIM = 10_000, 2_048
BATCH = 10
SIGMA, ALPHA = 10.0, 0.1

_RESULTS: dict[str, dict] = {}


@pytest.fixture(autouse=True)
def _threads():
    from threadpoolctl import threadpool_limits

    n = int(os.environ.get("SOM_BENCH_THREADS", "1"))
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    with threadpool_limits(limits=n):
        yield
    torch.set_num_threads(old)


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
    }
    print(
        f"\n{name}: {seconds:.2f} s, {N_SAMPLES / seconds:,.0f} samples/s, QE {_RESULTS[name]['qe']:.5f}"
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


def test_bench_toroidal_som(benchmark):
    def run():
        return ToroidalSOM(
            M,
            N,
            sigma=SIGMA,
            alpha=ALPHA,
            metric="cosine",
            epochs=1,
            batch_size=BATCH,
            init=W0,
            seed=0,
        ).fit(X)

    t0 = time.perf_counter()
    som = benchmark.pedantic(run, rounds=1, iterations=1)
    _record("ToroidalSOM", time.perf_counter() - t0, som.weights_)
    benchmark.extra_info.update(_RESULTS["ToroidalSOM"])


def test_bench_quicksom(benchmark, capsys):
    qs = _import_quicksom()

    def run():
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
            centroids=torch.from_numpy(W0.copy()),
        )
        # QuickSOM computes a U-matrix after training; that is not training, leave it out
        som.compute_umat = lambda **kwargs: None
        loader = torch.utils.data.DataLoader(
            qs.ArrayDataset(X), batch_size=BATCH, shuffle=True, num_workers=0
        )
        som.fit(
            loader,
            batch_size=BATCH,
            logfile=None,
            do_compute_all_dists=False,
            print_each=10**9,
            unfold=False,
        )
        return som

    t0 = time.perf_counter()
    som = benchmark.pedantic(run, rounds=1, iterations=1)
    seconds = time.perf_counter() - t0
    capsys.readouterr()
    _record("QuickSOM", seconds, som.centroids.numpy())
    benchmark.extra_info.update(_RESULTS["QuickSOM"])


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

    t0 = time.perf_counter()
    som = benchmark.pedantic(run, rounds=1, iterations=1)
    _record("MiniSom", time.perf_counter() - t0, som.get_weights())
    benchmark.extra_info.update(_RESULTS["MiniSom"])


def test_report_ratios():
    if "ToroidalSOM" not in _RESULTS or "QuickSOM" not in _RESULTS:
        pytest.skip("run the whole file")
    ours = _RESULTS["ToroidalSOM"]
    lines = []
    for ref in ("QuickSOM", "MiniSom"):
        if ref in _RESULTS:
            r = _RESULTS[ref]
            lines.append(
                f"ToroidalSOM vs {ref}: {ours['samples_per_s'] / r['samples_per_s']:.1f}x samples/s; "
                f"QE {ours['qe']:.5f} vs {r['qe']:.5f} ({100 * (ours['qe'] / r['qe'] - 1):+.2f} %)"
            )
    print("\n" + "\n".join(lines))
    q = _RESULTS["QuickSOM"]
    assert ours["samples_per_s"] >= 10 * q["samples_per_s"]
    assert abs(ours["qe"] / q["qe"] - 1) <= 0.02
