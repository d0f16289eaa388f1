"""SOMPanel driven headless on a Study: settings in, Train clicks, map traits and selections out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from introspect import telescope
from introspect_widgets.panels import SOMPanel

SETTINGS = dict(size=6, epochs=2, sigma=3.0, alpha=0.3, top_k=3)


@pytest.fixture(scope="module")
def trained(digits_study):
    panel = SOMPanel(digits_study, layer="CL4", **SETTINGS)
    panel.train_button.click()
    return panel


def _reference(study):
    """What the panel's Train asks the study for (cached: the same map)."""
    return study.telescope("CL4", 6, epochs=2, batch_size=10, sigma=3.0, alpha=0.3, top_k=3, seed=0)


def test_train_goes_through_study_telescope(trained, digits_study):
    panel = trained
    assert panel.error is None, panel.errors.text
    ref = _reference(digits_study)
    som = panel.som
    assert som.shape == (6, 6) and som.n_steps_ == 2 * 20  # 200 training codes, batches of 10
    np.testing.assert_allclose(som.weights_, ref.som.weights_)
    for split in ("train", "test"):
        np.testing.assert_array_equal(panel.bmus[split], ref.bmus[split])
    assert panel.task.bar.value == 1.0 and panel.task.label.value.endswith("(SOM 40/40)")
    assert panel.loss_source.data["qe"] == pytest.approx(list(som.history_["qe"]))
    assert "CL4: 6x6 SOM, 40 steps, final QE" in panel.status.value
    # the map: density of the top-1 BMUs of SOM-tr (the training split)
    assert panel.grid.shape == (6, 6)
    assert np.nansum(np.array(panel.grid.values, dtype=float)) == 200
    assert panel.layer_select.options == ("CL1", "CL2", "CL3", "CL4", "FC")


def test_colour_modes(trained):
    panel = trained
    panel.color_by.value = "u-matrix"
    np.testing.assert_allclose(
        np.array(panel.grid.values, dtype=float),
        telescope.u_matrix(panel.som.weights_, (6, 6), metric="cosine"),
    )
    assert panel.grid.colormap == "greys"
    panel.color_by.value = "class"
    vals = np.array(panel.grid.values, dtype=float).ravel()
    top1, y = panel.bmus["train"][:, 0], panel.labels["train"]
    for u in np.unique(top1):
        assert vals[u] == np.bincount(y[top1 == u]).argmax()
    assert np.isnan(vals[np.setdiff1d(np.arange(36), top1)]).all()
    assert panel.grid.colormap == "tab10"
    panel.color_by.value = "density"


def test_clicking_a_unit_lists_its_inputs_and_class_mix(trained):
    panel = trained
    top1, y = panel.bmus["train"][:, 0], panel.labels["train"]
    u = int(np.bincount(top1).argmax())
    panel.grid.selected = [list(divmod(u, 6))]
    np.testing.assert_array_equal(panel.selected_indices, np.flatnonzero(top1 == u))
    info = panel.unit_info.value
    assert f"unit {u}" in info and f"{(top1 == u).sum()} SOM-tr inputs" in info
    assert f"<td>{panel.classes[np.bincount(y[top1 == u]).argmax()]}</td>" in info
    assert info.count("<img") == min((top1 == u).sum(), 16)  # thumbnails of the inputs
    panel.grid.selected = []
    assert panel.selected_indices.size == 0


def test_class_selector_marks_bmus_and_centre_train_and_test(trained):
    panel = trained
    panel.class_select.value = 2
    bm, y = panel.bmus["train"], panel.labels["train"]
    assert {tuple(rc) for rc in panel.grid.marks} == {
        tuple(divmod(int(u), 6)) for u in np.unique(bm[y == 2])
    }
    centre = telescope.class_centres(bm, y, (6, 6), classes=[2])
    np.testing.assert_allclose(panel.result.centres[[2]], centre)
    r, c = divmod(int(telescope.centre_units(centre, (6, 6))[0]), 6)
    assert panel.grid.text[r][c] == "C"
    assert sum(t == "C" for row in panel.grid.text for t in row) == 1
    # test inputs (SOM-val): marks from their BMUs, the centre stays the training one
    panel.split_select.value = "test"
    bv, yv = panel.bmus["test"], panel.labels["test"]
    assert {tuple(rc) for rc in panel.grid.marks} == {
        tuple(divmod(int(u), 6)) for u in np.unique(bv[yv == 2])
    }
    assert panel.grid.text[r][c] == "C"
    assert np.nansum(np.array(panel.grid.values, dtype=float)) == len(yv)
    panel.split_select.value = "train"
    panel.class_select.value = -1
    assert panel.grid.marks == []


def test_errors_are_shown_in_the_panel_not_raised(digits_study):
    panel = SOMPanel(digits_study, layer="CL1", size=2, epochs=1, top_k=10)
    panel.train_button.click()  # top-10 BMUs on a 2x2 map is impossible
    assert isinstance(panel.error, ValueError) and "top_k must be" in panel.errors.text
    assert "failed" in panel.status.value
    panel.top_k.value = 2
    panel.train_button.click()
    assert panel.error is None and panel.som is not None
    # a SOM belongs to one layer: another layer drops it
    panel.layer_select.value = "CL2"
    assert panel.som is None and panel.grid.shape == (0, 0)


def test_what_the_panel_takes(digits_study):
    with pytest.raises(TypeError, match=r"introspect\.Study or a recipe name.*Study\(model"):
        SOMPanel(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="got dict"):
        SOMPanel({"CL4": np.zeros((3, 2))})
    with pytest.raises(ValueError, match="not one of the study's layers"):
        SOMPanel(digits_study, layer="nope")
    # a recipe name goes through Study.from_recipe (the same workdir: the model is cached)
    panel = SOMPanel(
        "small_cnn@digits", workdir=digits_study.workdir, n_per_class=20, layer="CL3", size=4,
        epochs=1, top_k=2,
    )  # fmt: skip
    assert panel.study.recipe == "small_cnn@digits" and panel.layers == digits_study.layers
    panel.train_button.click()
    assert panel.error is None, panel.errors.text
    assert panel.bmus["train"].shape == (200, 2)
