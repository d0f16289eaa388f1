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

__all__ = ["build_plot", "show_plot", "save_data", "PALETTE", "layer_colors"]

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
