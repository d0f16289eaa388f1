"""Known-answer tests for introspect.manifolds (class activation manifolds)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from sklearn.decomposition import PCA
from torch import nn

from introspect.manifolds import (
    CappedDimensionWarning,
    class_manifold_dims,
    classwise_accuracy,
    classwise_robustness,
    dim_robustness_correlation,
    dimension_at,
    explained_variance_curve,
    participation_ratio,
    pca_spectrum,
    penultimate_features,
)


def exact_spectrum_cloud(variances, n, d, seed=0):
    """n points in R^d whose sample covariance has exactly the given eigenvalues."""
    rng = np.random.default_rng(seed)
    k = len(variances)
    Z = rng.standard_normal((n, k))
    Z -= Z.mean(axis=0)
    Q, _ = np.linalg.qr(Z)  # orthonormal columns, each orthogonal to the ones vector
    V, _ = np.linalg.qr(rng.standard_normal((d, k)))
    return (Q * np.sqrt(np.asarray(variances) * (n - 1))) @ V.T + rng.standard_normal(d)


def subspace_cloud(k, n, d, noise=1e-3, seed=0):
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((d, k)))
    return rng.standard_normal((n, k)) @ basis.T + noise * rng.standard_normal((n, d))


# ---------------------------------------------------------------- spectra and dimension


def test_exact_spectrum_gives_known_curve_dimension_and_participation_ratio():
    variances = [50.0, 30.0, 15.0, 4.0, 1.0]  # cumulative 0.50 0.80 0.95 0.99 1.00
    X = exact_spectrum_cloud(variances, n=40, d=12)
    np.testing.assert_allclose(pca_spectrum(X)[:5], variances, rtol=1e-9)
    np.testing.assert_allclose(pca_spectrum(X)[5:], 0, atol=1e-9)
    curve = explained_variance_curve(X)
    np.testing.assert_allclose(curve[:5], [0.5, 0.8, 0.95, 0.99, 1.0], atol=1e-12)
    # the threshold is reached exactly at 3 components: 0.95 must give 3, not 4
    assert dimension_at(curve, 0.95) == 3
    assert dimension_at(curve, 0.90) == 3
    assert dimension_at(curve, 0.96) == 4
    assert dimension_at(curve, 0.50) == 1
    assert dimension_at(curve, 1.0) == 5
    expected_pr = sum(variances) ** 2 / sum(v**2 for v in variances)
    assert participation_ratio(X) == pytest.approx(expected_pr, rel=1e-9)


@pytest.mark.parametrize("n,d", [(30, 80), (300, 20)])
def test_curve_matches_sklearn_pca(n, d):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, d)) * np.linspace(3, 0.1, d)
    ours = explained_variance_curve(X)
    ref = np.cumsum(PCA().fit(X).explained_variance_ratio_)[: min(n - 1, d)]
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    np.testing.assert_allclose(
        pca_spectrum(X), PCA().fit(X).explained_variance_[: ours.size], rtol=1e-7
    )


@pytest.mark.parametrize("k", [1, 3, 7])
def test_points_on_k_dim_subspace_have_dimension_k(k):
    X = subspace_cloud(k, n=500, d=64, seed=k)
    y = np.zeros(500, dtype=int)
    m = class_manifold_dims(X, y)
    assert m.dims.tolist() == [k]
    assert m.n.tolist() == [500]
    assert not m.capped.any()
    assert m.participation_ratio[0] == pytest.approx(k, rel=0.2)


def test_degenerate_inputs():
    assert dimension_at([], 0.95) == 0
    assert explained_variance_curve(np.ones((5, 3))).size == 0  # no variance
    assert participation_ratio(np.ones((5, 3))) == 0.0
    assert pca_spectrum(np.ones((1, 3))).size == 0  # one sample
    with pytest.raises(ValueError, match="threshold"):
        dimension_at([0.5, 1.0], 0.0)
    with pytest.raises(ValueError, match="threshold"):
        class_manifold_dims(np.zeros((4, 2)), [0, 0, 1, 1], threshold=1.5)


# ---------------------------------------------------------------- per class


def test_per_class_dims_with_different_subspaces_and_names():
    X = np.concatenate([subspace_cloud(2, 200, 30, seed=1), subspace_cloud(5, 200, 30, seed=2)])
    y = np.repeat([3, 1], 200)  # classes given out of order
    m = class_manifold_dims(X, y, class_names=["a", "b", "c", "d"], layer="penultimate")
    assert m.classes.tolist() == [1, 3]
    assert m.class_names == ["b", "d"]
    assert m.dims.tolist() == [5, 2]
    assert m.max_dims.tolist() == [30, 30]
    assert m.mean_dim == pytest.approx(3.5)
    assert m.layer == "penultimate" and m.n_features == 30
    d = m.to_dict()
    assert d["dims"] == [5, 2] and d["n"] == [200, 200] and len(d["curves"][0]) == 30
    text = m.summary()
    assert "b" in text and "200" in text


def test_class_with_fewer_samples_than_its_dimension_is_flagged_with_a_warning():
    rng = np.random.default_rng(0)
    few = rng.standard_normal((8, 40))  # true dimension 40, only 8 samples -> at most 7 axes
    many = subspace_cloud(3, 300, 40, seed=3)
    X = np.concatenate([few, many])
    y = np.repeat([0, 1], [8, 300])
    with pytest.warns(CappedDimensionWarning, match=r"n 8"):
        m = class_manifold_dims(X, y)
    assert m.capped.tolist() == [True, False]
    assert m.max_dims[0] == 7 and m.dims[0] <= 7
    assert m.dims[1] == 3


def test_single_sample_class_is_capped():
    X = np.concatenate([np.zeros((1, 4)), subspace_cloud(1, 50, 4)])
    y = np.repeat([0, 1], [1, 50])
    with pytest.warns(CappedDimensionWarning):
        m = class_manifold_dims(X, y)
    assert m.dims.tolist() == [0, 1] and m.capped.tolist() == [True, False]


def test_n_per_class_subsamples_reproducibly_and_reports_n():
    X = np.concatenate([subspace_cloud(2, 100, 10, seed=1), subspace_cloud(2, 30, 10, seed=2)])
    y = np.repeat([0, 1], [100, 30])
    a = class_manifold_dims(X, y, n_per_class=40, seed=5)
    b = class_manifold_dims(X, y, n_per_class=40, seed=5)
    assert a.n.tolist() == [40, 30]
    np.testing.assert_array_equal(a.curves[0], b.curves[0])


def test_with_threshold_equals_recomputation():
    X = np.concatenate([exact_spectrum_cloud([5, 3, 1.5, 0.4, 0.1], 60, 9, seed=s) for s in (1, 2)])
    y = np.repeat([0, 1], 60)
    m = class_manifold_dims(X, y)
    for t in (0.5, 0.8, 0.9, 0.99):
        again = class_manifold_dims(X, y, threshold=t)
        moved = m.with_threshold(t)
        assert moved.dims.tolist() == again.dims.tolist()
        assert moved.threshold == t
    assert m.dims.tolist() == [3, 3]


class FakeStore:
    def __init__(self, layers, labels, classes=None):
        self._layers = layers
        self.layers = list(layers)
        self.labels = labels
        self.meta = {"classes": classes} if classes else {}

    def layer(self, name):
        return self._layers[name]


def test_store_input_reads_layer_labels_and_class_names():
    X = np.concatenate([subspace_cloud(2, 80, 12, seed=1), subspace_cloud(4, 80, 12, seed=2)])
    y = np.repeat([0, 1], 80)
    store = FakeStore({"penultimate": X.astype(np.float32)}, y, classes=["zero", "one"])
    m = class_manifold_dims(store)
    assert m.dims.tolist() == [2, 4] and m.class_names == ["zero", "one"]
    assert m.layer == "penultimate"
    two = FakeStore({"a": X, "b": X}, y)
    with pytest.raises(ValueError, match="layer="):
        class_manifold_dims(two)
    assert class_manifold_dims(two, layer="b").dims.tolist() == [2, 4]


def test_array_input_errors_are_clear():
    with pytest.raises(ValueError, match="labels"):
        class_manifold_dims(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="one label per row"):
        class_manifold_dims(np.zeros((4, 2)), [0, 1])


# ---------------------------------------------------------------- correlation


def test_perfectly_monotone_pairs_give_spearman_plus_minus_one():
    dims = np.arange(1, 11, dtype=float)
    up = dim_robustness_correlation(dims, np.exp(dims / 3))
    down = dim_robustness_correlation(dims, 1.0 / dims)
    assert up["spearman_r"] == pytest.approx(1.0)
    assert down["spearman_r"] == pytest.approx(-1.0)
    assert up["spearman_ci"] == pytest.approx((1.0, 1.0))
    assert down["spearman_ci"] == pytest.approx((-1.0, -1.0))
    assert 0 < up["pearson_r"] < 1  # monotone but not linear
    lin = dim_robustness_correlation(dims, 0.9 - 0.05 * dims)
    assert lin["pearson_r"] == pytest.approx(-1.0)
    assert lin["pearson_ci"] == pytest.approx((-1.0, -1.0))
    assert lin["n"] == 10


def test_correlation_matches_scipy_and_ci_covers_r():
    rng = np.random.default_rng(0)
    dims = rng.integers(5, 50, size=40).astype(float)
    acc = 0.8 - 0.01 * dims + 0.1 * rng.standard_normal(40)
    out = dim_robustness_correlation(dims, acc, n_boot=1000, seed=1)
    pr, sr = stats.pearsonr(dims, acc), stats.spearmanr(dims, acc)
    assert out["pearson_r"] == pytest.approx(pr[0]) and out["pearson_p"] == pytest.approx(pr[1])
    assert out["spearman_r"] == pytest.approx(sr[0])
    assert out["spearman_p"] == pytest.approx(sr[1])
    for k in ("pearson", "spearman"):
        lo, hi = out[f"{k}_ci"]
        assert -1 <= lo < out[f"{k}_r"] < hi <= 1
    # reproducible
    assert dim_robustness_correlation(dims, acc, n_boot=1000, seed=1) == out


def test_correlation_edge_cases():
    with pytest.warns(RuntimeWarning, match="constant"):
        out = dim_robustness_correlation([3, 3, 3, 3], [0.1, 0.2, 0.3, 0.4])
    assert np.isnan(out["pearson_r"]) and np.isnan(out["spearman_p"])
    with pytest.raises(ValueError, match="at least 3"):
        dim_robustness_correlation([1, 2, np.nan], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="same length"):
        dim_robustness_correlation([1, 2, 3], [0.1, 0.2])


# ---------------------------------------------------------------- class-wise robustness


def test_classwise_accuracy_counts():
    acc, n = classwise_accuracy([0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2], classes=[0, 1, 2, 3])
    np.testing.assert_allclose(acc[:3], [0.5, 2 / 3, 1.0])
    assert np.isnan(acc[3]) and n.tolist() == [2, 3, 1, 0]


class Threshold(nn.Module):
    """Two classes split at x0 = 0.5 on 1x1x2 images: class 1 iff x0 > 0.5.

    Logit margin 2 (x0 - 0.5), so an L-inf budget eps flips exactly the images with
    |x0 - 0.5| <= eps (the other pixel has no weight).
    """

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
            self.fc.bias.copy_(torch.tensor([0.5, -0.5]))

    def forward(self, x):
        return self.fc(x.flatten(1))


def hand_pgd(
    model, x, y, eps, nb_iter=40, eps_iter=0.01, rand_init=True, batch_size=256, device="cpu"
):
    """An independent L-inf PGD loop (random start, sign steps, projection, [0, 1] clip)."""
    xa = x + (torch.rand_like(x) * 2 - 1) * eps if rand_init else x.clone()
    xa = xa.clamp(0, 1)
    for _ in range(nb_iter):
        xa.requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xa), y), xa)
        xa = torch.min(torch.max(xa.detach() + eps_iter * g.sign(), x - eps), x + eps).clamp(0, 1)
    return xa.detach()


def threshold_data():
    x0 = [0.45, 0.40, 0.30, 0.10, 0.55, 0.52, 0.90, 0.48]
    y = [0, 0, 0, 0, 1, 1, 1, 1]  # the last one is misclassified when clean
    X = torch.tensor([[[[v, 0.5]]] for v in x0])
    return X, torch.tensor(y)


def test_classwise_robustness_known_answer_on_a_linear_model():
    X, y = threshold_data()
    rob = classwise_robustness(
        Threshold(), (X, y), [0.0, 0.08, 0.25], attack=hand_pgd, class_names=["lo", "hi"]
    )
    assert rob.class_names == ["lo", "hi"] and rob.n.tolist() == [4, 4]
    np.testing.assert_allclose(rob.clean_acc, [1.0, 0.75])
    # eps 0.08: class 0 keeps x0 in {0.40, 0.30, 0.10}; class 1 keeps only 0.90
    np.testing.assert_allclose(rob.acc_at(0.08), [0.75, 0.25])
    np.testing.assert_allclose(rob.acc_at(0.08, given_clean=True), [0.75, 1 / 3])
    # eps 0.25: class 0 keeps 0.10, class 1 keeps 0.90
    np.testing.assert_allclose(rob.acc_at(0.25), [0.25, 0.25])
    np.testing.assert_allclose(rob.acc_at(0.0), rob.clean_acc)
    assert rob.clean_accuracy == pytest.approx(7 / 8)
    np.testing.assert_allclose(rob.adv_accuracy, [7 / 8, 4 / 8, 2 / 8])
    assert rob.attack["eps_iter_rule"] == "2.5 * eps / nb_iter"
    assert rob.to_dict()["adv_acc"][1] == pytest.approx([0.75, 0.25])
    assert "hi" in rob.summary()
    with pytest.raises(ValueError, match="not attacked"):
        rob.acc_at(0.5)


def test_classwise_robustness_subsamples_per_class():
    X, y = threshold_data()
    rob = classwise_robustness(Threshold(), (X, y), [0.0], attack=hand_pgd, n_per_class=2)
    assert rob.n.tolist() == [2, 2]


# ---------------------------------------------------------------- penultimate features


class Tiny(nn.Module):
    classifier_path = "head.1"

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))

    def forward(self, x):
        return self.head(self.body(x))


def test_penultimate_features_is_the_classifier_input_and_leaves_no_hook():
    torch.manual_seed(0)
    model = Tiny().train()
    x = torch.rand(10, 1, 8, 8)
    feats = penultimate_features(model, x, batch_size=3)
    with torch.no_grad():
        expected = model.body(x).flatten(1).numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-6)
    assert feats.shape == (10, 12)
    assert model.training  # mode restored
    assert not model.head[1]._forward_pre_hooks
    with pytest.raises(RuntimeError):
        penultimate_features(model, torch.rand(2, 2, 8, 8))  # wrong channels: forward raises
    assert not model.head[1]._forward_pre_hooks


def test_penultimate_features_needs_classifier_path():
    with pytest.raises(ValueError, match="classifier_path"):
        penultimate_features(nn.Linear(2, 2), torch.rand(3, 2))


def test_classwise_robustness_with_introspect_pgd_matches_the_known_answer():
    X, y = threshold_data()
    model = Threshold().train()
    rob = classwise_robustness(model, (X, y), [0.0, 0.08, 0.25], nb_iter=20)
    np.testing.assert_allclose(rob.adv_acc, [[1.0, 0.75], [0.75, 0.25], [0.25, 0.25]])
    assert rob.attack["name"] == "pgd" and rob.attack["seed"] == 0
    assert model.training  # mode restored


@pytest.mark.realdata
def test_published_mnist_models_trained_manifolds_are_lower_dimensional(shared_data, monkeypatch):
    """advertorch LeNet5: random init >> clean > PGD-trained mean CAM dimension (500 per class)."""
    from introspect.data import load_dataset
    from introspect.models import create_model

    monkeypatch.setenv("INTROSPECT_WEIGHTS", str(shared_data / "weights"))
    test = load_dataset("mnist", split="test", root=shared_data, n_per_class=500, seed=0)
    X, y = test.tensors()
    mean = {}
    for label, name, pretrained in [
        ("random", "advertorch_lenet5_clntrained", False),
        ("clean", "advertorch_lenet5_clntrained", True),
        ("pgd", "advertorch_lenet5_advtrained", True),
    ]:
        torch.manual_seed(0)
        feats = penultimate_features(create_model(name, pretrained=pretrained), X)
        m = class_manifold_dims(feats, y)
        assert m.n.tolist() == [500] * 10 and not m.capped.any()
        mean[label] = m.mean_dim
    assert mean["random"] > 2 * mean["clean"]
    assert mean["clean"] > mean["pgd"]


def test_small_n_spearman_p_is_exact_and_n_boot_zero_skips_the_ci():
    out = dim_robustness_correlation([1, 2, 3], [0.9, 0.5, 0.1], n_boot=0)
    assert out["spearman_r"] == pytest.approx(-1.0)
    assert out["spearman_p"] == pytest.approx(2 / 6)  # 2 of the 3! orderings are perfect
    assert out["spearman_p_method"] == "exact permutation"
    assert all(np.isnan(out["pearson_ci"])) and all(np.isnan(out["spearman_ci"]))
    # n = 8: exact p agrees with a brute-force count over random-free enumeration
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(8), rng.standard_normal(8)
    exact = dim_robustness_correlation(a, b, n_boot=0)["spearman_p"]
    ref = stats.permutation_test(
        (b,), lambda y: stats.spearmanr(a, y)[0], permutation_type="pairings", n_resamples=np.inf
    ).pvalue
    assert exact == pytest.approx(ref, abs=1e-9)
    big = dim_robustness_correlation(np.arange(12), np.arange(12) ** 2, n_boot=0)
    assert big["spearman_p_method"] == "t approximation (scipy)"


def test_figure_stage_random_class_subset_is_shared_by_dims_and_attack(tmp_path):
    from introspect.figures import _manifolds

    common = dict(
        n_classes=4, batch_size=64, workdir=str(tmp_path), device="cpu", data_root=None, seed=3
    )
    r = _manifolds.analyse(
        "small_cnn_random@digits",  # untrained: no training in tests
        dims_split="train",
        dims_n_per_class=30,
        robust_split="test",
        robust_n_per_class=5,
        threshold=0.95,
        eps=[0.05, 0.02],
        nb_iter=2,
        **common,
    )
    classes = _manifolds.chosen_classes(10, 4, 3)
    assert r["manifolds"]["classes"] == classes == r["robustness"]["classes"]
    assert r["manifolds"]["n"] == [30] * 4 and r["robustness"]["n"] == [5] * 4
    assert r["robustness"]["eps"] == [0.05, 0.02]
    assert np.asarray(r["robustness"]["adv_acc"]).shape == (2, 4)
    # per-eps cache: a second call with one of the eps reuses the stored attack
    again = _manifolds.robustness(
        "small_cnn_random@digits",
        split="test",
        n_per_class=5,
        eps=[0.02],
        nb_iter=2,
        **common,
    )
    assert again["adv_acc"][0] == r["robustness"]["adv_acc"][1]
    assert len(list((tmp_path / "attack").iterdir())) == 2  # the shared attack stage


def test_is_capped_from_dict_and_summary():
    from introspect.manifolds import (
        ClassManifolds,
        ClasswiseRobustness,
        correlation_or_none,
        is_capped,
        manifold_summary,
    )

    np.testing.assert_array_equal(
        is_capped([1, 5, 6, 0], [11, 11, 11, 1]), [False, False, True, True]
    )
    np.testing.assert_array_equal(is_capped([3], [5], cap_fraction=0.9), [False])
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.standard_normal((30, 8)) * s for s in (0.1, 1.0, 3.0, 5.0)])
    X[:30, 2:] = 0  # class 0 lies on a 2-d subspace
    y = np.repeat(np.arange(4), 30)
    m = class_manifold_dims(X, y, warn=False)
    back = ClassManifolds.from_dict(m.to_dict())
    assert back.to_dict() == m.to_dict()
    np.testing.assert_array_equal(back.with_threshold(0.6).dims, m.with_threshold(0.6).dims)
    assert correlation_or_none([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4]) is None  # constant dims
    assert correlation_or_none([1, 2], [0.1, 0.2]) is None  # fewer than 3 classes
    acc = np.array([[0.9, 0.5, 0.4, 0.1]])
    rob = ClasswiseRobustness(
        classes=np.arange(4), class_names=list("abcd"), n=np.full(4, 30), eps=np.array([0.1]),
        clean_acc=np.ones(4), adv_acc=acc, adv_acc_given_clean=acc, clean_accuracy=1.0,
        adv_accuracy=acc.mean(1),
    )  # fmt: skip
    s = manifold_summary(m, rob, n_boot=50)
    assert s["manifolds"] == m.to_dict() and s["robustness"]["adv_acc"] == acc.tolist()
    ref = correlation_or_none(m.dims, acc[0], n_boot=50)
    assert set(s["correlation"]) == {"0.1"}
    assert s["correlation"]["0.1"] == ref or (ref is None and s["correlation"]["0.1"] is None)
    assert s["mean_dim"] == m.mean_dim and manifold_summary(m)["robustness"] is None
