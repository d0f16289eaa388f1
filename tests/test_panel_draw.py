"""Panels draw the first time: bokeh bundles follow the document, eps sliders read what the
user wrote, live curves are throttled. No browser (tests/test_browser_draw.py has one)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource, Title
from test_panel_library import data  # noqa: F401 (fixture)
from test_panel_manifold import ACC_A, ACC_B, fake_result

from introspect_widgets.panels import LibraryPanel, ManifoldPanel, SOMPanel
from introspect_widgets.panels._base import (
    bokeh_views,
    bokeh_widget,
    eps_label,
    parse_eps,
    refresh_bokeh_views,
)


def bundle_doc(view) -> Document:
    """The bokeh document a browser view would draw from (the widget's render_bundle)."""
    return Document.from_json(next(iter(view.render_bundle["docs_json"].values())))


def bundle_source(view, name):
    return bundle_doc(view).select_one({"name": name})


# ------------------------------------------------------------------ bundles


def test_a_panel_given_data_draws_that_data_at_display(data):  # noqa: F811
    panel = LibraryPanel(data=data)
    cells = len(panel.ci_source.data["ci"])
    assert cells == len(data["classes"]) ** 2
    panel.widget._repr_mimebundle_()  # what a notebook cell ending in `panel` does
    assert len(bundle_source(panel.ci_view, "ci").data["ci"]) == cells
    hist = bundle_source(panel.hist_view, "cpl-hist").data
    assert len(hist["clean"]) == len(panel.hist_source.data["clean"]) > 1
    assert bundle_doc(panel.ci_view).select_one({"type": Title}) is not None
    assert all(not v.stale for v in bokeh_views(panel.widget))


def test_a_reload_gets_the_document_as_it_is_now(data):  # noqa: F811
    panel = LibraryPanel(data=data)
    panel.widget._repr_mimebundle_()
    panel.ci_layer.value = "B"  # a change after the display: a patch, and a stale bundle
    assert panel.ci_view.stale
    state = panel.ci_view.get_state()  # what the browser asks for on a page reload
    sent = json.loads(state["render_bundle"])  # the JSON the browser gets
    doc = Document.from_json(next(iter(sent["docs_json"].values())))
    titles = [m.text for m in doc.select({"type": Title})]
    assert any(t.startswith("confusion index: B") for t in titles)
    assert not panel.ci_view.stale


def test_patches_still_reach_views_that_exist():
    from bokeh.plotting import figure

    src = ColumnDataSource(dict(x=[0], y=[0]), name="s")
    fig = figure()
    fig.scatter("x", "y", source=src)
    view = bokeh_widget(fig)
    sent = []
    view._send = lambda msg, buffers=None: sent.append(msg)
    src.data = dict(x=[0, 1, 2], y=[0, 1, 2])
    assert any(m.get("content", {}).get("msg") == "patch" for m in sent)  # live, as before
    assert refresh_bokeh_views(view) == 1  # and a fresh bundle when shown again
    assert list(bundle_source(view, "s").data["x"]) == [0, 1, 2]
    assert refresh_bokeh_views(view) == 0  # nothing changed since


def test_manifold_view_is_filled_before_it_is_wrapped():
    panel = ManifoldPanel(results={"A": fake_result(ACC_A), "B": fake_result(ACC_B, seed=1)})
    (view,) = bokeh_views(panel.widget)
    # no display yet: the bundle the new view is created from already holds the points,
    # the selected eps and the selected class's curves
    doc = bundle_doc(view)
    titles = [m.text for m in doc.select({"type": Title})]
    assert "A, eps 0.1, threshold 0.95" in titles
    curves = [s for s in doc.select({"type": ColumnDataSource}) if "xs" in s.data]
    assert len(curves) == 1 and len(curves[0].data["xs"]) == 2


# ------------------------------------------------------------------ eps sliders


def test_eps_labels_are_what_the_user_wrote():
    assert parse_eps("0.05, 8/255 ; 16/255") == (
        [0.05, 8 / 255, 16 / 255],
        ["0.05", "8/255", "16/255"],
    )
    assert parse_eps([8 / 255, 0.1, "2/255"]) == (
        [8 / 255, 0.1, 2 / 255],
        ["8/255", "0.1", "2/255"],
    )
    assert eps_label(0.3) == "0.3" and eps_label(1 / 3) == "1/3"
    assert eps_label(0.5) == "0.5" and eps_label(0.123) == "0.123"
    with pytest.raises(ValueError, match="fraction"):
        parse_eps("0.1, x/255")


def _library_data_at(data, eps):  # noqa: F811
    """The synthetic explorer data with its one attack repeated at each of ``eps``."""
    d = dict(data, eps=list(eps))
    d["scores_adv"] = {
        k: [[per_theta[0]] * len(eps) for per_theta in v] for k, v in data["scores_adv"].items()
    }
    d["attack_pred_adv"] = [data["attack_pred_adv"][0]] * len(eps)
    d["images_adv"] = [data["images_adv"][0]] * len(eps)
    return d


def test_library_eps_8_over_255_slider_readout_is_the_title(data):  # noqa: F811
    d = _library_data_at(data, [2 / 255, 8 / 255, 0.1])
    panel = LibraryPanel(data=d, eps=["2/255", 8 / 255, 0.1])  # crashed: "0.0313725 not in list"
    assert panel.error is None
    assert panel.eps_slider.options == (("2/255", 0), ("8/255", 1), ("0.1", 2))
    assert panel.eps_text.value == "2/255, 8/255, 0.1"
    for i in (1, 0, 2):
        panel.eps_slider.value = i
        assert panel.eps == d["eps"][i]
        assert panel.hist_fig.title.text == f"CPL, eps {panel.eps_slider.label}"
        assert f"at eps {panel.eps_slider.label}" in panel.auroc_html.value
    assert LibraryPanel(data=d).eps_slider.label == "8/255"  # labels from the data's floats


def test_library_slider_options_and_value_are_separate_messages(data):  # noqa: F811
    panel = LibraryPanel(data=data)
    sent = []
    panel.eps_slider._send = lambda msg, buffers=None: sent.append(set(msg["state"]))
    panel.set_data(_library_data_at(data, [0.05, 0.1, 0.2]))
    # sent together (hold_sync), the browser kept the old readout and range: a dead slider
    assert sent and not any({"_options_labels", "index"} <= keys for keys in sent)
    assert panel.eps_slider.label == "0.1" and panel.hist_fig.title.text == "CPL, eps 0.1"


def test_manifold_eps_slider_readout_is_the_title():
    a, b = fake_result(ACC_A), fake_result(ACC_B, seed=1)
    for r in (a, b):
        r["robustness"]["eps"] = [8 / 255, 0.1]
    panel = ManifoldPanel(results={"A": a, "B": b}, eps=["8/255", 0.1])
    assert panel.eps_slider.options == (("8/255", 0), ("0.1", 1))
    panel.eps_slider.value = 0
    for spec, (p, src, _) in panel._sources.items():
        assert p.title.text == f"{spec}, eps {panel.eps_slider.label}, threshold 0.95"
        np.testing.assert_allclose(src.data["acc"], (ACC_A if spec == "A" else ACC_B)[0])


# ------------------------------------------------------------------ SOM live updates


def test_som_progress_sends_at_most_10_updates_a_second(digits_study, monkeypatch):
    from introspect_widgets.panels import som as som_module

    panel = SOMPanel(digits_study, layer="CL4", size=6, epochs=1, sigma=3.0, seed=7)
    streams = []  # what goes to the browser: the loss view's document patches
    real = panel.loss_view._document_patched
    panel.loss_view._document_patched = lambda ev: (streams.append(ev), real(ev))
    clock = [0.0]  # 1 ms per step, 2,000 steps: 2 s of fitting
    monkeypatch.setattr(som_module.time, "perf_counter", lambda: clock[0])
    history = {"qe": []}
    for step in range(1, 2001):
        clock[0] += 0.001
        history["qe"].append(1.0 / step)
        panel._on_progress(step, 2000, history)
    assert panel.n_updates <= 2 * 10 + 1  # 10 Hz, and the last step
    assert len(streams) == panel.n_updates
    assert panel.loss_source.data["qe"] == history["qe"]  # every point arrives


def test_som_progress_is_thread_safe(digits_study):
    panel = SOMPanel(digits_study, layer="CL4", size=6, update_interval=0.0)
    history = {"qe": [float(i) for i in range(400)]}
    errors = []

    def report(offset):
        try:
            for step in range(offset, 400, 4):
                panel._on_progress(step + 1, 400, {"qe": history["qe"][: step + 1]})
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=report, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    steps = panel.loss_source.data["step"]
    assert steps == list(range(len(steps)))  # no point twice, none out of order


def test_som_training_streams_its_curve_throttled(digits_study):
    panel = SOMPanel(digits_study, layer="CL4", size=6, epochs=3, sigma=3.0, seed=11)
    panel.train()
    assert panel.error is None, panel.errors.text
    n_steps = panel.som.n_steps_
    assert len(panel.loss_source.data["qe"]) == n_steps
    assert panel.n_updates < n_steps / 2  # it was one per step


def test_closing_a_view_twice_is_quiet():
    from bokeh.plotting import figure

    view = bokeh_widget(figure())
    view.close()
    view.close()  # BokehModel raised KeyError here (and so from __del__ after a close)


def test_a_view_takes_changes_from_several_threads():
    """Fits report from worker threads while the kernel answers a reload's state request."""
    from bokeh.plotting import figure

    src = ColumnDataSource(dict(x=[], y=[]), name="s")
    fig = figure()
    fig.line("x", "y", source=src)
    view = bokeh_widget(fig)
    view._send = lambda msg, buffers=None: None  # as if a browser were attached
    errors = []

    def work(k):
        try:
            for i in range(100):
                src.stream(dict(x=[k * 1000 + i], y=[i]))
                fig.title.text = f"thread {k} step {i}"
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        view.get_state()  # a reload's state request meanwhile
    for t in threads:
        t.join()
    assert errors == []
    view.refresh()
    assert len(bundle_source(view, "s").data["x"]) == 300
