"""Bokeh builders of the library-network figures (Lee 2019)."""

from __future__ import annotations

import numpy as np
from bokeh.models import ColumnDataSource, HoverTool, LinearAxis, LinearColorMapper, Range1d
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

from . import colour_bar, grid, layer_colors, legend_outside, stretch

CPL_TIP = (
    "CPL",
    "consistency of the libraries' predictions: mean cosine similarity of the layers' "
    "score vectors (high: the layers agree, as on clean inputs)",
)
CI_TIP = (
    "CI(d1, d2)",
    "CA(d1, d2) / CA(d1, d1): how strongly the library's answers to d1 also favour d2 "
    "(0 never, 1 as much as d1)",
)

__all__ = [
    "fig2",
    "fig3",
    "fig4",
    "fig5",
    "sweep_plots",
    "ci_heatmap",
    "cpl_histogram",
    "auroc_plot",
    "eps_labels",
    "histogram_data",
]


def sweep_plots(data: dict, width: int = 300, height: int = 260):
    """(A) library size, (B) top-1 and (C) top-3 agreement vs theta, one line per layer.

    Returns the three figures; each layer's line reads ``source`` named ``"sweep-<layer>"``.
    """
    colors = layer_colors(len(data["layers"]))
    panels = [
        ("size", "library size (nodes, log scale)", "log"),
        ("top1", "agreement with the DNN, top-1 (fraction)", "linear"),
        ("top3", "agreement with the DNN, top-3 (fraction)", "linear"),
    ]
    figs = []
    for key, label, scale in panels:
        p = figure(
            width=width,
            height=height,
            x_axis_label="theta (cosine-similarity threshold)",
            y_axis_label=label,
            y_axis_type=scale,
            title={"size": "A", "top1": "B", "top3": "C"}[key],
        )
        if key != "size":
            p.y_range.start, p.y_range.end = 0, 1.02
        for layer, color in zip(data["layers"], colors):
            thetas = data["thetas"][layer]
            src = ColumnDataSource(
                dict(
                    theta=list(thetas),
                    size=[max(s, 1) for s in data["sizes"][layer]],
                    top1=data["top1"][layer],
                    top3=data["top3"][layer],
                    layer=[layer] * len(thetas),
                ),
                name=f"sweep-{layer}",
            )
            p.line("theta", key, source=src, color=color, line_width=2, legend_label=layer)
            p.scatter("theta", key, source=src, color=color, size=5)
        p.add_tools(
            HoverTool(
                tooltips=[
                    ("layer", "@layer"),
                    ("theta", "@theta"),
                    ("size", "@size"),
                    ("top-1", "@top1{0.000}"),
                    ("top-3", "@top3{0.000}"),
                    (
                        "size",
                        "patterns stored: an input is stored when no stored one is within theta",
                    ),
                    ("top-k", "share of inputs whose DNN answer is in the library's top k"),
                ]
            )
        )
        legend_outside(p)
        figs.append(p)
    return figs


def fig2(data: dict):
    """Library size and agreement vs theta (CNN / MNIST)."""
    return grid([[stretch(p) for p in sweep_plots(data)]])


def fig4(data: dict):
    """The same as :func:`fig2` for the ResNet (each block on its own theta range)."""
    return grid([[stretch(p) for p in sweep_plots(data)]])


def ci_heatmap(ci, classes, title: str = "", width: int = 330, height: int = 250):
    """Heatmap of one confusion index matrix; the diagonal (always 1) is left blank.

    Its source (``p.select_one({"name": "ci"})``) holds columns d1, d2 (class names), ci
    and ci_text; the colour mapper is ``p.select_one(LinearColorMapper)``, on the fixed
    scale [0, 1] of CI (so two heatmaps compare), with a titled colour bar.
    """
    ci = np.asarray(ci, dtype=float)
    names = [str(c) for c in classes]
    d1, d2, vals = [], [], []
    for i in range(ci.shape[0]):
        for j in range(ci.shape[1]):
            d1.append(names[i])
            d2.append(names[j])
            vals.append(np.nan if i == j else ci[i, j])
    vals = np.asarray(vals)
    mapper = LinearColorMapper(palette=Viridis256, low=0, high=1, nan_color="#f0f0f0")
    src = ColumnDataSource(
        dict(d1=d1, d2=d2, ci=vals, ci_text=[f"{v:.3f}" if np.isfinite(v) else "-" for v in vals]),
        name="ci",
    )
    p = figure(
        title=title,
        x_range=names,
        y_range=list(reversed(names)),
        width=width,
        height=height,
        x_axis_label="d2 (library's answer)",
        y_axis_label="d1 (true class)",
        tools="hover,save",
        tooltips=[("d1", "@d1"), ("d2", "@d2"), ("CI", "@ci_text"), CI_TIP],
    )
    p.rect(
        "d2",
        "d1",
        1,
        1,
        source=src,
        fill_color={"field": "ci", "transform": mapper},
        line_color=None,
    )
    colour_bar(p, mapper, "CI (0 to 1)")
    p.axis.major_label_text_font_size = "7pt"
    p.xaxis.major_label_orientation = 0.9 if max(len(n) for n in names) > 2 else 0
    return p


def fig3(data: dict):
    """Confusion index matrices, one row per theta, one column per layer."""
    plots = []
    for t in data["thetas"]:
        for layer in data["layers"]:
            plots.append(
                ci_heatmap(data["ci"][t][layer], data["classes"], title=f"{layer}, theta={t}")
            )
    return grid(plots, ncols=len(data["layers"]))


def histogram_data(clean, adversarial, bins: int = 30, density: bool = True) -> dict:
    """Shared-bin histograms of clean and adversarial CPL values: densities, or counts
    with ``density=False``."""
    clean = np.asarray(clean, dtype=float)
    adv = np.asarray(adversarial, dtype=float)
    both = np.r_[clean, adv]
    lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    hc, _ = np.histogram(clean, edges, density=density)
    ha, _ = np.histogram(adv, edges, density=density)
    return dict(left=edges[:-1], right=edges[1:], clean=hc, adversarial=ha)


def cpl_histogram(
    clean,
    adversarial,
    title: str = "",
    bins: int = 30,
    width=340,
    height=280,
    *,
    density: bool = True,
    labels=("clean", "adversarial"),
    alpha=(0.5, 0.5),
    x_axis_label: str = "CPL (mean cosine similarity of the layers' scores)",
    y_axis_label: str | None = None,
    **figure_kwargs,
):
    """Histograms of CPL, clean vs adversarial; source ``p.select_one({"name": "cpl-hist"})``.

    ``density=False`` counts the inputs; ``labels`` and ``alpha`` are the legend labels and
    opacities of the (clean, adversarial) bars; ``figure_kwargs`` go to ``figure`` (e.g.
    ``tools``).
    """
    src = ColumnDataSource(histogram_data(clean, adversarial, bins, density), name="cpl-hist")
    if y_axis_label is None:
        y_axis_label = "density (per unit CPL)" if density else "inputs (count)"
    figure_kwargs.update(x_axis_label=x_axis_label, y_axis_label=y_axis_label)
    p = figure(title=title, width=width, height=height, **figure_kwargs)
    bars = (("clean", "#0072B2"), ("adversarial", "#D55E00"))
    quads = []
    for (top, color), a, label in zip(bars, alpha, labels):
        quads.append(
            p.quad(
                left="left",
                right="right",
                bottom=0,
                top=top,
                source=src,
                alpha=a,
                color=color,
                legend_label=label,
            )
        )
    what = "density" if density else "inputs"
    p.add_tools(
        HoverTool(
            renderers=quads,
            tooltips=[
                ("CPL", "@left{0.000} to @right{0.000}"),
                (f"{labels[0]} {what}", "@clean{0.00}"),
                (f"{labels[1]} {what}", "@adversarial{0.00}"),
                CPL_TIP,
            ],
        )
    )
    legend_outside(p)
    return p


def eps_labels(result: dict) -> list[str]:
    """Each eps of a fig5 result in both units: ``"0.01 px = 0.0437-0.0446 norm"``.

    Pixel eps are the attack's ([0, 1] images); ``eps_normalised`` (``[lo, hi]`` of
    eps / std over the channels) is the same budget in the units of the paper, which
    attacked normalised tensors. Results without it show pixels only.
    """
    norm = result.get("eps_normalised")
    out = []
    for i, eps in enumerate(result["eps"]):
        label = f"{eps:g} px"
        if norm is not None:
            lo, hi = (f"{v:.3g}" for v in norm[i])
            label += f" = {lo if lo == hi else f'{lo}-{hi}'} norm"
        out.append(label)
    return out


def auroc_plot(result: dict, title: str = "", width=340, height=280):
    """AUROC of CPL vs eps, one line per theta set.

    The bottom axis is pixel eps; when the result carries the model's ``input_std``, a top
    axis gives eps / std, the normalised units of the paper (at the mean std over the
    channels, whose range the label names), and the hover shows both.
    """
    eps = [float(e) for e in result["eps"]]
    std = result.get("input_std")
    hi = 1.05 * max(eps) if eps and max(eps) > 0 else 1.0
    p = figure(
        title=title,
        width=width,
        height=height,
        x_axis_label="eps ([0, 1] pixels)",
        y_axis_label="AUROC of CPL (clean vs adversarial)",
        y_range=(0.0, 1.02),
        x_range=Range1d(0.0, hi),
    )
    if std:
        s_mid = float(np.mean(std))
        lo, hi_std = f"{min(std):.3g}", f"{max(std):.3g}"
        spread = lo if lo == hi_std else f"{lo}-{hi_std}, axis at {s_mid:.3g}"
        p.extra_x_ranges = {"normalised": Range1d(0.0, hi / s_mid)}
        p.add_layout(
            LinearAxis(
                x_range_name="normalised", axis_label=f"eps / std (paper's units; std {spread})"
            ),
            "above",
        )
    labels = eps_labels(result)
    for name, color in zip(result["sets"], layer_colors(len(result["sets"]))):
        src = ColumnDataSource(
            dict(eps=eps, auroc=result["auroc"][name], set=[name] * len(eps), units=labels)
        )
        p.line("eps", "auroc", source=src, color=color, line_width=2, legend_label=name)
        p.scatter("eps", "auroc", source=src, color=color, size=5)
    p.add_tools(
        HoverTool(
            tooltips=[
                ("set", "@set"),
                ("eps", "@units"),
                ("AUROC", "@auroc{0.000}"),
                ("", "how well CPL tells clean from adversarial inputs (0.5: chance)"),
            ]
        )
    )
    legend_outside(p)
    return p


def fig5(data: dict):
    """(A) CPL histograms clean vs adversarial (first model, first set, middle eps);
    (B, C, ...) AUROC vs eps per theta set, one panel per model."""
    first = data["models"][0]
    r = data["results"][first]
    s = r["sets"][0]
    i = len(r["eps"]) // 2
    hist = cpl_histogram(
        r["cpl_clean"][s], r["cpl_adv"][s][i], title=f"A: {first}, {s}, eps={eps_labels(r)[i]}"
    )
    curves = [
        auroc_plot(data["results"][m], title=f"{'BCDEFG'[k]}: {m}")
        for k, m in enumerate(data["models"])
    ]
    return grid([[stretch(p) for p in (hist, *curves)]])
