"""Figures, Study (what panels and users call) and panels share one cached stage per
parameter set: after a figure run, a Study session and a panel session with the same
parameters compute nothing new."""

from __future__ import annotations

import numpy as np

from introspect import Study
from introspect.figures import get_figure


def _folders(work, stage):
    root = work / stage
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_a_figure_run_a_study_and_a_panel_share_training_capture_library_and_attacks(tmp_path):
    fig = get_figure("library.fig5")
    layers = ["CN1", "CN2", "FC1", "FC2"]
    params = dict(
        models={"mnist_cnn@digits": {"layers": layers, "theta_sets": {"t": dict.fromkeys(layers, 0.9)},
                                     "eps": [0.1], "top_k": 3}},
        n_attack=60, nb_iter=5, eps_iter=0.03, workdir=str(tmp_path), device="cpu", seed=0,
    )  # fmt: skip
    out = fig.compute(**params)
    before = {s: _folders(tmp_path, s) for s in ("train", "capture", "library", "attack")}
    assert [len(before[s]) for s in ("train", "capture", "library", "attack")] == [1, 2, 4, 1]

    study = Study.from_recipe("mnist_cnn@digits", workdir=tmp_path, device="cpu", layers=layers,
                              progress=False)  # fmt: skip
    lib = study.library(theta=0.9, top_k=3)
    adv = study.attack("pgd", eps=0.1, n=60, nb_iter=5, eps_iter=0.03)
    after = {s: _folders(tmp_path, s) for s in before}
    assert after == before, "the study recomputed a stage the figure had made"

    # a panel session on the same study: Compute with the figure's settings adds nothing
    from introspect_widgets.panels import LibraryPanel

    panel = LibraryPanel(study, layers=layers, thetas=[0.9], eps=[0.1], top_k=3, n_attack=60,
                         nb_iter=5, eps_iter=0.03)  # fmt: skip
    panel.compute_button.click()
    assert panel.error is None, panel.error
    assert {s: _folders(tmp_path, s) for s in before} == before, "the panel recomputed a stage"
    # and they are the same results: the figure's adversarial accuracy is the study's
    acc = out["results"]["mnist_cnn@digits"]["adv_accuracy"][0]
    assert np.isclose(acc, adv.accuracy)
    assert set(lib.agreement) == set(layers)
