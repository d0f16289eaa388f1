"""Pure bokeh builders: one function per figure, named like the figure.

``introspect_widgets.plots.<paper>.<fig>(data) -> bokeh layout`` takes exactly what
``introspect.figures.<paper>_<fig>.compute`` returns. Every glyph reads a
``ColumnDataSource`` so panels can update plots in place through ``source.data``.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import numpy as np

__all__ = [
    "build_plot",
    "show_plot",
    "save_data",
    "PALETTE",
    "layer_colors",
    "legend_outside",
    "colour_bar",
    "stretch",
    "one_toolbar",
    "grid",
]

# Okabe-Ito (colour-blind safe) followed by Category20 for more classes.
PALETTE = [
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
    "#999999",
    "#882255",
    "#44AA99",
    "#117733",
    "#332288",
    "#AA4499",
    "#88CCEE",
    "#DDCC77",
]


def layer_colors(n: int) -> list[str]:
    """``n`` distinguishable colours (cycled beyond the palette)."""
    return [PALETTE[i % len(PALETTE)] for i in range(n)]


def legend_outside(
    p, *, font: str = "8pt", place: str = "right", hide: bool = True, visible: bool = True
):
    """Move ``p``'s legend beside its frame (``place``), where it covers no data; a click
    on an entry hides its glyphs (``hide``). ``visible=False`` keeps it, hidden and taking
    no room, for a plot whose key another panel of the figure shows. Plots without a
    legend are left alone."""
    if not p.legend:
        return p
    legend = p.legend[0]
    if not visible:
        legend.visible = False
        return p
    legend.visible = True
    legend.label_text_font_size = font
    legend.spacing = 0
    legend.padding = 4
    legend.margin = 4
    legend.glyph_height = legend.glyph_width = 14
    if hide:
        legend.click_policy = "hide"
    if place in ("below", "above"):
        legend.orientation = "horizontal"
    elif len(legend.items) > 20:  # e.g. 100 classes: columns of 20, not one tall strip
        legend.nrows = 20
    p.add_layout(legend, place)
    return p


def colour_bar(p, mapper, title: str, *, place: str = "right", **kw):
    """A colour bar of ``mapper`` titled with what the colour shows and its units.

    Beside the frame (``place="right"``) keep ``title`` short, it sits above the bar; a
    long one goes ``"below"`` the frame, along a horizontal bar.
    """
    from bokeh.models import ColorBar

    kw.setdefault("height" if place in ("below", "above") else "width", 8)
    bar = ColorBar(color_mapper=mapper, title=title, title_text_font_size="8pt", **kw)
    p.add_layout(bar, place)
    return bar


def stretch(p, min_width: int = 200):
    """Let a line, bar or box plot take the width it is given (a notebook column, a 1280 px
    window), keeping its height; images and maps keep their fixed size and aspect."""
    p.sizing_mode = "stretch_width"
    p.min_width = min_width
    return p


def one_toolbar(layout, *, stretch_width: bool | None = None):
    """``layout`` (a plot, a row or column, nested) under one merged toolbar on the right.

    ``stretch_width`` (default: when any plot in it stretches) lets the whole layout take
    the width of its container.
    """
    from bokeh.layouts import gridplot
    from bokeh.models import Plot

    plots = list(layout.select({"type": Plot}))
    if stretch_width is None:
        stretch_width = any(p.sizing_mode == "stretch_width" for p in plots)
    if stretch_width:
        _stretch_containers(layout)
    return gridplot(
        [[layout]],
        toolbar_location="right",
        merge_tools=True,
        sizing_mode="stretch_width" if stretch_width else None,
    )


def grid(children, ncols: int | None = None):
    """``gridplot`` of ``children`` with one merged toolbar on the right; the grid stretches
    to its container's width when any of its plots does."""
    from bokeh.layouts import gridplot
    from bokeh.models import LayoutDOM, Plot

    flat = [c for r in children for c in (r if isinstance(r, list) else [r])]
    plots = [p for c in flat if isinstance(c, LayoutDOM) for p in c.select({"type": Plot})]
    stretchy = any(p.sizing_mode == "stretch_width" for p in plots)
    return gridplot(
        children,
        ncols=ncols,
        toolbar_location="right",
        merge_tools=True,
        sizing_mode="stretch_width" if stretchy else None,
    )


def _stretch_containers(layout):
    """Rows and columns holding a stretching plot stretch too (bokeh sizes from the outside in)."""
    from bokeh.models import Column, GridBox, GridPlot, Row

    for kind in (Row, Column, GridBox, GridPlot):
        for box in layout.select({"type": kind}):
            box.sizing_mode = "stretch_width"
    if isinstance(layout, (Row, Column, GridBox, GridPlot)):
        layout.sizing_mode = "stretch_width"


def build_plot(figure_id: str, data: dict):
    """The bokeh layout of a figure: ``introspect_widgets.plots.<paper>.<name>(data)``."""
    paper, name = figure_id.split(".", 1)
    module = importlib.import_module(f"{__name__}.{paper}")
    builder = getattr(module, name, None)
    if builder is None:
        raise AttributeError(
            f"introspect_widgets.plots.{paper} has no builder {name!r} for {figure_id}."
        )
    return builder(data)


def _resources(page_dir: str | os.PathLike | None = None):
    """Where a page loads BokehJS from.

    ``$INTROSPECT_BOKEH_RESOURCES=inline``: inside the page; ``cdn``: cdn.bokeh.org. Else,
    when ``$INTROSPECT_BOKEH_STATIC`` names a folder holding ``js/bokeh*.min.js`` (``introspect
    reproduce`` copies them into its report), from there by a path relative to the page's
    folder (``page_dir``; the working directory for the notebook itself), so a report folder
    works offline. Otherwise the CDN.
    """
    from bokeh.resources import CDN, INLINE, Resources

    mode = os.environ.get("INTROSPECT_BOKEH_RESOURCES", "").lower()
    if mode == "inline":
        return INLINE
    static = os.environ.get("INTROSPECT_BOKEH_STATIC")
    if mode != "cdn" and static:
        root = os.path.abspath(page_dir if page_dir is not None else os.getcwd())
        return Resources(mode="relative", root_dir=root, base_dir=os.path.abspath(static))
    return CDN


def show_plot(layout, save_to: str | os.PathLike | None = None, title: str = "introspect"):
    """Show a layout in the notebook; optionally save it as a standalone HTML file.

    BokehJS comes from where :func:`_resources` says (the CDN unless configured).
    """
    from bokeh.io import output_notebook, save, show

    output_notebook(resources=_resources(), hide_banner=True)
    show(layout)
    if save_to:
        path = Path(save_to)
        path.parent.mkdir(parents=True, exist_ok=True)
        save(layout, filename=str(path), resources=_resources(path.parent), title=title)
    return layout


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_data(data: dict, path: str | os.PathLike) -> Path:
    """Write a figure's data as JSON (arrays become lists)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(data), default=str))
    return path
