"""ToroidalSOM: equivalence with QuickSOM, known answers, persistence."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from introspect._utils import NotFittedError
from introspect.som import ToroidalSOM, grid_distance_squares


def _import_quicksom():
    """quicksom imports matplotlib at module level (only its plots use it) without declaring
    it; provide an empty stand-in when matplotlib is absent so the algorithm can be imported."""
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
    """Cosine distance with QuickSOM's metric signature: (B, 1, D), (U, D) -> (B, 1, U)."""
    xn = x / x.norm(dim=-1, keepdim=True)
    wn = w / w.norm(dim=-1, keepdim=True)
    return 1.0 - xn @ wn.T


def _quicksom_fit(qs, X, W0, m, n, metric, sigma, alpha, epochs, batch_size, decay="exp"):
    som = qs.SOM(
        m,
        n,
        X.shape[1],
        alpha=alpha,
        sigma=sigma,
        n_epoch=epochs,
        sched=decay,
        periodic=True,
        metric=_cosine_metric if metric == "cosine" else None,
        centroids=torch.from_numpy(W0.copy()),
    )
    # a DataLoader without shuffling, so that both see the same batches in the same order
    loader = torch.utils.data.DataLoader(qs.ArrayDataset(X), batch_size=batch_size, shuffle=False)
    errors = som.fit(
        loader,
        batch_size=batch_size,
        logfile=None,
        do_compute_all_dists=False,
        print_each=10**9,
    )
    return som.centroids.numpy(), np.array([float(e) for e in errors])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("decay", ["exp", "linear"])
def test_reproduces_quicksom_weights(metric, decay, capsys):
    qs = _import_quicksom()
    rng = np.random.default_rng(0)
    # 205 samples: the last batch of each epoch is short, as happens in practice
    X = rng.random((205, 16)).astype(np.float32)
    W0 = rng.standard_normal((36, 16)).astype(np.float32)
    kw = dict(sigma=3.0, alpha=0.1, epochs=3, batch_size=10)
    w_ref, err_ref = _quicksom_fit(qs, X, W0, 6, 6, metric, decay=decay, **kw)
    capsys.readouterr()
    som = ToroidalSOM(6, 6, metric=metric, decay=decay, shuffle=False, init=W0, **kw).fit(X)
    assert som.n_steps_ == len(err_ref) == 3 * 21
    np.testing.assert_allclose(som.weights_, w_ref, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(som.history_["qe"], err_ref, atol=2e-6, rtol=1e-5)
    # the schedule as QuickSOM logs it: alpha * exp(-5 s / T) with s = step * batch_size
    if decay == "exp":
        s = np.arange(som.n_steps_) * 10
        np.testing.assert_allclose(som.history_["alpha"], 0.1 * np.exp(-5 * s / (205 * 3)))
        np.testing.assert_allclose(som.history_["sigma"], 3.0 * np.exp(-5 * s / (205 * 3)))


def test_paper_hyperparameters_match_quicksom_on_a_20x20_map(capsys):
    """sigma 10 on a 20 x 20 torus, cosine, batch 10: the paper's setting, on small data."""
    qs = _import_quicksom()
    rng = np.random.default_rng(1)
    X = np.abs(rng.standard_normal((120, 32))).astype(np.float32)
    W0 = rng.standard_normal((400, 32)).astype(np.float32)
    kw = dict(sigma=10.0, alpha=0.1, epochs=2, batch_size=10)
    w_ref, err_ref = _quicksom_fit(qs, X, W0, 20, 20, "cosine", **kw)
    capsys.readouterr()
    som = ToroidalSOM(20, 20, metric="cosine", shuffle=False, init=W0, **kw).fit(X)
    np.testing.assert_allclose(som.weights_, w_ref, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(som.history_["qe"], err_ref, atol=2e-6, rtol=1e-5)


def test_grid_distance_squares_matches_quicksom_precomputed_matrix():
    qs = _import_quicksom()
    som = qs.SOM(7, 7, 3, periodic=True)
    np.testing.assert_array_equal(grid_distance_squares(7, 7, True), som.distance_mat.numpy())
    flat = qs.SOM(5, 5, 3, periodic=False)
    np.testing.assert_array_equal(grid_distance_squares(5, 5, False), flat.distance_mat.numpy())


def test_update_matches_hand_computed_single_step():
    # 1 x 3 torus, Euclidean, one sample: units at distances 0, 1, 1 from the BMU (unit 0)
    W0 = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], np.float32)
    x = np.array([[2.0, 0.0]], np.float32)
    som = ToroidalSOM(
        1,
        3,
        sigma=1.0,
        alpha=0.5,
        metric="euclidean",
        epochs=1,
        batch_size=1,
        shuffle=False,
        init=W0,
    ).fit(x)
    h = 0.5 * np.exp(-np.array([0.0, 1.0, 1.0]) / (2 * 1.0**2 + 1e-5))
    expected = W0 + h[:, None] * (x - W0)
    np.testing.assert_allclose(som.weights_, expected, rtol=1e-6)
    assert som.history_["qe"][0] == pytest.approx(1.0)


def test_batch_update_is_mean_of_sample_updates():
    rng = np.random.default_rng(3)
    W0 = rng.standard_normal((9, 4)).astype(np.float32)
    X = rng.standard_normal((4, 4)).astype(np.float32)
    som = ToroidalSOM(
        3, 3, sigma=1.5, alpha=0.3, metric="cosine", epochs=1, batch_size=4, shuffle=False, init=W0
    ).fit(X)
    d2 = grid_distance_squares(3, 3)
    Wn = W0 / np.linalg.norm(W0, axis=1, keepdims=True)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    bmu = (1 - Xn @ Wn.T).argmin(1)
    h = 0.3 * np.exp(-d2[bmu] / (2 * 1.5**2 + 1e-5))  # (4, 9)
    delta = (h[:, :, None] * (X[:, None, :] - W0[None])).mean(0)
    np.testing.assert_allclose(som.weights_, W0 + delta, rtol=1e-5, atol=1e-6)


def _clusters(n_per=40, dim=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.eye(k, dim) * 5.0 + 1.0
    X = np.concatenate([c + 0.1 * rng.standard_normal((n_per, dim)) for c in centres])
    y = np.repeat(np.arange(k), n_per)
    return X.astype(np.float32), y


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_fit_separates_clusters_and_errors_are_sane(metric):
    X, y = _clusters()
    som = ToroidalSOM(
        8, 8, sigma=4.0, alpha=0.3, metric=metric, epochs=5, batch_size=10, init="sample", seed=0
    ).fit(X)
    assert som.weights_.shape == (64, 12) and som.weights_.dtype == np.float32
    assert som.history_["qe"].shape == (som.n_steps_,) == (5 * 16,)
    # the loss falls during training
    assert som.history_["qe"][-16:].mean() < som.history_["qe"][:16].mean()
    top10 = som.bmus(X)
    assert top10.shape == (len(X), 10)
    b = top10[:, 0]
    # each cluster owns its units: no unit is the BMU of two clusters
    owners = {u: set(y[b == u]) for u in np.unique(b)}
    assert all(len(s) == 1 for s in owners.values())
    assert som.quantization_error(X) == pytest.approx(som.transform(X).min(1).mean(), rel=1e-5)
    assert 0.0 <= som.topographic_error(X) <= 1.0


def test_transform_bmus_and_quantization_error_agree():
    X, _ = _clusters(n_per=10)
    som = ToroidalSOM(5, 5, epochs=1, sigma=2.0, seed=1).fit(X)
    D = som.transform(X)
    assert D.shape == (40, 25)
    top = som.bmus(X, top_k=5)
    assert top.shape == (40, 5)
    np.testing.assert_array_equal(top[:, 0], D.argmin(1))
    # nearest first
    assert np.all(np.diff(np.take_along_axis(D, top, 1), axis=1) >= 0)
    # cosine distances against an independent formula
    W = som.weights_
    ref = (
        1
        - (X / np.linalg.norm(X, axis=1, keepdims=True))
        @ (W / np.linalg.norm(W, axis=1, keepdims=True)).T
    )
    np.testing.assert_allclose(D, ref, atol=1e-5)


def test_topographic_error_known_answers():
    # 1 x 4 torus with hand-set weights along a line: samples between neighbours -> 0 error
    W = np.array([[0.0], [1.0], [2.0], [3.0]], np.float32)
    som = ToroidalSOM(1, 4, metric="euclidean", epochs=1, init=W)
    som.weights_, som.n_features_in_ = W, 1
    assert som.topographic_error(np.array([[0.4], [1.6], [2.4]], np.float32)) == 0.0
    # second BMU two cells away: weights permuted so units 0 and 2 are the nearest pair
    som.weights_ = np.array([[0.0], [5.0], [0.5], [9.0]], np.float32)
    assert som.topographic_error(np.array([[0.2]], np.float32)) == 1.0


def test_unfitted_and_bad_inputs_raise_clear_errors():
    som = ToroidalSOM(3, 3)
    with pytest.raises(NotFittedError, match="fit"):
        som.bmus(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="metric"):
        ToroidalSOM(metric="manhattan").fit(np.ones((4, 2)))
    with pytest.raises(ValueError, match="2-D"):
        ToroidalSOM(3, 3).fit(np.ones(5))
    fitted = ToroidalSOM(3, 3, epochs=1).fit(np.random.default_rng(0).random((10, 4)))
    with pytest.raises(ValueError, match="features"):
        fitted.transform(np.ones((2, 5)))
    with pytest.raises(ValueError, match="init array"):
        ToroidalSOM(3, 3, init=np.zeros((4, 4))).fit(np.ones((5, 4)))


def test_seed_and_shuffle_are_reproducible():
    X, _ = _clusters(n_per=10)
    a = ToroidalSOM(4, 4, epochs=2, seed=5).fit(X).weights_
    b = ToroidalSOM(4, 4, epochs=2, seed=5).fit(X).weights_
    c = ToroidalSOM(4, 4, epochs=2, seed=6).fit(X).weights_
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_callback_sees_progress_and_can_stop():
    X, _ = _clusters(n_per=10)
    calls = []

    def cb(step, n_steps, history):
        calls.append((step, n_steps, len(history["qe"])))
        return step < 4

    som = ToroidalSOM(4, 4, epochs=3, batch_size=5).fit(X, callback=cb, callback_every=2)
    assert calls[0] == (2, 24, 2)
    assert som.n_steps_ == 4 and len(som.history_["qe"]) == 4


def test_save_load_roundtrip(tmp_path):
    X, _ = _clusters(n_per=10)
    som = ToroidalSOM(4, 5, epochs=1, metric="euclidean", seed=2).fit(X)
    path = som.save(tmp_path / "som")
    assert path.suffix == ".npz"
    back = ToroidalSOM.load(path)
    assert (back.m, back.n, back.metric, back.sigma) == (4, 5, "euclidean", 10.0)
    np.testing.assert_array_equal(back.weights_, som.weights_)
    np.testing.assert_array_equal(back.history_["qe"], som.history_["qe"])
    np.testing.assert_array_equal(back.bmus(X, top_k=3), som.bmus(X, top_k=3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    X, _ = _clusters(n_per=10)
    W0 = np.random.default_rng(0).standard_normal((16, 12)).astype(np.float32)
    cpu = ToroidalSOM(4, 4, epochs=2, init=W0, shuffle=False).fit(X)
    gpu = ToroidalSOM(4, 4, epochs=2, init=W0, shuffle=False, device="cuda").fit(X)
    np.testing.assert_allclose(gpu.weights_, cpu.weights_, atol=1e-4)
    np.testing.assert_array_equal(gpu.bmus(X, top_k=3), cpu.bmus(X, top_k=3))
