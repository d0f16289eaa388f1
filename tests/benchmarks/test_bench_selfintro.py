"""E[z|H_k] by KDE on the [-4, 4]^2 grid: the separable evaluation vs a direct one, same run.

Run: python -m pytest tests/benchmarks/test_bench_selfintro.py --benchmark-only
MNIST-sized class (6,000 codes) on the default 201 x 201 grid. The reference evaluates
scikit-learn's Gaussian KernelDensity at every grid point (40,401 x 6,000 kernel terms)
and takes the same Riemann sum; both must give the same expectation. Both are NumPy work
on the CPU (the codes arrive as arrays), so there is no CUDA variant; the load is reported.
"""

import os

import numpy as np
import pytest

from introspect.selfintro import kde_density, kde_expectation

N, GRID, H = 6000, 201, 0.15
RESULTS: dict = {}


def _codes():
    rng = np.random.default_rng(0)
    return rng.normal([0.7, -1.1], 0.5, size=(N, 2))


def _reference(Z):
    from sklearn.neighbors import KernelDensity

    g = np.linspace(-4, 4, GRID)
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    f = np.exp(KernelDensity(kernel="gaussian", bandwidth=H).fit(Z).score_samples(pts))
    w = f.reshape(GRID, GRID) * (g[1] - g[0]) ** 2
    return np.array([(g[:, None] * w).sum(), (g[None, :] * w).sum()]) / w.sum()


@pytest.mark.parametrize("impl", ["separable", "sklearn_grid"])
def test_bench_kde_expectation(benchmark, impl):
    Z = _codes()
    fn = (
        (lambda: kde_expectation(Z, grid_size=GRID, bandwidth=H))
        if impl == "separable"
        else (lambda: _reference(Z))
    )
    out = benchmark.pedantic(fn, rounds=3 if impl == "separable" else 1, iterations=1)
    RESULTS[impl] = (out, benchmark.stats.stats.mean)
    benchmark.extra_info.update(device="cpu (NumPy)", load=round(os.getloadavg()[0], 2))
    if len(RESULTS) == 2:
        np.testing.assert_allclose(RESULTS["separable"][0], RESULTS["sklearn_grid"][0], atol=1e-9)
        print(f"\nspeed-up {RESULTS['sklearn_grid'][1] / RESULTS['separable'][1]:.0f}x")


def test_density_matches_on_the_grid():
    Z = _codes()[:500]
    g, f = kde_density(Z, grid_size=41, bandwidth=H)
    from sklearn.neighbors import KernelDensity

    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    ref = np.exp(KernelDensity(kernel="gaussian", bandwidth=H).fit(Z).score_samples(pts))
    np.testing.assert_allclose(f.ravel(), ref.reshape(41, 41).ravel(), rtol=1e-6, atol=1e-12)
