"""The cross-lens figures (issue 11) on the session's digits study: compute, plot, claims."""

from __future__ import annotations

import pytest

from introspect.figures import get_figure

SMALL = {
    "small_cnn@digits": dict(
        layers=None, eps=[0.1, 0.3], theta=0.8, top_k=3, som_size=8, n_per_class=20,
        selfintro=dict(vae=dict(hidden=(32,), epochs=4), estimator=dict(hidden=(16,), epochs=4)),
    )
}  # fmt: skip


@pytest.fixture(scope="module")
def small_models(digits_study):
    models = {k: dict(v, layers=list(digits_study.layers)) for k, v in SMALL.items()}
    return models, str(digits_study.workdir.root)


def test_compare_detectors_on_digits(small_models):
    from introspect_widgets.plots import build_plot

    models, work = small_models
    fig = get_figure("compare.detectors")
    data = fig.compute(models=models, attacks=["pgd", "uniform"], n_attack=80, nb_iter=10,
                       eps_iter=0.05, workdir=work)  # fmt: skip
    r = data["results"]["small_cnn@digits"]
    assert r["eps"]["pgd"] == [0.1, 0.3] and len(r["auroc"]["pgd"]["library.cpl"]) == 2
    assert r["success_rate"]["pgd"][1] >= r["success_rate"]["pgd"][0]
    assert all(0 <= v <= 1 for v in r["auroc"]["uniform"]["msp"])
    verdicts = {v["claim"]: v for v in fig.check_claims(data)}
    cpl = next(v for k, v in verdicts.items() if "CPL" in k)
    assert cpl["holds"] is not None and "smallest AUROC" in cpl["numbers"]
    noise = next(v for k, v in verdicts.items() if "noise" in k)
    assert noise["numbers"]["largest |AUROC - 0.5|"] >= 0
    text = fig.summarize(data)
    assert "library.cpl" in text and "Claims (the paper" in text
    layout = build_plot("compare.detectors", data)
    from bokeh.models import ColumnDataSource

    names = {m.name for m in layout.select({"type": ColumnDataSource})}
    assert "pgd-library.cpl" in names and "uniform-vim" in names


def test_compare_lenses_on_digits(small_models, digits_study):
    from introspect_widgets.plots import build_plot

    models, work = small_models
    fig = get_figure("compare.lenses")
    data = fig.compute(models=models, n_attack=80, nb_iter=10, eps_iter=0.05, workdir=work)
    r = data["results"]["small_cnn@digits"]
    K = digits_study.n_classes
    for layer in digits_study.layers:
        m = r["per_layer"][layer]
        assert len(m["d_class"]) == len(m["agreement"]) == len(m["cam_dim"]) == K
        assert all(d is None or 0 <= d < n for d, n in zip(m["cam_dim"], m["cam_n"]))
        s = r["spearman"][layer]
        assert s["names"] == ["d_class", "agreement", "cam_dim", "error", "pgd_acc"]
        assert all(s["rho"][i][i] in (None, pytest.approx(1.0)) for i in range(5))
    assert len(r["error"]) == len(r["pgd_acc"]) == K and r["eps"] == 0.3
    assert len(fig.check_claims(data)) == 3
    build_plot("compare.lenses", data)
