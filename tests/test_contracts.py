"""Input contracts of the public entry points (``introspect._checks``).

Each test feeds one out-of-contract input (uint8 images, images in 0..255 as floats, NaN
rows, NaN or negative eps, float labels, out-of-range labels) and checks that it is
refused with the specific error type and a message naming the entry point and the
problem; a few check that valid input still works. Everything here is tiny and fast.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from introspect.attacks import accuracy, awgn, iterative_fgsm, pgd, predict, uniform_noise
from introspect.library import LibraryNetwork, LibraryStack, agreement, confusion_index
from introspect.manifolds import (
    class_manifold_dims,
    classwise_accuracy,
    classwise_robustness,
    participation_ratio,
    pca_spectrum,
    penultimate_features,
)
from introspect.selfintro import ErrorEstimator, InfoVAE, SelfIntrospector, classifier_error
from introspect.som import ToroidalSOM

NOT_01 = r"images must be floats in \[0, 1\]"
NOT_INT = r"labels must be integers"
BAD_EPS = r"must be a finite number >= 0"


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()


@pytest.fixture()
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 8, 8, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    return tiny_model(), x, y


def codes(n=40, d=5, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


# ------------------------------------------------------------------------------- SOM


def test_som_fit_refuses_nan_rows():
    # known answer: today NaN rows would make every BMU unit 0
    X = codes()
    X[[3, 17]] = np.nan
    som = ToroidalSOM(m=3, n=3, epochs=1)
    with pytest.raises(ValueError, match=r"ToroidalSOM\.fit: codes hold NaN or inf in 2 row"):
        som.fit(X)
    with pytest.raises(ValueError, match=r"first: row 3\)"):
        som.fit(torch.from_numpy(X))


def test_som_fit_refuses_inf_and_nan_init():
    X = codes()
    X[5, 0] = np.inf
    with pytest.raises(ValueError, match=r"ToroidalSOM\.fit: codes hold NaN or inf"):
        ToroidalSOM(m=2, n=2, epochs=1).fit(X)
    init = np.zeros((4, 5), np.float32)
    init[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"ToroidalSOM\.fit: init weights hold NaN"):
        ToroidalSOM(m=2, n=2, epochs=1, init=init).fit(codes())


def test_som_inference_refuses_nan_rows_naming_the_row():
    som = ToroidalSOM(m=3, n=3, epochs=1).fit(codes())
    X = codes(n=4100, seed=1)  # two inference chunks of 4096 rows
    X[4098] = np.nan
    for method, name in (
        (lambda a: som.bmus(a, top_k=2), "bmus"),
        (som.transform, "transform"),
        (som.quantization_error, "quantization_error"),
        (som.topographic_error, "topographic_error"),
    ):
        with pytest.raises(ValueError, match=rf"ToroidalSOM\.{name}: .*first: row 4098\)"):
            method(X)


def test_som_valid_input_still_works():
    X = codes(n=60)
    som = ToroidalSOM(m=3, n=3, epochs=2, batch_size=5).fit(X)
    assert np.isfinite(som.weights_).all() and som.weights_.shape == (9, 5)
    b = som.bmus(X, top_k=2)
    assert b.shape == (60, 2) and len(np.unique(b[:, 0])) > 1
    assert math.isfinite(som.quantization_error(X))
    same = ToroidalSOM(m=3, n=3, epochs=2, batch_size=5).fit(torch.from_numpy(X))
    np.testing.assert_array_equal(som.weights_, same.weights_)


# --------------------------------------------------------------------------- library


def test_library_fit_refuses_nan_rows_naming_the_data_row():
    X = codes(n=20)
    X[9, 2] = np.nan
    with pytest.raises(ValueError, match=r"LibraryNetwork\.fit: activity patterns hold NaN"):
        LibraryNetwork(0.5).fit(X, np.zeros(20, dtype=int))
    # the row is that of the caller's array, not of the block it sat in
    with pytest.raises(ValueError, match=r"LibraryNetwork\.build: .*first: row 9\)"):
        LibraryNetwork(0.5, block_size=4).build(X)
    lib = LibraryNetwork(0.5, block_size=4).build(codes(n=20))
    with pytest.raises(ValueError, match=r"LibraryNetwork\.link: .*first: row 9\)"):
        lib.link(X, np.zeros(20, dtype=int))
    with pytest.raises(ValueError, match=r"LibraryNetwork\.similarities: .*NaN"):
        lib.similarities(X)


def test_library_link_refuses_float_and_out_of_range_y_pred():
    X = codes(n=12)
    lib = LibraryNetwork(0.5).build(X)
    with pytest.raises(TypeError, match=r"LibraryNetwork\.link \(y_pred\): " + NOT_INT):
        lib.link(X, np.ones(12))  # 1.0, 1.0, ...: whole numbers but floats
    pred = np.arange(12) % 4
    with pytest.raises(ValueError, match=r"y_pred.*class numbers in \[0, 3\); found 3"):
        lib.link(X, pred, n_classes=3)
    with pytest.raises(ValueError, match=r"y_pred.*>= 0; found -1"):
        lib.link(X, pred - 1)
    with pytest.raises(TypeError, match=r"LibraryNetwork\.fit \(y_pred\): " + NOT_INT):
        LibraryNetwork(0.5).fit(X, pred.astype(float))


def test_library_stack_refuses_float_labels_and_names_the_nan_layer():
    X, y = codes(n=12), np.arange(12) % 3
    bad = X.copy()
    bad[4] = np.inf
    stack = LibraryStack({"A": 0.5, "B": 0.5})
    with pytest.raises(TypeError, match=r"LibraryStack\.fit \(y_pred\): " + NOT_INT):
        stack.fit({"A": X, "B": X}, y.astype(np.float32))
    with pytest.raises(ValueError, match=r"LibraryStack\.fit \(y_pred\): .*\[0, 2\)"):
        stack.fit({"A": X, "B": X}, y, n_classes=2)
    with pytest.raises(ValueError, match=r"LibraryStack\.fit \(layer 'B'\): .*first: row 4\)"):
        stack.fit({"A": X, "B": bad}, y)


def test_library_analyses_refuse_out_of_range_labels():
    P = np.random.default_rng(0).random((4, 3))
    with pytest.raises(ValueError, match=r"agreement \(y_pred\): .*\[0, 3\)"):
        agreement(P, [0, 1, 2, 3])
    with pytest.raises(TypeError, match=r"confusion_index \(labels\): " + NOT_INT):
        confusion_index(P, [0.0, 1.0, 2.0, 0.0])


def test_library_valid_input_still_works():
    X, y = codes(n=30), np.arange(30) % 3
    lib = LibraryNetwork(0.5, block_size=7).fit(X, y)
    assert lib.links_.shape == (3, lib.size_)
    assert lib.predict(X).shape == (30,)
    stack = LibraryStack({"A": 0.5, "B": 0.6}).fit({"A": X, "B": X}, torch.from_numpy(y))
    assert stack.n_classes_ == 3


# --------------------------------------------------------------------------- attacks


def test_pgd_refuses_nan_eps(data):
    # known answer: eps=nan gave all-NaN images and an attacked accuracy above clean
    model, x, y = data
    with pytest.raises(ValueError, match=r"pgd: eps " + BAD_EPS + r".*got nan"):
        pgd(model, x, y, eps=float("nan"), nb_iter=2)
    with pytest.raises(ValueError, match=r"pgd: eps " + BAD_EPS):
        pgd(model, x, y, eps=float("inf"), nb_iter=2)
    with pytest.raises(ValueError, match=r"pgd: eps " + BAD_EPS + r".*got -0\.1"):
        pgd(model, x, y, eps=-0.1, nb_iter=2)
    with pytest.raises(ValueError, match=r"pgd: eps_iter " + BAD_EPS):
        pgd(model, x, y, eps=0.1, nb_iter=2, eps_iter=float("nan"))
    with pytest.raises(TypeError, match=r"pgd: eps must be a number"):
        pgd(model, x, y, eps="0.1x", nb_iter=2)


def test_pgd_refuses_uint8_and_0_255_images(data):
    model, x, y = data
    as_uint8 = (x * 255).to(torch.uint8)
    with pytest.raises(TypeError, match=r"pgd: " + NOT_01 + r"; got Tensor of dtype torch\.uint8"):
        pgd(model, as_uint8, y, eps=0.1, nb_iter=2)
    with pytest.raises(ValueError, match=r"pgd: " + NOT_01 + r"; these range over"):
        pgd(model, x * 255, y, eps=0.1, nb_iter=2)
    nan_img = x.clone()
    nan_img[2, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"pgd: images hold NaN or inf values \(1 image"):
        pgd(model, nan_img, y, eps=0.1, nb_iter=2)


def test_pgd_refuses_float_and_negative_labels(data):
    model, x, y = data
    with pytest.raises(
        TypeError, match=r"pgd \(y\): " + NOT_INT + r" \(class numbers\); got dtype float32"
    ):
        pgd(model, x, y.float(), eps=0.1, nb_iter=2)
    with pytest.raises(ValueError, match=r"pgd \(y\): labels must be >= 0"):
        pgd(model, x, y - 1, eps=0.1, nb_iter=2)
    with pytest.raises(ValueError, match=r"pgd: y has 5 labels but x has 6 images"):
        pgd(model, x, y[:5], eps=0.1, nb_iter=2)


def test_pgd_valid_input_still_works(data):
    model, x, y = data
    eps = 0.05
    x_adv = pgd(model, x, y, eps=eps, nb_iter=5, eps_iter=0.02)
    assert x_adv.shape == x.shape and torch.isfinite(x_adv).all()
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.equal(pgd(model, x, y, eps=0), x)
    # numpy labels and numpy-scalar eps are fine
    again = pgd(model, x, y.numpy(), eps=np.float64(eps), nb_iter=5, eps_iter=0.02)
    assert torch.equal(again, x_adv)
    assert accuracy(model, x_adv, y) <= accuracy(model, x, y)


def test_iterative_fgsm_refuses_bad_images_targets_and_step(data):
    model, x, y = data
    with pytest.raises(TypeError, match=r"iterative_fgsm: " + NOT_01):
        iterative_fgsm(model, (x * 255).to(torch.uint8), 1, steps=1)
    with pytest.raises(TypeError, match=r"iterative_fgsm \(target\): " + NOT_INT):
        iterative_fgsm(model, x, 1.0, steps=1)
    with pytest.raises(TypeError, match=r"iterative_fgsm \(target\): " + NOT_INT):
        iterative_fgsm(model, x, y.double(), steps=1)
    with pytest.raises(ValueError, match=r"iterative_fgsm: step_size " + BAD_EPS):
        iterative_fgsm(model, x, 1, steps=1, step_size=float("nan"))
    with pytest.raises(ValueError, match=r"iterative_fgsm: step_size " + BAD_EPS):
        iterative_fgsm(model, x, 1, steps=1, step_size=-0.1)
    traj = iterative_fgsm(model, x, 1, steps=2, step_size=0.01, loss="ce")
    assert traj.shape == (6, 3, 1, 8, 8) and torch.equal(traj[:, 0], x)


def test_noise_controls_refuse_bad_images_and_sizes(data):
    _, x, _ = data
    with pytest.raises(ValueError, match=r"uniform_noise: high " + BAD_EPS):
        uniform_noise(x, float("nan"))
    with pytest.raises(ValueError, match=r"uniform_noise: high " + BAD_EPS):
        uniform_noise(x, -0.1)
    with pytest.raises(TypeError, match=r"uniform_noise: " + NOT_01):
        uniform_noise((x * 255).to(torch.uint8), 1 / 255)
    with pytest.raises(ValueError, match=r"awgn: sigma " + BAD_EPS):
        awgn(x[0], sigma=-0.1, n=2)
    with pytest.raises(ValueError, match=r"awgn: sigma " + BAD_EPS):
        awgn(x[0], sigma=float("nan"), n=2)
    with pytest.raises(ValueError, match=r"awgn: " + NOT_01):
        awgn(x[0] * 255, sigma=0.1, n=2)
    assert uniform_noise(x, 1 / 255).shape == x.shape
    assert awgn(x[0], sigma=0.1, n=3).shape == (3, 1, 8, 8)


def test_predict_and_accuracy_refuse_bad_input(data):
    model, x, y = data
    with pytest.raises(TypeError, match=r"predict: " + NOT_01):
        predict(model, (x * 255).to(torch.uint8))
    with pytest.raises(TypeError, match=r"accuracy \(y\): " + NOT_INT):
        accuracy(model, x, y.float())
    assert predict(model, x).shape == (6, 3)


# -------------------------------------------------------------------- self-introspection


def test_infovae_and_estimator_refuse_nan_rows():
    H = codes(n=10, d=4)
    H[6] = np.nan
    with pytest.raises(ValueError, match=r"InfoVAE\.fit: hidden states H hold NaN .*row 6\)"):
        InfoVAE(hidden=(4,), epochs=1).fit(H)
    Z = codes(n=10, d=2)
    Z[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"ErrorEstimator\.fit: codes Z hold NaN .*row 2\)"):
        ErrorEstimator(hidden=(4,), epochs=1).fit(Z, np.ones(10))
    with pytest.raises(ValueError, match=r"ErrorEstimator\.fit: e must be finite and >= 0"):
        ErrorEstimator(hidden=(4,), epochs=1).fit(codes(n=3, d=2), [0.1, np.nan, 0.2])


def _hidden_and_logits(n=12, K=3):
    y = np.arange(n) % K
    logits = np.where(np.eye(K)[y] > 0, 3.0, -3.0)
    return {"L1": codes(n=n, d=4), "L2": codes(n=n, d=3, seed=1)}, y, logits


def test_fit_hidden_refuses_nan_hidden_and_bad_labels():
    hidden, y, logits = _hidden_and_logits()
    si = SelfIntrospector(vae=InfoVAE(hidden=(4,), epochs=1), estimator=ErrorEstimator(epochs=1))
    nan_hidden = {"L1": hidden["L1"].copy(), "L2": hidden["L2"]}
    nan_hidden["L1"][5] = np.nan
    with pytest.raises(ValueError, match=r"fit_hidden: hidden states hold NaN .*row 5\)"):
        si.fit_hidden(nan_hidden, y, logits=logits)
    with pytest.raises(TypeError, match=r"SelfIntrospector\.fit_hidden: " + NOT_INT):
        si.fit_hidden(hidden, y.astype(float), logits=logits)
    with pytest.raises(ValueError, match=r"fit_hidden: labels .*\[0, 3\); found 3"):
        si.fit_hidden(hidden, y + 1, logits=logits)
    bad_logits = logits.copy()
    bad_logits[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"fit_hidden: logits hold NaN"):
        si.fit_hidden(hidden, y, logits=bad_logits)
    with pytest.raises(ValueError, match=r"classifier_error \(labels\): labels .*\[0, 3\)"):
        classifier_error(logits, y + 1)


@pytest.fixture()
def introspector(data):
    model, x, y = data
    si = SelfIntrospector(
        model,
        layers=["1"],
        vae=InfoVAE(hidden=(4,), epochs=1),
        estimator=ErrorEstimator(hidden=(4,), epochs=1),
    )
    return si, x, y


def test_selfintrospector_fit_refuses_uint8_images_and_float_labels(introspector):
    si, x, y = introspector
    with pytest.raises(TypeError, match=r"SelfIntrospector\.fit: " + NOT_01):
        si.fit((x * 255).to(torch.uint8), y)
    with pytest.raises(ValueError, match=r"SelfIntrospector\.fit: " + NOT_01 + ".*range over"):
        si.fit(x * 255, y)
    with pytest.raises(TypeError, match=r"SelfIntrospector\.fit: " + NOT_INT):
        si.fit(x, y.float())
    with pytest.raises(ValueError, match=r"SelfIntrospector\.fit: labels .*\[0, 3\)"):
        si.fit(x, y + 1)  # the model has 3 outputs


def test_selfintrospector_analyze_refuses_bad_images_and_valid_still_works(introspector):
    si, x, y = introspector
    si.fit(x, y)
    with pytest.raises(TypeError, match=r"SelfIntrospector\.analyze: " + NOT_01):
        si.analyze((x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"SelfIntrospector\.analyze: " + NOT_01):
        si.analyze(x * 255)
    with pytest.raises(ValueError, match=r"SelfIntrospector\.transform: " + NOT_01):
        si.transform(x - 0.5)
    out = si.analyze(x)
    assert out["z"].shape == (6, 2) and out["pred"].shape == (6,)


# ------------------------------------------------------------------------- manifolds


def test_class_manifold_dims_refuses_nan_rows_and_float_labels():
    X, y = codes(n=30), np.arange(30) % 3
    bad = X.copy()
    bad[11] = np.nan
    with pytest.raises(ValueError, match=r"class_manifold_dims: features hold NaN .*row 11\)"):
        class_manifold_dims(bad, y)
    with pytest.raises(TypeError, match=r"class_manifold_dims: " + NOT_INT):
        class_manifold_dims(X, y.astype(float))
    with pytest.raises(ValueError, match=r"class_manifold_dims: labels must be >= 0"):
        class_manifold_dims(X, y - 1)
    with pytest.raises(ValueError, match=r"pca_spectrum: points hold NaN"):
        pca_spectrum(bad)
    with pytest.raises(ValueError, match=r"pca_spectrum: points hold NaN"):
        participation_ratio(bad)
    with pytest.raises(TypeError, match=r"classwise_accuracy \(preds\): " + NOT_INT):
        classwise_accuracy(y, y.astype(float))
    m = class_manifold_dims(X, y, warn=False)
    assert m.n.tolist() == [10, 10, 10]


def test_classwise_robustness_refuses_bad_eps_images_and_labels(data):
    model, x, y = data
    with pytest.raises(ValueError, match=r"classwise_robustness: eps " + BAD_EPS + ".*nan"):
        classwise_robustness(model, (x, y), [0.0, float("nan")], nb_iter=1)
    with pytest.raises(ValueError, match=r"classwise_robustness: eps " + BAD_EPS + ".*-0.1"):
        classwise_robustness(model, (x, y), [-0.1], nb_iter=1)
    with pytest.raises(ValueError, match=r"classwise_robustness: eps_iter " + BAD_EPS):
        classwise_robustness(model, (x, y), [0.1], nb_iter=1, eps_iter=float("nan"))
    with pytest.raises(TypeError, match=r"classwise_robustness: " + NOT_01):
        classwise_robustness(model, ((x * 255).to(torch.uint8), y), [0.0])
    with pytest.raises(ValueError, match=r"classwise_robustness: " + NOT_01):
        classwise_robustness(model, (x * 255, y), [0.0])
    with pytest.raises(TypeError, match=r"classwise_robustness: " + NOT_INT):
        classwise_robustness(model, (x, y.float()), [0.0])
    rob = classwise_robustness(model, (x, y), [0.0])
    assert rob.n.tolist() == [2, 2, 2]


def test_penultimate_features_refuses_uint8_images(data):
    model, x, y = data
    model.classifier_path = "1"
    with pytest.raises(TypeError, match=r"penultimate_features: " + NOT_01):
        penultimate_features(model, (x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"penultimate_features: " + NOT_01):
        penultimate_features(model, (x * 255, y))
