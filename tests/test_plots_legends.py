"""Every plot a reader sees explains itself (issue 15).

Each figure's plot is built from the saved JSON of a quick run (``$INTROSPECT_QUICK_FIGURES``,
default ``/tmp/q1/figures/<id>.json``; a figure without one is skipped) and checked for:
axis labels on every visible axis, a legend where colour encodes categories, a titled
colour bar for every colour-mapped glyph, the confusion index on a fixed [0, 1] scale,
hover tools that explain the measures, and one toolbar per layout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("bokeh")

from bokeh.models import (  # noqa: E402
    Axis,
    ColorBar,
    ColorMapper,
    GlyphRenderer,
    GridPlot,
    HoverTool,
    Image,
    ImageRGBA,
    Legend,
    Plot,
    Rect,
    Text,
)

from introspect.figures import FIGURES  # noqa: E402

FIGURE_DIR = Path(os.environ.get("INTROSPECT_QUICK_FIGURES", "/tmp/q1/figures"))
# colours that mark no category: outlines, medians, backgrounds
NEUTRAL = {"black", "white", "gray", "grey", "lightgrey", "lightgray", None}
# a plot may hide its axes only when it is a small thumbnail (an input image, a tiny map)
THUMBNAIL_WIDTH = 200


def _ids():
    return sorted(FIGURES)


_CACHE: dict = {}


def _layout(fid):
    if fid not in _CACHE:
        path = FIGURE_DIR / f"{fid}.json"
        if not path.exists():
            pytest.skip(f"no saved figure data at {path}")
        from introspect_widgets.plots import build_plot

        _CACHE[fid] = build_plot(fid, json.loads(path.read_text()))
    return _CACHE[fid]


def _plots(layout):
    return list(layout.select({"type": Plot}))


def _glyph_renderers(p):
    return [r for r in p.renderers if isinstance(r, GlyphRenderer)]


def _category_colours(p) -> set:
    """Colours a plot's glyphs use for categories: fixed colours and colour columns
    (not colour-mapped quantities, not text, images or neutral outlines)."""
    out = set()
    for r in _glyph_renderers(p):
        g = r.glyph
        if isinstance(g, (Text, Image, ImageRGBA)):
            continue
        for prop in ("fill_color", "line_color"):
            if prop not in g.properties():
                continue
            v = getattr(g, prop)
            if isinstance(v, dict) or hasattr(v, "field"):
                field = v.get("field") if isinstance(v, dict) else v.field
                transform = v.get("transform") if isinstance(v, dict) else v.transform
                if transform is not None or field is None:
                    continue
                if field in r.data_source.data:
                    out.update(str(c).lower() for c in r.data_source.data[field])
            elif isinstance(v, str) and v in r.data_source.data:  # a bare column name
                out.update(str(c).lower() for c in r.data_source.data[v])
            elif isinstance(v, str):
                out.add(v.lower())
    return out - {str(c) for c in NEUTRAL}


def _legends(p):
    return [m for m in p.select({"type": Legend})]


def _labels(legend) -> set:
    out = set()
    for item in legend.items:
        lab = item.label
        if isinstance(lab, dict):
            lab = lab.get("value", lab.get("field"))
        elif hasattr(lab, "value"):
            lab = lab.value
        out.add(str(lab))
    return out


def _colour_mappers(p):
    """(renderer, mapper) of every glyph whose colour is mapped from a quantity."""
    out = []
    for r in _glyph_renderers(p):
        g = r.glyph
        mapper = getattr(g, "color_mapper", None) if isinstance(g, Image) else None
        if mapper is None:
            for prop in ("fill_color", "line_color"):
                v = getattr(g, prop, None)
                t = v.get("transform") if isinstance(v, dict) else getattr(v, "transform", None)
                if isinstance(t, ColorMapper):
                    mapper = t
                    break
        if mapper is not None:
            out.append((r, mapper))
    return out


@pytest.mark.parametrize("fid", _ids())
def test_every_visible_axis_has_a_label(fid):
    layout = _layout(fid)
    plots = _plots(layout)
    assert plots, f"{fid}: no plots"
    for p in plots:
        axes = [a for a in p.below + p.left + p.above + p.right if isinstance(a, Axis)]
        shown = [a for a in axes if a.visible]
        if not shown:
            small = (p.frame_width or p.width) <= THUMBNAIL_WIDTH  # a colour bar may sit beside
            assert small, f"{fid} {p.title.text!r}: axes hidden on a big plot"
            assert p.title.text, f"{fid}: an unlabelled thumbnail without a title"
            continue
        x = [a for a in shown if a in p.below + p.above]
        y = [a for a in shown if a in p.left + p.right]
        assert x and y, f"{fid} {p.title.text!r}: only one axis shown"
        for a in shown:
            assert a.axis_label, f"{fid} {p.title.text!r}: an axis without a label"


@pytest.mark.parametrize("fid", _ids())
def test_colour_categories_have_a_legend(fid):
    layout = _layout(fid)
    visible = set()
    for p in _plots(layout):
        for lg in _legends(p):
            if lg.visible:
                visible |= _labels(lg)
    for p in _plots(layout):
        colours = _category_colours(p)
        if len(colours) <= 1:
            continue
        legends = [lg for lg in _legends(p) if lg.items]
        assert legends, f"{fid} {p.title.text!r}: {len(colours)} colours and no legend"
        for lg in legends:  # a hidden legend must be shown by another panel of the layout
            if not lg.visible:
                assert _labels(lg) <= visible, f"{fid} {p.title.text!r}: legend hidden"
            else:  # beside the frame, where it covers no data
                assert lg in p.right + p.below + p.above + p.left, f"{fid} {p.title.text!r}"


@pytest.mark.parametrize("fid", _ids())
def test_colour_mapped_glyphs_have_a_titled_colour_bar(fid):
    layout = _layout(fid)
    bars = list(layout.select({"type": ColorBar}))
    for p in _plots(layout):
        for r, mapper in _colour_mappers(p):
            if not isinstance(r.glyph, (Image, Rect)):
                continue
            mine = [b for b in bars if b.color_mapper is mapper]
            assert mine, f"{fid} {p.title.text!r}: a colour-mapped glyph without a colour bar"
            assert all(b.title for b in mine), f"{fid} {p.title.text!r}: colour bar untitled"


def test_confusion_index_is_on_a_fixed_zero_to_one_scale():
    layout = _layout("library.fig3")
    mappers = {id(m): m for p in _plots(layout) for _, m in _colour_mappers(p)}
    assert mappers
    for m in mappers.values():
        assert (m.low, m.high) == (0, 1)


def test_ci_heatmap_scale_is_fixed_for_any_matrix():
    import numpy as np

    from introspect_widgets.plots.library import ci_heatmap

    p = ci_heatmap(np.full((3, 3), 0.2), ["a", "b", "c"])
    (bar,) = p.select({"type": ColorBar})
    assert (bar.color_mapper.low, bar.color_mapper.high) == (0, 1)
    assert "CI" in bar.title


def _tooltip_text(p) -> str:
    texts = []
    for h in p.select({"type": HoverTool}):
        tips = h.tooltips
        texts.append(str(tips) if not isinstance(tips, list) else " ".join(map(str, tips)))
    return " ".join(texts)


@pytest.mark.parametrize(
    "fid, needles",
    [
        ("telescope.fig04", ("quantization error", "cosine distance", "BMU")),
        ("library.fig5", ("CPL", "consisten")),
        ("selfintro.fig2", ("log10 ê", "||y - y_hat||")),
    ],
)
def test_main_plots_explain_their_measure_on_hover(fid, needles):
    layout = _layout(fid)
    plots = _plots(layout)
    texts = [_tooltip_text(p) for p in plots]
    explained = [t for t in texts if all(n in t for n in needles)]
    assert explained, f"{fid}: no hover explains {needles}"
    if fid == "telescope.fig04":  # every model's panel
        assert len(explained) == len(plots)


@pytest.mark.parametrize("fid", _ids())
def test_one_toolbar_per_layout(fid):
    """The plots of a figure share one toolbar (a merged grid toolbar or the only plot's)."""
    layout = _layout(fid)
    own = [p for p in _plots(layout) if p.toolbar_location is not None]
    grids = [g for g in layout.select({"type": GridPlot}) if g.toolbar_location is not None]
    assert len(own) + len(grids) == 1, f"{fid}: {len(own)} plot and {len(grids)} grid toolbars"


@pytest.mark.parametrize("fid", _ids())
def test_plots_fit_a_window(fid):
    """Line, bar and box plots stretch to the width they are given (a notebook column, a
    1280 px window); fixed-size plots (images, maps) are at most 1280 px wide."""
    for p in _plots(_layout(fid)):
        if p.sizing_mode in ("stretch_width", "stretch_both", "scale_width"):
            continue
        assert (p.width or 0) <= 1280, f"{fid} {p.title.text!r}: {p.width} px wide"
        images = [r for r in _glyph_renderers(p) if isinstance(r.glyph, (Image, ImageRGBA))]
        rects = any(isinstance(r.glyph, Rect) for r in _glyph_renderers(p))
        assert images or rects or p.match_aspect, (
            f"{fid} {p.title.text!r}: a fixed-width plot that is not an image or a map"
        )


def test_key_entries_hold_a_row_so_their_swatch_draws():
    """A legend entry whose glyph has no rows drew no swatch in a WebGL plot (the manifold
    panel's "class" and "capped at n-1" stood alone at 1280 px): the key glyphs hold one
    NaN point, which the plot does not draw."""
    from introspect_widgets.plots.manifolds import dims_bar, scatter_plot

    data = dict(
        dim=[3, 5], acc=[0.2, 0.6], name=["a", "b"], n=[10, 4], n_attacked=[10, 4],
        pr=[2.1, 3.3], clean=[0.9, 1.0], color=["#0072B2", "#999999"],
    )  # fmt: skip
    m = dict(
        class_names=["a", "b"], dims=[3, 5], n=[10, 4], participation_ratio=[2.1, 3.3],
        capped=[False, True], threshold=0.95,
    )  # fmt: skip
    for p in (scatter_plot(data, "t")[0], dims_bar(m)):
        entries = {
            str(item.label.value): [len(r.data_source.data["x"]) for r in item.renderers]
            for legend in _legends(p)
            for item in legend.items
            if str(item.label.value) in ("class", "dimension", "capped at n-1")
        }
        assert len(entries) == 2 and all(n == [1] for n in entries.values()), entries
