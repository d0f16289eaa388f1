"""SOMPanel driven headless: settings in, Train clicks, map traits and selections out."""

from __future__ import annotations

import numpy as np
import pytest

from introspect import telescope
from introspect.som import ToroidalSOM
from introspect_widgets.panels import SOMPanel


def _codes(n_per=30, k=4, dim=12, seed=0):
    rng = np.random.default_rng(seed)
    protos = np.abs(rng.standard_normal((k, dim))) + 4 * np.eye(k, dim)
    X = np.concatenate([p + 0.05 * rng.standard_normal((n_per, dim)) for p in protos])
    y = np.repeat(np.arange(k), n_per)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def trained():
    X, y = _codes()
    Xv, yv = _codes(n_per=10, seed=1)
    deep = {"CL1": X[:, :6], "CL4": X}
    panel = SOMPanel(
        deep,
        {"CL1": Xv[:, :6], "CL4": Xv},
        labels=y,
        val_labels=yv,
        classes=["a", "b", "c", "d"],
        images=np.random.default_rng(0).random((len(y), 1, 8, 8)),
        layer="CL4",
        size=6,
        epochs=3,
        sigma=3.0,
        alpha=0.3,
        top_k=3,
    )
    panel.train_button.click()
    return panel, X, y, Xv, yv


def test_train_fits_the_som_and_streams_the_loss(trained):
    panel, X, y, *_ = trained
    assert panel.error is None, panel.errors.text
    som = panel.som
    assert som.shape == (6, 6) and som.n_steps_ == 3 * 12
    assert panel.progress.fraction == 1.0
    assert panel.loss_source.data["qe"] == pytest.approx(list(som.history_["qe"]))
    assert "final QE" in panel.status.value
    # the map: density of the top-1 BMUs of SOM-tr
    assert panel.grid.shape == (6, 6)
    assert np.nansum(np.array(panel.grid.values, dtype=float)) == len(y)
    np.testing.assert_array_equal(panel.bmus["SOM-tr"], som.bmus(X, top_k=3))


def test_colour_modes(trained):
    panel, X, y, *_ = trained
    panel.color_by.value = "u-matrix"
    np.testing.assert_allclose(
        np.array(panel.grid.values, dtype=float),
        telescope.u_matrix(panel.som.weights_, (6, 6), metric="cosine"),
    )
    assert panel.grid.colormap == "greys"
    panel.color_by.value = "class"
    vals = np.array(panel.grid.values, dtype=float).ravel()
    top1 = panel.bmus["SOM-tr"][:, 0]
    for u in np.unique(top1):
        assert vals[u] == np.bincount(y[top1 == u]).argmax()
    assert np.isnan(vals[np.setdiff1d(np.arange(36), top1)]).all()
    assert panel.grid.colormap == "tab10"
    panel.color_by.value = "density"


def test_clicking_a_unit_lists_its_inputs_and_class_mix(trained):
    panel, X, y, *_ = trained
    top1 = panel.bmus["SOM-tr"][:, 0]
    u = int(np.bincount(top1).argmax())
    panel.grid.selected = [list(divmod(u, 6))]
    np.testing.assert_array_equal(panel.selected_indices, np.flatnonzero(top1 == u))
    info = panel.unit_info.value
    assert f"unit {u}" in info and f"{(top1 == u).sum()} SOM-tr inputs" in info
    assert panel.classes[np.bincount(y[top1 == u]).argmax()] in info
    assert "<img" in info  # thumbnails of the inputs
    panel.grid.selected = []
    assert panel.selected_indices.size == 0


def test_class_selector_marks_bmus_and_centre_train_and_val(trained):
    panel, X, y, Xv, yv = trained
    panel.class_select.value = 2
    bm = panel.bmus["SOM-tr"]
    expected = {tuple(divmod(int(u), 6)) for u in np.unique(bm[y == 2])}
    assert {tuple(rc) for rc in panel.grid.marks} == expected
    centre = telescope.class_centres(bm, y, (6, 6), classes=[2])
    cu = int(telescope.centre_units(centre, (6, 6))[0])
    r, c = divmod(cu, 6)
    assert panel.grid.text[r][c] == "C"
    assert sum(t == "C" for row in panel.grid.text for t in row) == 1
    # validation inputs: marks from SOM-val BMUs, the centre stays the SOM-tr one
    panel.split_select.value = "SOM-val"
    bv = panel.bmus["SOM-val"]
    assert {tuple(rc) for rc in panel.grid.marks} == {
        tuple(divmod(int(u), 6)) for u in np.unique(bv[yv == 2])
    }
    assert panel.grid.text[r][c] == "C"
    assert np.nansum(np.array(panel.grid.values, dtype=float)) == len(yv)
    panel.split_select.value = "SOM-tr"
    panel.class_select.value = -1
    assert panel.grid.marks == []


def test_errors_are_shown_in_the_panel_not_raised():
    X, y = _codes(n_per=5)
    panel = SOMPanel({"L": X}, labels=y, size=2, epochs=1, top_k=10)
    panel.train_button.click()  # top-10 BMUs on a 2x2 map is impossible
    assert isinstance(panel.error, ValueError) and "k must be" in panel.errors.text
    assert "failed" in panel.status.value
    panel.top_k.value = 2
    panel.train_button.click()
    assert panel.error is None and panel.som is not None


def test_changing_layer_drops_the_som_and_a_fitted_som_can_be_passed_in():
    X, y = _codes(n_per=5)
    som = ToroidalSOM(4, 4, epochs=1, seed=0).fit(X)
    panel = SOMPanel({"A": X, "B": X[:, :5]}, labels=y, som=som, layer="A", top_k=2)
    assert panel.som is som and panel.grid.shape == (4, 4)
    assert len(panel.loss_source.data["qe"]) == som.n_steps_
    panel.layer_select.value = "B"
    assert panel.som is None and panel.grid.shape == (0, 0)
    with pytest.raises(ValueError, match="labels"):
        SOMPanel({"A": X})


def test_panel_on_a_captured_store():
    from introspect.capture import capture
    from introspect.data import load_dataset
    from introspect.models import create_model

    model = create_model("small_cnn", image_size=16).eval()
    data = load_dataset("digits", "train", image_size=16, channels=1, n_per_class=4)
    store = capture(model, data, ["CL1", "CL4"], reducer="codes", batch_size=64, progress=False)
    panel = SOMPanel(store, classes=data.classes, size=4, epochs=1, top_k=2)
    assert panel.layer_select.options == ("CL1", "CL4")
    panel.layer_select.value = "CL4"
    panel.train_button.click()
    assert panel.error is None, panel.errors.text
    assert panel.bmus["SOM-tr"].shape == (40, 2)
