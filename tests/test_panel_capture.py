"""CapturePanel driven headless: widget values in, button clicks, store and views out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from introspect.capture import activations, capture
from introspect.data import load_dataset
from introspect.models import create_model
from introspect_widgets.panels import CapturePanel

N_PER_CLASS = 4  # 40 digits: capture takes a fraction of a second


def _panel(**kw):
    kw.setdefault("model", "small_cnn")  # untrained architecture: no training in tests
    kw.setdefault("n_per_class", N_PER_CLASS)
    kw.setdefault("batch_size", 16)
    return CapturePanel(**kw)


@pytest.fixture(scope="module")
def ran():
    panel = _panel()
    received = []
    panel.on_store(received.append)
    calls = []
    bar_call = panel.progress.__call__

    def spy(done, total=None):
        calls.append((done, total))
        bar_call(done, total)

    panel.progress = _Spy(panel.progress, spy)
    panel.run_button.click()
    return panel, received, calls


class _Spy:
    """Wraps the ProgressBar so the test sees every callback(done, total)."""

    def __init__(self, bar, fn):
        self._bar, self._fn = bar, fn

    def __call__(self, *a):
        self._fn(*a)

    def __getattr__(self, k):
        return getattr(self._bar, k)


def test_layers_listed_from_the_model_aliases_first():
    panel = _panel()
    opts = list(panel.layer_select.options)
    assert opts[:5] == ["CL1", "CL2", "CL3", "CL4", "FC"]
    assert "penultimate" in opts and "block1.0" in opts and "fc" in opts
    # default selection: the paper's aliases
    assert panel.layer_select.value == ("CL1", "CL2", "CL3", "CL4", "FC")
    # switching the model refills the list from the new model
    panel.model_select.value = "arch:mnist_cnn"
    assert list(panel.layer_select.options)[:4] == ["CN1", "CN2", "FC1", "FC2"]
    assert panel.layer_select.value == ("CN1", "CN2", "FC1", "FC2")
    assert panel.error is None


def test_model_menu_offers_recipes_and_architectures():
    panel = _panel()
    values = [v for _, v in panel.model_select.options]
    assert values[0] == "arch:small_cnn"
    assert "recipe:small_cnn@digits" in values and "arch:cifar_resnet20" in values


def test_run_gives_store_with_expected_shapes(ran):
    panel, received, _ = ran
    assert panel.error is None, panel.errors.text
    st = panel.store
    n = 10 * N_PER_CLASS
    assert st.n == n and st.complete
    # small_cnn widths (8, 16, 32, 64): vector codes are 4 numbers per channel; FC = 10 logits
    assert {k: st.layer(k).shape for k in st.layers} == {
        "CL1": (n, 32),
        "CL2": (n, 64),
        "CL3": (n, 128),
        "CL4": (n, 256),
        "FC": (n, 10),
    }
    assert np.bincount(st.labels).tolist() == [N_PER_CLASS] * 10
    assert panel.status.value.startswith("done: 40 images")
    assert received == [st]  # on_store callback got the store


def test_store_matches_an_independent_forward_pass(ran):
    panel, _, _ = ran
    data = load_dataset("digits", "test", n_per_class=N_PER_CLASS, image_size=16, channels=1)
    x, y = data.tensors()
    ref = activations(panel.model, x, ["CL2", "FC"], reducer="codes")
    np.testing.assert_allclose(panel.store.layer("CL2"), ref["CL2"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(panel.store.layer("FC"), ref["FC"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(panel.store.labels, y.numpy())


def test_progress_reaches_100_percent_batch_by_batch(ran):
    panel, _, calls = ran
    # 40 images in batches of 16: 16, 32, 40 of 40
    assert calls == [(16, 40), (32, 40), (40, 40)]
    assert panel.progress.fraction == 1.0
    assert panel.progress.bar.value == 1.0 and panel.progress.bar.bar_style == "success"
    assert panel.progress.label.value.startswith("40/40")
    assert not panel.run_button.disabled


def test_views_show_the_store(ran):
    panel, _, _ = ran
    st = panel.store
    # histogram of the first layer, all values counted
    assert panel.hist_layer.value == "CL1"
    assert sum(panel.hist_source.data["top"]) == st.layer("CL1").size
    panel.hist_layer.value = "FC"
    assert sum(panel.hist_source.data["top"]) == st.layer("FC").size
    assert panel.hist_figure.title.text.startswith("FC: 40 x 10")
    # confusion matrix: counts as cell text, rates as values
    counts = np.array(panel.confusion.text, dtype=int)
    assert counts.sum() == st.n and counts.shape == (10, 10)
    np.testing.assert_array_equal(counts.sum(1), np.bincount(st.labels, minlength=10))
    assert np.allclose(np.nansum(np.array(panel.confusion.values, dtype=float), 1), 1.0)
    # clicking a cell (as the browser does) selects the images of that cell
    r, c = np.unravel_index(np.argmax(counts), counts.shape)
    panel.confusion.set_state({"selected": [[int(r), int(c)]]})
    idx = panel.selected_indices
    assert idx.size == counts[r, c]
    assert np.all(st.labels[idx] == r) and np.all(st.preds[idx] == c)
    panel.confusion.set_state({"selected": []})
    assert panel.selected_indices.size == 0


def test_on_store_registered_late_gets_the_store_at_once(ran):
    panel, _, _ = ran
    got = []
    panel.on_store(got.append)
    assert got == [panel.store]


def test_bad_layer_is_shown_in_the_panel():
    panel = _panel()
    panel.extra_layers.value = "CL1, no_such_layer"
    panel.run_button.click()
    assert panel.store is None
    assert isinstance(panel.error, ValueError)
    assert "unknown layer 'no_such_layer'" in panel.errors.text
    assert "Available layers: CL1" in panel.errors.text
    assert "no_such_layer" in panel.errors.value and panel.errors.layout.display is None
    assert panel.status.value == "capture failed"
    assert panel.progress.bar.bar_style == "danger"
    assert not panel.run_button.disabled
    # fixing the name and running again clears the error
    panel.extra_layers.value = "block1.0:input"
    panel.run_button.click()
    assert panel.error is None and panel.errors.value == ""
    assert "block1.0:input" in panel.store.layers
    assert panel.store.layer("block1.0:input").shape == (40, 4)  # codes of 1 input channel


def test_model_in_train_mode_is_refused_in_the_panel():
    torch.manual_seed(0)
    mine = create_model("small_cnn").train()
    panel = _panel(model="mine", models={"mine": mine})
    assert panel.model_select.value == "user:mine"
    panel.run_button.click()
    assert panel.store is None
    assert "train mode" in panel.errors.text and "model.eval()" in panel.errors.text
    mine.eval()
    panel.run_button.click()
    assert panel.error is None and panel.store.n == 40


def test_reducer_and_dataset_controls(tmp_path):
    panel = _panel(reducer="gap", layers=["CL4", "penultimate"])
    panel.split_select.value = "val"
    panel.store_text.value = str(tmp_path / "store")
    store = panel.run()
    assert panel.error is None, panel.errors.text
    assert store.layer("CL4").shape == (40, 64) and store.layer("penultimate").shape == (40, 64)
    assert store.meta["reducer"] == "gap"
    assert (tmp_path / "store" / "manifest.json").is_file()
    # a missing dataset root is reported with the path it looked in
    panel.dataset_select.value = "cifar10"
    panel.root_text.value = str(tmp_path / "nothing-here")
    panel.store_text.value = ""
    panel.run()
    assert isinstance(panel.error, FileNotFoundError)
    assert "nothing-here" in panel.errors.text


def test_capture_callback_reports_every_batch():
    torch.manual_seed(0)
    model = create_model("small_cnn")
    data = load_dataset("digits", "test", n_per_class=3, image_size=16, channels=1)
    seen = []
    st = capture(
        model,
        data,
        ["CL1"],
        batch_size=7,
        progress=False,
        callback=lambda d, t: seen.append((d, t)),
    )
    assert seen == [(7, 30), (14, 30), (21, 30), (28, 30), (30, 30)]
    assert st.complete
