"""Library networks (Lee 2019): exact blockwise build, Hebbian links, scores, CI, CPL, AUROC."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu

from introspect._utils import NotFittedError
from introspect.library import (
    LibraryNetwork,
    LibraryStack,
    agreement,
    auroc,
    confusion_index,
    cpl,
    hebbian_kernel,
)


# ----------------------------------------------------------------------------- references
def sequential_library(H, theta, dtype=np.float64):
    """The definition, one input at a time: store x when max cosine to the library < theta."""
    X = np.asarray(H, dtype=dtype).reshape(len(H), -1)
    n = np.linalg.norm(X, axis=1, keepdims=True)
    X = X / np.where(n > 0, n, 1)
    lib = np.empty_like(X)
    idx = []
    for i, x in enumerate(X):
        if not idx or (lib[: len(idx)] @ x).max() < theta:
            lib[len(idx)] = x
            idx.append(i)
    return np.array(idx), lib[: len(idx)]


def sequential_margin(H, theta, dtype=np.float64):
    """Smallest |max similarity - theta| met during the sequential build (test sanity)."""
    X = np.asarray(H, dtype=dtype)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    lib, n, margin = np.empty_like(X), 1, np.inf
    lib[0] = X[0]
    for x in X[1:]:
        s = (lib[:n] @ x).max()
        margin = min(margin, abs(s - theta))
        if s < theta:
            lib[n] = x
            n += 1
    return margin


def clustered(n=1500, d=40, k=25, spread=0.6, seed=0, nonneg=False):
    """Patterns around k random centres: many near-duplicates inside every block."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d))
    lab = rng.integers(0, k, n)
    X = centres[lab] + spread * rng.standard_normal((n, d))
    if nonneg:
        X = np.maximum(X, 0)
    return X, lab


# ----------------------------------------------------------------------------- build
@pytest.mark.parametrize("theta", [-0.3, 0.3, 0.6, 0.8, 0.9])
@pytest.mark.parametrize("block_size", [1, 7, 64, 5000])
def test_build_equals_sequential_loop_float64(theta, block_size):
    X, _ = clustered(n=600, seed=1)
    ref_idx, ref_lib = sequential_library(X, theta)
    lib = LibraryNetwork(theta, block_size=block_size, dtype="float64").build(X)
    np.testing.assert_array_equal(lib.indices_, ref_idx)
    np.testing.assert_allclose(lib.patterns_, ref_lib, atol=1e-12)
    assert lib.size_ == len(ref_idx) and lib.n_seen_ == len(X)


@pytest.mark.parametrize("theta", [0.4, 0.8, 0.85])
def test_build_equals_sequential_loop_float32_relu_data(theta):
    # ReLU-like non-negative patterns as conv layers give; several blocks and segments
    X, _ = clustered(n=2000, d=300, k=60, spread=0.5, seed=3, nonneg=True)
    assert sequential_margin(X, theta) > 1e-5  # no similarity within rounding of theta
    ref_idx, _ = sequential_library(X, theta)
    assert 1 < len(ref_idx) < len(X)
    lib = LibraryNetwork(theta, block_size=128).build(X.astype(np.float32))
    np.testing.assert_array_equal(lib.indices_, ref_idx)
    assert lib.patterns_.dtype == np.float32


def test_candidate_search_on_wide_layers_keeps_the_exact_library(monkeypatch):
    # wide patterns and a library over 1,024 nodes: the random-projection candidate
    # search settles most inputs; the library must still be the sequential one
    import introspect.library as L

    theta = 0.6
    X, _ = clustered(n=2500, d=1200, k=1200, spread=0.6, seed=5, nonneg=True)
    assert sequential_margin(X, theta) > 1e-5
    ref_idx, _ = sequential_library(X, theta, dtype=np.float32)
    assert len(ref_idx) > L._SKETCH_MIN_LIBRARY
    calls = []
    settled = L._Sketch.settled

    def spy(self, X, segments, theta):
        out = settled(self, X, segments, theta)
        calls.append(int(out.sum()))
        return out

    monkeypatch.setattr(L._Sketch, "settled", spy)
    lib = LibraryNetwork(theta, block_size=256).build(X.astype(np.float32))
    np.testing.assert_array_equal(lib.indices_, ref_idx)
    assert calls and sum(calls) > 0  # the path ran and settled inputs


def test_build_conflicts_inside_one_block_resolved_in_data_order():
    # three inputs in one block: b is close to a, c close to b but not to a.
    a = np.array([1.0, 0.0])
    b = np.array([np.cos(0.5), np.sin(0.5)])
    c = np.array([np.cos(1.0), np.sin(1.0)])
    X = np.stack([a, b, c])
    theta = np.cos(0.7)  # a~b and b~c similar enough, a~c not
    lib = LibraryNetwork(theta, block_size=10, dtype="float64").build(X)
    # sequential: a stored; b similar to a -> dropped; c vs {a}: cos 1.0 < theta -> stored
    np.testing.assert_array_equal(lib.indices_, [0, 2])


def test_theta_near_one_stores_every_distinct_pattern_once():
    rng = np.random.default_rng(1)
    U = rng.standard_normal((50, 30))
    X = np.concatenate([U, U[[3, 7, 7]] * 2.5, U[:5]])  # repeats (one rescaled)
    lib = LibraryNetwork(1 - 1e-4, block_size=16).build(X)
    assert lib.size_ == 50
    np.testing.assert_array_equal(lib.indices_, np.arange(50))


def test_theta_minus_one_stores_only_the_first():
    X, _ = clustered(seed=2)
    with pytest.warns(UserWarning, match="1 node"):
        lib = LibraryNetwork(-1.0, block_size=64).build(X)
    assert lib.size_ == 1 and lib.indices_.tolist() == [0]
    np.testing.assert_allclose(lib.patterns_[0], X[0] / np.linalg.norm(X[0]), rtol=1e-5)


def test_a_one_node_library_warns_naming_layer_theta_and_the_fix():
    import warnings

    # three patterns 0.95+ similar to the first: theta 0.9 keeps one node, 0.999 all three
    X = np.array([[1.0, 0.0], [1.0, 0.2], [1.0, 0.3]])
    with pytest.warns(UserWarning) as rec:
        lib = LibraryNetwork(0.9).build(X, layer="CN1")
    assert lib.size_ == 1 and len(rec) == 1
    msg = str(rec[0].message)
    assert "'CN1'" in msg and "theta=0.9" in msg and "Raise theta" in msg and "all 3" in msg
    assert rec[0].filename == __file__  # it points at the caller, not at introspect
    with pytest.warns(UserWarning, match="layer 'FC'.*theta=0.5"):  # through the stack
        LibraryStack({"FC": 0.5, "CL1": 0.999}).fit({"FC": X, "CL1": X}, [0, 1, 1])
    with pytest.warns(UserWarning, match="pass layer= to name it"):
        LibraryNetwork(0.9).fit(X, [0, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert LibraryNetwork(0.999).build(X, layer="CN1").size_ == 3
        assert LibraryNetwork(0.9).build(X[:1]).size_ == 1  # one pattern: nothing to tell


def test_size_grows_with_theta():
    X, _ = clustered(n=800, seed=4)
    sizes = [LibraryNetwork(t).build(X).size_ for t in (0.2, 0.5, 0.8, 0.95)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_streamed_chunks_memmap_and_images_give_the_same_library(tmp_path):
    X, _ = clustered(n=900, d=48, seed=5)
    X = X.astype(np.float32)
    ref = LibraryNetwork(0.6, block_size=100).build(X)
    mm = np.lib.format.open_memmap(tmp_path / "h.npy", mode="w+", dtype=np.float32, shape=X.shape)
    mm[:] = X
    from_mm = LibraryNetwork(0.6, block_size=100).build(mm)
    chunks = (X[i : i + 333] for i in range(0, len(X), 333))
    from_iter = LibraryNetwork(0.6, block_size=100).build(chunks)
    as_maps = LibraryNetwork(0.6, block_size=100).build(torch.from_numpy(X).reshape(-1, 3, 4, 4))
    for other in (from_mm, from_iter, as_maps):
        np.testing.assert_array_equal(other.indices_, ref.indices_)
        np.testing.assert_array_equal(other.patterns_, ref.patterns_)


@pytest.fixture
def two_threads(torch_threads):
    """torch at two intra-op threads (the build prefetches a stream only then)."""
    torch_threads(2)


def test_a_prefetched_stream_gives_the_same_library_and_its_errors(two_threads):
    import threading

    from introspect import progress

    X, _ = clustered(n=900, d=48, seed=5)
    ref = LibraryNetwork(0.6, block_size=100).build(X)
    helpers = []

    def chunks(fail_at=None):
        helpers.append(threading.current_thread().name)
        for k, i in enumerate(range(0, len(X), 100)):
            if k == fail_at:
                raise OSError(f"disk error at chunk {k}")
            progress.report("reading", k, 9)  # reaches the caller's watcher
            yield X[i : i + 100]

    seen = []
    with progress.watch(lambda stage, done, total: seen.append((stage, done))):
        lib = LibraryNetwork(0.6, block_size=100).build(chunks())
    np.testing.assert_array_equal(lib.indices_, ref.indices_)
    assert helpers == ["introspect-library-prefetch"]  # read in the helper thread
    assert ("reading", 8) in seen  # the helper runs in the caller's context
    # an error in the stream surfaces in the build, as itself
    with pytest.raises(OSError, match="disk error at chunk 4"):
        LibraryNetwork(0.6, block_size=100).build(chunks(fail_at=4))

    # a Cancel raised by the watcher inside the stream stops the build
    def cancel_at_3(stage, done, total):
        if stage == "reading" and done == 3:
            raise progress.Cancelled("stop")

    with progress.watch(cancel_at_3), pytest.raises(progress.Cancelled):
        LibraryNetwork(0.6, block_size=100).build(chunks())


def test_a_build_that_stops_early_stops_its_prefetch_helper(two_threads):
    import threading

    X, _ = clustered(n=900, d=48, seed=5)
    made = []

    def endless():
        while True:
            made.append(1)
            yield X[:100]

    bad = np.full((10, 48), np.nan)
    readers = []

    def then_nan():
        readers.append(threading.current_thread().name)
        yield X[:100]
        yield bad  # the build refuses it: the helper must not keep reading
        yield from endless()

    with pytest.raises(ValueError, match="NaN"):
        LibraryNetwork(0.6, block_size=100).build(then_nan())
    deadline = __import__("time").monotonic() + 10
    while any(t.name == "introspect-library-prefetch" for t in threading.enumerate()):
        assert __import__("time").monotonic() < deadline, "the prefetch helper kept running"
        threading.Event().wait(0.02)
    assert readers == ["introspect-library-prefetch"]  # there was a helper to stop
    assert len(made) <= 3  # at most the chunks that were waiting in the queue


def test_zero_pattern_has_similarity_zero():
    X = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.1]])
    lib = LibraryNetwork(0.5).build(X)
    np.testing.assert_array_equal(lib.indices_, [0, 1])  # zero row: max cos 0 < 0.5
    np.testing.assert_allclose(lib.similarities(X)[1], [0, 0])


# ----------------------------------------------------------------------------- link, scores
def test_link_and_scores_match_the_formulas():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((200, 12))
    pred = rng.integers(0, 4, 200)
    lib = LibraryNetwork(0.3, top_k=3, dtype="float64").fit(X, pred, n_classes=4)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    h = Xn @ lib.patterns_.T
    target = -np.ones((200, 4))
    target[np.arange(200), pred] = 1
    W = target.T @ np.exp(-(1 - h) / 0.01)
    np.testing.assert_allclose(lib.links_, W, rtol=1e-10)
    assert lib.links_.shape == (4, lib.size_)
    # scores: three most active nodes only
    P = np.zeros((200, 4))
    for k in range(200):
        top = np.argsort(-h[k])[:3]
        P[k] = (W[:, top] * h[k, top]).sum(axis=1)
    np.testing.assert_allclose(lib.predict_scores(X), P, rtol=1e-10)
    np.testing.assert_allclose(lib.similarities(X), h, atol=1e-12)
    vals, nodes = lib.most_active(X[:5], top_k=2)
    np.testing.assert_array_equal(nodes, np.argsort(-h[:5], axis=1)[:, :2])


def test_hebbian_kernel():
    assert hebbian_kernel(1.0) == 1.0
    np.testing.assert_allclose(hebbian_kernel(0.99), np.exp(-1))
    assert float(hebbian_kernel(torch.tensor(0.98))) == pytest.approx(np.exp(-2), rel=1e-5)


def separated_data(n_per=40, n_classes=5, d=50, seed=7):
    """Classes on orthogonal coordinate groups: perfectly separated clusters."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per)
    rng.shuffle(y)
    X = np.zeros((len(y), d))
    width = d // n_classes
    for c in range(n_classes):
        rows = y == c
        X[rows, c * width : (c + 1) * width] = 1 + 0.05 * rng.random((rows.sum(), width))
    return X, y


def test_separated_clusters_predict_the_dnn_exactly_and_ci_is_diagonal():
    X, y = separated_data()
    lib = LibraryNetwork(0.9, top_k=3).fit(X, y)
    assert lib.size_ >= 5
    P = lib.predict_scores(X)
    np.testing.assert_array_equal(P.argmax(1), y)
    assert agreement(P, y, 1) == 1.0
    CI = confusion_index(P, y)
    off = CI[~np.eye(5, dtype=bool)]
    assert np.all(off < 1e-6) and np.allclose(np.diag(CI), 1)


# ----------------------------------------------------------------------------- analyses
def test_agreement_top_k_by_hand():
    P = np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 0.0, 0.0]])
    y = np.array([0, 1, 1])
    # row 0: rank 0; row 1: rank 2; row 2: tie with class 0 which comes first -> rank 1
    assert agreement(P, y, 1) == pytest.approx(1 / 3)
    assert agreement(P, y, 2) == pytest.approx(2 / 3)
    assert agreement(P, y, 3) == 1.0
    np.testing.assert_array_equal(P.argmax(1) == y, [True, False, False])


def test_confusion_index_against_a_plain_loop():
    rng = np.random.default_rng(8)
    P = 3 * rng.standard_normal((300, 4))
    y = rng.integers(0, 4, 300)
    CA = np.zeros((4, 4))
    for k in range(300):
        if P[k].argmax() != y[k]:
            continue
        e = np.exp(P[k])
        for d2 in range(4):
            CA[y[k], d2] += e[y[k]] * e[d2] / e.sum() ** 2
    np.testing.assert_allclose(confusion_index(P, y), CA / np.diag(CA)[:, None], rtol=1e-10)
    # a class never predicted correctly gives a NaN row
    y2 = np.where(y == 3, 0, y)
    P2 = P.copy()
    P2[:, 3] = -100
    assert np.isnan(confusion_index(P2, y2)[3]).all()


def test_cpl_identical_layers_is_one_and_opposite_is_minus_one():
    rng = np.random.default_rng(9)
    P = rng.standard_normal((20, 10))
    np.testing.assert_allclose(cpl([P, P, P]), 1.0)
    np.testing.assert_allclose(cpl({"a": P, "b": -P}), -1.0)
    # mean over the three pairs, by hand
    Q, R = rng.standard_normal((2, 20, 10))

    def cos(a, b):
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    np.testing.assert_allclose(cpl([P, Q, R]), (cos(P, Q) + cos(P, R) + cos(Q, R)) / 3)
    with pytest.raises(ValueError, match="two layers"):
        cpl([P])


def test_auroc_matches_mann_whitney():
    rng = np.random.default_rng(10)
    a, b = rng.normal(1, 1, 70), rng.normal(0, 1, 50)
    u = mannwhitneyu(a, b).statistic
    assert auroc(a, b) == pytest.approx(u / (70 * 50))
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert LibraryStack.auroc([0.1], [0.9]) == 0.0


# ----------------------------------------------------------------------------- stack
def test_stack_over_layers():
    X, y = separated_data(seed=11)
    rng = np.random.default_rng(12)
    layers = {"A": X, "B": X @ rng.random((50, 50)), "C": X.reshape(-1, 2, 5, 5)}
    stack = LibraryStack({"A": 0.9, "B": 0.99, "C": 0.9}, top_k=3).fit(layers, y)
    assert stack.layers_ == ["A", "B", "C"] and stack.n_classes_ == 5
    assert set(stack.sizes_) == {"A", "B", "C"}
    scores = stack.predict_scores(layers)
    agr = stack.agreement(layers, y, scores=scores)
    assert agr["A"]["top1"] == 1.0 and agr["C"]["top3"] == 1.0
    c = stack.cpl(layers, scores=scores)
    assert c.shape == (len(y),) and np.all(c <= 1 + 1e-9)
    twin = LibraryStack({"A": 0.9, "A2": 0.9}).fit({"A": X, "A2": X.copy()}, y)
    np.testing.assert_allclose(twin.cpl({"A": X, "A2": X}), 1.0, atol=1e-6)
    ci = stack.confusion_index(layers, y, scores=scores)
    assert ci["A"].shape == (5, 5)
    with pytest.raises(KeyError, match="No activations for layer 'B'"):
        stack.predict_scores({"A": X})


def test_errors_are_clear():
    with pytest.raises(NotFittedError):
        LibraryNetwork(0.5).predict_scores(np.ones((2, 3)))
    lib = LibraryNetwork(0.5).build(np.eye(3))
    with pytest.raises(NotFittedError):
        lib.predict_scores(np.eye(3))  # built but not linked
    with pytest.raises(ValueError, match="features"):
        lib.similarities(np.ones((2, 4)))
    with pytest.raises(ValueError, match="theta"):
        LibraryNetwork(1.5).build(np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        LibraryNetwork(0.5).build(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="y_pred"):
        lib.link(np.eye(3), [0, 1])
    with pytest.raises(NotFittedError):
        _ = LibraryStack({"a": 0.5}).sizes_


def test_pickle_round_trip():
    X, y = separated_data(seed=13)
    lib = LibraryNetwork(0.9).fit(X, y)
    back = pickle.loads(pickle.dumps(lib))
    np.testing.assert_array_equal(back.predict_scores(X), lib.predict_scores(X))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    X, _ = clustered(n=1500, d=200, seed=14, nonneg=True)
    cpu = LibraryNetwork(0.8, dtype="float64").build(X)
    gpu = LibraryNetwork(0.8, dtype="float64", device="cuda").build(X)
    np.testing.assert_array_equal(cpu.indices_, gpu.indices_)


def test_stack_from_networks_equals_fitted_stack():
    X, y = separated_data(seed=15)
    layers = {"A": X, "B": X[:, ::-1].copy()}
    fitted = LibraryStack({"A": 0.9, "B": 0.8}).fit(layers, y)
    nets = {k: LibraryNetwork(t).fit(layers[k], y) for k, t in {"A": 0.9, "B": 0.8}.items()}
    made = LibraryStack.from_networks(nets)
    assert made.sizes_ == fitted.sizes_ and made.n_classes_ == 5
    np.testing.assert_allclose(made.cpl(layers), fitted.cpl(layers))


# ----------------------------------------------------------------------------- figures
def test_table1_transcription():
    from introspect.figures._library import TABLE1_LEVELS, TABLE1_SETS, theta_grid

    assert list(TABLE1_LEVELS) == ["CN1", "CL1", "CL2", "CL3", "FC"]
    assert all(len(v) == 8 and v == sorted(v) for v in TABLE1_LEVELS.values())
    assert len(TABLE1_SETS) == 7
    assert TABLE1_SETS["Set2"] == {"CN1": 0.26, "CL1": 0.72, "CL2": 0.56, "CL3": 0.58, "FC": 0.88}
    for s in TABLE1_SETS.values():  # every set's theta is one of the table's levels
        assert all(t in TABLE1_LEVELS[k] for k, t in s.items())
    assert theta_grid([0.5, 0.6], ["a", "b"]) == {"a": [0.5, 0.6], "b": [0.5, 0.6]}
    with pytest.raises(ValueError, match="no values for layers"):
        theta_grid({"a": [0.5]}, ["a", "b"])


def test_plot_builders_take_compute_output():
    pytest.importorskip("bokeh")
    from introspect_widgets.plots import library as plots

    layers = ["CN1", "FC1"]
    sweep = dict(
        layers=layers,
        thetas={k: [0.6, 0.7] for k in layers},
        sizes={k: [3, 9] for k in layers},
        top1={k: [0.5, 0.8] for k in layers},
        top3={k: [0.9, 1.0] for k in layers},
    )
    assert len(plots.fig2(sweep).children) == 3
    ci = np.eye(3) + 0.1
    p = plots.ci_heatmap(ci, ["a", "b", "c"])
    src = p.select_one({"name": "ci"})
    assert len(src.data["ci"]) == 9 and np.isnan(src.data["ci"][0])
    rng = np.random.default_rng(0)
    res = dict(
        sets=["s1"],
        eps=[0.1, 0.2],
        auroc={"s1": [0.6, 0.9]},
        cpl_clean={"s1": rng.random(20).tolist()},
        cpl_adv={"s1": [rng.random(20).tolist(), rng.random(20).tolist()]},
    )
    plots.fig5({"models": ["m"], "results": {"m": res}})
    h = plots.histogram_data([0.9, 0.95], [0.1, 0.2], bins=4)
    assert h["clean"][-1] > 0 and h["adversarial"][0] > 0


def test_fig5_gives_every_eps_in_pixels_and_in_the_papers_normalised_units(tmp_path):
    """Our PGD eps are [0, 1] pixels; the paper attacked normalised tensors. fig5 carries
    eps / std of the model's own normalisation next to each eps (an untrained small CNN:
    std 0.5, so 0.05 and 0.1 pixels are 0.1 and 0.2 normalised) and prints both."""
    import re
    import warnings

    from introspect.figures import get_figure

    fig = get_figure("library.fig5")
    cfg = {"layers": ["CL3", "FC"], "theta_sets": {"t": {"CL3": 0.9, "FC": 0.9}},
           "eps": [0.05, 0.1], "top_k": 3}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an untrained net: 1-node libraries
        data = fig.compute(
            models={"small_cnn_random@digits": cfg}, n_attack=20, nb_iter=2, eps_iter=0.01,
            n_train_per_class=5, batch_size=64, workdir=str(tmp_path), device="cpu", seed=0,
        )  # fmt: skip
    r = data["results"]["small_cnn_random@digits"]
    assert r["input_std"] == [0.5] and r["eps"] == [0.05, 0.1]
    np.testing.assert_allclose(r["eps_normalised"], [[0.1, 0.1], [0.2, 0.2]])
    np.testing.assert_allclose(r["eps_iter_normalised"], [0.02, 0.02])
    text = fig.summarize(data)
    assert re.search(r"^ +0\.05 +0\.1 ", text, re.M) and re.search(r"^ +0\.1 +0\.2 ", text, re.M)
    assert "step 0.01 pixels = 0.02 normalised" in text and "eps/std" in text

    # three channels (the ResNet44's ImageNet std): the range over the channels
    from introspect.figures.library_fig5 import summarize

    std = [0.229, 0.224, 0.225]
    r = dict(r, input_std=std, eps=[0.01], eps_normalised=[[0.01 / 0.229, 0.01 / 0.224]],
             eps_iter_normalised=[0.01 / 0.229, 0.01 / 0.224], adv_accuracy=[0.5],
             auroc={"t": [0.7]}, cpl_adv={"t": [[0.1, 0.2]]})  # fmt: skip
    text = summarize(dict(data, results={"m": r}, models=["m"]))
    assert re.search(r"^ +0\.01 +0\.0437-0\.0446 ", text, re.M)
    assert "eps=0.01 px = 0.0437-0.0446 normalised" in text
    assert "input std 0.229, 0.224, 0.225" in text

    pytest.importorskip("bokeh")
    from bokeh.models import HoverTool, LinearAxis

    from introspect_widgets.plots import library as plots

    assert plots.eps_labels(r) == ["0.01 px = 0.0437-0.0446 norm"]
    p = plots.auroc_plot(r)
    (top,) = [a for a in p.above if isinstance(a, LinearAxis)]
    assert "eps / std" in top.axis_label and "0.224-0.229" in top.axis_label
    # the top axis is the bottom one divided by the mean std
    ratio = p.extra_x_ranges["normalised"].end / p.x_range.end
    assert ratio == pytest.approx(1 / np.mean(std))
    assert ("eps", "@units") in p.select_one(HoverTool).tooltips


@pytest.mark.realdata
@pytest.mark.slow
def test_mnist_cnn_checkpoint_libraries_predict_its_answers(shared_data, tmp_path):
    """The paper's CNN with the shared checkpoint: FC1's library names its answers."""
    from introspect.capture import activations
    from introspect.data import load_dataset
    from introspect.models import create_model

    ckpt = sorted((shared_data / "weights").glob("mnist_cnn_pytorch_examples_net_*.pt"))[0]
    model = create_model("mnist_cnn", checkpoint=ckpt)
    train = load_dataset("mnist", "train", root=shared_data, n_per_class=100)
    test = load_dataset("mnist", "test", root=shared_data, n_per_class=30)
    (xtr, _), (xte, yte) = train.tensors(), test.tensors()
    acts_tr, logits_tr = activations(model, xtr, ["CN2", "FC1"], return_logits=True)
    acts_te, logits_te = activations(model, xte, ["CN2", "FC1"], return_logits=True)
    pred_tr, pred_te = logits_tr.argmax(1), logits_te.argmax(1)
    assert (pred_te == yte.numpy()).mean() > 0.95
    stack = LibraryStack({"CN2": 0.8, "FC1": 0.8}).fit(acts_tr, pred_tr, 10)
    agr = stack.agreement(acts_te, pred_te)
    assert agr["FC1"]["top1"] > 0.9 and agr["FC1"]["top3"] > 0.97
    assert stack.sizes_["CN2"] > stack.sizes_["FC1"]  # earlier layers are more diverse


def _cifar_resnet44_root():
    """A data root with CIFAR-10 (pickles or the ImageFolder copy) and the ResNet44 weights:
    ``../shared/data`` (as ``conftest.shared_data`` finds it), else ``$INTROSPECT_DATA``;
    None when neither has both."""
    import os
    from pathlib import Path

    from introspect.data import _cifar10_folder

    shared = os.environ.get(
        "INTROSPECT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    roots = [Path(shared)]
    if os.environ.get("INTROSPECT_DATA"):
        roots.append(Path(os.environ["INTROSPECT_DATA"]))
    for root in roots:
        has_data = (root / "cifar-10-batches-py").is_dir() or _cifar10_folder("train", root)
        if has_data and sorted((root / "weights").glob("cifar10_resnet44-*.th")):
            return root
    return None


@pytest.mark.realdata
def test_resnet44_cn1_libraries_at_table1_thetas_hold_more_than_one_node(tmp_path):
    """Table 1's CN1 thetas (0.18-0.34) on CIFAR-10 train images: the authors hooked the raw
    stem convolution, where every level keeps several nodes, more as theta rises. At the
    post-BN-ReLU stem output (CN1 before issue 9) every level gives one node, and warns."""
    import warnings

    from introspect.figures._library import TABLE1_LEVELS, library_run

    root = _cifar_resnet44_root()
    if root is None:
        pytest.skip(
            "no CIFAR-10 with weights/cifar10_resnet44-*.th in ../shared/data or $INTROSPECT_DATA"
        )
    thetas = TABLE1_LEVELS["CN1"]
    kw = dict(top_k=8, n_train_per_class=30, n_test_per_class=2, batch_size=100)
    kw.update(workdir=tmp_path, device="cpu", data_root=str(root), seed=0)
    run = library_run(model="cifar_resnet44", layers=["CN1", "relu"], **kw)
    assert run.model.layer_aliases["CN1"] == "conv1" and run.train_store.n == 300
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "The library of")  # no 1-node library at conv1
        sizes = [run.library("CN1", t).size_ for t in thetas]
    assert all(s > 1 for s in sizes), sizes
    assert sizes == sorted(sizes) and sizes[-1] > 2 * sizes[0], sizes
    for t in (thetas[0], thetas[-1]):  # the old hook point: one node at every level
        with pytest.warns(UserWarning, match=f"layer 'relu' at theta={t:g}.*Raise theta"):
            assert run.library("relu", t).size_ == 1
