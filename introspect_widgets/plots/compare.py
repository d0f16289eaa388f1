"""Bokeh builders of the cross-lens figures (issue 11).

Each builder takes what ``introspect.figures.compare_<name>.compute`` returns.
"""

from __future__ import annotations

import numpy as np
from bokeh.models import ColumnDataSource, Div, HoverTool, LinearColorMapper, Span
from bokeh.palettes import RdBu11
from bokeh.plotting import figure

from . import colour_bar, grid, layer_colors, legend_outside, stretch

__all__ = ["detectors", "lenses", "auroc_panel", "roc_plot", "spearman_heatmap", "LENS_DASH"]

LENS_DASH = {
    "library": "solid",
    "selfintro": "dotdash",
    "telescope": "dashed",
    "manifolds": "dotted",
    "baseline": [2, 2],
}
"""Line dash per lens, so lens detectors and baselines read apart at a glance."""


def _nan(values) -> list:
    return [np.nan if v is None else float(v) for v in values]


def auroc_panel(r: dict, attack: str, title: str = "", width=360, height=300, metric="auroc"):
    """AUROC (or ``metric``) vs eps of every detector on one attack, 0.5 as a line.

    Returns ``(figure, sources)``: one ``ColumnDataSource`` per detector named
    ``"<attack>-<detector>"`` with columns ``eps``, ``value``, ``n``, ``success``.
    ``cw`` (no eps) draws each detector as one point at x = 0.
    """
    eps = [0.0 if e is None else float(e) for e in r["eps"][attack]]
    p = figure(
        title=title or attack, width=width, height=height,
        x_axis_label="eps ([0, 1] pixels; cw: none, at 0)",
        y_axis_label=f"{metric.upper()} (clean vs attacked)", y_range=(0, 1.02),
        tools="save,reset,wheel_zoom",
    )  # fmt: skip
    p.add_layout(Span(location=0.5, dimension="width", line_dash="dashed", line_color="gray"))
    colors = layer_colors(len(r["detectors"]))
    sources = {}
    for color, d in zip(colors, r["detectors"]):
        src = ColumnDataSource(
            dict(
                eps=eps, value=_nan(r[metric][attack][d]), n=r["n"][attack],
                success=_nan(r["success_rate"][attack]), detector=[d] * len(eps),
            ),
            name=f"{attack}-{d}",
        )  # fmt: skip
        dash = LENS_DASH.get(r["lens"][d], "solid")
        if len(eps) > 1:  # the dash is the lens (LENS_DASH); one legend entry per detector
            p.line("eps", "value", source=src, color=color, line_dash=dash, line_width=2,
                   legend_label=d)  # fmt: skip
        p.scatter("eps", "value", source=src, color=color, size=6, legend_label=d)
        sources[d] = src
    p.add_tools(HoverTool(tooltips=[("detector", "@detector"), ("eps", "@eps"),
                                    (metric, "@value{0.000}"), ("n pairs", "@n"),
                                    ("success rate", "@success{0.00}"),
                                    (metric, "how well the detector's score tells attacked "
                                             "from clean inputs (0.5: chance)")]))  # fmt: skip
    p.legend.label_text_font_size = "7pt"
    p.legend.click_policy = "hide"
    p.legend.visible = False
    return p, sources


def detectors(data: dict):
    """One panel per attack (AUROC vs eps, a line per detector) for every model; the
    first panel of each model carries the legend (click to hide a detector)."""
    rows = []
    for spec in data["models"]:
        r = data["results"][spec]
        panels = []
        for k, attack in enumerate(a for a in data["attacks"] if a in r["eps"]):
            p, _ = auroc_panel(r, attack, title=f"{spec}: {attack}")
            if k == 0:
                p.legend.visible = True
                legend_outside(p, font="7pt")
            panels.append(stretch(p))
        rows += [panels[s : s + 4] for s in range(0, len(panels), 4)]
    return grid(rows)


def roc_plot(curves: dict, title: str = "ROC", width=360, height=320):
    """ROC curves ``{detector: (fpr, tpr)}``; returns ``(figure, sources)`` with one
    ``ColumnDataSource`` (``fpr``, ``tpr``) per detector."""
    p = figure(title=title, width=width, height=height, x_axis_label="false-positive rate",
               y_axis_label="true-positive rate", x_range=(0, 1), y_range=(0, 1.01),
               tools="save,reset")  # fmt: skip
    p.line([0, 1], [0, 1], line_dash="dashed", color="gray")
    sources = {}
    for color, (d, (f, t)) in zip(layer_colors(len(curves)), curves.items()):
        src = ColumnDataSource(dict(fpr=list(map(float, f)), tpr=list(map(float, t))), name=d)
        p.line("fpr", "tpr", source=src, color=color, line_width=2, legend_label=d)
        sources[d] = src
    if curves:
        legend_outside(p, font="7pt")
    return p, sources


def spearman_heatmap(s: dict, title: str = "", width=370, height=280):
    """Spearman rho between the measures (``{"names", "rho", "p"}``) as a heatmap."""
    names = list(s["names"])
    xs, ys, rho, pv = [], [], [], []
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            xs.append(b)
            ys.append(a)
            rho.append(np.nan if s["rho"][i][j] is None else s["rho"][i][j])
            pv.append(np.nan if s["p"][i][j] is None else s["p"][i][j])
    src = ColumnDataSource(dict(x=xs, y=ys, rho=rho, p=pv, label=[f"{v:+.2f}" for v in rho]))
    p = figure(title=title, width=width, height=height, x_range=names, y_range=names[::-1],
               x_axis_label="measure", y_axis_label="measure",
               tools="save,hover", tooltips=[("", "@y ~ @x"), ("rho", "@rho{+0.00}"),
                                             ("p", "@p{0.000}"),
                                             ("rho", "Spearman rank correlation over the "
                                                     "classes")])  # fmt: skip
    mapper = LinearColorMapper(palette=list(RdBu11)[::-1], low=-1, high=1, nan_color="#eeeeee")
    colour_bar(p, mapper, "rho (-1 to 1)")
    p.rect("x", "y", 1, 1, source=src, fill_color={"field": "rho", "transform": mapper},
           line_color="white")  # fmt: skip
    p.text("x", "y", text="label", source=src, text_align="center", text_baseline="middle",
           text_font_size="8pt")  # fmt: skip
    p.xaxis.major_label_orientation = 0.8
    return p


def lenses(data: dict):
    """Per model: the per-class measures of every layer as lines over the classes (each
    measure in its own panel), and one Spearman heatmap per layer."""
    out = []
    for spec in data["models"]:
        r = data["results"][spec]
        classes = [str(c) for c in r["classes"]]
        colors = layer_colors(len(r["layers"]))
        panels = []
        for m, label in (("d_class", "D_class"), ("agreement", "library agreement"),
                         ("cam_dim", "CAM dimension")):  # fmt: skip
            y_label, tip = LENS_MEASURES[m]
            p = figure(title=f"{spec}: {label}", x_range=classes, width=330, height=240,
                       x_axis_label="class", y_axis_label=y_label,
                       tools="save,hover", tooltips=[("class", "@x"), (label, "@y"),
                                                     ("layer", "@layer"), ("n", "@n"),
                                                     (label, tip)])  # fmt: skip
            for color, layer in zip(colors, r["layers"]):
                pl = r["per_layer"][layer]
                n = pl["cam_n"] if m == "cam_dim" else r["n_test"]
                src = ColumnDataSource(dict(x=classes, y=_nan(pl[m]), layer=[layer] * len(classes),
                                            n=n), name=f"{m}-{layer}")  # fmt: skip
                p.line("x", "y", source=src, color=color, legend_label=layer)
                p.scatter("x", "y", source=src, color=color, size=5)
            legend_outside(p, font="7pt")
            panels.append(stretch(p))
        for m, label in (("error", "mean estimated error"),
                         ("pgd_acc", f"PGD accuracy (eps {r['eps']:g})")):  # fmt: skip
            y_label, tip = LENS_MEASURES[m]
            src = ColumnDataSource(dict(x=classes, y=_nan(r[m]), n=r["n_test"]), name=m)
            p = figure(title=label, x_range=classes, width=330, height=240,
                       x_axis_label="class", y_axis_label=y_label,
                       tools="save,hover", tooltips=[("class", "@x"), (label, "@y"),
                                                     (label, tip)])  # fmt: skip
            p.vbar("x", top="y", width=0.7, source=src, color="#0072B2")
            panels.append(stretch(p))
        heat = [spearman_heatmap(r["spearman"][k], title=f"Spearman rho, {k}") for k in r["layers"]]
        out += [[Div(text=f"<b>{spec}</b>")], panels[:3], panels[3:], heat]
    return grid(out)


LENS_MEASURES = {
    "d_class": (
        "D_class (grid units)",
        "mean torus distance (grid units) of the class's BMUs to its centre on the SOM",
    ),
    "agreement": (
        "library agreement (fraction)",
        "share of the class's inputs where the library's answer is the network's",
    ),
    "cam_dim": (
        "CAM dimension (PCA components)",
        "PCA components to the variance threshold (default 95 %), capped at n-1",
    ),
    "error": (
        "mean ê (½‖y − ŷ‖²)",
        "the error estimator's 1/2||y - y_hat||^2, averaged over the class's test inputs",
    ),
    "pgd_acc": ("PGD accuracy (fraction)", "share of the class's inputs still right under PGD"),
}
"""Axis label and hover explanation of each measure of :func:`lenses`."""
