"""Bokeh builders of the functional-telescope figures (Lee & Vijayan 2023)."""

from __future__ import annotations

import numpy as np
from bokeh.layouts import gridplot
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure

from . import layer_colors


def fig03(data: dict):
    """Cumulative explained variance of the top principal axes, one panel per model."""
    plots = []
    colors = layer_colors(len(data["layers"]))
    for spec in data["models"]:
        p = figure(
            title=spec,
            width=340,
            height=280,
            x_axis_label="principal axis",
            y_axis_label="cumulative explained variance",
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
                ]
            )
        )
        p.legend.location = "bottom_right"
        plots.append(p)
    return gridplot(plots, ncols=min(4, len(plots)))
