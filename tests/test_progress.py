"""Progress and Cancel of long work: the core's reports, the panels' long actions.

Known answers: a fake clock gives an exact time left; a cancelled training or capture
stores no result (the workdir's ``result`` files are counted) and a resumed capture
equals an uninterrupted one; a panel's Cancel stops its worker thread at the next
report and the next Compute finishes with the same numbers as an uncancelled one.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from workdirs import results_in

from introspect import Study, progress
from introspect.progress import Cancelled, Tracker


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_tracker_describes_stage_k_of_n_and_time_left(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    seen = []
    tr = Tracker(on_change=lambda t: seen.append(t.describe()), max_rate=0)
    tr("capture", 0, 10)
    clock.t += 2.0
    tr("capture", 4, 10)  # 4 steps in 2 s: 6 left take 3 s
    assert tr.describe() == "capture 4/10, 3 s left"
    clock.t += 1.0
    tr("SOM", 0, 200)  # a new stage restarts the rate
    assert tr.describe() == "SOM 0/200" and tr.stages == ["capture", "SOM"]
    clock.t += 30.0
    tr("SOM", 20, 200)  # 20 steps in 30 s: 180 left take 270 s
    assert tr.describe() == "SOM 20/200, 4 min 30 s left"
    assert seen[-1] == tr.describe() and len(seen) == 4


def test_tracker_throttles_but_shows_stage_starts_and_ends(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    seen = []
    tr = Tracker(on_change=lambda t: seen.append((t.stage, t.done)), max_rate=4.0)
    for k in range(101):  # 100 steps within 0.1 s: far above 4 Hz
        tr("fit", k, 100)
        clock.t += 0.001
    assert seen == [("fit", 0), ("fit", 100)]


def test_report_without_a_watcher_does_nothing_and_watchers_are_per_thread():
    progress.report("x", 1, 2)  # nobody watches: no error
    heard, other = [], []

    def elsewhere():
        progress.report("other thread", 1, 1)
        other.append(progress.watching())

    with progress.watch(lambda *a: heard.append(a)):
        t = threading.Thread(target=elsewhere)
        t.start()
        t.join()
        progress.report("mine", 3, 4)
    assert heard == [("mine", 3, 4)] and other == [False]


def test_bar_reports_every_item_and_cancel_stops_the_loop():
    tr = Tracker()
    done = []
    with progress.watch(tr), pytest.raises(Cancelled, match="cancelled at epoch 3/10"):
        for i in progress.bar(range(10), desc="epoch", disable=True):
            done.append(i)
            if i == 2:
                tr.cancel()  # as the Cancel button does, from any thread
    assert done == [0, 1, 2] and tr.done == 3
    assert isinstance(Cancelled("x"), KeyboardInterrupt)  # no `except Exception` swallows it


def _cancel_at(stage: str, k: int) -> Tracker:
    tr = Tracker()

    def sink(s, done, total):
        if s == stage and done >= k:
            tr.cancel()
        Tracker.__call__(tr, s, done, total)

    tr.sink = sink
    return tr


def test_cancelled_training_stores_no_model(tmp_path):
    tr = _cancel_at("train", 2)
    with progress.watch(tr.sink), pytest.raises(Cancelled):
        Study.from_recipe(
            "small_cnn@digits", workdir=tmp_path, device="cpu", n_per_class=5, progress=False
        )
    assert "train" in tr.stages
    # the resume checkpoint may stay (it is how a rerun resumes); no model is served
    assert [r for r in results_in(tmp_path) if r.startswith("model")] == []


def test_cancelled_capture_is_not_complete_and_resumes_to_the_same_store(digits_study, tmp_path):
    s = digits_study
    mine = Study(s.model, train=s.data("train"), test=s.data("test"), layers=s.layers,
                 workdir=tmp_path, device="cpu", batch_size=16, progress=False)  # fmt: skip
    n = len(s.labels("test"))
    tr = _cancel_at("capture", 40)
    with progress.watch(tr.sink), pytest.raises(Cancelled):
        mine.capture("codes", "test")
    assert 0 < tr.done < n
    assert not [r for r in results_in(tmp_path) if "capture" in r]
    resumed = mine.capture("codes", "test")
    fresh = Study(s.model, train=s.data("train"), test=s.data("test"), layers=s.layers,
                  workdir=tmp_path / "fresh", device="cpu", progress=False)  # fmt: skip
    ref = fresh.capture("codes", "test")
    assert resumed.complete and resumed.n == n
    for layer in s.layers:
        np.testing.assert_allclose(resumed.layer(layer), ref.layer(layer), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(resumed.preds, ref.preds)


def _wait_for(pred, timeout=120.0):
    ev = threading.Event()
    deadline = 0.0
    while not pred():
        ev.wait(0.02)
        deadline += 0.02
        if deadline > timeout:
            raise AssertionError("timed out waiting")


def test_library_panel_cancel_stops_the_worker_and_caches_nothing_half_done(
    digits_study, tmp_path, monkeypatch
):
    from introspect import library
    from introspect_widgets.panels import LibraryPanel

    s = digits_study
    mine = Study(s.model, train=s.data("train"), test=s.data("test"), layers=s.layers,
                 workdir=tmp_path, device="cpu", progress=False)  # fmt: skip
    panel = LibraryPanel(mine, eps="0.1")
    panel.layers_text.value, panel.thetas_text.value = "CL4, FC", "0.9"
    gate = threading.Event()
    orig_fit = library.LibraryNetwork.fit

    def held_fit(self, *args, **kwargs):  # hold the worker inside its first library build
        progress.report("library held", 0, 1)
        gate.wait(60)
        progress.report("library held", 1, 1)  # the first report after Cancel: stops here
        return orig_fit(self, *args, **kwargs)

    monkeypatch.setattr(library.LibraryNetwork, "fit", held_fit)
    panel.background = True
    panel.compute_button.click()
    assert panel.running and panel.compute_button.disabled
    assert panel.task.widget.layout.display is None  # the progress line and Cancel show
    _wait_for(lambda: panel._tracker.stage == "library held")
    _wait_for(lambda: "library held 0/1" in panel.task.label.value)
    assert panel.cancel() and panel.task.cancel_button.disabled
    gate.set()
    panel.wait(120)
    assert not panel.running
    assert panel.last_task["outcome"] == "cancelled", panel.last_task
    assert "cancelled" in panel.status.value and panel.error is None
    assert not panel.compute_button.disabled and panel.data is None
    assert not [r for r in results_in(tmp_path) if r.startswith("library")]

    monkeypatch.setattr(library.LibraryNetwork, "fit", orig_fit)
    panel.background = False  # the next Compute runs to its end, here
    panel.compute_button.click()
    assert panel.last_task["outcome"] == "done" and panel.error is None
    assert panel.data is not None and not panel.cancel()  # nothing runs: nothing to cancel
    assert [r for r in results_in(tmp_path) if r.startswith("library")]


def test_a_failure_in_the_worker_is_shown_in_the_panel(digits_study):
    from introspect_widgets.panels import LibraryPanel

    panel = LibraryPanel(digits_study)
    panel.background = True
    panel.layers_text.value = "no_such_layer, FC"
    panel.compute_button.click()
    panel.wait(60)
    assert panel.last_task["outcome"] == "failed" and panel.error is not None
    assert "no_such_layer" in panel.errors.text and not panel.compute_button.disabled
    # a second long action while one runs is refused, naming the way out
    gate = threading.Event()
    panel.run_task("held", lambda: gate.wait(60), background=True)
    try:
        assert panel.running
        with pytest.raises(RuntimeError, match=r"held is still running: wait .* or press Cancel"):
            panel.run_task("again", lambda: None)
    finally:
        gate.set()
        panel.wait(60)
    assert not panel.running and panel.last_task["what"] == "held"


def test_fit_on_construction_waits_for_display_in_a_kernel(digits_study, monkeypatch):
    """In a notebook the panel is on screen (with progress and Cancel) before it fits."""
    from introspect.selfintro import ErrorEstimator, InfoVAE
    from introspect_widgets.panels import ActivationMapPanel, _base

    net = Study.from_recipe("net1_mlp@digits", workdir=digits_study.workdir.root,
                            device="cpu", n_per_class=10, progress=False)  # fmt: skip
    monkeypatch.setattr(_base, "in_kernel", lambda: True)
    panel = ActivationMapPanel(
        net, fit=True, vae=InfoVAE(epochs=2), estimator=ErrorEstimator(epochs=2), max_points=60
    )
    assert panel.result is None and not panel.running  # nothing ran before the display
    panel._displayed()  # what showing it in a notebook does
    panel.wait(300)
    assert panel.last_task["outcome"] == "done", (panel.last_task, panel.errors.text)
    assert panel.result is not None and len(panel.points.data["z1"]) == len(panel.labels)


def test_attack_loops_report_and_stop(digits_small_cnn):
    from introspect import attacks

    model, _ = digits_small_cnn
    x = torch.rand(64, 1, 16, 16)
    y = torch.randint(0, 10, (64,))
    heard = []
    with progress.watch(lambda *a: heard.append(a)):
        attacks.pgd(model, x, y, eps=0.1, nb_iter=2, batch_size=16)
    assert [h[1] for h in heard] == [0, 16, 32, 48, 64] and {h[0] for h in heard} == {"pgd"}
    tr = _cancel_at("pgd", 32)
    with progress.watch(tr.sink), pytest.raises(Cancelled):
        attacks.pgd(model, x, y, eps=0.1, nb_iter=2, batch_size=16)


def test_capture_hooks_record_only_their_own_thread(digits_small_cnn):
    """A cell running the model while a panel captures in a worker does not mix in."""
    from introspect.capture import LayerHooks
    from introspect.codes import vector_codes

    model, _ = digits_small_cnn
    layer = next(iter(model.layer_aliases))
    mine, other = torch.rand(3, 1, 16, 16), torch.rand(5, 1, 16, 16)
    got = {}

    def worker():
        with LayerHooks(model, [layer], vector_codes) as hooks, torch.no_grad():
            model(mine)
            passed.set()
            go.wait(30)  # the main thread runs the model now, between pass and take
            got.update(hooks.take())

    passed, go = threading.Event(), threading.Event()
    t = threading.Thread(target=worker)
    t.start()
    passed.wait(30)
    with torch.no_grad():
        model(other)  # the main thread's pass, while the hooks are installed
    go.set()
    t.join(60)
    assert got[layer].shape[0] == 3  # the worker's batch, not the main thread's 5


def test_a_cancelled_som_fit_keeps_the_map_shown_and_its_curve(digits_study):
    from introspect_widgets.panels import SOMPanel

    panel = SOMPanel(digits_study, layer="FC", size=4, epochs=2)
    panel.train()  # from code: runs here, to its end
    first, n_first = panel.som, len(panel.som.history_["qe"])
    assert panel.last_task["outcome"] == "done" and n_first > 0
    panel.epochs.value, panel.seed, panel.background = 50_000, 7, True
    panel.train_button.click()
    _wait_for(lambda: panel._tracker.stage == "SOM" and panel._tracker.done > 0)
    assert panel.cancel()
    panel.wait(120)
    assert panel.last_task["outcome"] == "cancelled"
    assert panel.som is first and len(panel.loss_source.data["qe"]) == n_first
    assert panel.task.bar.bar_style == "warning" and "cancelled" in panel.task.label.value
