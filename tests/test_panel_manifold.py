"""ManifoldPanel driven headless: sliders and menus in, bokeh sources and r values out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from introspect.manifolds import (
    ClasswiseRobustness,
    class_manifold_dims,
    dim_robustness_correlation,
    dimension_at,
)
from introspect_widgets.panels import ManifoldPanel

K_PER_CLASS = [1, 2, 3, 4, 5]  # manifold dimension of each class


def _cloud(variances, n, d, rng):
    basis, _ = np.linalg.qr(rng.standard_normal((d, len(variances))))
    z = rng.standard_normal((n, len(variances))) * np.sqrt(variances)
    return z @ basis.T + 1e-3 * rng.standard_normal((n, d))


def fake_result(acc_by_eps, seed=0, n=80, d=24):
    """An analyse()-shaped result: class c lies on a K_PER_CLASS[c]-dim subspace."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([_cloud(np.ones(k), n, d, rng) for k in K_PER_CLASS])
    y = np.repeat(np.arange(len(K_PER_CLASS)), n)
    m = class_manifold_dims(X, y, class_names=[f"c{c}" for c in range(len(K_PER_CLASS))])
    acc = np.asarray(acc_by_eps, dtype=float)
    rob = ClasswiseRobustness(
        classes=m.classes,
        class_names=m.class_names,
        n=np.full(len(K_PER_CLASS), 20),
        eps=np.array([0.05, 0.1]),
        clean_acc=np.ones(len(K_PER_CLASS)),
        adv_acc=acc,
        adv_acc_given_clean=acc,
        clean_accuracy=1.0,
        adv_accuracy=acc.mean(axis=1),
    )
    return {
        "model": "fake",
        "manifolds": m.to_dict(),
        "robustness": rob.to_dict(),
        "correlation": {},
        "correlation_pr": {},
        "mean_dim": m.mean_dim,
        "mean_pr": float(np.mean(m.participation_ratio)),
    }


ACC_A = [[0.9, 0.8, 0.6, 0.5, 0.1], [0.5, 0.4, 0.3, 0.2, 0.0]]  # falls with dimension
ACC_B = [[0.1, 0.3, 0.2, 0.6, 0.9], [0.0, 0.1, 0.1, 0.3, 0.4]]


@pytest.fixture()
def panel():
    return ManifoldPanel(results={"A": fake_result(ACC_A), "B": fake_result(ACC_B, seed=1)})


def test_scatter_shows_known_dimensions_and_the_correlation(panel):
    assert panel.error is None, panel.errors.text
    assert set(panel._sources) == {"A", "B"}
    _, src, _ = panel._sources["A"]
    assert src.data["dim"] == K_PER_CLASS
    assert panel.eps_slider.options == (("0.05", 0), ("0.1", 1))
    assert panel.eps_slider.label == panel.eps_readout == "0.1" and panel.eps == 0.1
    np.testing.assert_allclose(src.data["acc"], ACC_A[1])
    assert panel.correlations["A"]["spearman_r"] == pytest.approx(-1.0)
    ref = dim_robustness_correlation(K_PER_CLASS, ACC_B[1])
    assert panel.correlations["B"]["pearson_r"] == pytest.approx(ref["pearson_r"])
    assert "Spearman -1.00" in panel._subtitles["A"].text
    assert src.data["name"][0] == "c0" and src.data["n"] == [80] * 5


def test_eps_slider_updates_points_and_r(panel):
    panel.eps_slider.value = 0  # the index of 0.05
    _, src, line = panel._sources["B"]
    np.testing.assert_allclose(src.data["acc"], ACC_B[0])
    ref = dim_robustness_correlation(K_PER_CLASS, ACC_B[0])
    assert panel.correlations["B"]["spearman_r"] == pytest.approx(ref["spearman_r"])
    assert "eps 0.05" in panel._sources["B"][0].title.text
    assert f"Spearman {ref['spearman_r']:+.2f}" in panel._subtitles["B"].text
    assert len(line.data["x"]) == 2
    assert panel.error is None


def test_threshold_slider_reapplies_the_stored_curves(panel):
    panel.threshold_slider.value = 0.6
    curves = panel.results["A"]["manifolds"]["curves"]
    expected = [dimension_at(c, 0.6) for c in curves]
    _, src, _ = panel._sources["A"]
    assert src.data["dim"] == expected
    assert expected != K_PER_CLASS  # 0.6 of 5 equal axes needs 3, not 5
    assert panel.dims["A"].tolist() == expected
    assert panel.threshold_span.location == pytest.approx(0.6)
    assert "threshold 0.60" in panel._sources["A"][0].title.text


def test_class_menu_draws_that_class_curve_for_each_model(panel):
    panel.class_select.value = 3
    data = panel.curve_source.data
    assert data["model"] == ["A", "B"]
    np.testing.assert_allclose(data["ys"][0], panel.results["A"]["manifolds"]["curves"][3])
    assert data["ys"][0][3] == pytest.approx(1.0, abs=1e-4)  # 4 equal axes: 4 components
    assert "class c3" in panel.curve_figure.title.text
    assert "A: 4" in panel.curve_figure.title.text


def test_compute_without_models_shows_an_error(digits_study):
    p = ManifoldPanel(digits_study)
    p.model_select.value = ()
    p.compute_button.click()
    assert isinstance(p.error, ValueError) and "select at least one model" in p.errors.text


def test_what_the_panel_takes(digits_study):
    with pytest.raises(TypeError, match="introspect.Study"):
        ManifoldPanel()
    with pytest.raises(TypeError, match="got Linear"):
        ManifoldPanel(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="got Linear"):
        ManifoldPanel({"normal": digits_study, "robust": torch.nn.Linear(2, 2)})
    p = ManifoldPanel({"normal": digits_study, "again": digits_study})
    assert p.model_select.options == ("normal", "again")
    assert ManifoldPanel([digits_study]).model_select.options == ("small_cnn@digits",)


def test_compute_goes_through_study_manifolds(digits_study, tmp_path):
    random = "small_cnn_random@digits"  # untrained: no training in tests
    p = ManifoldPanel(
        {"trained": digits_study, "random": random},
        eps=(0.05,),
        n=40,
        nb_iter=2,
        workdir=str(tmp_path),
        n_per_class=20,
        n_thumbnails=2,
    )
    assert p.studies["random"].recipe == random  # a recipe name went through from_recipe
    p.compute_button.click()
    assert p.error is None, p.errors.text
    r = p.results["trained"]
    assert r["manifolds"]["n"] == [20] * 10 and sum(r["robustness"]["n"]) == 40
    ref = digits_study.manifolds("penultimate", "test", eps=[0.05], n=40, nb_iter=2)
    assert r["manifolds"]["dims"] == [int(v) for v in ref.manifolds.dims]
    np.testing.assert_allclose(r["robustness"]["adv_acc"], ref.robustness.adv_acc)
    _, src, _ = p._sources["trained"]
    assert src.data["dim"] == r["manifolds"]["dims"]
    assert src.data["img"][0].startswith("data:image/png;base64,")
    # 20 images per class on a 64-wide penultimate layer: dimensions above 9.5 are capped
    capped = [d > 0.5 * 19 for d in src.data["dim"]]
    assert src.data["color"] == ["#999999" if c else "#0072B2" for c in capped]
    assert set(p._sources) == {"trained", "random"}
    assert "mean dim" in p.status.value


def test_models_on_different_classes_are_refused():
    a, b = fake_result(ACC_A), fake_result(ACC_B, seed=1)
    b["manifolds"]["classes"] = [5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match="different classes"):
        ManifoldPanel(results={"A": a, "B": b})


def test_precomputed_results_show_plots_not_the_empty_state(panel):
    assert panel.empty_state not in panel.view_box.children
    assert len(panel.view_box.children) == 1


def test_one_toolbar_for_the_scatters_and_the_curves(panel):
    from bokeh.models import GridPlot, Plot

    layout = panel.bokeh_layout
    own = [p for p in layout.select({"type": Plot}) if p.toolbar_location is not None]
    grids = [g for g in layout.select({"type": GridPlot}) if g.toolbar_location is not None]
    assert len(own) + len(grids) == 1
