"""class_manifold_dims against a scikit-learn PCA loop on the same features, same run.

The thesis's setting: ResNet50 penultimate features (2,048-d) of 100 classes; here
20 classes x 100 images of 2,048 synthetic non-negative features (a 40-d class signal
plus noise, like pooled ReLU features), so the run stays short on a shared CPU. Both
give the same dimensions; ours works on the n x n Gram matrix when n < D.

Both are NumPy/LAPACK work on the CPU whatever the capture ran on (the features arrive as
arrays), so this benchmark has no CUDA variant; it reports the machine's load.

Run: ``python -m pytest tests/benchmarks/test_bench_manifolds.py -q``
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn.decomposition import PCA

from introspect.manifolds import class_manifold_dims

N_CLASSES, N_PER_CLASS, DIM, K = 20, 100, 2048, 40


def _features():
    rng = np.random.default_rng(0)
    X, y = [], []
    for c in range(N_CLASSES):
        basis = rng.standard_normal((K, DIM)) / np.sqrt(K)
        z = rng.standard_normal((N_PER_CLASS, K)) * np.linspace(3, 0.3, K)
        X.append(np.abs(z @ basis + 0.1 * rng.standard_normal((N_PER_CLASS, DIM))))
        y.append(np.full(N_PER_CLASS, c))
    return np.concatenate(X).astype(np.float32), np.concatenate(y)


def _sklearn_dims(X, y, threshold=0.95):
    out = []
    for c in np.unique(y):
        cum = np.cumsum(PCA(svd_solver="full").fit(X[y == c]).explained_variance_ratio_)
        out.append(int(np.searchsorted(cum, threshold - 1e-10) + 1))
    return out


@pytest.fixture(scope="module")
def data():
    return _features()


def test_bench_class_manifold_dims(benchmark, data):
    X, y = data
    m = benchmark(class_manifold_dims, X, y, warn=False)
    benchmark.extra_info.update(device="cpu (NumPy)", load=round(os.getloadavg()[0], 2))
    assert m.dims.tolist() == _sklearn_dims(X, y)


def test_bench_sklearn_pca_reference(benchmark, data):
    X, y = data
    dims = benchmark(_sklearn_dims, X, y)
    benchmark.extra_info.update(device="cpu (NumPy)", load=round(os.getloadavg()[0], 2))
    assert len(dims) == N_CLASSES
