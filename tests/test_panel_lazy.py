"""A panel given a recipe name is on screen before its model trains (issue 15).

Known answers: constructing any panel (and the dashboard) from a recipe that trains its
model stores nothing and leaves the study unloaded; the first long action trains it with
its progress in the panel's task line ("train" is the first stage reported); a Cancel
during that training leaves no model stored and the next Train trains it to the end.
"""

from __future__ import annotations

import threading

import pytest
from workdirs import results_in as stored

from introspect import Study

RECIPE = "small_cnn@digits"


def test_a_lazy_recipe_study_trains_at_its_first_use(tmp_path):
    study = Study.from_recipe(RECIPE, workdir=tmp_path, device="cpu", n_per_class=5,
                              progress=False, lazy=True)  # fmt: skip
    assert not study.model_ready and stored(tmp_path) == []
    assert study.layers and len(study.classes) == 10  # layers and data without training
    repr(study)
    assert not study.model_ready  # neither repr nor the layers trained it
    model = study.model
    assert study.model_ready and not model.training
    trained = [s for s in stored(tmp_path) if s.startswith("train")]
    assert len(trained) == 1
    # an eager study of the recipe loads what the lazy one stored: no second training
    eager = Study.from_recipe(RECIPE, workdir=tmp_path, device="cpu", n_per_class=5,
                              progress=False)  # fmt: skip
    assert [s for s in stored(tmp_path) if s.startswith("train")] == trained
    for (k, a), (_, b) in zip(model.state_dict().items(), eager.model.state_dict().items()):
        assert (a == b).all(), k


def test_a_recipe_with_nothing_to_train_is_ready_at_once(tmp_path):
    # only training is deferred: a recipe's own weights (here its random initialisation;
    # a checkpoint or pretrained weights the same way) are the model from the start
    study = Study.from_recipe("small_cnn_random@digits", workdir=tmp_path, device="cpu",
                              n_per_class=2, progress=False, lazy=True)  # fmt: skip
    assert study.model_ready


def test_panels_from_a_recipe_train_nothing_before_display(tmp_path):
    from introspect_widgets import Dashboard
    from introspect_widgets.panels import (
        ActivationMapPanel,
        LibraryPanel,
        ManifoldPanel,
        SOMPanel,
    )

    kw = dict(workdir=tmp_path, device="cpu", n_per_class=5)
    som = SOMPanel(RECIPE, **kw)
    lib = LibraryPanel(RECIPE, **kw)
    man = ManifoldPanel({"normal": RECIPE}, **kw)
    amap = ActivationMapPanel("net1_mlp@digits", **kw)
    studies = [som.study, lib.study, *man.studies.values(), amap.study]
    dash = Dashboard(Study.from_recipe(RECIPE, progress=False, lazy=True, **kw), autostart=False)
    studies.append(dash.study)
    assert [s.model_ready for s in studies] == [False] * len(studies)
    assert stored(tmp_path) == []
    assert not (tmp_path / "train").exists()


def test_the_first_train_of_a_recipe_panel_trains_the_model_with_progress(tmp_path):
    from introspect_widgets.panels import SOMPanel

    panel = SOMPanel(RECIPE, workdir=tmp_path, device="cpu", n_per_class=10, epochs=5)
    panel.background = True  # a worker thread, as a click in a notebook
    stages = []
    seen_train = threading.Event()
    show = panel.task.show

    def spy(tracker):
        stages.append(tracker.stage)
        if tracker.stage == "train":
            seen_train.set()
        show(tracker)

    panel.task.show = spy
    panel.train_button.click()
    assert seen_train.wait(120), stages
    panel.cancel()
    panel.wait()
    assert panel.last_task["outcome"] == "cancelled", panel.last_task
    assert not panel.study.model_ready
    assert [s for s in stored(tmp_path) if s.startswith("train")] == []  # nothing half-done
    assert panel.som is None

    stages.clear()
    panel.train_button.click()  # trains the model (resuming its checkpoint), then the SOM
    panel.wait()
    assert panel.last_task["outcome"] == "done", (panel.last_task, panel.errors.text)
    assert panel.study.model_ready and panel.som is not None
    assert stages and stages[0] == "train", stages[:5]
    assert [s for s in stored(tmp_path) if s.startswith("train")]


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
