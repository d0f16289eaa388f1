"""Bokeh builders of the self-introspection figures (Pardo et al. 2022)."""

from __future__ import annotations

import html

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import (
    ColumnDataSource,
    Div,
    HoverTool,
    LinearColorMapper,
    Range1d,
)
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

from introspect.selfintro import default_class_colors

from . import colour_bar, grid, legend_outside, one_toolbar, stretch

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

E_HAT = "log10 ê"
E_HAT_TIP = (
    E_HAT,
    "the error estimator's log10 of 1/2||y - y_hat||^2 (low: the answer is likely right)",
)
E_HAT_BAR = "log10 ê (estimated log10 ½‖y − ŷ‖²)"


def _arrays(d: dict, *keys) -> dict:
    """A shallow copy of ``d`` with ``keys`` as arrays (figure data saved as JSON has lists)."""
    out = dict(d)
    for k in keys:
        if k in out and out[k] is not None:
            out[k] = np.asarray(out[k])
    return out


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
        frame_width=size - 40,
        frame_height=(size if height is None else height) - 40,
        x_range=Range1d(-extent, extent),
        y_range=Range1d(-extent, extent),
        output_backend=output_backend,
        tools=tools,
        match_aspect=True,
    )
    p.xaxis.axis_label, p.yaxis.axis_label = "z1 (InfoVAE code)", "z2 (InfoVAE code)"
    p.axis.axis_label_text_font_size = "8pt"
    return p


def _class_key(p, classes, visible=True, place="right"):
    """A legend of the class colours (empty glyphs: a key, not data), beside the plot."""
    for name, color in zip(classes, class_palette(len(classes))):
        p.scatter([], [], color=color, size=7, legend_label=str(name))
    legend_outside(p, font="7pt", place=place, visible=visible)
    return p


def activation_map(
    z, labels, classes, *, pred=None, title="", size=300, alpha=0.6, point_size=3, p=None,
    legend=True,
):  # fmt: skip
    """Scatter of codes coloured by class; misclassified points (``pred`` given) as crosses.

    The legend (beside the map) has one entry per class (click: hide the class) and, with
    ``pred``, one for the crosses; ``legend=False`` hides it (another panel shows it).
    """
    z = np.asarray(z)
    labels = np.asarray(labels).astype(int)
    pal = class_palette(len(classes))
    p = p if p is not None else _map_figure(title, size)
    answers = labels if pred is None else np.asarray(pred).astype(int)
    ok = answers == labels
    renderers = []
    for k, name in enumerate(classes):
        for mask, marker in ((ok & (labels == k), "circle"), (~ok & (labels == k), "x")):
            if not mask.any():
                continue
            src = ColumnDataSource(
                dict(
                    z1=z[mask, 0],
                    z2=z[mask, 1],
                    color=[pal[k]] * int(mask.sum()),
                    label=[name] * int(mask.sum()),
                    pred=[classes[j] for j in answers[mask]],
                )
            )
            renderers.append(
                p.scatter(
                    "z1",
                    "z2",
                    source=src,
                    color="color",
                    size=point_size if marker == "circle" else point_size + 4,
                    alpha=alpha,
                    marker=marker,
                    line_width=1.5 if marker == "x" else 1,
                    legend_label=str(name),
                )
            )
    if pred is not None and (~ok).any():
        p.scatter([], [], marker="x", color="black", size=point_size + 4,
                  legend_label="x: misclassified")  # fmt: skip
    p.add_tools(HoverTool(renderers=renderers, tooltips=[("label", "@label"), ("answer", "@pred")]))
    legend_outside(p, font="7pt", visible=legend)
    return p


def _surface(p, surface: dict, *, low=None, high=None, with_bar=True, mapper=None, place="below"):
    """The estimated error over the map as an image; ``mapper`` (shared by several maps)
    or a new one from ``low``/``high`` (default: the surface's range)."""
    img = np.asarray(surface["log10_error_hat"])
    e = float(surface["extent"])
    if mapper is None:
        mapper = LinearColorMapper(
            palette=Viridis256,
            low=float(img.min()) if low is None else low,
            high=float(img.max()) if high is None else high,
        )
    r = p.image(image=[img], x=-e, y=-e, dw=2 * e, dh=2 * e, color_mapper=mapper, alpha=0.9)
    p.add_tools(HoverTool(renderers=[r], tooltips=[(E_HAT, "@image{0.00}"), E_HAT_TIP]))
    if with_bar:
        colour_bar(p, mapper, E_HAT_BAR if place == "below" else E_HAT, place=place)
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
    ends = []
    for k, name in enumerate(classes):
        mask = labels == k
        if not mask.any():
            continue
        end = ColumnDataSource(
            dict(
                z1=z[-1, mask, 0],
                z2=z[-1, mask, 1],
                color=[pal[k]] * int(mask.sum()),
                label=[name] * int(mask.sum()),
            )
        )
        ends.append(
            p.scatter("z1", "z2", source=end, color="color", size=5, legend_label=str(name))
        )
    p.add_tools(
        HoverTool(
            renderers=ends,
            tooltips=[("label", "@label"), ("", "end of the code's path (grey: early epochs)")],
        )
    )
    legend_outside(p, visible=False)  # the test map of the first row shows the class key
    return p


def fig2(data: dict):
    """Rows per model: (a) training trajectories, (b) train map, (c) estimated error, (d) test map."""
    rows = []
    keys = ("z", "labels", "pred", "log10_error_hat", "log10_error")
    for n_row, spec in enumerate(data["models"]):
        pn = data["panels"][spec]
        classes = pn["classes"]
        tr, te = _arrays(pn["train"], *keys), _arrays(pn["test"], *keys)
        rec = _arrays(pn["record"], "z", "labels")
        auroc = lambda d: f", AUROC {d['auroc']:.2f}" if "auroc" in d else ""  # noqa: E731
        a = _trajectories(rec, classes, f"(a) {spec}: {len(rec['epochs'])} records", size=240)
        b = activation_map(
            tr["z"], tr["labels"], classes, title=f"(b) train, acc {tr['accuracy']:.3f}",
            size=240, legend=False,
        )  # fmt: skip
        c = _map_figure(f"(c) estimated error{auroc(tr)}", 280)
        # colour range of the estimates at the data, not of the extrapolated corners
        le = np.asarray(tr["log10_error_hat"])
        _surface(c, pn["surface"], low=float(le.min()), high=float(le.max()))
        ok = tr["labels"] == tr["pred"]
        names = np.asarray([str(classes[k]) for k in tr["labels"]])
        answers = np.asarray([str(classes[k]) for k in tr["pred"]])
        err = tr.get("log10_error", tr["log10_error_hat"])
        points = []
        for mask, kw in (
            (ok, dict(size=2, color="white", alpha=0.4, legend_label="right (train)")),
            (~ok, dict(size=7, color="red", marker="x", legend_label="wrong (train)")),
        ):
            src = ColumnDataSource(
                dict(
                    z1=tr["z"][mask, 0], z2=tr["z"][mask, 1], label=names[mask],
                    pred=answers[mask], e_hat=le[mask], e=np.asarray(err)[mask],
                )
            )  # fmt: skip
            points.append(c.scatter("z1", "z2", source=src, **kw))
        c.add_tools(
            HoverTool(
                renderers=points,
                tooltips=[
                    ("label, answer", "@label, @pred"),
                    (E_HAT, "@e_hat{0.00}"),
                    ("log10 e (true)", "@e{0.00}"),
                    E_HAT_TIP,
                ],
            )
        )
        legend_outside(c, font="7pt", place="above")
        d = activation_map(
            te["z"],
            te["labels"],
            classes,
            pred=te["pred"],
            title=f"(d) test, acc {te['accuracy']:.3f}{auroc(te)}",
            size=240,
            legend=n_row == 0,  # one class key (and the crosses) for the whole figure
        )
        rows.append([a, b, c, d])
    return grid(rows)


def _unit_image(title, img_rgb, layers, width=620, classes=None):
    """Units (x) by layers (y) as RGB; ``classes`` adds the class-colour key beside it."""
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
    p.xaxis.axis_label = "unit (index in the layer)"
    p.yaxis.axis_label = "layer"
    if classes is not None:
        _class_key(p, classes)
    return p


def _heat(title, M, layers, low, high, width=300, palette=Viridis256, *, mapper=None,
          what="activation", axes=True):  # fmt: skip
    """Layers (rows) by units as a heatmap on ``mapper`` (or a new one on [low, high])."""
    M = np.asarray(M, dtype=np.float64)  # (layers, units)
    n_layers, n_units = M.shape
    if mapper is None:
        mapper = LinearColorMapper(palette=palette, low=low, high=high)
    p = figure(
        title=title,
        width=width,
        height=max(100, 12 * n_layers + 50),
        x_range=Range1d(0, n_units),
        y_range=Range1d(n_layers, 0),
        tools="save,reset,hover",
        tooltips=[(what, "@image{0.00}")],
        x_axis_label="unit (sorted by preferred class)",
        y_axis_label="layer",
    )
    p.image(image=[M], x=0, y=0, dw=n_units, dh=n_layers, color_mapper=mapper)
    p.yaxis.ticker = list(np.arange(n_layers) + 0.5)
    p.yaxis.major_label_overrides = {float(i + 0.5): str(n) for i, n in enumerate(layers)}
    p.axis.axis_label_text_font_size = "8pt"
    p.axis.major_label_text_font_size = "7pt"
    if not axes:
        p.axis.visible = False
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
        _unit_image("(b) preferred class argmax_k E[h_i|H_k]", cols[asg], layers, classes=classes),
        _unit_image("(c) units sorted by preferred class, then strength", cols[asgr], layers),
        _unit_image("(d) brainbow of the sorted network", bbr, layers),
    )
    E = np.asarray(data["expected_reordered"])  # (K, D)
    widths = data["widths"]
    mapper = LinearColorMapper(palette=Viridis256, low=-1.0, high=1.0)  # each layer scaled to 1
    heat = []
    for k, name in enumerate(classes):
        if len(set(widths)) == 1:
            M = E[k].reshape(len(layers), widths[0])
        else:
            M = _per_layer(
                {n: E[k, sum(widths[:i]) : sum(widths[: i + 1])] for i, n in enumerate(layers)},
                layers,
            )
        heat.append(
            _heat(f"E[h|H_k], k = {name}", M, layers, -1.0, 1.0, width=240, mapper=mapper,
                  what="E[h|H_k]")
        )  # fmt: skip
    for k in range(1, len(heat), 2):  # one bar per row of the grid, on its right
        colour_bar(heat[k], mapper, "E[h|H_k]")  # each layer scaled to max |.| = 1
        heat[k].width += 90
    return one_toolbar(row(top, column(*[row(*heat[s : s + 2]) for s in range(0, len(heat), 2)])))


def fig4(data: dict):
    """Per example: the input (label, answer), its cross on the map, its reordered activations."""
    data = _arrays(data, "z", "images", "log10_error_hat")
    classes = data["classes"]
    layers = data["layers"]
    widths = data["widths"]
    cols = []
    bg = _arrays(data["background"], "z")
    n = 7  # examples per row: 7 x 160 px and the colour bars fit a 1280 px window
    e_map = _surface_mapper(data["surface"])
    a_map = LinearColorMapper(palette=Viridis256, low=-1.0, high=4.0)
    for i in range(len(data["index"])):
        last = i % n == n - 1 or i == len(data["index"]) - 1
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
        _surface(m, data["surface"], with_bar=False, mapper=e_map)
        m.scatter(bg["z"][:, 0], bg["z"][:, 1], size=1, color="white", alpha=0.25)
        m.scatter(
            [data["z"][i, 0]], [data["z"][i, 1]], marker="cross", size=14, color="black",
            line_width=3,
        )  # fmt: skip
        m.toolbar_location = None
        m.axis.visible = False
        m.frame_width = m.frame_height = 150
        acts = np.asarray(data["activations_reordered"][i])
        M = (
            acts.reshape(len(layers), widths[0])
            if len(set(widths)) == 1
            else _per_layer(
                {n: acts[sum(widths[:j]) : sum(widths[: j + 1])] for j, n in enumerate(layers)},
                layers,
            )
        )
        h = _heat("reordered activations", M, layers, -1.0, 4.0, width=160, mapper=a_map,
                  axes=False)  # fmt: skip
        h.toolbar_location = None
        if last:  # the scales are shared: one bar each at the end of a row
            colour_bar(m, e_map, E_HAT)
            colour_bar(h, a_map, "activation")
            h.frame_width = 150
        cols.append(column(img, m, h))
    return one_toolbar(column([row(cols[s : s + n]) for s in range(0, len(cols), n)]))


def _surface_mapper(surface: dict):
    img = np.asarray(surface["log10_error_hat"])
    return LinearColorMapper(palette=Viridis256, low=float(img.min()), high=float(img.max()))


def fig5(data: dict):
    """Per model: the test map, then the noisy copies of the input at each sigma."""
    classes = data["classes"]
    pal = class_palette(len(classes))
    size = 230
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
                    width=size,
                ),
                *header,
            ]
        )
    ]
    for n_row, spec in enumerate(data["models"]):
        p = data["panels"][spec]
        bg = _arrays(p["background"], "z", "labels")
        base = activation_map(
            bg["z"], bg["labels"], classes, title=f"{spec}: test acc {p['test_accuracy']:.3f}",
            size=size, alpha=0.3, point_size=2, legend=False,
        )  # fmt: skip
        panels = [base]
        for i, s in enumerate(data["sigmas"]):
            f = _map_figure(f"sigma {s:.2f}: {p['accuracy'][i]:.2f} right", size)
            f.scatter(bg["z"][:, 0], bg["z"][:, 1], size=2, color="lightgrey", alpha=0.4)
            z = np.asarray(p["z"][i])
            c = np.asarray(p["clean_z"])
            f.segment(
                x0=np.full(len(z), c[0]), y0=np.full(len(z), c[1]), x1=z[:, 0], y1=z[:, 1],
                color="black", alpha=0.15,
            )  # fmt: skip
            preds = np.asarray(p["pred"][i]).astype(int)
            for k in np.unique(preds):  # colour: the class the network answers
                f.scatter(z[preds == k, 0], z[preds == k, 1], size=5, color=pal[k], alpha=0.8,
                          legend_label=str(classes[k]))  # fmt: skip
            f.scatter([c[0]], [c[1]], marker="cross", size=14, color="black", line_width=3,
                      legend_label="clean input")  # fmt: skip
            f.add_tools(HoverTool(tooltips=[("z1, z2", "$x{0.00}, $y{0.00}"),
                                            ("colour", "the network's answer to the noisy copy")]))  # fmt: skip
            legend_outside(f, visible=False)
            panels.append(f)
        if n_row == 0:  # one class key for every map: the answers' colours
            _class_key(panels[-1], classes)
        rows.append(row(panels))
    return one_toolbar(column(rows))


def fig6(data: dict):
    """Per attacked image: the image, and the ten targeted FGSM trajectories on the map."""
    data = _arrays(data, "z", "images", "labels", "index", "success")
    classes = data["classes"]
    pal = class_palette(len(classes))
    bg = _arrays(data["background"], "z")
    e_map = _surface_mapper(data["surface"])
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
        _surface(m, data["surface"], mapper=e_map)
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
        legend_outside(m, font="7pt")
        rows.append(row(img, m))
    return one_toolbar(column(rows))


def fig7(data: dict):
    """Per model: split violins of log10 ê per class (green: correct, red: misclassified)."""
    plots = []
    for spec in data["models"]:
        p = data["panels"][spec]
        levels = np.asarray(p["grid"])
        classes = p["classes"]
        f = figure(
            title=f"{spec}: accuracy {p['accuracy']:.3f}, AUROC {p['auroc']:.3f}",
            width=max(500, 60 * len(classes)),
            height=340,
            x_range=Range1d(-0.7, len(classes) - 0.3),
            y_range=Range1d(levels[0], levels[-1] + 0.12 * (levels[-1] - levels[0])),
            x_axis_label="class (left half: right answers, right half: wrong)",
            y_axis_label="log10 ê (estimated error)",
            tools="save,reset,box_zoom,hover",
            tooltips=[("", "$name"), E_HAT_TIP],
        )
        for k, row_ in enumerate(p["per_class"]):
            for key, sign, color, label in (
                ("correct", -1, "#2ca02c", "right answer"),
                ("wrong", 1, "#d62728", "misclassified"),
            ):
                v = row_[key]
                if v["n"] == 0:
                    continue
                w = 0.42 * np.asarray(v["density"])
                xs = np.concatenate([k + sign * w, np.full(len(levels), k)[::-1]])
                ys = np.concatenate([levels, levels[::-1]])
                f.patch(
                    xs,
                    ys,
                    color=color,
                    alpha=0.55,
                    line_color=color,
                    name=f"{classes[k]} {key} n={v['n']}",
                    legend_label=label,
                )
                f.scatter([k + sign * 0.05], [v["quartiles"][1]], color="black", size=4)
            f.text(
                [k], [levels[-1] + 0.03 * (levels[-1] - levels[0])], text=[f"{100 * row_['sensitivity']:.1f}%"],
                text_align="center", text_font_size="8pt",
            )  # fmt: skip
        f.xaxis.ticker = list(range(len(classes)))
        f.xaxis.major_label_overrides = {i: c for i, c in enumerate(classes)}
        legend_outside(f)
        plots.append(stretch(f))
    return grid([[f] for f in plots])
