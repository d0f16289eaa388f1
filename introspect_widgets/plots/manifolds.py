"""Bokeh builders of the class-activation-manifold figures (Rajesh thesis).

Each builder takes what ``introspect.figures.manifolds_<name>.compute`` returns.
"""

from __future__ import annotations

import numpy as np
from bokeh.models import ColumnDataSource, HoverTool, LabelSet, Span
from bokeh.plotting import figure

from . import grid, layer_colors, legend_outside, stretch

CAPPED = "#999999"
FREE = "#0072B2"


def cam_tip(threshold=None) -> tuple[str, str]:
    """The hover line that says what a CAM dimension is (at ``threshold``, when fixed)."""
    pct = "the threshold" if threshold is None else f"{100 * float(threshold):g} %"
    return ("CAM dimension", f"PCA components to {pct} of the class's variance, capped at n-1")


def _key(p, entries, place="right"):
    """A legend of colours that no glyph of ``p`` carries by itself (a key).

    Each entry's glyph holds one point at NaN, which is not drawn on the plot: a glyph
    with no rows at all drew no swatch in the legend of a WebGL plot (the panel's
    scatter at 1280 px showed "class" and "capped at n-1" with nothing beside them).
    """
    for label, color, marker in entries:
        p.scatter([np.nan], [np.nan], color=color, marker=marker, size=8, legend_label=label)
    legend_outside(p, font="7pt", place=place, hide=False)


__all__ = [
    "dims",
    "robustness",
    "models",
    "adversarial_training",
    "curves_plot",
    "dims_bar",
    "scatter_source_data",
    "scatter_plot",
    "corr_text",
    "fit_line",
]


def _eps_key(e) -> str:
    return format(float(e), "g")


def corr_text(c) -> str:
    """Short correlation label for a title."""
    if c is None:
        return "r undefined (no variation)"
    return (
        f"Pearson r {c['pearson_r']:+.2f} (p {c['pearson_p']:.2g}), "
        f"Spearman {c['spearman_r']:+.2f} (p {c['spearman_p']:.2g}), n {c['n']}"
    )


def _legend_outside(p):
    legend_outside(p)


def curves_plot(m: dict, title: str = "", width=380, height=300, highlight=None):
    """Cumulative explained-variance curve of every class, the threshold as a line.

    ``m`` is ``ClassManifolds.to_dict()``. Returns ``(figure, source)``; the source has
    one row per class with list columns ``xs``/``ys`` (multi_line).
    """
    colors = layer_colors(len(m["classes"]))
    xs = [list(range(1, len(c) + 1)) for c in m["curves"]]
    alpha = [1.0 if highlight is None or i == highlight else 0.25 for i in range(len(m["classes"]))]
    src = ColumnDataSource(
        dict(
            xs=xs,
            ys=[list(c) for c in m["curves"]],
            color=colors,
            alpha=alpha,
            name=[str(n) for n in m["class_names"]],
            dim=list(m["dims"]),
            n=list(m["n"]),
        )
    )
    longest = max((len(c) for c in m["curves"]), default=1)
    p = figure(
        title=title or f"explained variance per class (threshold {m['threshold']:.2f})",
        width=width,
        height=height,
        x_axis_label="principal components (count)",
        y_axis_label="cumulative explained variance (fraction)",
        y_range=(0, 1.02),
        x_range=(0.5, max(2, min(longest, 3 * max(m["dims"], default=1) + 5)) + 0.5),
    )
    p.multi_line(
        "xs", "ys", source=src, line_color="color", line_alpha="alpha", line_width=1.5,
        legend_group="name",
    )  # fmt: skip
    p.add_layout(Span(location=m["threshold"], dimension="width", line_dash="dashed"))
    p.add_tools(
        HoverTool(
            tooltips=[("class", "@name"), ("dim", "@dim"), ("n", "@n"), cam_tip(m["threshold"])]
        )
    )
    legend_outside(p, font="7pt", hide=False)
    return p, src


def dims_bar(m: dict, title: str = "", width=380, height=300):
    """CAM dimension per class as bars; capped classes in grey; n on hover."""
    names = [str(n) for n in m["class_names"]]
    src = ColumnDataSource(
        dict(
            name=names,
            dim=list(m["dims"]),
            n=list(m["n"]),
            pr=[round(v, 2) for v in m["participation_ratio"]],
            capped=["yes" if c else "no" for c in m["capped"]],
            color=[CAPPED if c else FREE for c in m["capped"]],
        )
    )
    p = figure(
        title=title or "CAM dimension per class (grey: capped by n)",
        x_range=names,
        width=width,
        height=height,
        x_axis_label="class",
        y_axis_label="CAM dimension (PCA components)",
    )
    p.vbar(x="name", top="dim", width=0.8, color="color", source=src)
    p.scatter("name", "pr", source=src, color="#D55E00", size=6, legend_label="PR")
    p.xaxis.major_label_orientation = 0.9 if len(names) > 12 else 0
    p.y_range.start = 0
    _key(p, [("dimension", FREE, "square"), ("capped at n-1", CAPPED, "square")])
    p.add_tools(
        HoverTool(
            tooltips=[
                ("class", "@name"),
                ("dim", "@dim"),
                ("n", "@n"),
                ("PR", "@pr"),
                ("capped", "@capped"),
                cam_tip(m["threshold"]),
                ("PR", "participation ratio (sum λ)² / sum λ² of the PCA spectrum"),
            ]
        )
    )
    return p


def dims(data: dict):
    """manifolds.dims: curves and dimension per class, one row per model."""
    rows = []
    for spec in data["models"]:
        m = data["results"][spec]
        curves, _ = curves_plot(m, title=f"{spec}: explained variance per class")
        bars = dims_bar(m, title=f"{spec}: CAM dimension (mean {np.mean(m['dims']):.1f})")
        rows.append([stretch(curves), stretch(bars)])
    return grid(rows)


def scatter_source_data(result: dict, eps_index: int) -> dict:
    """Columns of the dimension-vs-accuracy scatter for one model and one eps."""
    m, rob = result["manifolds"], result["robustness"]
    acc = np.asarray(rob["adv_acc"][eps_index], dtype=float)
    return dict(
        dim=list(m["dims"]),
        acc=acc.tolist(),
        name=[str(n) for n in m["class_names"]],
        n=list(m["n"]),
        n_attacked=list(rob["n"]),
        pr=[round(v, 2) for v in m["participation_ratio"]],
        clean=list(rob["clean_acc"]),
        color=[CAPPED if c else FREE for c in m["capped"]],
    )


def fit_line(x, y) -> dict:
    """End points ``dict(x=[x0, x1], y=[y0, y1])`` of the least-squares line through the
    finite pairs (empty lists with fewer than 2 pairs or constant ``x``)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        return dict(x=[], y=[])
    a, b = np.polyfit(x[ok], y[ok], 1)
    xs = [float(x[ok].min()), float(x[ok].max())]
    return dict(x=xs, y=[a * v + b for v in xs])


def scatter_plot(data: dict, title: str, width=380, height=320, subtitle: str = ""):
    """Dimension (x) vs PGD accuracy (y), one point per class, least-squares line.

    ``subtitle`` (e.g. the r values) is a second title line.
    Returns ``(figure, point_source, line_source, subtitle)``; ``subtitle`` is the bokeh
    ``Title`` model of the second line (update its ``text``).
    """
    from bokeh.models import Title

    src = ColumnDataSource(data)
    line = ColumnDataSource(fit_line(data["dim"], data["acc"]))
    p = figure(
        title=title,
        width=width,
        height=height,
        x_axis_label="CAM dimension (PCA components)",
        y_axis_label="PGD accuracy of the class (fraction)",
        y_range=(-0.03, 1.03),
    )
    p.line("x", "y", source=line, color="#D55E00", line_dash="dashed", legend_label="fit")
    p.scatter("dim", "acc", source=src, size=8, color="color", alpha=0.8)
    p.add_tools(
        HoverTool(
            tooltips=[
                ("class", "@name"),
                ("dim", "@dim (n @n)"),
                ("PR", "@pr"),
                ("PGD acc", "@acc{0.00} (of @n_attacked)"),
                ("clean acc", "@clean{0.00}"),
                cam_tip(),
            ]
        )
    )
    _key(p, [("class", FREE, "circle"), ("capped at n-1", CAPPED, "circle")], place="below")
    p.title.text_font_size = "9pt"
    sub = Title(text=subtitle, text_font_size="8pt", text_font_style="normal")
    p.add_layout(sub, "above")
    return p, src, line, sub


def robustness(data: dict):
    """manifolds.robustness: one scatter per model and eps, r in the title."""
    plots = []
    for spec in data["models"]:
        r = data["results"][spec]
        for j, e in enumerate(r["robustness"]["eps"]):
            p, _, _, _ = scatter_plot(
                scatter_source_data(r, j),
                title=f"{spec}, eps {e:.3g}",
                subtitle=corr_text(r["correlation"][_eps_key(e)]),
            )
            plots.append(stretch(p))
    ncols = max(1, min(3, len(data["eps"])))
    return grid(plots, ncols=ncols)


def _means_plot(data: dict, labels):
    across = data["across"]
    colors = layer_colors(len(data["eps"]))
    p = figure(
        title="mean CAM dimension vs mean PGD accuracy, per model",
        width=420,
        height=320,
        x_axis_label="mean CAM dimension (PCA components)",
        y_axis_label="PGD accuracy (fraction)",
        y_range=(-0.03, 1.03),
    )
    for e, color in zip(data["eps"], colors):
        src = ColumnDataSource(
            dict(
                dim=across["mean_dim"],
                acc=across["adv_accuracy"][_eps_key(e)],
                model=list(labels),
                pr=[round(v, 2) for v in across["mean_pr"]],
                clean=across["clean_accuracy"],
            )
        )
        p.scatter("dim", "acc", source=src, size=10, color=color, legend_label=f"eps {e:.3g}")
        if color == colors[0]:
            p.add_layout(
                LabelSet(
                    x="dim",
                    y="acc",
                    text="model",
                    source=src,
                    x_offset=6,
                    y_offset=4,
                    text_font_size="8pt",
                )
            )
    p.add_tools(
        HoverTool(
            tooltips=[
                ("model", "@model"),
                ("mean dim", "@dim{0.0}"),
                ("mean PR", "@pr"),
                ("PGD acc", "@acc{0.000}"),
                ("clean", "@clean{0.000}"),
                cam_tip(),
            ]
        )
    )
    p.x_range.range_padding = 0.3
    _legend_outside(p)
    return stretch(p)


def _r_bars(data: dict, labels):
    eps = data["eps"]
    labels = [str(v) for v in labels]
    xs, rs, tips = [], [], []
    for spec, label in zip(data["models"], labels):
        for e in eps:
            c = data["results"][spec]["correlation"][_eps_key(e)]
            xs.append((label, f"eps {e:.3g}"))
            rs.append(float("nan") if c is None else c["spearman_r"])
            tips.append(corr_text(c))
    from bokeh.models import FactorRange

    src = ColumnDataSource(
        dict(
            x=xs,
            r=[0.02 if np.isnan(v) else v for v in rs],
            tip=tips,
            color=["#BBBBBB" if np.isnan(v) else FREE for v in rs],
        )
    )
    p = figure(
        title="per-class Spearman r (dimension vs PGD accuracy)",
        x_range=FactorRange(*xs),
        width=max(420, 60 * len(xs)),
        height=320,
        y_range=(-1.05, 1.05),
        x_axis_label="model, eps",
        y_axis_label="Spearman r (per class, -1 to 1)",
    )
    p.vbar(x="x", top="r", width=0.8, source=src, color="color")
    p.xaxis.major_label_orientation = 0.9
    p.add_tools(HoverTool(tooltips=[("", "@x"), ("", "@tip")]))
    _key(p, [("r", FREE, "square"), ("undefined (no variation)", "#BBBBBB", "square")])
    return stretch(p)


def models(data: dict):
    """manifolds.models: per-model means and per-class correlations."""
    labels = data.get("labels") or data["models"]
    return grid([[_means_plot(data, labels), _r_bars(data, labels)]])


def adversarial_training(data: dict):
    """manifolds.adversarial_training: per-class dimension by training, means, accuracy vs eps."""
    labels = [str(v) for v in data["labels"]]
    colors = layer_colors(len(labels))
    first = data["results"][data["models"][0]]["manifolds"]
    names = [str(n) for n in first["class_names"]]
    p = figure(
        title="CAM dimension per class",
        x_range=names,
        width=460,
        height=320,
        x_axis_label="class",
        y_axis_label="CAM dimension (PCA components)",
    )
    for spec, label, color in zip(data["models"], labels, colors):
        m = data["results"][spec]["manifolds"]
        src = ColumnDataSource(
            dict(
                name=[str(n) for n in m["class_names"]],
                dim=m["dims"],
                n=m["n"],
                model=[label] * len(m["dims"]),
            )
        )
        p.line("name", "dim", source=src, color=color, line_width=2, legend_label=label)
        p.scatter("name", "dim", source=src, color=color, size=6)
    p.add_tools(
        HoverTool(
            tooltips=[("model", "@model"), ("class", "@name"), ("dim", "@dim (n @n)"), cam_tip()]
        )
    )
    p.y_range.start = 0
    _legend_outside(p)

    q = figure(
        title="PGD accuracy vs eps",
        width=380,
        height=320,
        x_axis_label="eps ([0, 1] pixels)",
        y_axis_label="PGD accuracy (fraction)",
        y_range=(-0.03, 1.03),
    )
    for spec, label, color in zip(data["models"], labels, colors):
        rob = data["results"][spec]["robustness"]
        src = ColumnDataSource(
            dict(
                eps=[0.0] + list(rob["eps"]),
                acc=[rob["clean_accuracy"]] + list(rob["adv_accuracy"]),
                model=[label] * (len(rob["eps"]) + 1),
            )
        )
        q.line("eps", "acc", source=src, color=color, line_width=2, legend_label=label)
        q.scatter("eps", "acc", source=src, color=color, size=6)
    q.add_tools(HoverTool(tooltips=[("model", "@model"), ("eps", "@eps"), ("acc", "@acc{0.000}")]))
    _legend_outside(q)
    return grid([[stretch(p), stretch(q)], [_means_plot(data, labels), _r_bars(data, labels)]])
