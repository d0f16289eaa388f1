"""``Dashboard(study)``: four lenses around one shared selection and one input inspector.

Headless tests drive the dashboard the way the browser does: a tap on a bokeh glyph ends
in a change of ``source.selected.indices`` and a click on the confusion matrix in a change
of ``GridView.selected``; the test asserts on what every lens then highlights. The study
(digits, small CNN) is trained and every lens fitted once per module. The last test runs
``notebooks/explore/00_start_here.ipynb`` in JupyterLab in Debian's chromium.
"""

from __future__ import annotations

import importlib.util
import re
import time
import warnings

import numpy as np
import pytest
import torch
from bokeh.models import LinearColorMapper
from browser_harness import CHROMIUM, REPO, browser, jupyter_lab, lab_page  # noqa: F401

from introspect import ArrayDataset, Study
from introspect.manifolds import class_manifold_dims, class_subspaces, subspace_residual

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def dash(session_workdir):
    from introspect_widgets import Dashboard

    study = Study.from_recipe(
        "small_cnn@digits", workdir=session_workdir, device="cpu", n_per_class=30, progress=False
    )
    d = Dashboard(study, autostart=False)
    t0 = time.perf_counter()
    d.compute()
    print(f"\ndashboard computed in {time.perf_counter() - t0:.1f}s: {d.timings}")
    assert d.error is None, d.errors.text
    return d


def _expected_cells(d, sel):
    return sorted({(int(d.labels[i]), int(d.preds[i])) for i in sel})


def _assert_everywhere(d, sel):
    """Every lens highlights exactly ``sel`` (input lenses) or its cells / classes / units."""
    sel = sorted(int(i) for i in sel)
    h = d.highlighted()
    for lens in ("telescope", "library", "selfintro", "manifolds"):
        assert h[lens] == sel, lens
    assert [tuple(c) for c in h["confusion"]] == _expected_cells(d, sel)
    assert h["classes"] == sorted({int(d.labels[i]) for i in sel})
    tel = d.results["telescope"][d.som_layer.value]
    assert h["units"] == sorted({int(tel.bmus[d.split][i, 0]) for i in sel})
    rival = d.per_input["rival"][d.lib_layer.value]
    assert [tuple(c) for c in h["ci"]] == sorted({(int(d.labels[i]), int(rival[i])) for i in sel})
    for lens in ("telescope", "library", "selfintro", "manifolds", "confusion"):
        assert f'data-count="{len(sel)}"' in d.readouts[lens].value, lens
    if sel:
        assert f'data-index="{d.selection[0]}"' in d.inspector_html.value


def test_every_tab_builds_with_data(dash):
    d = dash
    n, C = d.n_inputs, d.n_classes
    assert n == 300 and C == 10 and all(d.ready.values())
    assert d.tabs.titles == (
        "Telescope (SOM)",
        "Library networks",
        "Self-introspection",
        "Manifolds",
        "Confusion matrix",
        "Detect",
    )
    # telescope: 10x10 units, every test input at its BMU, one SOM per representation layer
    assert set(d.results["telescope"]) == {"CL1", "CL2", "CL3", "CL4"}
    assert d.som_layer.value == "CL4" and len(d.som_units.data["unit"]) == 100
    assert len(d.som_points.data["x"]) == n
    assert all(c.startswith("#") for c in d.som_units.data["color"])
    d.som_color.value = "class"
    assert len(d.som_units.data["color"]) == 100
    # library: CI of CL3/CL4 on a fixed [0, 1] scale, CPL histogram of all inputs
    assert list(d.lib_layer.options) == ["CL3", "CL4"]
    assert len(d.ci_source.data["ci"]) == C * C
    mapper = d.ci_figure.select_one(LinearColorMapper)
    assert (mapper.low, mapper.high) == (0.0, 1.0)
    assert sum(d.cpl_hist.data["clean"]) == n and sum(d.cpl_hist.data["adversarial"]) > 0
    # self-introspection: z of every input, an error surface behind
    assert len(d.map_points.data["z1"]) == n
    assert np.asarray(d.map_surface.data["image"][0]).shape == (81, 81)
    # manifolds: one point per class with its n, one distance per input
    assert len(d.class_points.data["dim"]) == C
    # every class named in a label with its n (classes at one place share one label)
    texts = [t for t in d.class_points.data["text"] if t]
    assert texts and all(re.search(r"\(n \d+\)$", t) for t in texts)
    assert all(any(name in t for t in texts) for name in d.class_points.data["name"])
    assert len(d.strip_points.data["residual"]) == n
    # confusion matrix: counts of the test split
    assert d.cm_grid.shape == (C, C)
    assert sum(map(sum, d.cm_grid.values)) == n
    assert np.trace(np.asarray(d.cm_grid.values)) == int((d.labels == d.preds).sum())
    assert all("failed" not in w.value for w in d.tab_status.values())


def test_detect_tab_draws_roc_curves_and_its_histogram_selects_in_every_lens(dash):
    """The Detect tab reuses the dashboard's fitted lenses; tapping a point under the
    score histogram selects that input in every lens, and a selection made elsewhere
    highlights that input's points there."""
    d = dash
    d.params["detect"].update(attacks=["pgd", "uniform"], eps=[0.2], n=120)
    d.compute_detect()
    table = d.results["detect"]
    assert list(d.det_attack.options) == ["pgd", "uniform"] and d.det_eps.value == 0.2
    assert set(d.det_roc) == set(table.detectors) and "library.cpl" in d.det_roc
    roc = d.det_roc["library.cpl"].data
    assert roc["fpr"][0] == 0 and roc["tpr"][-1] == 1 and len(roc["fpr"]) == len(roc["tpr"])
    f, t = table.roc("library.cpl", "pgd", 0.2)
    assert roc["fpr"] == f.tolist() and roc["tpr"] == t.tolist()
    pairs = table.scores[("pgd", 0.2)]
    n = len(pairs["index"])
    assert n > 10 and len(d.det_points.data["x"]) == 2 * n
    d.det_detector.value = "msp"
    np.testing.assert_allclose(d.det_points.data["x"][:n], pairs["clean"]["msp"])
    assert sum(d.det_hist.data["clean"]) == n == sum(d.det_hist.data["perturbed"])
    # a perturbed point (second half) tapped in the browser selects its input everywhere
    k = n + 3
    i = int(pairs["index"][3])
    d.det_points.selected.indices = [k]
    assert d.selection == [i] and d.state.origin.startswith("detect")
    _assert_everywhere(d, [i])
    assert d.highlighted()["detect"] == [i]
    # both of its points (clean and perturbed) are marked, and another lens's selection
    # reaches the tab
    assert sorted(d.det_points.selected.indices) == [3, k]
    other = int(pairs["index"][5])
    d.selection = [other]
    assert d.highlighted()["detect"] == [other]
    assert 'data-count="1"' in d.readouts["detect"].value
    d.det_attack.value = "uniform"
    assert d.det_eps.value == 0.2 and len(d.det_points.data["x"]) > 2 * n - 1
    assert "failed" not in d.tab_status["detect"].value


def test_selection_from_each_lens_reaches_every_other_lens(dash):
    d = dash
    tel = d.results["telescope"][d.som_layer.value]
    top1 = tel.bmus[d.split][:, 0]

    # a SOM unit tapped in the browser
    u = int(np.bincount(top1).argmax())
    d.som_units.selected.indices = [u]
    assert d.selection == np.flatnonzero(top1 == u).tolist() and d.selection
    assert d.state.origin.startswith("telescope")
    _assert_everywhere(d, d.selection)

    # a confusion-index cell: true class d1, strongest rival d2
    layer = d.lib_layer.value
    rival = d.per_input["rival"][layer]
    i0 = int(np.flatnonzero(rival != d.labels)[0])
    d1, d2 = int(d.labels[i0]), int(rival[i0])
    d.ci_source.selected.indices = [d1 * d.n_classes + d2]
    expect = np.flatnonzero((d.labels == d1) & (rival == d2)).tolist()
    assert d.selection == expect and i0 in expect
    assert d.som_units.selected.indices == []  # the tapped unit is no longer the origin
    _assert_everywhere(d, expect)

    # a lasso on the activation map
    d.map_points.selected.indices = [5, 9, 11]
    assert d.selection == [5, 9, 11]
    _assert_everywhere(d, [5, 9, 11])

    # a class tapped in the manifold scatter
    k = int(d.class_points.data["cls"][2])
    d.class_points.selected.indices = [2]
    assert d.selection == np.flatnonzero(d.labels == k).tolist()
    _assert_everywhere(d, d.selection)

    # a lasso in the manifold distance plot
    d.strip_points.selected.indices = [0, 1, 2]
    assert d.selection == [0, 1, 2]
    _assert_everywhere(d, [0, 1, 2])

    # a confusion-matrix cell clicked (anywidget GridView)
    t = int(d.labels[0])
    d.cm_grid.selected = [[t, t]]
    expect = np.flatnonzero((d.labels == t) & (d.preds == t)).tolist()
    assert d.selection == expect
    _assert_everywhere(d, expect)

    # from Python, then cleared
    d.selection = [3, 7]
    assert d.selection == [3, 7] and d.cm_grid.selected == []
    _assert_everywhere(d, [3, 7])
    d.clear_selection()
    _assert_everywhere(d, [])
    assert "select inputs in any lens" in d.inspector_html.value
    with pytest.raises(IndexError, match=r"\[0, 299\]"):
        d.selection = [300]


def test_the_inspector_shows_what_each_lens_says_about_the_input(dash):
    d = dash
    s = d.study
    x, y = s.data("test").tensors()
    wrong = np.flatnonzero(d.labels != d.preds)
    i = int(wrong[0]) if wrong.size else 4
    d.selection = [i, 0]
    with torch.no_grad():
        answer = int(s.model(x[i : i + 1]).argmax(1))
    info = d.inspect(i)
    assert (info["label"], info["answer"]) == (int(y[i]), answer)
    html = d.inspector_html.value
    assert f'data-index="{i}"' in html and f"input #{i}" in html
    assert f"label <b>{d.classes[int(y[i])]}</b>" in html
    assert f"network's answer <b>{d.classes[answer]}</b>" in html
    assert "first of 2 selected" in html
    assert 'src="data:image/png;base64,' in html and "image-rendering:pixelated" in html
    assert 'width="112" height="112"' in html  # 16x16 scaled by 7, not stretched

    # each lens's numbers are the study's own
    for layer, t in d.results["telescope"].items():
        assert info["telescope"][layer]["bmu"] == int(t.bmus["test"][i, 0])
        assert info["telescope"][layer]["d_class"] == pytest.approx(float(t.d_class["test"][i]))
    lib = d.results["library"]
    acts, _ = s.activations(x[i : i + 1], reducer="flatten", layers=list(lib.stack.layers_))
    scores = lib.stack.predict_scores(acts)
    for layer, P in scores.items():
        assert info["library"]["pred"][layer] == int(P.argmax(1)[0])
    assert info["library"]["cpl"] == pytest.approx(float(lib.cpl[i]), abs=1e-5)
    a = d.results["selfintro"].analyze(x[i : i + 1])
    np.testing.assert_allclose(info["selfintro"]["z"], a["z"][0], atol=1e-5)
    assert info["selfintro"]["log10_error"] == pytest.approx(
        float(a["log10_error_hat"][0]), abs=1e-4
    )
    pen, _ = s.activations(x[i : i + 1], reducer="flatten", layers=["penultimate"])
    r = subspace_residual(pen["penultimate"], int(y[i]), d.subspaces)[0]
    assert info["manifolds"]["residual"] == pytest.approx(r, rel=1e-4)
    assert f"{r:.3f}" in html


def test_the_attack_path_has_one_point_per_step_in_every_lens(dash):
    d = dash
    i = int(np.flatnonzero(d.labels == d.preds)[0])
    d.selection = [i]
    steps = 6
    p = d.attack(kind="pgd", steps=steps, step_size=0.02, eps=0.08)
    S = steps + 1
    x0 = d._x[i]
    assert p["x"].shape == (S, *x0.shape) and torch.equal(p["x"][0], x0)
    assert float((p["x"] - x0).abs().max()) <= 0.08 + 1e-6
    assert len(d.som_path.data["x"]) == S  # BMU path on the SOM
    assert len(d.map_path.data["z1"]) == S  # z trajectory on the activation map
    assert len(d.lib_path.data["cpl"]) == S  # CPL per step
    assert len(d.lib_path_pred.data["step"]) == S * (1 + len(p["lib_pred"]))  # answers
    assert len(d.man_path.data["residual"]) == S  # distance to the class manifold
    assert all(len(u) == S for u in p["bmu"].values())
    assert d.path_step.max == steps and f'data-steps="{S}"' in d.path_html.value
    # the per-step numbers are the lenses' own on the path's images
    acts, logits = d.study.activations(p["x"], reducer="flatten", layers=["penultimate"])
    np.testing.assert_array_equal(p["pred"], logits.argmax(1))
    np.testing.assert_allclose(
        p["residual"], subspace_residual(acts["penultimate"], d.labels[i], d.subspaces)
    )
    d.path_step.value = 2
    assert d.map_cur.data["z1"][0] == pytest.approx(p["z"][2, 0])

    # targeted iterative FGSM from the button, with the controls' settings
    d.attack_kind.value = "targeted iterative FGSM"
    d.target.value = (int(d.labels[i]) + 1) % d.n_classes
    d.steps.value = 4
    d.attack_button.click()
    assert d.error is None, d.errors.text
    assert d.path["kind"] == "fgsm-targeted" and len(d.map_path.data["z1"]) == 5
    assert len(d.som_path.data["x"]) == 5 and len(d.man_path.data["step"]) == 5
    d.attack_kind.value = "untargeted PGD"


def test_the_dashboard_is_on_screen_before_it_computes(dash):
    from introspect_widgets import Dashboard

    d = Dashboard(dash.study)  # every stage is cached in the workdir by now
    assert not any(d.ready.values())
    bundle = d._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    d.wait(300)
    assert all(d.ready.values()) and d.error is None, d.errors.text
    assert 'data-state="ready"' in d.state_html.value
    d.selection = [1]
    assert d.highlighted()["selfintro"] == [1]


def test_cancel_stops_the_dashboard_and_caches_no_half_fitted_map(dash, tmp_path, monkeypatch):
    import threading

    from introspect import progress, som
    from introspect_widgets import Dashboard

    s = dash.study
    mine = Study(s.model, train=s.data("train"), test=s.data("test"), layers=s.layers,
                 workdir=tmp_path, device="cpu", progress=False)  # fmt: skip
    gate, orig = threading.Event(), som.ToroidalSOM.fit

    def held(self, *args, **kwargs):  # hold the worker inside its first SOM fit
        progress.report("SOM held", 0, 1)
        gate.wait(60)
        progress.report("SOM held", 1, 1)  # the first report after Cancel stops here
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(som.ToroidalSOM, "fit", held)
    d = Dashboard(mine, autostart=False)
    d.start()
    deadline = time.perf_counter() + 120
    while d._tracker.stage != "SOM held":
        assert time.perf_counter() < deadline, d._tracker.describe()
        gate.wait(0.02)
    assert d.running and d.task.widget.layout.display is None
    assert d.compute_button.layout.display == "none"  # no second start while it runs
    assert d.cancel()
    gate.set()
    d.wait(120)
    assert d.last_task["outcome"] == "cancelled", d.last_task
    assert 'data-state="cancelled"' in d.state_html.value and not d.ready["telescope"]
    assert not list((tmp_path / "som").rglob("result*"))  # no map was stored
    monkeypatch.setattr(som.ToroidalSOM, "fit", orig)
    assert d.compute_button.layout.display is None and d.compute_button.description == "Resume"
    d.compute_button.click()  # the page's way on: computes to the end
    d.wait(600)
    assert d.last_task["outcome"] == "done" and all(d.ready.values()), d.errors.text
    assert list((tmp_path / "som").rglob("result*"))


def test_class_names_and_text_are_html_escaped(tmp_path):
    from introspect_widgets import Dashboard

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 8, 8, generator=g)
    y = torch.arange(40) % 2
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(256, 2),
    )
    names = ["<script>alert(1)</script>", "a&b"]
    s = Study(
        model,
        train=ArrayDataset(x, y, classes=names),
        test=ArrayDataset(x[:20], y[:20], classes=names),
        layers=["0", "1"],
        workdir=tmp_path,
        device="cpu",
        progress=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = Dashboard(
            s,
            autostart=False,
            library=dict(layers=["1"]),  # one library layer: no CPL, and no error either
            selfintro=dict(vae=dict(epochs=2), estimator=dict(epochs=2)),
        )
        d.compute()
    assert d.error is None, d.errors.text
    i = int(np.flatnonzero(d.labels == 1)[0])
    d.selection = [i, 0]
    text = d.inspector_html.value + d.selection_html.value + d.cm_legend.value
    text += "".join(w.value for w in (*d.readouts.values(), *d.tab_status.values()))
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "a&amp;b" in text and "a&b" not in text
    d.select_cm_cell(0, int(d.preds[0]))
    assert "<script>" not in d.selection_html.value
    assert np.isnan(d.inspect(0)["library"]["cpl"]) and d.cpl_hist.data["clean"] == []


def test_subspace_residual_equals_a_direct_numpy_computation():
    rng = np.random.default_rng(0)
    n_feat, labels, X = 12, [], []
    for c, (k, n) in enumerate([(3, 40), (5, 60), (1, 30)]):
        basis = rng.normal(size=(k, n_feat))
        pts = rng.normal(size=(n, k)) @ basis * 3 + rng.normal(size=(n, n_feat)) * 0.2 + c
        X.append(pts)
        labels += [c] * n
    X, labels = np.vstack(X), np.asarray(labels)
    subspaces = class_subspaces(X, labels, threshold=0.95)
    queries = rng.normal(size=(25, n_feat)) * 2
    q_cls = rng.integers(0, 3, 25)

    expected = np.zeros(len(queries))
    dims = []
    for c in range(3):
        Xc = X[labels == c]
        mean = Xc.mean(0)
        lam, V = np.linalg.eigh(np.cov(Xc, rowvar=False))  # ascending
        lam, V = lam[::-1], V[:, ::-1]
        d = int(np.argmax(np.cumsum(lam) / lam.sum() >= 0.95 - 1e-10)) + 1
        dims.append(d)
        P = V[:, :d] @ V[:, :d].T
        for j in np.flatnonzero(q_cls == c):
            r = queries[j] - mean
            expected[j] = np.linalg.norm(r - P @ r)
        np.testing.assert_allclose(subspaces[c][0], mean)
        assert subspaces[c][1].shape == (d, n_feat)
        np.testing.assert_allclose(subspaces[c][1] @ subspaces[c][1].T, np.eye(d), atol=1e-10)
    got = subspace_residual(queries, q_cls, subspaces)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    # the subspace dimension is the CAM dimension at the same threshold
    cm = class_manifold_dims(X, labels, threshold=0.95, warn=False)
    assert dims == cm.dims.tolist() == [subspaces[c][1].shape[0] for c in range(3)]
    # a point of the subspace has no residual; one int class applies to every row
    on = subspaces[1][0] + 2.0 * subspaces[1][1][0] - 0.5 * subspaces[1][1][-1]
    assert subspace_residual(on[None], 1, subspaces)[0] == pytest.approx(0, abs=1e-9)
    # a class with one sample: the subspace is its mean alone
    one = class_subspaces(np.ones((1, 4)), [7])
    assert one[7][1].shape == (0, 4)
    assert subspace_residual(np.zeros((1, 4)), 7, one)[0] == pytest.approx(2.0)
    with pytest.raises(KeyError, match="no subspace for class 5"):
        subspace_residual(queries[:1], 5, subspaces)


def test_one_toolbar_per_view_and_room_for_the_tabs(dash):
    from bokeh.models import GridPlot, Plot

    for view in (dash.som_view, dash.lib_view, dash.map_view, dash.man_view, dash.det_view):
        layout = view._model
        own = [p for p in layout.select({"type": Plot}) if p.toolbar_location is not None]
        grids = [g for g in layout.select({"type": GridPlot}) if g.toolbar_location]
        assert len(own) + len(grids) <= 1, view._dom_classes
    # a note instead of bare axes in the plots that wait for an attack or a detection
    from bokeh.models import Label

    for fig, src in [
        (dash.lib_path_figure, dash.lib_path),
        (dash.man_path_figure, dash.man_path),
        (dash.det_hist_figure, dash.det_hist),
    ]:
        note = next(m for m in fig.center if isinstance(m, Label))
        assert note.visible == (not any(len(v) for v in src.data.values()))
    # too narrow for tabs and inspector side by side, the inspector goes below the tabs
    assert dash.tabs.layout.min_width == "780px"
    assert dash.children[-1].layout.flex_flow == "row wrap"


# ----------------------------------------------------------------------------- real browser
NOTEBOOK = REPO / "notebooks" / "explore" / "00_start_here.ipynb"
_NO_LAB = importlib.util.find_spec("jupyterlab") is None


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent")
@pytest.mark.skipif(_NO_LAB, reason="jupyterlab is not installed")
@pytest.mark.parametrize("jupyter_lab", [[NOTEBOOK]], indirect=True)
def test_start_here_notebook_selects_a_som_unit_in_chromium(jupyter_lab, lab_page):  # noqa: F811
    t0 = time.monotonic()
    lab_page.open(NOTEBOOK.name)
    lab_page.run_all(timeout=600)  # trains the ResNet briefly, fits the lenses, shows the dashboard
    page = lab_page.page
    assert lab_page.cell_errors() == []
    page.wait_for_function(
        "() => { const e = document.querySelector('.introspect-dash-state');"
        " return e && ['ready', 'error'].includes(e.dataset.state); }",
        timeout=300_000,
    )
    state = page.locator(".introspect-dash-state").first
    errors = page.locator(".introspect-error").all_text_contents()
    assert state.get_attribute("data-state") == "ready", errors
    t_ready = time.monotonic() - t0

    # click the fullest unit of the SOM (a 360-pixel bokeh canvas, no axes, 10x10 units)
    full = page.locator(".introspect-dash-fullest").first
    unit, r, c, n = (int(full.get_attribute(f"data-{k}")) for k in ("unit", "row", "col", "count"))
    assert n > 0
    canvas = page.locator(".introspect-dash-som canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.click(
        box["x"] + (c + 0.5) * box["width"] / 10, box["y"] + (r + 0.5) * box["height"] / 10
    )
    page.wait_for_function(
        "([unit, n]) => { const e = document.querySelector('.introspect-dash-selection');"
        " return e && e.dataset.count === String(n) && e.textContent.includes(`SOM unit ${unit} `); }",
        arg=[unit, n],
    )
    selection = page.locator(".introspect-dash-selection").first.text_content()
    first = int(re.search(r"#(\d+)", selection).group(1))

    # every lens highlights the same inputs, the inspector shows the first of them
    page.wait_for_function(
        "(n) => { const r = [...document.querySelectorAll('.introspect-dash-readout')];"
        " return r.length === 5 && r.every(e => e.dataset.count === String(n)); }",
        arg=n,
    )
    inspector = page.locator(".introspect-inspector").first
    assert inspector.get_attribute("data-index") == str(first)
    assert f"input #{first}" in inspector.text_content()
    assert f"unit {unit} ({r}, {c})" in inspector.text_content()
    page.get_by_role("tab", name="Self-introspection").click()
    readout = page.locator('.introspect-dash-readout[data-lens="selfintro"]').first
    readout.wait_for(state="visible")
    assert f"{n} selected inputs highlighted on the map; first #{first}" in readout.text_content()

    assert lab_page.js_errors() == []
    print(
        f"\nbrowser dashboard test: ready {t_ready:.1f}s, "
        f"total {time.monotonic() - t0:.1f}s after the server start"
    )


def test_class_labels_stay_inside_the_frame_and_do_not_overprint():
    from introspect_widgets.dashboard import _point_labels

    # the layout of the 1280 px screenshot: two classes at one place, one at the right edge
    dims, acc = [8, 10, 13, 13, 14], [0.8, 0.3, 0.0, 0.0, 0.0]
    names = [f"digit{k} (n 30)" for k in (1, 5, 0, 9, 8)]
    text, align, dx = _point_labels(dims, acc, names)
    assert text == ["digit1 (n 30)", "digit5 (n 30)", "digit0, digit9 (n 30)", "", "digit8 (n 30)"]
    assert align == ["left", "left", "right", "right", "right"]  # right half: label on the left
    assert dx == [7.0, 7.0, -7.0, -7.0, -7.0]
