"""ActivationMapPanel driven headless: controls -> core calls -> bokeh sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from introspect import Study
from introspect.attacks import noise_path
from introspect.selfintro import ErrorEstimator, InfoVAE

SMALL = dict(
    vae=InfoVAE(hidden=(32, 32), epochs=20), estimator=ErrorEstimator(hidden=(32, 32), epochs=10)
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from introspect import pipeline

    work = tmp_path_factory.mktemp("panel-work")
    model = pipeline.trained_model(
        "net1_mlp",
        dataset="digits",
        image_size=8,
        channels=1,
        model_kwargs={"depth": 2, "width": 32, "input_size": (1, 8, 8)},
        train=dict(epochs=15, batch_size=64, lr=3e-3, loss="mse"),
        workdir=work,
        progress=False,
    )
    train = pipeline.dataset("digits", "train", image_size=8, channels=1)
    test = pipeline.dataset("digits", "test", image_size=8, channels=1)
    return Study(model, train=train, test=test, workdir=work, device="cpu", progress=False)


@pytest.fixture(scope="module")
def fitted(study):
    """The study's introspector (Study.selfintro, cached) and its test split."""
    return study.selfintro(**SMALL), study.data("test")


@pytest.fixture
def panel(study, fitted):
    from introspect_widgets.panels import ActivationMapPanel

    return ActivationMapPanel(study, **SMALL, max_thumbnails=50, fit=True)


def test_map_shows_every_input_coloured_by_class_with_hover_images(panel, fitted):
    si, test = fitted
    d = panel.points.data
    n = len(test)
    assert panel.error is None, panel.errors.text
    assert len(d["z1"]) == n and len(d["color"]) == n
    np.testing.assert_allclose(np.c_[d["z1"], d["z2"]], si.transform(test.tensors()[0]), atol=1e-5)
    assert d["thumb"][0].startswith("data:image/png;base64,") and d["thumb"][-1] == ""
    assert d["label"][:5] == [str(int(t)) for t in test.targets[:5]]
    assert panel.map_figure.output_backend == "webgl"
    assert panel.index.max == n - 1
    # the FGSM target: the runner-up class of the selected input, never its own label
    assert panel.selected == 0 and panel.target.value == panel.runner_up(0) != panel.labels[0]
    assert "accuracy" in panel.status.value
    # the map is the study's own (one cache for the panel and the user)
    np.testing.assert_allclose(panel.si.vae_.encode(np.zeros((1, 64), np.float32)),
                               si.vae_.encode(np.zeros((1, 64), np.float32)))  # fmt: skip


def test_colour_modes(panel):
    by_class = list(panel.points.data["color"])
    panel.color_by.value = "correctness"
    ok = panel.result["pred"] == panel.labels
    col = np.array(panel.points.data["color"])
    assert set(col[ok]) == {"#2ca02c"} and set(col[~ok]) <= {"#d62728"}
    panel.color_by.value = "estimated error"
    e = panel.result["log10_error_hat"]
    col = np.array(panel.points.data["color"])
    assert col[np.argmax(e)] != col[np.argmin(e)]
    panel.color_by.value = "class"
    assert list(panel.points.data["color"]) == by_class


def test_the_map_has_a_key_for_each_colour_mode_and_the_activations_a_colour_bar(panel):
    from bokeh.models import ColorBar

    def key(panel):  # (label, colour of the point its glyph is drawn from) per entry
        color = panel.points.data["color"]
        for item in panel.key.items:
            assert item.renderers == [panel.point_renderer]
        return [(item.label.value, color[item.index]) for item in panel.key.items]

    assert panel.key in panel.map_figure.below and panel.key.visible
    labels = np.asarray(panel.labels)
    pal = {
        c: panel.points.data["color"][int(np.argmax(labels == k))]
        for k, c in enumerate(panel.classes)
    }
    assert key(panel) == [(str(c), pal[c]) for c in panel.classes]  # class order, own colour
    assert panel.key.nrows == 2 and not panel.error_bar.visible  # 10 digits, 5 a row
    panel.color_by.value = "correctness"
    ok = panel.result["pred"] == labels
    assert key(panel) == [("correct", "#2ca02c"), ("misclassified", "#d62728")][: 1 + (~ok).any()]
    assert panel.key.nrows == 1
    panel.color_by.value = "estimated error"
    e = panel.result["log10_error_hat"]
    assert panel.error_bar.visible and not panel.key.visible
    m = panel.error_mapper  # the bar's scale is the one the points were coloured with
    assert (m.low, m.high) == pytest.approx((np.percentile(e, 1), np.percentile(e, 99)))
    assert "log10 ê" in panel.error_bar.title
    panel.color_by.value = "class"
    assert panel.key.visible and not panel.error_bar.visible and len(panel.key.items) == 10
    bars = [r for r in panel.heat_figure.right if isinstance(r, ColorBar)]
    assert [b.color_mapper for b in bars] == [panel.heat_mapper] and bars[0].title == "activation"


def test_clicking_a_point_shows_its_reordered_activations(panel, fitted):
    si, _ = fitted
    panel.points.selected.indices = [7]  # what a tap in the browser does
    assert panel.selected == 7 and panel.index.value == 7
    heat = panel.heat.data["image"][0]
    assert heat.shape == (2, 32)
    h = si.concat(si.hidden(panel.x[7:8]))[0][si.global_order()]
    np.testing.assert_allclose(heat.ravel(), h, atol=1e-6)
    assert panel.rainbow.data["image"][0].shape == (2, 32)
    np.testing.assert_allclose(
        [panel.cross.data["z1"][0], panel.cross.data["z2"][0]], panel.result["z"][7]
    )
    panel.index.value = 3
    panel.show_button.click()
    assert panel.selected == 3


def test_fgsm_trajectory_grows_step_by_step(panel):
    panel.select(2)
    panel.attack.value = "targeted FGSM"
    target = (int(panel.labels[2]) + 1) % 10
    panel.target.value = target
    panel.n_steps.value = 12
    panel.step_size.value = 0.05
    panel.run_button.click()
    assert panel.error is None, panel.errors.text
    t = panel.trajectory
    assert t["z"].shape == (13, 2) and panel.step.max == 12
    np.testing.assert_allclose(t["z"][0], panel.result["z"][2], atol=1e-5)
    assert len(panel.traj.data["z1"]) == 1
    panel.step.value = 5
    assert len(panel.traj.data["z1"]) == 6
    np.testing.assert_allclose(panel.traj.data["z1"], t["z"][:6, 0])
    panel.step.value = 12
    assert len(panel.traj.data["z1"]) == 13
    assert t["pred"][-1] == target  # 12 steps of 0.05 fool this small MLP
    assert "step 12" in panel.image_figure.title.text


def test_one_toolbar_for_the_map_and_the_activations(panel):
    from bokeh.models import GridPlot, Plot, TapTool

    own = [p for p in panel.layout.select({"type": Plot}) if p.toolbar_location is not None]
    grids = [g for g in panel.layout.select({"type": GridPlot}) if g.toolbar_location]
    assert len(own) + len(grids) == 1
    assert panel.map_figure.select_one(TapTool) is not None  # still taps


def test_noise_sweep_starts_at_the_clean_input(panel):
    x = torch.rand(1, 8, 8)
    p = noise_path(x, 0.3, 6)
    assert p.shape == (7, 1, 8, 8) and torch.equal(p[0], x)
    panel.select(4)
    panel.attack.value = "noise sweep"
    assert panel.target.disabled and panel.step_size.value == 0.3
    panel.n_steps.value = 6
    panel.run_button.click()
    assert panel.error is None, panel.errors.text
    np.testing.assert_allclose(panel.trajectory["z"][0], panel.result["z"][4], atol=1e-5)


def test_errors_are_shown_in_the_panel(panel):
    panel.index.value = 0
    panel.selected = None
    panel.run_button.click()
    assert panel.error is not None and "select an input" in panel.errors.text
    assert "select an input" in panel.errors.value


def test_fit_errors_are_shown_in_the_panel(study):
    from introspect_widgets.panels import ActivationMapPanel

    p = ActivationMapPanel(study, split="val", **SMALL)
    assert p.si is None  # nothing is fitted before Fit / load
    p.fit_button.click()
    assert p.error is not None and "no 'val' split" in p.errors.text


def test_what_the_panel_takes(study):
    from introspect_widgets.panels import ActivationMapPanel

    with pytest.raises(TypeError, match=r"introspect\.Study or a recipe name.*got Net1MLP"):
        ActivationMapPanel(study.model)
    with pytest.raises(ValueError, match="unknown model recipe"):
        ActivationMapPanel("no_such_recipe@x", workdir="/nonexistent")


# ------------------------------------------------------------------ real browser

from browser_harness import REPO, browser, jupyter_lab, lab_page  # noqa: E402, F401 (fixtures)

NOTEBOOK = REPO / "notebooks" / "explore" / "selfintro.ipynb"


@pytest.mark.browser
@pytest.mark.timeout(600)
@pytest.mark.parametrize("jupyter_lab", [[NOTEBOOK]], indirect=True)
def test_explore_notebook_runs_in_chromium(jupyter_lab, lab_page):  # noqa: F811
    import re

    lab_page.open(NOTEBOOK.name)
    lab_page.run_all(timeout=400)  # trains the small Net1 and fits the map on first use
    assert lab_page.cell_errors() == []
    page = lab_page.page
    panel = page.locator(".introspect-panel").first
    panel.wait_for(state="visible")
    panel.get_by_text(re.compile(r"360 inputs mapped; accuracy 0\.\d+")).wait_for()
    panel.locator(".bk-Canvas, .bk-Figure").first.wait_for(state="attached")

    def mapped(content):  # the map the browser draws holds every input (it was empty)
        return any(v["sources"].get("points") == 360 for v in content)

    lab_page.wait_bokeh(panel, mapped)
    panel.get_by_role("button", name="Run").click()
    panel.get_by_text(re.compile(r"targeted FGSM: answer \d -> \d after 100 steps")).wait_for(
        timeout=120_000
    )
    assert lab_page.js_errors() == []

    # a page reload redraws the map from the kernel's widget state, not the bundle of the
    # (empty) document the view was made from
    lab_page.reload(NOTEBOOK.name)
    panel = page.locator(".introspect-panel").first
    panel.locator(".bk-Canvas, .bk-Figure").first.wait_for(state="attached")
    content = lab_page.wait_bokeh(panel, mapped)
    assert any(t.startswith("step 0: answer") for v in content for t in v["titles"])
    assert lab_page.js_errors() == []
