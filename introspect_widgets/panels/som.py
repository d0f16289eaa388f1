"""SOMPanel: a study's toroidal SOM of one layer's codes (``Study.telescope``), explored."""

from __future__ import annotations

import html
import threading
import time

import ipywidgets as W
import numpy as np
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from introspect import telescope

from ..plots.images import thumbnail_tag
from ..widgets import GridView
from ._base import (
    Panel,
    as_study,
    bokeh_widget,
    hold_sync,
)
from ._empty import EmptyState

__all__ = ["SOMPanel"]

COLOR_BY = ("density", "class", "u-matrix")
_COLORMAPS = {"density": "viridis", "class": "tab10", "u-matrix": "greys"}
# the paper's names of the inputs a SOM was fitted on and of the held-out ones
_SPLIT_LABELS = {"train": "SOM-tr", "test": "SOM-val"}


class SOMPanel(Panel):
    """A toroidal SOM over the vector codes of one layer of a study, and its map.

    **Train** calls ``study.telescope(layer, size, epochs=..., batch_size=..., sigma=...,
    alpha=..., top_k=...)`` (the paper's rule: cosine distance, periodic torus,
    exponential decay; fitted on the training split's codes and cached in the study's
    workdir) and shows its loss curve (the batch quantization error). The map is a
    :class:`~introspect_widgets.widgets.GridView` coloured by the BMU density, the
    majority class of the units or the U-matrix
    (:func:`introspect.telescope.unit_class_counts`, :func:`~introspect.telescope.u_matrix`).
    Clicking a unit lists the inputs mapped to it (``panel.selected_indices``, with
    thumbnails) and their class mix. The class selector outlines the class's top-k BMUs
    (SOM-tr: the training split, SOM-val: the test split) and writes ``C`` on its centre
    unit (the centres of the training split, ``TelescopeResult.centres``).

    Parameters
    ----------
    study : Study or str
        A :class:`introspect.Study`, or a recipe name made one by
        :meth:`introspect.Study.from_recipe` (with ``workdir``, ``device``, ``data_root``,
        ``n_per_class``).
    layer : str, optional
        Initial layer, one of ``study.layers`` (default: the last, as ``Study.telescope``).
    size, epochs, batch_size, sigma, alpha, top_k, seed
        Initial settings of ``Study.telescope``. The defaults (10x10, 100 epochs of batches
        of 10, sigma 3, alpha 1) suit a few hundred training codes: on the explore
        notebook's 300 digits (CL4 of the small CNN) about 58 % of the units are the BMU
        of a training input (70 % of a test input), in about 1.5 s on a CPU. The paper's
        settings (20, 5, 10, 10.0, 0.1, top-10) were made for 50,000 images: 5 epochs are
        25,000 steps there but 150 here, too few to unfold the map, which then left ~90 %
        of its units empty (every class on one or two units).
    max_thumbnails : int
        Thumbnails shown for a clicked unit.
    update_interval : float
        Seconds between two live updates of the loss curve while
        training (default 0.25: 4 a second; the last step is always shown). Each update
        sends the curve's new points in one message. Sending every step made a fit in the
        browser several times slower than headless (the browser redraws per message and
        competes for the cores); at 10 a second a 2 s fit still took ~1.3-1.5x on 2 busy
        cores, at 4 ~1.2-1.4x.
    """

    def __init__(
        self,
        study,
        *,
        layer: str | None = None,
        size: int = 10,
        epochs: int = 100,
        batch_size: int = 10,
        sigma: float = 3.0,
        alpha: float = 1.0,
        top_k: int = 10,
        seed: int = 0,
        max_thumbnails: int = 16,
        update_interval: float = 0.25,
        workdir: str = "introspect-work",
        device: str = "cpu",
        data_root: str | None = None,
        n_per_class: int | None = None,
    ):
        super().__init__(title="Toroidal SOM of a layer's codes")
        self.study = as_study(
            study, "SOMPanel", workdir=workdir, device=device, data_root=data_root,
            n_per_class=n_per_class,
        )  # fmt: skip
        self.layers = list(self.study.layers)
        if layer is not None and layer not in self.layers:
            raise ValueError(f"layer {layer!r} is not one of the study's layers {self.layers}.")
        self.classes = list(self.study.classes)
        self.seed, self.max_thumbnails = int(seed), int(max_thumbnails)
        self.result = None  # TelescopeResult
        self.som = None
        self.bmus: dict[str, np.ndarray] = {}
        self.labels: dict[str, np.ndarray] = {}
        self.selected_indices = np.zeros(0, dtype=np.int64)

        style = {"description_width": "70px"}
        small = W.Layout(width="150px")
        self.layer_select = W.Dropdown(
            options=self.layers,
            value=layer if layer is not None else self.layers[-1],
            description="layer",
            style=style,
        )
        self.size = W.BoundedIntText(
            value=size, min=2, max=100, description="size", style=style, layout=small
        )
        self.epochs = W.BoundedIntText(
            value=epochs, min=1, max=1000, description="epochs", style=style, layout=small
        )
        self.batch = W.BoundedIntText(
            value=batch_size, min=1, max=100_000, description="batch", style=style, layout=small
        )
        self.sigma = W.BoundedFloatText(
            value=sigma, min=0.01, max=1e3, description="sigma", style=style, layout=small
        )
        self.alpha = W.BoundedFloatText(
            value=alpha, min=1e-6, max=10.0, description="alpha", style=style, layout=small
        )
        self.top_k = W.BoundedIntText(
            value=top_k, min=1, max=100, description="top-k", style=style, layout=small
        )
        self.train_button = self.button("Train", self.train, button_style="primary")
        self.update_interval = float(update_interval)
        self.n_updates = 0  # live curve updates sent by the last training (the task line
        # has its own throttle: introspect.progress.Tracker at 4 a second)
        self.train_seconds: float | None = None  # of the last study.telescope call
        self._tick_lock = threading.Lock()
        self._last_tick = -float("inf")

        # loss curve (bokeh, updated in place)
        self.loss_source = ColumnDataSource(dict(step=[], qe=[]), name="loss")
        self.loss_fig = figure(
            title="SOM loss (batch quantization error)",
            width=420,
            height=220,
            x_axis_label="step",
            y_axis_label="QE",
            tools="pan,wheel_zoom,reset,save",
            toolbar_location="above",  # beside it, the toolbar pushed the plot into the map
        )
        self.loss_fig.line("step", "qe", source=self.loss_source, line_width=2)
        self.loss_view = bokeh_widget(self.loss_fig)
        # before the first Train: a message, not an empty plot (the curve shows at its
        # first streamed point)
        self.loss_box = EmptyState(
            self.loss_view,
            "Press Train to fit the SOM: its loss curve (batch quantization error per step) "
            "draws here as it trains.",
            sources=[self.loss_source],
            width=420,
        )

        # the map
        buttons = {**style, "button_width": "76px"}  # three in a row beside the settings
        self.color_by = W.ToggleButtons(
            options=list(COLOR_BY), value="density", description="colour", style=buttons
        )
        splits = list(self.study.datasets)
        self.split_select = W.ToggleButtons(
            options=[(_SPLIT_LABELS.get(s, s), s) for s in splits],
            value=splits[0],
            description="inputs",
            style=buttons,
        )
        self.class_select = W.Dropdown(
            options=[("(none)", -1)] + [(f"{i}: {c}", i) for i, c in enumerate(self.classes)],
            value=-1,
            description="class",
            style=style,
        )
        self.grid = GridView(cell_size=22, title="")
        self.unit_info = W.HTML(
            value="<i>train a SOM, then click a unit</i>",
            layout=W.Layout(flex="1 1 120px", min_width="120px", margin="0 0 0 6px"),
        )

        self.observe(self.color_by, self._on_view_change)
        self.observe(self.split_select, self._on_view_change)
        self.observe(self.class_select, self._on_view_change)
        self.observe(self.grid, self._on_select, names="selected")
        self.observe(self.layer_select, self._on_layer)

        settings = W.VBox(
            [
                self.layer_select,
                W.HBox([self.size, self.epochs, self.batch]),
                W.HBox([self.sigma, self.alpha, self.top_k]),
                self.train_button,
                self.loss_box,
            ]
        )
        self.map_box = EmptyState(
            W.VBox(
                [
                    self.color_by,
                    self.split_select,
                    self.class_select,
                    W.HBox([self.grid, self.unit_info], layout=W.Layout(flex_flow="row wrap")),
                ]
            ),
            self._empty_text(self.layer_select.value),
            width=420,
        )
        # the settings keep their width (the map shrank them under itself at 1280 px); the
        # map takes the rest, or wraps below them in a narrow notebook
        settings.layout = W.Layout(flex="0 0 auto", margin="0 12px 0 0")
        self.map_box.layout = W.Layout(flex="1 1 300px", min_width="0")
        self.children = [W.HBox([settings, self.map_box], layout=W.Layout(flex_flow="row wrap"))]

    def _empty_text(self, layer: str) -> str:
        return (
            f"Press Train to fit a SOM on the codes of {layer}. The map shows here: units "
            "coloured by density, class or U-matrix; click a unit to see its inputs."
        )

    # ------------------------------------------------------------------ training
    @property
    def shape(self) -> tuple[int, int]:
        if self.som is None:
            raise RuntimeError("no SOM yet: click Train (or call panel.train()).")
        return self.som.shape

    def train(self):
        """``study.telescope`` of the chosen layer with the panel's settings; shows the map."""
        layer = self.layer_select.value

        def body():
            self.loss_source.data = dict(step=[], qe=[])
            self._last_tick, self.n_updates = -float("inf"), 0
            t0 = time.perf_counter()
            result = self.study.telescope(
                layer,
                int(self.size.value),
                epochs=int(self.epochs.value),
                batch_size=int(self.batch.value),
                sigma=float(self.sigma.value),
                alpha=float(self.alpha.value),
                top_k=int(self.top_k.value),
                seed=self.seed,
                callback=self._on_progress,
            )
            self.train_seconds = time.perf_counter() - t0
            self._use(result)
            som = result.som
            qe = np.asarray(som.history_["qe"])
            fit_split = next(iter(self.study.datasets))
            fit_split = "train" if "train" in self.study.datasets else fit_split
            X = self.study.capture("codes", fit_split, layers=[layer]).layer(layer)
            self.set_status(
                f"{layer}: {som.m}x{som.n} SOM, {som.n_steps_} steps, final QE "
                f"{qe[-min(len(qe), 50) :].mean():.4f}, "
                f"topographic error {som.topographic_error(np.asarray(X, dtype=np.float32)):.3f}"
                f" ({self.train_seconds:.2f} s)"
            )

        def guarded_body():
            try:
                body()
            except BaseException:
                if self.result is not None:  # a failed or cancelled fit: the map shown stays,
                    qe = self.som.history_["qe"]  # with its own loss curve
                    with self._tick_lock:
                        self.loss_source.data = dict(step=list(range(len(qe))), qe=list(qe))
                raise

        self.run_task(f"training a SOM on {layer}", guarded_body, self.train_button)
        return self.result if self._finished_ok() else None

    def _on_progress(self, step: int, n_steps: int, history: dict) -> None:
        """The fit's callback: the curve's new points, <= 1 / update_interval Hz.

        Safe to call from a worker thread: one update at a time, and ``history["qe"]`` is
        copied before it is read (the fit may replace it meanwhile).
        """
        now = time.perf_counter()
        with self._tick_lock:
            if step < n_steps and now - self._last_tick < self.update_interval:
                return
            self._last_tick = now
            self.n_updates += 1
            qe = list(history["qe"])
            start = len(self.loss_source.data["step"])
            if len(qe) > start:  # the points since the last tick, in one message
                self.loss_source.stream(dict(step=list(range(start, len(qe))), qe=qe[start:]))

    def _use(self, result) -> None:
        self.result, self.som = result, result.som
        self.bmus = dict(result.bmus)
        self.labels = {k: np.asarray(v) for k, v in result.labels.items()}
        qe = self.som.history_["qe"]
        # the whole curve once more at the end, in one message: a live patch that a busy
        # browser dropped (seen under load: a straight segment where 250 steps were) is
        # filled in, and the plot then holds exactly the map's history
        with self._tick_lock:
            self.loss_source.data = dict(step=list(range(len(qe))), qe=list(qe))
        self.grid.selected = []
        self._render()

    def _on_layer(self, change) -> None:
        # a SOM belongs to one layer: drop it, the user trains again
        self.result, self.som, self.bmus, self.labels = None, None, {}, {}
        self.grid.set_grid(np.zeros((0, 0)), marks=[], selected=[])
        self.unit_info.value = f"<i>train a SOM on {html.escape(change['new'])}</i>"
        self.map_box.show_empty(self._empty_text(change["new"]))

    # ------------------------------------------------------------------ the map
    def unit_counts(self, split: str | None = None) -> np.ndarray:
        """(m, n, n_classes) top-1 BMU counts per class of a split's inputs."""
        split = split or self.split_select.value
        return telescope.unit_class_counts(
            self.bmus[split], self.labels[split], self.shape, n_classes=len(self.classes)
        )

    def unit_values(self, color_by: str | None = None) -> np.ndarray:
        """The (m, n) values the map is coloured by."""
        color_by = color_by or self.color_by.value
        if color_by == "density":
            return self.unit_counts().sum(-1).astype(float)
        if color_by == "class":
            return telescope.unit_majority_class(self.unit_counts())
        if color_by == "u-matrix":
            return telescope.u_matrix(self.som.weights_, self.shape, metric=self.som.metric)
        raise ValueError(f"color_by must be one of {COLOR_BY}, got {color_by!r}.")

    def _split_label(self, split: str) -> str:
        return _SPLIT_LABELS.get(split, split)

    def _render(self) -> None:
        if self.som is None:
            return
        m, n = self.shape
        split = self.split_select.value
        counts = self.unit_counts(split)
        tips = np.empty((m, n), dtype=object)
        for r in range(m):
            for c in range(n):
                mix = counts[r, c]
                top = ", ".join(
                    f"{self.classes[i]}: {mix[i]}" for i in np.argsort(-mix, kind="stable")[:3]
                    if mix[i]
                )  # fmt: skip
                tips[r, c] = f"unit {r * n + c} ({r}, {c}): {mix.sum()} inputs" + (
                    f"; {top}" if top else ""
                )
        text = np.full((m, n), "", dtype=object)
        marks = []
        cls = self.class_select.value
        if cls is not None and cls >= 0:
            units = np.unique(self.bmus[split][self.labels[split] == cls].ravel())
            marks = [list(divmod(int(u), n)) for u in units]
            centre = self.result.centres[[cls]]
            if np.all(np.isfinite(centre)):
                cu = int(telescope.centre_units(centre, (m, n))[0])
                text[divmod(cu, n)] = "C"
        self.grid.set_grid(
            self.unit_values(),
            labels=tips,
            text=text,
            marks=marks,
            colormap=_COLORMAPS[self.color_by.value],
            title=f"{self.layer_select.value}: {self.color_by.value}",
        )
        self.map_box.show_view()
        self._show_unit()

    def _on_view_change(self, change) -> None:
        self._render()

    def _on_select(self, change) -> None:
        self._show_unit()

    def _show_unit(self) -> None:
        if self.som is None or not self.grid.selected:
            self.selected_indices = np.zeros(0, dtype=np.int64)
            if self.som is not None:
                self.unit_info.value = "<i>click a unit to see its inputs</i>"
            return
        m, n = self.shape
        r, c = self.grid.selected[-1]
        u = r * n + c
        split = self.split_select.value
        idx = telescope.unit_members(self.bmus[split], u)
        self.selected_indices = idx
        mix = self.unit_counts(split)[r, c]
        rows = "".join(
            f"<tr><td>{html.escape(self.classes[i])}</td><td>{mix[i]}</td></tr>"
            for i in np.argsort(-mix, kind="stable")
            if mix[i]
        )
        thumbs = ""
        if idx.size and self.max_thumbnails:
            images = self.study.images(split, idx[: self.max_thumbnails]).numpy()
            thumbs = "<div>" + "".join(thumbnail_tag(im) for im in images) + "</div>"
        shown = ", ".join(map(str, idx[:40])) + (" ..." if idx.size > 40 else "")
        with hold_sync(self.unit_info):
            self.unit_info.value = (
                f"<b>unit {u}</b> (row {r}, col {c}): {idx.size} "
                f"{html.escape(self._split_label(split))} inputs"
                + (f"<table>{rows}</table>" if rows else "")
                + thumbs
                + (f"<small>indices: {shown}</small>" if idx.size else "")
            )
