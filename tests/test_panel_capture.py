"""CapturePanel driven headless: widget values in, button clicks, study and store out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from introspect import Study
from introspect.capture import activations, capture
from introspect.data import load_dataset
from introspect.models import create_model
from introspect_widgets.panels import CapturePanel, SOMPanel

N_PER_CLASS = 4  # 40 digits: capture takes a fraction of a second


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("capture-work")


@pytest.fixture
def _panel(workdir):
    def make(**kw):
        kw.setdefault("model", "small_cnn")  # untrained architecture: no training in tests
        kw.setdefault("n_per_class", N_PER_CLASS)
        kw.setdefault("batch_size", 16)
        kw.setdefault("workdir", str(workdir))
        return CapturePanel(**kw)

    return make


@pytest.fixture(scope="module")
def ran(workdir):
    panel = CapturePanel(model="small_cnn", n_per_class=N_PER_CLASS, batch_size=16,
                         workdir=str(workdir))  # fmt: skip
    received = []
    panel.on_store(lambda study, store: received.append((study, store)))
    calls = []
    show = panel.task.show

    def spy(tracker):  # what the task line is told (throttled to 4 a second)
        calls.append((tracker.stage, tracker.done, tracker.total))
        show(tracker)

    panel.task.show = spy
    panel.run_button.click()
    return panel, received, calls


def test_layers_listed_from_the_model_aliases_first(_panel):
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


def test_model_menu_offers_recipes_and_architectures(_panel):
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
    # the hand-off: the study the store came from (both splits, the picked layers) and the store
    assert received == [(panel.study, st)]
    study = panel.study
    assert isinstance(study, Study) and study.layers == ["CL1", "CL2", "CL3", "CL4", "FC"]
    assert {k: len(study.labels(k)) for k in ("train", "test")} == {"train": n, "test": n}
    assert st.path.is_relative_to(study.workdir.root)  # captured into the study's cache
    again = study.capture("codes", "test", layers=study.layers)
    np.testing.assert_array_equal(again.layer("CL2"), st.layer("CL2"))


def test_store_matches_an_independent_forward_pass(ran):
    panel, _, _ = ran
    data = load_dataset("digits", "test", n_per_class=N_PER_CLASS, image_size=16, channels=1)
    x, y = data.tensors()
    ref = activations(panel.model, x, ["CL2", "FC"], reducer="codes")
    np.testing.assert_allclose(panel.store.layer("CL2"), ref["CL2"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(panel.store.layer("FC"), ref["FC"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(panel.store.labels, y.numpy())


def test_progress_reaches_100_percent(ran):
    panel, _, calls = ran
    # 40 images: the stage's start and its end always reach the line (between them at
    # most 4 a second)
    cap = [c for c in calls if c[0] == "capture"]  # (a model that trains reports first)
    assert cap[0] == ("capture", 0, 40) and calls[-1] == ("capture", 40, 40), calls
    assert panel.task.bar.value == 1.0 and panel.task.bar.bar_style == "success"
    assert "capture: done after" in panel.task.label.value
    assert panel.task.label.value.endswith("(capture 40/40)")
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
    panel.on_store(lambda study, store: got.append((study, store)))
    assert got == [(panel.study, panel.store)]


def test_bad_layer_is_shown_in_the_panel(_panel):
    panel = _panel()
    panel.extra_layers.value = "CL1, no_such_layer"
    panel.run_button.click()
    assert panel.store is None
    assert isinstance(panel.error, ValueError)
    assert "unknown layer 'no_such_layer'" in panel.errors.text
    assert "Available layers: CL1" in panel.errors.text
    assert "no_such_layer" in panel.errors.value and panel.errors.layout.display is None
    assert panel.status.value == "capture failed"
    assert panel.task.bar.bar_style == "danger"
    assert not panel.run_button.disabled
    # fixing the name and running again clears the error
    panel.extra_layers.value = "block1.0:input"
    panel.run_button.click()
    assert panel.error is None and panel.errors.value == ""
    assert "block1.0:input" in panel.store.layers
    assert panel.store.layer("block1.0:input").shape == (40, 4)  # codes of 1 input channel


def test_your_own_model_becomes_a_study(_panel):
    torch.manual_seed(0)
    mine = create_model("small_cnn").train()
    panel = _panel(model="mine", models={"mine": mine})
    assert panel.model_select.value == "user:mine"
    panel.run_button.click()
    assert panel.error is None and panel.store.n == 40
    assert panel.study.model is mine and not mine.training  # a Study puts it in eval mode


def test_reducer_and_dataset_controls(_panel, tmp_path):
    panel = _panel(reducer="gap", layers=["CL4", "penultimate"], workdir=str(tmp_path))
    assert panel.split_select.options == ("test", "train")
    panel.split_select.value = "train"
    store = panel.run()
    assert panel.error is None, panel.errors.text
    assert store.layer("CL4").shape == (40, 64) and store.layer("penultimate").shape == (40, 64)
    assert store.meta["reducer"] == "gap"
    assert (store.path / "manifest.json").is_file() and store.path.is_relative_to(tmp_path)
    assert panel.study.layers == ["CL4", "penultimate"]
    # a missing dataset root is reported with the path it looked in
    panel.dataset_select.value = "cifar10"
    panel.root_text.value = str(tmp_path / "nothing-here")
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


# ------------------------------------------------------------------ with a Study


def test_a_study_gives_model_data_and_layers(digits_study):
    panel = CapturePanel(digits_study, reducer="flatten")
    assert panel.model_select.disabled and panel.pickers.layout.display == "none"
    assert panel.split_select.options == ("train", "test") and panel.split_select.value == "test"
    assert panel.layer_select.value == tuple(digits_study.layers)
    assert "Study(SmallCNN" in panel.study_label.value
    got = []
    panel.on_store(lambda study, store: got.append(SOMPanel(study, layer="CL2")))
    panel.layer_select.value = ("CL2", "FC")
    store = panel.run()
    assert panel.error is None, panel.errors.text
    assert panel.study is digits_study and store.n == 200
    # the same store as the study's own call: one cache for panels, figures and users
    ref = digits_study.capture("flatten", "test", layers=["CL2", "FC"])
    assert store.path == ref.path
    np.testing.assert_array_equal(store.layer("FC"), ref.layer("FC"))
    assert np.array(panel.confusion.text, dtype=int).sum() == 200
    # the hand-off built a SOM panel on the same study
    assert len(got) == 1 and got[0].study is digits_study


def test_what_the_panel_takes(workdir):
    with pytest.raises(TypeError, match="takes an introspect.Study or a recipe name"):
        CapturePanel(torch.nn.Linear(2, 2))
    # a recipe name is preselected in the pickers (a Study.from_recipe at Run)
    panel = CapturePanel("small_cnn@digits", workdir=str(workdir))
    assert panel.model_select.value == "recipe:small_cnn@digits"
    assert panel.study is None and not panel.model_select.disabled
