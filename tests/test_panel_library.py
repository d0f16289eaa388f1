"""LibraryPanel driven headless on synthetic layers with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from introspect import library
from introspect.library import LibraryNetwork, auroc, cpl, explore_arrays

N_CLASSES = 4


def separated(n_per, d=40, seed=0, noise=0.05):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(N_CLASSES), n_per)
    X = np.zeros((len(y), d))
    w = d // N_CLASSES
    for c in range(N_CLASSES):
        X[y == c, c * w : (c + 1) * w] = 1 + noise * rng.random(((y == c).sum(), w))
    return X, y


@pytest.fixture(scope="module")
def data():
    Xtr, ytr = separated(30, seed=1)
    Xte, yte = separated(10, seed=2)
    rng = np.random.default_rng(3)
    mix, _ = np.linalg.qr(rng.standard_normal((40, 40)))  # rotation: same geometry
    tr = {"A": Xtr, "B": Xtr @ mix}
    te = {"A": Xte, "B": Xte @ mix}
    # "attack": layer A keeps the class, layer B is pushed to the next class -> CPL drops
    Xadv = np.roll(Xte, 10, axis=1)  # class c looks like class c+1
    adv = {0.1: {"A": Xte, "B": Xadv @ mix}}
    cache = {}

    def library(layer, theta):
        key = (layer, theta)
        if key not in cache:
            cache[key] = LibraryNetwork(theta, 3).fit(tr[layer], ytr, N_CLASSES)
        return cache[key]

    images = rng.random((len(yte), 1, 8, 8))
    return explore_arrays(
        grid={"A": [0.5, 0.9, 0.99], "B": [0.9, 0.999]},
        library=library,
        test_layers=te,
        test_pred=yte,
        test_labels=yte,
        attack_clean=te,
        attack_adv=adv,
        attack_labels=yte,
        attack_pred_clean=yte,
        attack_pred_adv={0.1: (yte + 1) % N_CLASSES},
        n_classes=N_CLASSES,
        classes=["a", "b", "c", "d"],
        images_clean=images,
        images_adv={0.1: images[::-1]},
    )


@pytest.fixture()
def panel(data):
    from introspect_widgets.panels import LibraryPanel

    return LibraryPanel(data=data)


def test_theta_slider_updates_size_and_agreement(panel, data):
    assert panel.error is None, panel.errors.text
    assert set(panel.theta_sliders) == {"A", "B"}
    s = panel.theta_sliders["A"]
    s.value = 0
    assert panel.layer_stats["A"]["theta"] == 0.5
    assert panel.layer_stats["A"]["size"] == data["sizes"]["A"][0]
    s.value = 2
    assert data["sizes"]["A"][0] == N_CLASSES  # orthogonal classes: one node each
    assert panel.layer_stats["A"]["size"] == data["sizes"]["A"][2] >= N_CLASSES
    assert panel.layer_stats["A"]["top1"] == 1.0  # separated clusters: exact
    assert "<td>A</td><td>0.99</td>" in panel.stats_html.value


def test_ci_heatmap_follows_layer_and_theta(panel, data):
    panel.ci_layer.value = "A"
    panel.theta_sliders["A"].value = 1
    ci = panel.ci_source.data["ci"]
    assert len(ci) == N_CLASSES**2 and np.isnan(ci[0])
    np.testing.assert_allclose(
        np.nan_to_num(np.asarray(ci).reshape(4, 4)),
        np.nan_to_num(data["ci"]["A"][1] - np.eye(4)),
        atol=1e-12,
    )
    assert "A, theta 0.9" in panel.ci_fig.title.text
    # one colour scale, [0, 1], for every layer and theta (it followed each heatmap's max)
    assert (panel.ci_mapper.low, panel.ci_mapper.high) == (0, 1)


def test_eps_cpl_histogram_and_auroc(panel, data):
    assert panel.eps_slider.options == (("0.1", 0),) and panel.eps == 0.1
    ref_clean = cpl([data["scores_clean"][k][panel.theta_sliders[k].value] for k in ("A", "B")])
    np.testing.assert_allclose(panel.cpl_clean, ref_clean)
    assert panel.auroc_value == pytest.approx(auroc(panel.cpl_clean, panel.cpl_adv))
    assert panel.auroc_value == 1.0  # the layers agree on clean, disagree on shifted inputs
    hist = panel.hist_source.data
    assert len(hist["clean"]) == len(hist["adversarial"]) == 30
    assert "AUROC" in panel.auroc_html.value


def test_selecting_an_input_shows_answers(panel):
    panel.input_slider.value = 5  # a class-0 input
    info = panel.input_info
    assert info["label"] == "a" and info["dnn"] == "a" and info["layers"]["A"] == "a"
    assert "data:image/png;base64" in panel.input_html.value
    panel.view_toggle.value = "adversarial"
    info = panel.input_info
    assert info["dnn"] == "b" and info["layers"]["A"] == "a" and info["layers"]["B"] == "b"


def test_compute_errors_are_shown(digits_study, data):
    from introspect_widgets.panels import LibraryPanel

    p = LibraryPanel(digits_study)
    assert p.layers_text.value == "CL1, CL2, CL3, CL4, FC"  # the study's layers
    p.eps_text.value = ""
    p.compute_button.click()
    assert p.error is not None and "eps" in p.errors.text
    p.eps_text.value = "0.1"
    p.layers_text.value = "FC"
    p.compute_button.click()
    assert "at least two" in p.errors.text
    # precomputed data needs no study, and then Compute has nothing to compute
    shown = LibraryPanel(data=data)
    assert shown.compute_button.disabled and shown.layers_text.value == "A, B"


def test_what_the_panel_takes():
    from introspect_widgets.panels import LibraryPanel

    with pytest.raises(TypeError, match="introspect.Study"):
        LibraryPanel()
    with pytest.raises(TypeError, match=r"got Sequential.*Study\(model, train="):
        LibraryPanel(torch.nn.Sequential(torch.nn.Flatten()))


def test_compute_goes_through_the_study(digits_study):
    from introspect_widgets.panels import LibraryPanel

    p = LibraryPanel(
        digits_study, layers=("CL3", "FC"), thetas=(0.8, 0.95), eps=(0.1,), n_attack=20,
        nb_iter=5,
    )  # fmt: skip
    p.compute_button.click()
    assert p.error is None, p.errors.text
    d = p.data
    assert d["n_test"] == 200 and len(d["attack_labels"]) == 20
    assert d["images_clean"].shape[0] == 20
    assert set(p.layer_stats) == {"CL3", "FC"} and 0 <= p.auroc_value <= 1
    assert p.input_info["layers"].keys() == {"CL3", "FC"}
    # the numbers are the study's: its libraries and its cached attack
    res = digits_study.library(theta={"CL3": 0.95, "FC": 0.95}, top_k=3, layers=["CL3", "FC"])
    assert d["sizes"]["CL3"][1] == res.stack.sizes_["CL3"]
    assert d["top1"]["FC"][1] == pytest.approx(res.agreement["FC"]["top1"])
    np.testing.assert_allclose(d["ci"]["CL3"][1], res.confusion["CL3"], equal_nan=True)
    att = digits_study.attack("pgd", 0.1, n=20, nb_iter=5, eps_iter=0.01)
    np.testing.assert_array_equal(d["attack_labels"], att.y)
    np.testing.assert_array_equal(d["attack_pred_adv"][0], att.pred_adv)
    np.testing.assert_allclose(d["images_adv"][0], att.x_adv.numpy())
    assert (
        library.explore(digits_study, ["CL3", "FC"], (0.8, 0.95), (0.1,), n=20, nb_iter=5)["sizes"]
        == d["sizes"]
    )


@pytest.mark.slow
def test_explore_notebook_runs_and_detects_the_attack(tmp_path):
    """notebooks/explore/library.ipynb executed headless: the paper's CNN on digits."""
    import json
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    repo = Path(__file__).resolve().parents[1]
    nb = nbformat.read(repo / "notebooks" / "explore" / "library.ipynb", as_version=4)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import json\n"
            "print(json.dumps({'stats': panel.layer_stats, 'auroc': panel.auroc_value,"
            " 'error': panel.error and str(panel.error)}))"
        )
    )
    NotebookClient(nb, timeout=1200, resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = json.loads(nb.cells[-1].outputs[0]["text"])
    assert out["error"] is None
    assert set(out["stats"]) == {"CN1", "CN2", "FC1", "FC2"}
    # the deepest layer's library mostly names the network's answer, and CPL separates
    # clean from PGD inputs better than chance
    assert out["stats"]["FC2"]["top1"] > 0.8
    assert out["auroc"] > 0.6


def test_empty_state_until_there_is_data(digits_study, data):
    from introspect_widgets.panels import LibraryPanel

    panel = LibraryPanel(digits_study)  # nothing computed: a message, no placeholder plots
    assert panel.results_box.empty and "Press Compute" in panel.results_box.text
    panel.set_data(data)  # what Compute ends with
    assert not panel.results_box.empty
    assert LibraryPanel(data=data).results_box.empty is False  # given data: the plots at once
