"""One estimator contract for the learned objects of the four methods (scikit-learn's).

Parametrised over the six estimators: ``clone`` gives an unfitted copy with equal
parameters, ``set_params`` round-trips, an unfitted object refuses to predict with
``introspect.NotFittedError`` (a scikit-learn ``NotFittedError``), ``fit`` returns
``self`` and sets every learned (``_``-suffixed) attribute, and ``__init__`` stores the
hyperparameters only.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import sklearn.exceptions
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

import introspect
from introspect import (
    ErrorEstimator,
    InfoVAE,
    LibraryNetwork,
    LibraryStack,
    SelfIntrospector,
    ToroidalSOM,
)
from introspect.library import agreement

RNG = np.random.default_rng(0)
X = RNG.random((24, 6)).astype(np.float32)
Y = np.arange(24) % 3
LAYERS = {"A": X, "B": X[:, ::-1].copy()}
IMAGES = torch.rand(24, 1, 8, 8)


def _tiny_net():
    from introspect.models import create_model

    torch.manual_seed(0)
    return create_model("net1_mlp", depth=2, width=8, input_size=(1, 8, 8), num_classes=3).eval()


@dataclass
class Case:
    make: Callable[[], BaseEstimator]
    fit: Callable  # est -> return value of est.fit(...)
    use: dict  # method name -> call on an estimator (fitted or not)
    param: tuple  # (name, other value) for set_params


CASES = {
    "ToroidalSOM": Case(
        make=lambda: ToroidalSOM(m=2, n=3, epochs=1, batch_size=8, seed=1),
        fit=lambda e: e.fit(X),
        use={
            "transform": lambda e: e.transform(X),
            "bmus": lambda e: e.bmus(X, top_k=2),
            "quantization_error": lambda e: e.quantization_error(X),
        },
        param=("sigma", 2.5),
    ),
    "LibraryNetwork": Case(
        make=lambda: LibraryNetwork(0.9, top_k=2, block_size=8),
        fit=lambda e: e.fit(X, Y),
        use={
            "predict_scores": lambda e: e.predict_scores(X),
            "predict": lambda e: e.predict(X),
            "similarities": lambda e: e.similarities(X),
            "most_active": lambda e: e.most_active(X, top_k=1),
        },
        param=("theta", 0.7),
    ),
    "LibraryStack": Case(
        make=lambda: LibraryStack({"A": 0.9, "B": 0.8}, top_k=2),
        fit=lambda e: e.fit(LAYERS, Y),
        use={
            "predict_scores": lambda e: e.predict_scores(LAYERS),
            "cpl": lambda e: e.cpl(LAYERS),
            "agreement": lambda e: e.agreement(LAYERS, Y),
        },
        param=("thetas", {"A": 0.5, "B": 0.5}),
    ),
    "InfoVAE": Case(
        make=lambda: InfoVAE(hidden=(8,), epochs=1, batch_size=8),
        fit=lambda e: e.fit(X),
        use={
            "encode": lambda e: e.encode(X),
            "transform": lambda e: e.transform(X),
            "decode": lambda e: e.decode(np.zeros((3, 2))),
        },
        param=("mmd_weight", 1.0),
    ),
    "ErrorEstimator": Case(
        make=lambda: ErrorEstimator(hidden=(8,), epochs=1, batch_size=8),
        fit=lambda e: e.fit(X[:, :2], X[:, 2]),
        use={
            "predict": lambda e: e.predict(X[:, :2]),
            "predict_log10": lambda e: e.predict_log10(X[:, :2]),
            "confidence": lambda e: e.confidence(X[:, :2]),
        },
        param=("floor", 1e-4),
    ),
    "SelfIntrospector": Case(
        make=lambda: SelfIntrospector(
            _tiny_net(),
            ["H1", "H2"],
            vae=InfoVAE(hidden=(8,), epochs=1, batch_size=8),
            estimator=ErrorEstimator(hidden=(8,), epochs=1, batch_size=8),
            batch_size=8,
        ),
        fit=lambda e: e.fit(IMAGES, Y),
        use={
            "transform": lambda e: e.transform(IMAGES),
            "analyze": lambda e: e.analyze(IMAGES[:4]),
            "unit_order": lambda e: e.unit_order(),
            "brainbow": lambda e: e.brainbow(),
            "estimate_error": lambda e: e.estimate_error(np.zeros((2, 2))),
        },
        param=("batch_size", 4),
    ),
}
IDS = list(CASES)
torch.set_num_threads(1)


def _same(a, b) -> bool:
    """Parameter equality: estimators by type and parameters, arrays by value."""
    if isinstance(a, BaseEstimator) or isinstance(b, BaseEstimator):
        return type(a) is type(b) and _same_params(a.get_params(deep=False), b.get_params(False))
    if isinstance(a, torch.nn.Module) or isinstance(b, torch.nn.Module):
        return a is b
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return type(a) is type(b) and a == b


def _same_params(p, q) -> bool:
    return p.keys() == q.keys() and all(_same(p[k], q[k]) for k in p)


def _learned(est) -> set[str]:
    return {k for k in vars(est) if k.endswith("_") and not k.startswith("_")}


_FITTED: dict[str, BaseEstimator] = {}


def fitted(name: str) -> BaseEstimator:
    """One fitted estimator per case, shared by the tests that only read it."""
    if name not in _FITTED:
        _FITTED[name] = CASES[name].fit(CASES[name].make())
    return _FITTED[name]


@pytest.mark.parametrize("name", IDS)
def test_init_stores_the_hyperparameters_only(name):
    est = CASES[name].make()
    assert isinstance(est, BaseEstimator)
    params = est.get_params(deep=False)
    signature = set(inspect.signature(type(est).__init__).parameters) - {"self"}
    # every parameter is stored under its own name, and nothing else is stored
    assert set(vars(est)) == set(params) == signature
    assert "progress" not in params  # progress is a keyword of fit
    progress = inspect.signature(type(est).fit).parameters["progress"]
    assert progress.kind is inspect.Parameter.KEYWORD_ONLY and progress.default is False


@pytest.mark.parametrize("name", IDS)
def test_clone_gives_an_unfitted_estimator_with_equal_params(name):
    for est in (CASES[name].make(), fitted(name)):
        c = clone(est)
        assert type(c) is type(est) and c is not est
        assert _same_params(c.get_params(deep=False), est.get_params(deep=False))
        assert _learned(c) == set()
        with pytest.raises(sklearn.exceptions.NotFittedError):
            check_is_fitted(c)


@pytest.mark.parametrize("name", IDS)
def test_set_params_round_trips(name):
    est = CASES[name].make()
    before = est.get_params()
    assert est.set_params(**before) is est
    assert _same_params(est.get_params(), before)
    key, value = CASES[name].param
    est.set_params(**{key: value})
    assert _same(est.get_params()[key], value)
    assert _same(clone(est).get_params()[key], value)
    est.set_params(**{key: before[key]})
    assert _same_params(est.get_params(), before)


@pytest.mark.parametrize("name", IDS)
def test_using_an_unfitted_estimator_raises_not_fitted_error(name):
    est = CASES[name].make()
    for method, call in CASES[name].use.items():
        with pytest.raises(introspect.NotFittedError, match="not fitted") as info:
            call(est)
        assert isinstance(info.value, sklearn.exceptions.NotFittedError), method
    with pytest.raises(sklearn.exceptions.NotFittedError):
        check_is_fitted(est)
    # a fitted clone's learned state does not leak into the template
    with pytest.raises(introspect.NotFittedError):
        next(iter(CASES[name].use.values()))(clone(fitted(name)))


@pytest.mark.parametrize("name", IDS)
def test_fit_returns_self_and_sets_the_learned_state(name):
    est = CASES[name].make()
    params = est.get_params(deep=False)
    assert CASES[name].fit(est) is est
    assert _same_params(est.get_params(deep=False), params), "fit changed a hyperparameter"
    learned = _learned(est)
    assert learned, "fit set no attribute ending in '_'"
    check_is_fitted(est)
    fresh = clone(est)
    for attr in learned:
        assert not hasattr(fresh, attr), attr
    for call in CASES[name].use.values():
        call(est)


@pytest.mark.parametrize("name", IDS)
def test_repr_names_the_params(name):
    est = CASES[name].make()
    text = repr(est)
    assert text.startswith(type(est).__name__ + "(")
    key, value = CASES[name].param
    assert f"{key}={value!r}" in repr(est.set_params(**{key: value}))
    if name == "SelfIntrospector":
        # a torch module parameter shows by its class name, not its layer tree
        assert f"model=<{type(est.model).__name__}>" in text
        assert "in_features" not in text and "in_features" not in est._repr_html_()


def test_clone_of_a_self_introspector_shares_the_classifier():
    si = fitted("SelfIntrospector")
    c = clone(si)
    assert c.model is si.model
    assert c.vae is not si.vae and _same(c.vae, si.vae)


# ---------------------------------------------------------------- renamed keywords


def test_dnn_pred_is_a_deprecated_alias_of_y_pred():
    lib = LibraryNetwork(0.9, block_size=8).fit(X, Y)
    with pytest.warns(FutureWarning, match="'dnn_pred' is deprecated.*'y_pred'"):
        old = LibraryNetwork(0.9, block_size=8).fit(X, dnn_pred=Y)
    np.testing.assert_array_equal(old.links_, lib.links_)
    with pytest.warns(FutureWarning, match="dnn_pred"):
        LibraryNetwork(0.9).build(X).link(X, dnn_pred=Y, n_classes=3)
    with pytest.warns(FutureWarning, match="dnn_pred"):
        stack = LibraryStack({"A": 0.9, "B": 0.8}).fit(LAYERS, dnn_pred=Y)
    with pytest.warns(FutureWarning, match="dnn_pred"):
        stack.agreement(LAYERS, dnn_pred=Y)
    P = lib.predict_scores(X)
    with pytest.warns(FutureWarning, match="dnn_pred"):
        assert agreement(P, dnn_pred=Y) == agreement(P, y_pred=Y)
    with pytest.raises(TypeError, match="both 'y_pred' and its deprecated alias"):
        lib.fit(X, y_pred=Y, dnn_pred=Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name is silent
        LibraryNetwork(0.9).fit(X, y_pred=Y)


def test_k_is_a_deprecated_alias_of_top_k():
    som = fitted("ToroidalSOM")
    with pytest.warns(FutureWarning, match="'k' is deprecated.*'top_k'"):
        np.testing.assert_array_equal(som.bmus(X, k=2), som.bmus(X, top_k=2))
    lib = fitted("LibraryNetwork")
    with pytest.warns(FutureWarning, match="'k' is deprecated"):
        old = lib.most_active(X, k=1)
    new = lib.most_active(X, top_k=1)
    np.testing.assert_array_equal(old[1], new[1])
    for method in (ToroidalSOM.bmus, LibraryNetwork.most_active):
        assert "top_k" in inspect.signature(method).parameters
        assert "k" not in inspect.signature(method).parameters
