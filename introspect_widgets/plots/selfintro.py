"""Bokeh builders of the self-introspection figures (Pardo et al. 2022)."""

from __future__ import annotations

import html

import numpy as np
from bokeh.layouts import column, gridplot, row
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    Div,
    HoverTool,
    LinearColorMapper,
    Range1d,
)
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

from introspect.selfintro import default_class_colors

__all__ = [
    "class_palette",
    "image_rgba",
    "activation_map",
    "fig2",
    "fig3",
    "fig4",
    "fig5",
    "fig6",
    "fig7",
]

EXTENT = 4.0


def class_palette(n: int) -> list[str]:
    """Hex colours of the classes, the same as the brainbow's (core default)."""
    return [
        "#{:02x}{:02x}{:02x}".format(*(int(round(255 * c)) for c in rgb))
        for rgb in default_class_colors(n)
    ]


def image_rgba(x: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) in [0, 1] -> (H, W) uint32 RGBA, flipped for bokeh's y-up axis."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, -1)
    u8 = (np.clip(a, 0, 1) * 255).astype(np.uint8)
    rgba = np.concatenate([u8, np.full(u8.shape[:2] + (1,), 255, np.uint8)], -1)
    return rgba[::-1].copy().view(np.uint32)[..., 0]


def _rgb_rows_rgba(rgb: np.ndarray) -> np.ndarray:
    """(rows, cols, 3) RGB in [0, 1] -> uint32 image with row 0 at the top."""
    return image_rgba(np.moveaxis(np.asarray(rgb), -1, 0))


def _map_figure(
    title: str,
    size: int = 300,
    extent: float = EXTENT,
    *,
    height: int | None = None,
    tools: str = "pan,wheel_zoom,box_zoom,reset,save",
    output_backend: str = "webgl",
):
    """The activation map's axes: z1 and z2 in [-extent, extent], ``size`` wide (and high
    unless ``height``)."""
    p = figure(
        title=title,
        width=size,
        height=size if height is None else height,
        x_range=Range1d(-extent, extent),
        y_range=Range1d(-extent, extent),
        output_backend=output_backend,
        tools=tools,
        match_aspect=True,
    )
    p.xaxis.axis_label, p.yaxis.axis_label = "z1", "z2"
    return p


def activation_map(
    z, labels, classes, *, pred=None, title="", size=300, alpha=0.6, point_size=3, p=None
):
    """Scatter of codes coloured by class; misclassified points (``pred`` given) as crosses."""
    z = np.asarray(z)
    labels = np.asarray(labels).astype(int)
    pal = class_palette(len(classes))
    p = p if p is not None else _map_figure(title, size)
    ok = np.ones(len(labels), bool) if pred is None else np.asarray(pred) == labels
    for mask, marker in ((ok, "circle"), (~ok, "x")):
        if not mask.any():
            continue
        src = ColumnDataSource(
            dict(
                z1=z[mask, 0],
                z2=z[mask, 1],
                color=[pal[k] for k in labels[mask]],
                label=[classes[k] for k in labels[mask]],
                pred=[classes[k] for k in (labels if pred is None else np.asarray(pred))[mask]],
            )
        )
        p.scatter(
            "z1",
            "z2",
            source=src,
            color="color",
            size=point_size if marker == "circle" else point_size + 4,
            alpha=alpha,
            marker=marker,
            line_width=1.5 if marker == "x" else 1,
        )
    p.add_tools(HoverTool(tooltips=[("label", "@label"), ("answer", "@pred")]))
    return p


def _surface(p, surface: dict, *, low=None, high=None, with_bar=True):
    img = np.asarray(surface["log10_error_hat"])
    e = float(surface["extent"])
    mapper = LinearColorMapper(
        palette=Viridis256,
        low=float(img.min()) if low is None else low,
        high=float(img.max()) if high is None else high,
    )
    p.image(image=[img], x=-e, y=-e, dw=2 * e, dh=2 * e, color_mapper=mapper, alpha=0.9)
    if with_bar:
        p.add_layout(ColorBar(color_mapper=mapper, title="log10 ê", width=8), "right")
    return mapper


def _fade(color: str, t: float) -> str:
    """Grey (t=0) to ``color`` (t=1)."""
    c = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)
    g = np.array([190.0, 190.0, 190.0])
    m = (1 - t) * g + t * c
    return "#{:02x}{:02x}{:02x}".format(*(int(round(v)) for v in m))


def _trajectories(rec: dict, classes, title: str, size=300):
    z = np.asarray(rec["z"])  # (T, N, 2)
    labels = np.asarray(rec["labels"]).astype(int)
    T, N, _ = z.shape
    pal = class_palette(len(classes))
    lo = np.floor(min(z.min(), -EXTENT))
    hi = np.ceil(max(z.max(), EXTENT))
    p = _map_figure(title, size, extent=max(abs(lo), abs(hi)))
    ts = np.repeat(np.arange(T - 1), N)
    ns = np.tile(np.arange(N), T - 1)
    src = ColumnDataSource(
        dict(
            x0=z[ts, ns, 0],
            y0=z[ts, ns, 1],
            x1=z[ts + 1, ns, 0],
            y1=z[ts + 1, ns, 1],
            color=[_fade(pal[labels[n]], (t + 1) / max(T - 1, 1)) for t, n in zip(ts, ns)],
        )
    )
    p.segment("x0", "y0", "x1", "y1", source=src, color="color", line_width=1.2, alpha=0.8)
    end = ColumnDataSource(
        dict(
            z1=z[-1, :, 0],
            z2=z[-1, :, 1],
            color=[pal[k] for k in labels],
            label=[classes[k] for k in labels],
        )
    )
    p.scatter("z1", "z2", source=end, color="color", size=5)
    p.add_tools(HoverTool(tooltips=[("label", "@label")]))
    return p


def fig2(data: dict):
    """Rows per model: (a) training trajectories, (b) train map, (c) estimated error, (d) test map."""
    rows = []
    for spec in data["models"]:
        pn = data["panels"][spec]
        classes = pn["classes"]
        tr, te = pn["train"], pn["test"]
        a = _trajectories(
            pn["record"], classes, f"(a) {spec}: {len(pn['record']['epochs'])} records"
        )
        b = activation_map(
            tr["z"], tr["labels"], classes, title=f"(b) train, acc {tr['accuracy']:.3f}"
        )
        c = _map_figure(f"(c) estimated error, AUROC {tr['auroc']:.2f}", 340)
        # colour range of the estimates at the data, not of the extrapolated corners
        le = np.asarray(tr["log10_error_hat"])
        _surface(c, pn["surface"], low=float(le.min()), high=float(le.max()))
        ok = tr["labels"] == tr["pred"]
        c.scatter(tr["z"][ok, 0], tr["z"][ok, 1], size=2, color="white", alpha=0.4)
        c.scatter(tr["z"][~ok, 0], tr["z"][~ok, 1], size=7, color="red", marker="x")
        d = activation_map(
            te["z"],
            te["labels"],
            classes,
            pred=te["pred"],
            title=f"(d) test, acc {te['accuracy']:.3f}, AUROC {te['auroc']:.2f}",
        )
        rows.append([a, b, c, d])
    return gridplot(rows)


def _unit_image(title, img_rgb, layers, width=620):
    n_layers, n_units, _ = img_rgb.shape
    p = figure(
        title=title,
        width=width,
        height=max(120, 18 * n_layers + 60),
        x_range=Range1d(0, n_units),
        y_range=Range1d(n_layers, 0),
        tools="save,reset,box_zoom",
    )
    # array row 0 is drawn at y = 0, the top of the reversed y range: layer 0 on top
    p.image_rgba(image=[_rgb_rows_rgba(img_rgb)[::-1]], x=0, y=0, dw=n_units, dh=n_layers)
    p.yaxis.ticker = list(np.arange(n_layers) + 0.5)
    p.yaxis.major_label_overrides = {float(i + 0.5): str(n) for i, n in enumerate(layers)}
    p.xaxis.axis_label = "unit"
    return p


def _heat(title, M, layers, low, high, width=300, palette=Viridis256):
    M = np.asarray(M, dtype=np.float64)  # (layers, units)
    n_layers, n_units = M.shape
    mapper = LinearColorMapper(palette=palette, low=low, high=high)
    p = figure(
        title=title,
        width=width,
        height=max(100, 12 * n_layers + 50),
        x_range=Range1d(0, n_units),
        y_range=Range1d(n_layers, 0),
        tools="save,reset,hover",
        tooltips=[("value", "@image{0.00}")],
    )
    p.image(image=[M], x=0, y=0, dw=n_units, dh=n_layers, color_mapper=mapper)
    p.yaxis.visible = False
    return p


def _per_layer(x, layers):
    if isinstance(x, dict):
        width = max(len(v) for v in x.values())
        out = []
        for n in layers:
            v = np.asarray(x[n])
            pad = np.zeros((width - len(v),) + v.shape[1:], v.dtype)
            out.append(np.concatenate([v, pad]))
        return np.stack(out)
    return np.asarray(x)


def fig3(data: dict):
    """(a) brainbow, (b) preferred class, (c) sorted preferred class, (d) sorted brainbow,
    and per class the reordered network's expected activation (each layer normalised to 1)."""
    layers = data["layers"]
    classes = data["classes"]
    cols = np.asarray(default_class_colors(len(classes)))
    bb = _per_layer(data["brainbow"], layers)
    bbr = _per_layer(data["brainbow_reordered"], layers)
    asg = _per_layer(data["assignment"], layers)
    asgr = _per_layer(data["assignment_reordered"], layers)
    top = column(
        _unit_image("(a) brainbow colour of every unit (Eq. 11)", bb, layers),
        _unit_image("(b) preferred class argmax_k E[h_i|H_k]", cols[asg], layers),
        _unit_image("(c) units sorted by preferred class, then strength", cols[asgr], layers),
        _unit_image("(d) brainbow of the sorted network", bbr, layers),
    )
    E = np.asarray(data["expected_reordered"])  # (K, D)
    widths = data["widths"]
    heat = []
    for k, name in enumerate(classes):
        if len(set(widths)) == 1:
            M = E[k].reshape(len(layers), widths[0])
        else:
            M = _per_layer(
                {n: E[k, sum(widths[:i]) : sum(widths[: i + 1])] for i, n in enumerate(layers)},
                layers,
            )
        heat.append(_heat(f"E[h|H_k], k = {name}", M, layers, -1.0, 1.0, width=240))
    return row(top, gridplot(heat, ncols=2))


def fig4(data: dict):
    """Per example: the input (label, answer), its cross on the map, its reordered activations."""
    classes = data["classes"]
    layers = data["layers"]
    widths = data["widths"]
    cols = []
    bg = data["background"]
    for i in range(len(data["index"])):
        lab, pr = int(data["labels"][i]), int(data["pred"][i])
        img = figure(
            title=f"{classes[lab]} -> {classes[pr]}" + ("" if lab == pr else " (wrong)"),
            width=160,
            height=160,
            x_range=Range1d(0, 1),
            y_range=Range1d(0, 1),
            tools="",
            toolbar_location=None,
        )
        img.image_rgba(image=[image_rgba(data["images"][i])], x=0, y=0, dw=1, dh=1)
        img.axis.visible = False
        m = _map_figure(f"log10 ê = {data['log10_error_hat'][i]:.2f}", 160)
        _surface(m, data["surface"], with_bar=False)
        m.scatter(bg["z"][:, 0], bg["z"][:, 1], size=1, color="white", alpha=0.25)
        m.scatter(
            [data["z"][i, 0]], [data["z"][i, 1]], marker="cross", size=14, color="black",
            line_width=3,
        )  # fmt: skip
        m.toolbar_location = None
        m.axis.visible = False
        acts = np.asarray(data["activations_reordered"][i])
        M = (
            acts.reshape(len(layers), widths[0])
            if len(set(widths)) == 1
            else _per_layer(
                {n: acts[sum(widths[:j]) : sum(widths[: j + 1])] for j, n in enumerate(layers)},
                layers,
            )
        )
        h = _heat("reordered activations", M, layers, -1.0, 4.0, width=160)
        h.toolbar_location = None
        cols.append(column(img, m, h))
    n = 10
    return column([row(cols[s : s + n]) for s in range(0, len(cols), n)])


def fig5(data: dict):
    """Per model: the test map, then the noisy copies of the input at each sigma."""
    classes = data["classes"]
    pal = class_palette(len(classes))
    header = [
        figure(
            title=f"sigma = {s:.2f}",
            width=150,
            height=150,
            x_range=Range1d(0, 1),
            y_range=Range1d(0, 1),
            tools="",
            toolbar_location=None,
        )
        for s in data["sigmas"]
    ]
    for f, ex in zip(header, data["examples"]):
        f.image_rgba(image=[image_rgba(ex)], x=0, y=0, dw=1, dh=1)
        f.axis.visible = False
    rows = [
        row(
            [
                Div(
                    text="<b>"
                    + html.escape(f"test sample {data['sample']}, label {data['label']}")
                    + "</b>",
                    width=260,
                ),
                *header,
            ]
        )
    ]
    for spec in data["models"]:
        p = data["panels"][spec]
        bg = p["background"]
        base = activation_map(
            bg["z"], bg["labels"], classes, title=f"{spec}: test acc {p['test_accuracy']:.3f}",
            size=260, alpha=0.3, point_size=2,
        )  # fmt: skip
        panels = [base]
        for i, s in enumerate(data["sigmas"]):
            f = _map_figure(f"sigma {s:.2f}: {p['accuracy'][i]:.2f} right", 260)
            f.scatter(bg["z"][:, 0], bg["z"][:, 1], size=2, color="lightgrey", alpha=0.4)
            z = np.asarray(p["z"][i])
            c = np.asarray(p["clean_z"])
            f.segment(
                x0=np.full(len(z), c[0]), y0=np.full(len(z), c[1]), x1=z[:, 0], y1=z[:, 1],
                color="black", alpha=0.15,
            )  # fmt: skip
            f.scatter(z[:, 0], z[:, 1], size=5, color=[pal[k] for k in p["pred"][i]], alpha=0.8)
            f.scatter([c[0]], [c[1]], marker="cross", size=14, color="black", line_width=3)
            panels.append(f)
        rows.append(row(panels))
    return column(rows)


def fig6(data: dict):
    """Per attacked image: the image, and the ten targeted FGSM trajectories on the map."""
    classes = data["classes"]
    pal = class_palette(len(classes))
    bg = data["background"]
    rows = []
    for i in range(len(data["index"])):
        img = figure(
            title=f"test {int(data['index'][i])}: {classes[int(data['labels'][i])]}",
            width=180,
            height=180,
            x_range=Range1d(0, 1),
            y_range=Range1d(0, 1),
            tools="",
            toolbar_location=None,
        )
        img.image_rgba(image=[image_rgba(data["images"][i])], x=0, y=0, dw=1, dh=1)
        img.axis.visible = False
        m = _map_figure("targeted FGSM trajectories", 380)
        _surface(m, data["surface"], with_bar=False)
        m.scatter(bg["z"][:, 0], bg["z"][:, 1], size=1.5, color="white", alpha=0.3)
        z = np.asarray(data["z"][i])  # (K, steps+1, 2)
        for t in range(len(classes)):
            ok = bool(data["success"][i][t])
            m.line(
                z[t, :, 0], z[t, :, 1], color=pal[t], line_width=2.5 if ok else 1.2,
                line_dash="solid" if ok else "dashed",
                legend_label=f"{classes[t]}{'' if ok else ' (failed)'}",
            )  # fmt: skip
            m.scatter([z[t, -1, 0]], [z[t, -1, 1]], color=pal[t], size=7)
        m.scatter([z[0, 0, 0]], [z[0, 0, 1]], marker="cross", size=16, color="black", line_width=3)
        m.text([z[0, 0, 0]], [z[0, 0, 1]], text=["start"], text_font_size="9pt", y_offset=-8)
        m.legend.label_text_font_size = "7pt"
        m.legend.spacing = 0
        m.legend.padding = 2
        m.add_layout(m.legend[0], "right")
        m.width = 500
        rows.append(row(img, m))
    return column(rows)


def fig7(data: dict):
    """Per model: split violins of log10 ê per class (green: correct, red: misclassified)."""
    plots = []
    for spec in data["models"]:
        p = data["panels"][spec]
        grid = np.asarray(p["grid"])
        classes = p["classes"]
        f = figure(
            title=f"{spec}: accuracy {p['accuracy']:.3f}, AUROC {p['auroc']:.3f}",
            width=max(500, 60 * len(classes)),
            height=340,
            x_range=Range1d(-0.7, len(classes) - 0.3),
            y_range=Range1d(grid[0], grid[-1] + 0.12 * (grid[-1] - grid[0])),
            y_axis_label="log10 ê (estimated error)",
            tools="save,reset,box_zoom,hover",
            tooltips=[("", "@name")],
        )
        for k, row_ in enumerate(p["per_class"]):
            for key, sign, color in (("correct", -1, "#2ca02c"), ("wrong", 1, "#d62728")):
                v = row_[key]
                if v["n"] == 0:
                    continue
                w = 0.42 * np.asarray(v["density"])
                xs = np.concatenate([k + sign * w, np.full(len(grid), k)[::-1]])
                ys = np.concatenate([grid, grid[::-1]])
                f.patch(
                    xs,
                    ys,
                    color=color,
                    alpha=0.55,
                    line_color=color,
                    name=f"{classes[k]} {key} n={v['n']}",
                )
                f.scatter([k + sign * 0.05], [v["quartiles"][1]], color="black", size=4)
            f.text(
                [k], [grid[-1] + 0.03 * (grid[-1] - grid[0])], text=[f"{100 * row_['sensitivity']:.1f}%"],
                text_align="center", text_font_size="8pt",
            )  # fmt: skip
        f.xaxis.ticker = list(range(len(classes)))
        f.xaxis.major_label_overrides = {i: c for i, c in enumerate(classes)}
        plots.append(f)
    return column(plots)
