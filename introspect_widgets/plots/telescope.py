"""Bokeh builders of the functional-telescope figures (Lee & Vijayan 2023)."""

from __future__ import annotations

import numpy as np
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure

from . import colour_bar, grid, layer_colors, legend_outside, stretch

QE_TIP = ("quantization error", "mean cosine distance of an input to its BMU's weights")
D_CLASS_TIP = ("D_class", "mean torus distance (grid units) of a class's BMUs to its centre")
CENTRE_TIP = ("cosine distance", "1 - cos between the weights at two classes' centres")
TORUS_TIP = ("torus distance", "grid units between BMUs on the wrapped-around SOM")


def fig03(data: dict):
    """Cumulative explained variance of the top principal axes, one panel per model."""
    plots = []
    colors = layer_colors(len(data["layers"]))
    for spec in data["models"]:
        p = figure(
            title=spec,
            width=340,
            height=280,
            x_axis_label="principal axis (rank)",
            y_axis_label="cumulative explained variance (fraction)",
            y_range=(0, 1.02),
        )
        for layer, color in zip(data["layers"], colors):
            ev = np.asarray(data["explained"][spec][layer])
            src = ColumnDataSource(
                dict(
                    axis=np.arange(1, len(ev) + 1),
                    ratio=ev,
                    cum=np.cumsum(ev),
                    layer=[layer] * len(ev),
                )
            )
            p.line("axis", "cum", source=src, color=color, line_width=2, legend_label=layer)
            p.scatter("axis", "cum", source=src, color=color, size=4)
        p.add_tools(
            HoverTool(
                tooltips=[
                    ("layer", "@layer"),
                    ("axis", "@axis"),
                    ("ratio", "@ratio{0.000}"),
                    ("cumulative", "@cum{0.000}"),
                    ("", "share of the layer's variance on the first @axis principal axes"),
                ]
            )
        )
        legend_outside(p)
        plots.append(stretch(p))
    return grid(plots, ncols=min(3, len(plots)))


# ---------------------------------------------------------------------------- helpers
def _box_panel(
    title, items, y_label, width=420, height=300, y_range=None, *, x_label="", measure=None
):
    """Box plots from precomputed Tukey stats.

    ``items``: list of (factor, stats, colour[, group]); ``factor`` is a string or a tuple
    (nested categories, e.g. (layer, split)); ``group`` (default: the factor's first level)
    is what the colour means, shown in the legend. ``x_label`` names the factors' levels,
    ``measure`` is a (name, explanation) hover line.
    """
    from bokeh.models import FactorRange

    factors = [item[0] for item in items]
    kw = {} if y_range is None else {"y_range": y_range}
    p = figure(
        title=title,
        x_range=FactorRange(*factors),
        width=width,
        height=height,
        x_axis_label=x_label,
        y_axis_label=y_label,
        **kw,
    )
    keys = ("x", "q1", "q3", "median", "lower", "upper", "mean", "n", "color", "group")
    rows = {k: [] for k in keys}
    out_x, out_y, out_c = [], [], []
    for item in items:
        f, s, c = item[:3]
        if not s or s.get("n", 0) == 0:
            continue
        group = item[3] if len(item) > 3 else (f[0] if isinstance(f, tuple) else f)
        rows["x"].append(f)
        for k in ("q1", "q3", "median", "lower", "upper", "mean", "n"):
            rows[k].append(s[k])
        rows["color"].append(c)
        rows["group"].append(str(group))
        out_x += [f] * len(s.get("outliers", []))
        out_y += list(s.get("outliers", []))
        out_c += [c] * len(s.get("outliers", []))
    src = ColumnDataSource(rows)
    p.segment("x", "upper", "x", "q3", source=src, color="black")
    p.segment("x", "lower", "x", "q1", source=src, color="black")
    r = p.vbar(
        "x", 0.6, "q3", "q1", source=src, fill_color="color", fill_alpha=0.6, line_color="black",
        **({"legend_group": "group"} if len(set(rows["color"])) > 1 else {}),
    )  # fmt: skip
    p.scatter("x", "median", source=src, marker="dash", size=18, color="black", angle=0)
    p.scatter("x", "mean", source=src, marker="diamond", size=6, color="black")
    if out_x:
        p.scatter(
            "x",
            "y",
            source=ColumnDataSource(dict(x=out_x, y=out_y, c=out_c)),
            marker="circle",
            size=4,
            fill_color=None,
            line_color="c",
        )
    p.add_tools(
        HoverTool(
            renderers=[r],
            tooltips=[
                ("", "@x"),
                ("median", "@median{0.0000}"),
                ("q1-q3", "@q1{0.0000} - @q3{0.0000}"),
                ("mean", "@mean{0.0000}"),
                ("n", "@n"),
                ("box", "quartiles; whiskers 1.5 IQR; dash median; diamond mean"),
            ]
            + ([measure] if measure else []),
        )
    )
    p.xaxis.major_label_orientation = 0.8
    p.xgrid.grid_line_color = None
    legend_outside(p)
    return stretch(p)


def _grid_panel(title, m, n, width=260, flip=True):
    """A square panel for an m x n SOM; x = column, y = row (row 0 at the top)."""
    from bokeh.models import Range1d

    # a fixed frame of the map's aspect: a legend below or a bar beside it adds room
    p = figure(
        title=title,
        frame_width=width - 50,
        frame_height=int((width - 50) * m / n),
        x_range=Range1d(-0.5, n - 0.5),
        y_range=Range1d(m - 0.5, -0.5) if flip else Range1d(-0.5, m - 0.5),
        tools="pan,wheel_zoom,reset,save,hover",
        match_aspect=True,
        x_axis_label="SOM column (grid units)",
        y_axis_label="SOM row (grid units)",
    )
    p.grid.grid_line_color = None
    p.axis.axis_label_text_font_size = "8pt"
    return p


# ---------------------------------------------------------------------------- fig02
def fig02(data: dict):
    """One class's BMUs on the SOM (top row) and on the 3x3 unfolded SOM (bottom row)."""
    m, n = data["shape"]
    top, bottom = [], []
    for layer in data["layer_names"]:
        d = data["layers"][layer]
        cnt = np.asarray(d["counts"], float)
        alpha = 0.25 + 0.75 * cnt / cnt.max()
        p = _grid_panel(f"{layer}: BMUs", m, n)
        p.rect(
            "c",
            "r",
            1,
            1,
            source=ColumnDataSource(
                dict(r=d["rows"], c=d["cols"], count=d["counts"], unit=d["units"], a=alpha)
            ),
            fill_color="#0072B2",
            fill_alpha="a",
            line_color=None,
            legend_label="BMU (darker: more inputs)",
        )
        p.scatter(
            [d["centre"][1]],
            [d["centre"][0]],
            marker="x",
            size=14,
            line_width=3,
            color="#D55E00",
            legend_label="centre",
        )
        p.scatter(
            [d["naive_centre"][1]],
            [d["naive_centre"][0]],
            marker="circle",
            size=10,
            fill_color=None,
            line_color="black",
            line_width=2,
            legend_label="plain mean",
        )
        legend_outside(p, place="below")  # keep the map clear
        p.hover.tooltips = [
            ("unit", "@unit"),
            ("row, col", "@r, @c"),
            ("BMU count", "@count"),
            ("", "inputs of the class whose best-matching unit this is"),
        ]
        top.append(p)
        q = _grid_panel(f"{layer}: unfolded (3x3)", 3 * m, 3 * n)
        for k in (1, 2):
            q.line([k * n - 0.5] * 2, [-0.5, 3 * m - 0.5], color="grey", line_dash="dashed")
            q.line([-0.5, 3 * n - 0.5], [k * m - 0.5] * 2, color="grey", line_dash="dashed")
        q.rect(
            "c",
            "r",
            1,
            1,
            source=ColumnDataSource(
                dict(
                    r=d["unfolded_rows"],
                    c=d["unfolded_cols"],
                    count=d["counts"],
                    unit=d["units"],
                    a=alpha,
                )
            ),
            fill_color="#0072B2",
            fill_alpha="a",
            line_color=None,
            legend_label="BMU (9 copies of the torus)",
        )
        uc = d["unfolded_centre"]
        q.scatter(
            [uc[1]], [uc[0]], marker="x", size=14, line_width=3, color="#D55E00",
            legend_label="centre",
        )  # fmt: skip
        legend_outside(q, place="below")
        q.hover.tooltips = [("unit", "@unit"), ("BMU count", "@count")]
        bottom.append(q)
    return grid([top, bottom])


# ---------------------------------------------------------------------------- fig04
def fig04(data: dict):
    """SOM loss curves, one panel per model, one line per layer."""
    colors = layer_colors(len(data["layers"]))
    plots = []
    for spec in data["models"]:
        p = figure(
            title=spec,
            width=380,
            height=280,
            x_axis_label="SOM training step (batches)",
            y_axis_label="quantization error (cosine distance)",
        )
        lines = []
        for layer, color in zip(data["layers"], colors):
            c = data["curves"][spec][layer]
            src = ColumnDataSource(
                dict(step=list(c["step"]), qe=list(c["qe"]), layer=[layer] * len(c["step"]))
            )
            lines.append(
                p.line("step", "qe", source=src, color=color, line_width=2, legend_label=layer)
            )
        p.add_tools(
            HoverTool(
                renderers=lines,
                line_policy="nearest",
                tooltips=[
                    ("layer", "@layer"),
                    ("step", "@step"),
                    ("QE", "@qe{0.0000}"),
                    QE_TIP,
                ],
            )
        )
        legend_outside(p)
        plots.append(stretch(p))
    return grid(plots, ncols=min(3, len(plots)))


# ---------------------------------------------------------------------------- fig05 / figS1
def _density_grid(data: dict):
    from bokeh.models import LinearColorMapper
    from bokeh.palettes import Viridis256

    m, n = data["shape"]
    res = data["resolution"]
    # one scale from 0 for every panel, so the panels compare; 1 / (m n) is a uniform spread
    high = max(
        float(np.max(data["density"][spec][layer]))
        for spec in data["models"]
        for layer in data["layers"]
    )
    mapper = LinearColorMapper(palette=Viridis256, low=0, high=high if high > 0 else 1.0)
    rows = []
    for spec in data["models"]:
        row = []
        for layer in data["layers"]:
            d = np.asarray(data["density"][spec][layer])
            p = figure(
                title=f"{spec} {layer}",
                frame_width=210,
                frame_height=int(210 * m / n),
                x_range=(-0.5, n - 0.5),
                y_range=(m - 0.5, -0.5),
                tools="pan,wheel_zoom,reset,save,hover",
                match_aspect=True,
                x_axis_label="SOM column (grid units)",
                y_axis_label="SOM row (grid units)",
            )
            # row 0 of the density is drawn at the lowest y, which the reversed axis puts on top
            p.image(image=[d], x=-0.5 / res, y=-0.5 / res, dw=n, dh=m, color_mapper=mapper)
            p.hover.tooltips = [
                ("density", "@image{0.00000} per grid unit^2"),
                ("", f"Gaussian KDE of the BMUs on the torus; uniform = {1 / (m * n):.4f}"),
            ]
            # every panel shares the scale; a bar under each keeps the row's maps aligned
            colour_bar(p, mapper, "BMU density per grid unit² (from 0)", place="below")
            p.grid.grid_line_color = None
            p.axis.axis_label_text_font_size = "8pt"
            row.append(p)
        rows.append(row)
    return grid(rows)


def fig05(data: dict):
    """BMU density per model (CL2 by default)."""
    return _density_grid(data)


def figS1(data: dict):
    """BMU density per model and layer."""
    return _density_grid(data)


# ---------------------------------------------------------------------------- fig06 / figS2
def _class_bmus(data: dict):
    m, n = data["shape"]
    colors = {"train": "#0072B2", "val": "#D55E00"}
    rows = []
    first = True
    for layer in data["layers"]:
        row = []
        for c, name in zip(data["classes"], data["class_names"]):
            b = data["bmus"][layer][str(c)]
            p = _grid_panel(f"{layer} class {c} ({name})", m, n, width=200)
            for split, marker in (("train", "square"), ("val", "circle")):
                s = b[split]
                if not s["units"]:
                    continue
                rr, cc = np.divmod(np.asarray(s["units"]), n)
                cnt = np.asarray(s["counts"], float)
                p.scatter(
                    "c",
                    "r",
                    source=ColumnDataSource(
                        dict(r=rr, c=cc, count=s["counts"], size=4 + 10 * np.sqrt(cnt / cnt.max()))
                    ),
                    marker=marker,
                    size="size",
                    fill_color=colors[split] if split == "train" else None,
                    fill_alpha=0.5,
                    line_color=colors[split],
                    line_width=1.5,
                    legend_label="SOM-tr" if split == "train" else "SOM-val",
                )
            ce = b["centre"]
            p.scatter(
                [ce[1]], [ce[0]], marker="x", size=12, line_width=3, color="black",
                legend_label="centre",
            )  # fmt: skip
            p.hover.tooltips = [
                ("row, col", "@r, @c"),
                ("BMU count", "@count"),
                ("", "marker size: inputs of the class with this unit among their top BMUs"),
            ]
            if p.legend:  # one legend, under the first panel; the others share it
                legend_outside(p, font="7pt", place="below", visible=first)
                first = False
            row.append(p)
        rows.append(row)
    return grid(rows)


def fig06(data: dict):
    """Top-k BMUs of a few classes per layer, SOM-tr (squares) and SOM-val (circles)."""
    return _class_bmus(data)


def figS2(data: dict):
    """Fig. 6 for a second model."""
    return _class_bmus(data)


# ---------------------------------------------------------------------------- fig07
def fig07(data: dict):
    """D_class per layer (train, val) and unit-weight cosine distances per layer."""
    colors = layer_colors(len(data["layers"]))
    rows = []
    for spec in data["models"]:
        items = [
            ((layer, split), data["d_class_box"][spec][layer][split], col)
            for layer, col in zip(data["layers"], colors)
            for split in ("train", "val")
        ]
        a = _box_panel(
            f"{spec}: D_class (SOM-tr, SOM-val)", items, "D_class (grid units)",
            x_label="layer, SOM split", measure=D_CLASS_TIP,
        )  # fmt: skip
        items = [
            (layer, data["unit_cosine"][spec][layer], col)
            for layer, col in zip(data["layers"], colors)
        ]
        c = _box_panel(
            f"{spec}: cosine distance between unit weights", items, "cosine distance",
            x_label="layer", measure=("cosine distance", "1 - cos of two units' weight vectors"),
        )  # fmt: skip
        rows.append([a, c])
    return grid(rows)


# ---------------------------------------------------------------------------- fig08
def fig08(data: dict):
    """Class-centre weight distances per layer and model, one panel per SOM size."""
    colors = layer_colors(len(data["models"]))
    plots = []
    for size in data["som_sizes"]:
        items = [
            ((layer, spec), data["distance"][str(size)][spec][layer], col, spec)
            for layer in data["layers"]
            for spec, col in zip(data["models"], colors)
        ]
        plots.append(
            _box_panel(
                f"SOM {size}x{size}", items, "cosine distance", width=460,
                x_label="layer, model", measure=CENTRE_TIP,
            )
        )  # fmt: skip
    return grid(plots, ncols=2)


# ---------------------------------------------------------------------------- fig09
def fig09(data: dict):
    """D_class per layer for each model/dataset: training (A) and test (B) examples."""
    colors = layer_colors(len(data["models"]))
    plots = []
    for split, label in (("train", "training examples"), ("val", "test examples")):
        items = [
            ((layer, spec), data["d_class_box"][spec][layer][split], col, spec)
            for layer in data["layers"]
            for spec, col in zip(data["models"], colors)
        ]
        plots.append(
            _box_panel(
                f"D_class, {label}", items, "D_class (grid units)", width=520,
                x_label="layer, model", measure=D_CLASS_TIP,
            )
        )  # fmt: skip
    return grid(plots, ncols=2)


# ---------------------------------------------------------------------------- fig10
def fig10(data: dict):
    """Class-centre weight distances in the two compared layers, per model."""
    colors = layer_colors(len(data["layers"]))
    items = [
        ((spec, layer), data["distance"][spec][layer], col, layer)
        for spec in data["models"]
        for layer, col in zip(data["layers"], colors)
    ]
    p = _box_panel(
        "cosine distance between class-centre weights",
        items,
        "cosine distance",
        width=max(420, 110 * len(data["models"])),
        x_label="model, layer",
        measure=CENTRE_TIP,
    )
    return p


# ---------------------------------------------------------------------------- fig11
def fig11(data: dict):
    """Clean-vs-perturbed BMU distance per layer: noise vs PGD, per model and eps."""
    colors = {"noise": "#009E73", "pgd": "#D55E00"}
    names = {"noise": "uniform noise", "pgd": "PGD (adversarial)"}
    plots = []
    for spec in data["models"]:
        acc = data["accuracy"][spec]
        for ek, e255 in zip(data["eps"], data["eps_255"]):
            items = [
                ((layer, kind), data["shift"][spec][ek][kind][layer], colors[kind], names[kind])
                for layer in data["layers"]
                for kind in ("noise", "pgd")
            ]
            title = (
                f"{spec}, eps {e255:g}/255: acc clean {acc['clean']:.2f}, "
                f"noise {acc[f'noise@{ek}']:.2f}, PGD {acc[f'pgd@{ek}']:.2f}"
            )
            y_label = f"torus distance (grid units), pairing {data.get('pairing', 'rank')!r}"
            p = _box_panel(
                title, items, y_label, width=460, x_label="layer, perturbation",
                measure=("shift", "torus distance (grid units), clean BMU to perturbed BMU"),
            )  # fmt: skip
            floor = data.get("noise_floor", {}).get(spec)
            if floor:  # the shift the measure reports for a change far below eps
                from bokeh.models import Span

                level = max(floor.values())
                p.add_layout(Span(location=level, dimension="width", line_dash="dashed"))
            plots.append(p)
    return grid(plots, ncols=2)


# ---------------------------------------------------------------------------- figS3
def figS3(data: dict):
    """Distance from BMUs to the label's centre, correct vs incorrect, per layer."""
    colors = {"correct": "#0072B2", "incorrect": "#D55E00"}
    plots = []
    for spec in data["models"]:
        for split in data["splits"]:
            c = data["counts"][spec][split]
            items = [
                ((layer, group), data["distance"][spec][split][layer][group], colors[group], group)
                for layer in data["layers"]
                for group in ("correct", "incorrect")
            ]
            title = f"{spec} {split}: {c['correct']} correct, {c['incorrect']} incorrect"
            plots.append(
                _box_panel(
                    title, items, "torus distance to the label's centre (grid units)",
                    width=440, x_label="layer, answer", measure=TORUS_TIP,
                )
            )  # fmt: skip
    return grid(plots, ncols=2)
