"""Known answers for the functional-telescope analyses."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from introspect import telescope as tl
from introspect.som import ToroidalSOM


# ------------------------------------------------------------------------ torus distance
def test_torus_distance_wraps_and_is_symmetric():
    shape = (20, 20)
    assert tl.torus_distance([0, 0], [19, 0], shape) == pytest.approx(1.0)
    assert tl.torus_distance([0, 0], [0, 19], shape) == pytest.approx(1.0)
    assert tl.torus_distance([0, 0], [19, 19], shape) == pytest.approx(np.sqrt(2))
    assert tl.torus_distance([2, 3], [5, 7], shape) == pytest.approx(5.0)
    D = tl.torus_distance_matrix((7, 5))
    np.testing.assert_allclose(D, D.T)
    np.testing.assert_allclose(np.diag(D), 0.0)
    assert D.max() <= np.hypot(7 / 2, 5 / 2) + 1e-12
    # the half-diagonal is reached on an even torus
    assert tl.torus_distance_matrix((6, 6)).max() == pytest.approx(np.hypot(3, 3))


def test_torus_distance_equals_min_over_nine_images_brute_force():
    rng = np.random.default_rng(0)
    m, n = 9, 13
    a = rng.uniform(0, [m, n], size=(200, 2))
    b = rng.uniform(0, [m, n], size=(200, 2))
    images = np.array([(i * m, j * n) for i in (-1, 0, 1) for j in (-1, 0, 1)])
    brute = np.linalg.norm(a[:, None, :] - (b[:, None, :] + images[None]), axis=-1).min(1)
    np.testing.assert_allclose(tl.torus_distance(a, b, (m, n)), brute)


def test_unfold_moves_points_next_to_the_reference():
    shape = (10, 10)
    moved = tl.unfold([[9, 9], [0, 5], [5, 5]], [0, 0], shape)
    np.testing.assert_allclose(moved, [[-1, -1], [0, 5], [5, 5]])
    # Euclidean distance in the unfolding == torus distance
    rng = np.random.default_rng(1)
    pts = rng.integers(0, 10, size=(50, 2))
    ref = np.array([1.0, 8.0])
    moved = tl.unfold(pts, ref, shape)
    np.testing.assert_allclose(
        np.linalg.norm(moved - ref, axis=1), tl.torus_distance(pts, ref, shape)
    )


def test_tile_3x3_makes_nine_copies_on_the_big_canvas():
    t = tl.tile_3x3([[0, 0], [2, 1]], (3, 4))
    assert t.shape == (18, 2)
    assert {tuple(p) for p in t[::2]} == {(i * 3, j * 4) for i in range(3) for j in range(4)[:3]}
    assert t.max(0).tolist() == [8, 9]


# ------------------------------------------------------------------------ class centres
def test_class_centre_of_a_class_straddling_the_seam_is_on_the_seam():
    shape = (20, 20)
    n = shape[1]
    # BMUs around row 0 / row 19, columns 9..11: the straddling cluster
    units = np.array([0 * n + 10, 0 * n + 10, 19 * n + 10, 1 * n + 9, 19 * n + 11, 0 * n + 11])
    labels = np.zeros(len(units), int)
    centre = tl.class_centres(units, labels, shape)[0]
    # naive mean of the rows would be ~6.3 (the middle of the grid); the seam is at row ~0
    assert tl.torus_distance(centre, [0, 10], shape) < 0.7
    assert min(centre[0], 20 - centre[0]) < 0.7
    np.testing.assert_allclose(centre[1], 10.1667, atol=1e-3)
    # all its BMUs are within ~1.5 of it on the torus
    assert tl.d_class(units, labels, shape)[0] < 1.5


def test_class_centres_known_answer_and_top_k_bmus():
    shape = (10, 10)
    # class 0: top-2 BMUs at (2,2),(2,3) and (2,2),(3,2) -> mode (2,2); mean (2.25, 2.25)
    bmus = np.array([[22, 23], [22, 32], [77, 78], [77, 87]])
    labels = np.array([0, 0, 1, 1])
    c = tl.class_centres(bmus, labels, shape)
    np.testing.assert_allclose(c, [[2.25, 2.25], [7.25, 7.25]])
    d = tl.d_class(bmus, labels, shape)
    expected = np.mean(
        [0.25 * np.sqrt(2), np.hypot(0.25, 0.75), np.hypot(0.75, 0.25)] + [0.25 * np.sqrt(2)]
    )
    np.testing.assert_allclose(d, [expected, expected])
    np.testing.assert_array_equal(tl.centre_units(c, shape), [22, 77])


def test_d_class_on_validation_uses_the_training_centres():
    shape = (10, 10)
    train = np.array([[0], [0], [55]])
    ytr = np.array([0, 0, 1])
    centres = tl.class_centres(train, ytr, shape)
    val = np.array([[1], [55]])  # unit 1 is one column away from unit 0
    d = tl.d_class(val, np.array([0, 1]), shape, centres=centres)
    np.testing.assert_allclose(d, [1.0, 0.0])
    per_input = tl.distance_to_centres(val, np.array([0, 1]), centres, shape)
    np.testing.assert_allclose(per_input, [1.0, 0.0])


def test_som_puts_separated_classes_in_their_own_regions_with_small_d_class():
    rng = np.random.default_rng(0)
    k, dim, per = 4, 16, 40
    protos = np.abs(rng.standard_normal((k, dim))) + np.eye(k, dim) * 6
    X = np.concatenate([p + 0.05 * rng.standard_normal((per, dim)) for p in protos])
    y = np.repeat(np.arange(k), per)
    som = ToroidalSOM(10, 10, sigma=5.0, alpha=0.3, epochs=5, init="sample", seed=0).fit(X)
    top10 = som.bmus(X, top_k=10)
    centres = tl.class_centres(top10, y, som.shape)
    dc = tl.d_class(top10, y, som.shape, centres=centres)
    # each class is compact: a region of ~10 units has a mean radius of ~2 grid units
    assert np.all(dc < 2.5)
    # classes are apart: centres farther from each other than any class's spread
    cd = tl.torus_distance(centres[:, None], centres[None], som.shape)
    assert cd[np.triu_indices(k, 1)].min() > 2 * dc.max()
    # and the top-1 BMUs of different classes never share a unit
    b1 = top10[:, 0]
    for c in range(k):
        assert not set(b1[y == c]) & set(b1[y != c])
    # shuffling labels destroys the structure (D_class much larger)
    dc_shuffled = tl.d_class(top10, rng.permutation(y), som.shape)
    assert dc_shuffled.mean() > 1.5 * dc.mean()


# ------------------------------------------------------------------------ density
def test_bmu_density_integrates_to_one_and_peaks_at_the_bmus():
    shape = (10, 10)
    dens = tl.bmu_density([0, 0, 0, 55], shape, bandwidth=1.0, resolution=2)
    assert dens.shape == (20, 20)
    assert dens.sum() / 4 == pytest.approx(1.0)
    assert np.unravel_index(dens.argmax(), dens.shape) == (0, 0)
    # periodic: the mass at unit 0 spills over the seam symmetrically
    np.testing.assert_allclose(dens[1, 0], dens[-1, 0])
    np.testing.assert_allclose(dens[0, 1], dens[0, -1])
    # uniform BMUs give a flat density 1 / (m n)
    flat = tl.bmu_density(np.arange(100), shape, bandwidth=1.0)
    np.testing.assert_allclose(flat, 1 / 100)


def test_bmu_density_matches_a_wrapped_scipy_kde():
    from scipy.stats import multivariate_normal

    shape = (8, 8)
    units = np.array([0, 9, 9, 63, 36])
    dens = tl.bmu_density(units, shape, bandwidth=0.8)
    pts = tl.unit_coords(units, shape)
    gy, gx = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    grid = np.stack([gy.ravel(), gx.ravel()], -1).astype(float)
    # nearest-image Gaussian sum, computed independently with scipy
    ref = np.zeros(64)
    for p in pts:
        near = tl.unfold(grid, p, shape)
        ref += multivariate_normal(p, 0.64 * np.eye(2)).pdf(near)
    ref = ref.reshape(8, 8)
    np.testing.assert_allclose(dens, ref / ref.sum(), rtol=1e-10)


# ------------------------------------------------------------------------ weights
def test_unit_cosine_distances_match_scipy_pdist():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((12, 5))
    np.testing.assert_allclose(tl.unit_cosine_distances(W), pdist(W, "cosine"), atol=1e-12)
    units = [3, 7, 1]
    np.testing.assert_allclose(
        tl.centre_cosine_distances(W, units), pdist(W[units], "cosine"), atol=1e-12
    )
    D = tl.cosine_distances(W[:4])
    np.testing.assert_allclose(np.diag(D), 0.0, atol=1e-12)
    np.testing.assert_allclose(D, D.T)
    np.testing.assert_allclose(tl.cosine_distances(W[:1], -W[:1]), [[2.0]])
    with pytest.raises(ValueError, match="zero"):
        tl.cosine_distances(np.zeros((2, 3)))


def test_bmu_shift_is_zero_for_identical_bmus_and_wraps():
    shape = (20, 20)
    clean = np.array([[0, 1, 2], [5, 6, 7]])
    assert np.all(tl.bmu_shift(clean, clean, shape) == 0)
    pert = np.array([[19, 1, 22], [5, 6, 7]])
    np.testing.assert_allclose(tl.bmu_shift(clean, pert, shape), [[1, 0, 1], [0, 0, 0]])
    with pytest.raises(ValueError, match="shape"):
        tl.bmu_shift(clean, pert[:, :2], shape)


def test_bmu_shift_pairings_on_a_permutation_of_the_same_units():
    # the same 10 units, re-ordered: a re-ranking of near-tied BMUs, not a move
    shape = (20, 20)
    rng = np.random.default_rng(0)
    clean = rng.choice(400, size=(5, 10), replace=False)
    keep_best = clean.copy()
    keep_best[:, 1:] = rng.permuted(clean[:, 1:], axis=1)
    assert np.all(tl.bmu_shift(clean, keep_best, shape, pairing="set") == 0)
    assert np.all(tl.bmu_shift(clean, keep_best, shape, pairing="top1") == 0)
    assert tl.bmu_shift(clean, keep_best, shape, pairing="rank").mean() > 0
    assert tl.bmu_shift(clean, keep_best, shape).shape == (5, 10)  # rank stays the default
    swapped = clean[:, ::-1]  # the best unit changes, the set does not
    assert np.all(tl.bmu_shift(clean, swapped, shape, pairing="set") == 0)
    assert np.all(tl.bmu_shift(clean, swapped, shape, pairing="top1") > 0)
    with pytest.raises(ValueError, match="pairing"):
        tl.bmu_shift(clean, clean, shape, pairing="hungarian")


def test_bmu_shift_known_torus_geometry():
    shape = (10, 10)

    def u(r, c):
        return r * 10 + c

    # clean {(0,0), (0,1)}, perturbed {(0,9), (5,5)} on a 10 x 10 torus:
    # clean -> nearest perturbed: (0,0)-(0,9) = 1 across the seam, (0,1)-(0,9) = 2
    # perturbed -> nearest clean: (0,9)-(0,0) = 1, (5,5)-(0,1) = sqrt(5^2 + 4^2)
    clean = np.array([[u(0, 0), u(0, 1)]])
    pert = np.array([[u(0, 9), u(5, 5)]])
    want = 0.5 * ((1 + 2) / 2 + (1 + np.sqrt(41)) / 2)
    np.testing.assert_allclose(tl.bmu_shift(clean, pert, shape, pairing="set"), [want])
    np.testing.assert_allclose(tl.bmu_shift(clean, pert, shape, pairing="top1"), [1.0])
    np.testing.assert_allclose(
        tl.bmu_shift(clean, pert, shape, pairing="rank"), [[1.0, np.sqrt(41)]]
    )
    # a rigid translation by (1, 1) across both seams moves every unit by sqrt(2)
    clean = np.array([[u(9, 9), u(4, 4), u(9, 4)]])
    moved = np.array([[u(0, 0), u(5, 5), u(0, 5)]])
    np.testing.assert_allclose(tl.bmu_shift(clean, moved, shape, pairing="set"), [np.sqrt(2)])


def test_u_matrix_known_answer():
    # 1-D features on a 2 x 4 torus: each unit's weight is its column; cosine is useless for
    # 1-D so use Euclidean; every unit has neighbours at column distance 1 and 3 (wrap)
    W = np.tile(np.arange(4.0), 2)[:, None]
    U = tl.u_matrix(W, (2, 4), metric="euclidean")
    # neighbours of column 0: columns 3,0,1 in the rows above/below (same row twice on
    # a 2-row torus) -> |0-3|, |0-1| appear 3 times each, |0-0| twice
    np.testing.assert_allclose(U[0, 0], (3 * 3 + 3 * 1 + 2 * 0) / 8)
    np.testing.assert_allclose(U[0, 1], (3 * 1 + 3 * 1 + 0) / 8)


# ------------------------------------------------------------------------ PCA
def test_pca_explained_variance_matches_sklearn_and_known_answer():
    rng = np.random.default_rng(0)
    # variance 9, 4, 1 along three orthogonal axes
    Z = rng.standard_normal((5000, 3)) * [3.0, 2.0, 1.0]
    Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    X = Z @ Q[:3] + 7.0
    ev = tl.pca_explained_variance(X, n_components=30)
    assert ev.shape == (6,)
    np.testing.assert_allclose(ev[:3], np.array([9, 4, 1]) / 14, atol=0.02)
    # independent: eigenvalues of the sample covariance of the centred codes
    eig = np.sort(np.linalg.eigvalsh(np.cov(X, rowvar=False)))[::-1]
    np.testing.assert_allclose(ev, eig / eig.sum(), atol=1e-10)
    assert tl.pca_explained_variance(X, n_components=2).shape == (2,)
    assert ev[3:].sum() < 1e-10
    assert np.all(np.diff(ev) <= 1e-12)


# ------------------------------------------------------------------------ figure stages
def test_box_stats_and_downsample_known_answers():
    from introspect.figures._telescope import box_stats, downsample

    s = box_stats([1, 2, 3, 4, 5, 6, 7, 8, 9, 100, np.nan])
    assert s["n"] == 10 and s["median"] == 5.5
    assert s["q1"] == pytest.approx(3.25) and s["q3"] == pytest.approx(7.75)
    assert s["upper"] == 9 and s["lower"] == 1 and s["outliers"] == [100.0]
    assert box_stats([np.nan]) == {"n": 0}
    x, y = downsample(np.arange(10.0), max_points=3)
    assert y == [1.5, 5.5, 8.5] and x == [1.5, 5.5, 8.5]
    x, y = downsample([1.0, 2.0], max_points=5)
    assert (x, y) == ([0, 1], [1.0, 2.0])


def test_som_run_on_digits_is_cached_and_consistent(digits_small_cnn):
    from introspect.figures._telescope import som_run

    model, work = digits_small_cnn
    spec = dict(
        model="small_cnn",
        dataset="digits",
        image_size=16,
        channels=1,
        train=dict(epochs=6, lr=3e-3, batch_size=64),
    )
    kw = dict(
        layers=["CL1", "CL4"],
        n_per_class=20,
        val_n_per_class=10,
        som_size=6,
        som_epochs=2,
        som_batch_size=10,
        sigma=3.0,
        alpha=0.1,
        top_k=3,
        batch_size=64,
        workdir=work,
        device="cpu",
        data_root=None,
        seed=0,
    )
    run = som_run(spec, **kw)
    assert run.shape == (6, 6) and len(run.classes) == 10
    assert run.bmus["train"]["CL1"].shape == (200, 3)
    assert run.bmus["val"]["CL4"].shape == (100, 3)
    assert run.bmus["val"]["CL4"].max() < 36
    assert run.soms["CL4"].n_steps_ == 2 * 20
    # the model's own accuracy on digits is high, and the CL4 codes separate classes
    assert run.accuracy("val") > 0.8
    dc = run.d_class("CL4", "train")
    assert dc.shape == (10,) and np.all(np.isfinite(dc))
    # second call: SOMs come from the workdir, not refitted
    fitted = sorted((work / "som").iterdir())
    again = som_run(spec, **kw)
    assert sorted((work / "som").iterdir()) == fitted and len(fitted) == 2
    np.testing.assert_array_equal(again.soms["CL1"].weights_, run.soms["CL1"].weights_)


@pytest.mark.realdata
@pytest.mark.slow
def test_mnist_cnn_codes_follow_the_telescope_trend(shared_data, tmp_path, monkeypatch):
    """Real MNIST and the shared MNIST CNN: class structure on the SOM and the diversity of
    the SOM weights grow with depth.

    D_class alone is not compared across layers: a shallow layer whose codes are all alike
    maps every input to a few units, which makes D_class small for every class. Its ratio
    to D_class with shuffled labels (1: no class structure) is compared instead.
    """
    from introspect.figures._telescope import som_run

    monkeypatch.setenv("INTROSPECT_WEIGHTS", str(shared_data / "weights"))
    run = som_run(
        "mnist_cnn",
        layers=["CN1", "CN2", "FC1"],
        n_per_class=30,
        val_n_per_class=20,
        som_size=10,
        som_epochs=5,
        som_batch_size=10,
        sigma=10.0,
        alpha=0.1,
        top_k=10,
        batch_size=128,
        workdir=tmp_path,
        device="cpu",
        data_root=str(shared_data),
        seed=0,
    )
    assert run.accuracy("val") > 0.95
    rng = np.random.default_rng(0)
    ratio, cos = {}, {}
    for layer in run.layers:
        bm, y = run.bmus["train"][layer], run.labels["train"]
        shuffled = np.mean(
            [np.nanmean(tl.d_class(bm, rng.permutation(y), run.shape)) for _ in range(5)]
        )
        ratio[layer] = np.nanmean(tl.d_class(bm, y, run.shape)) / shuffled
        cos[layer] = np.median(tl.unit_cosine_distances(run.soms[layer].weights_))
    assert ratio["FC1"] < 0.8 * ratio["CN1"] and ratio["FC1"] < 0.7
    assert cos["FC1"] > 3 * cos["CN1"]


def test_unit_class_counts_majority_and_members_hand_set():
    # 2x2 map; inputs 0, 1 and 3 land on unit 0 (classes 1, 1, 2), input 2 on unit 3 (class 0)
    bmus = np.array([[0, 1], [0, 2], [3, 1], [0, 0]])
    labels = np.array([1, 1, 0, 2])
    counts = tl.unit_class_counts(bmus, labels, (2, 2), n_classes=4)
    assert counts.shape == (2, 2, 4) and counts.sum() == 4  # only the top-1 BMU counts
    np.testing.assert_array_equal(counts[0, 0], [0, 2, 1, 0])
    np.testing.assert_array_equal(counts[1, 1], [1, 0, 0, 0])
    np.testing.assert_array_equal(counts.sum(-1), [[3, 0], [0, 1]])
    major = tl.unit_majority_class(counts)
    assert major[0, 0] == 1 and major[1, 1] == 0 and np.isnan(major[0, 1]) and np.isnan(major[1, 0])
    tie = tl.unit_class_counts([[2], [2]], [3, 1], (2, 2))
    assert tl.unit_majority_class(tie)[1, 0] == 1  # ties: the lowest class
    np.testing.assert_array_equal(tl.unit_members(bmus, 0), [0, 1, 3])
    np.testing.assert_array_equal(tl.unit_members([3, 3, 1], 3), [0, 1])  # 1-d BMUs
    assert tl.unit_members(bmus, 2).size == 0
    with pytest.raises(ValueError, match="out of range"):
        tl.unit_class_counts(bmus, labels, (2, 2), n_classes=2)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        tl.unit_class_counts([[5]], [0], (2, 2))


# ------------------------------------------------------------------------ fig11 noise floor
def test_fig11_reports_the_noise_floor_and_defaults_to_set_pairing(session_workdir):
    from introspect.figures import get_figure

    fig = get_figure("telescope.fig11")
    assert fig.defaults()["pairing"] == "set"
    p = fig.profile("quick")
    p.update(workdir=session_workdir, device="cpu", data_root=None, seed=0, n_images=60)
    p["eps"] = [8 / 255]
    d = fig.compute(**p)
    assert d["pairing"] == "set"
    floor = d["noise_floor_by_pairing"]["small_cnn@digits"]
    for la in d["layers"]:
        # noise of a tenth of 1/255 re-orders near-tied BMUs (rank sees a shift), but
        # hardly moves the set of units and leaves the winner (top1) in place
        assert floor[la]["set"] <= floor[la]["rank"]
        assert d["noise_floor"]["small_cnn@digits"][la] == pytest.approx(floor[la]["set"])
    assert floor["CL1"]["rank"] > 5 * max(floor["CL1"]["set"], 1e-3)
    sep = d["separation"]["small_cnn@digits"]["0.0313725"]
    assert set(sep["CL4"]) == {"rank", "top1", "set"}
    assert all(0.0 <= v <= 1.0 for la in d["layers"] for v in sep[la].values())
    text = fig.summarize(d)
    assert "noise floor" in text and "'set'" in text
    with pytest.raises(ValueError, match="pairing"):
        fig.compute(**{**p, "pairing": "hungarian"})
