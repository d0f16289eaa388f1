"""SOMPanel: train a toroidal SOM on one layer's codes and explore its map."""

from __future__ import annotations

import base64
import html
import io

import ipywidgets as W
import numpy as np
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from introspect import telescope
from introspect.som import ToroidalSOM

from ..widgets import GridView
from ._base import Panel, ProgressBar, bokeh_widget, hold_sync

__all__ = ["SOMPanel"]

COLOR_BY = ("density", "class", "u-matrix")
_MAX_THUMBS = 16


def _as_source(store, labels=None, preds=None):
    """(layers, get(layer) -> array, labels, preds) from a store or a {layer: array} mapping."""
    if store is None:
        return [], None, None, None
    if isinstance(store, dict):
        arrays = {str(k): np.asarray(v, dtype=np.float32) for k, v in store.items()}
        n = {a.shape[0] for a in arrays.values()}
        if len(n) > 1:
            raise ValueError(f"all layers must have the same number of rows; got {sorted(n)}.")
        if labels is None:
            raise ValueError("pass labels=... with a {layer: codes} mapping.")
        return list(arrays), arrays.__getitem__, np.asarray(labels), preds
    layers = list(store.layers)
    return (
        layers,
        lambda name: np.asarray(store.layer(name), dtype=np.float32),
        np.asarray(store.labels if labels is None else labels),
        np.asarray(store.preds) if preds is None and hasattr(store, "preds") else preds,
    )


def _thumb(img) -> str:
    """A (C, H, W) or (H, W) image in [0, 1] as an <img> tag (PNG, data URI)."""
    from PIL import Image

    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.transpose(a[:3], (1, 2, 0))
    a = (np.clip(a, 0, 1) * 255).astype(np.uint8)
    im = Image.fromarray(a)
    scale = max(1, 48 // max(im.size))
    im = im.resize((im.size[0] * scale, im.size[1] * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img src="data:image/png;base64,{data}" style="margin:1px;image-rendering:pixelated">'


class SOMPanel(Panel):
    """Train a :class:`~introspect.som.ToroidalSOM` on a layer's codes and explore it.

    Controls: layer, SOM size, epochs, batch size, sigma, alpha, metric, **Train** (with a
    progress bar and the live loss curve: the batch quantization error). The map is a
    :class:`~introspect_widgets.widgets.GridView` coloured by the BMU density, the
    majority class of the units, or the U-matrix. Clicking a unit lists the inputs mapped
    to it (``panel.selected_indices``; thumbnails when ``images`` is given) and their
    class mix. The class selector outlines the class's top-k BMUs (SOM-tr, or SOM-val
    when a validation store is given and chosen) and writes ``C`` on its centre unit.

    Parameters
    ----------
    store : ActivationStore or dict of str -> ndarray (n_samples, n_features)
        Codes of SOM-tr (e.g. ``capture(..., reducer="codes")``); with a dict pass
        ``labels``.
    val_store : ActivationStore or dict, optional
        Codes of SOM-val (same layers), shown against the SOM-tr centres.
    labels, val_labels : array-like of int, optional
        Labels when the stores are dicts (or to override the stores').
    classes : list of str, optional
        Class names for the tooltips.
    images, val_images : array-like (n, C, H, W) in [0, 1], optional
        Images of the inputs, shown as thumbnails of a clicked unit.
    som : ToroidalSOM, optional
        An already fitted SOM (of ``layer``): shown without training.
    layer : str, optional
        Initial layer (default: the first).
    size, epochs, batch_size, sigma, alpha, metric, top_k, device, seed :
        Initial SOM settings (the paper: 20, 5, 10, 10.0, 0.1, "cosine", top-10).
    """

    def __init__(
        self,
        store=None,
        val_store=None,
        *,
        labels=None,
        val_labels=None,
        classes=None,
        images=None,
        val_images=None,
        som: ToroidalSOM | None = None,
        layer: str | None = None,
        size: int = 10,
        epochs: int = 5,
        batch_size: int = 10,
        sigma: float = 10.0,
        alpha: float = 0.1,
        metric: str = "cosine",
        top_k: int = 10,
        device: str = "cpu",
        seed: int = 0,
    ):
        super().__init__(title="Toroidal SOM of a layer's codes")
        self.layers, self._get, self.labels, self.preds = _as_source(store, labels)
        vl, self._get_val, self.val_labels, _ = _as_source(val_store, val_labels)
        if val_store is not None and set(self.layers) - set(vl):
            raise ValueError(f"val_store lacks layers {sorted(set(self.layers) - set(vl))}.")
        if not self.layers:
            raise ValueError("SOMPanel needs a store (or a {layer: codes} mapping) to train on.")
        self.images = None if images is None else np.asarray(images)
        self.val_images = None if val_images is None else np.asarray(val_images)
        n_cls = int(self.labels.max()) + 1 if self.labels.size else 0
        self.classes = list(classes) if classes is not None else [str(c) for c in range(n_cls)]
        self.device, self.seed = device, seed
        self.som: ToroidalSOM | None = None
        self.bmus: dict[str, np.ndarray] = {}
        self.selected_indices = np.zeros(0, dtype=np.int64)

        style = {"description_width": "70px"}
        self.layer_select = W.Dropdown(
            options=self.layers,
            value=layer if layer is not None else self.layers[0],
            description="layer",
            style=style,
        )
        self.size = W.BoundedIntText(
            value=size,
            min=2,
            max=100,
            description="size",
            style=style,
            layout=W.Layout(width="150px"),
        )
        self.epochs = W.BoundedIntText(
            value=epochs,
            min=1,
            max=1000,
            description="epochs",
            style=style,
            layout=W.Layout(width="150px"),
        )
        self.batch = W.BoundedIntText(
            value=batch_size,
            min=1,
            max=100_000,
            description="batch",
            style=style,
            layout=W.Layout(width="150px"),
        )
        self.sigma = W.BoundedFloatText(
            value=sigma,
            min=0.01,
            max=1e3,
            description="sigma",
            style=style,
            layout=W.Layout(width="150px"),
        )
        self.alpha = W.BoundedFloatText(
            value=alpha,
            min=1e-6,
            max=10.0,
            description="alpha",
            style=style,
            layout=W.Layout(width="150px"),
        )
        self.metric = W.Dropdown(
            options=["cosine", "euclidean"],
            value=metric,
            description="metric",
            style=style,
            layout=W.Layout(width="200px"),
        )
        self.top_k = W.BoundedIntText(
            value=top_k,
            min=1,
            max=100,
            description="top-k",
            style=style,
            layout=W.Layout(width="150px"),
        )
        self.train_button = self.button("Train", self.train, button_style="primary")
        self.progress = ProgressBar("SOM", min_interval=0.1)

        # live loss curve (bokeh, updated in place)
        self.loss_source = ColumnDataSource(dict(step=[], qe=[]))
        self.loss_fig = figure(
            title="SOM loss (batch quantization error)",
            width=420,
            height=220,
            x_axis_label="step",
            y_axis_label="QE",
            tools="pan,wheel_zoom,reset,save",
        )
        self.loss_fig.line("step", "qe", source=self.loss_source, line_width=2)
        self.loss_view = bokeh_widget(self.loss_fig)

        # the map
        self.color_by = W.ToggleButtons(
            options=list(COLOR_BY), value="density", description="colour", style=style
        )
        split_opts = ["SOM-tr"] + (["SOM-val"] if val_store is not None else [])
        self.split_select = W.ToggleButtons(
            options=split_opts, value="SOM-tr", description="inputs", style=style
        )
        self.class_select = W.Dropdown(
            options=[("(none)", -1)] + [(f"{i}: {c}", i) for i, c in enumerate(self.classes)],
            value=-1,
            description="class",
            style=style,
        )
        self.grid = GridView(cell_size=22, title="")
        self.unit_info = W.HTML(value="<i>train a SOM, then click a unit</i>")

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
                W.HBox([self.metric, self.train_button]),
                self.progress.widget,
                self.loss_view,
            ]
        )
        view = W.VBox(
            [
                self.color_by,
                self.split_select,
                self.class_select,
                W.HBox([self.grid, self.unit_info]),
            ]
        )
        self.children = [W.HBox([settings, view])]
        if som is not None:
            self._use(som)

    # ------------------------------------------------------------------ training
    @property
    def shape(self) -> tuple[int, int]:
        if self.som is None:
            raise RuntimeError("no SOM yet: click Train (or call panel.train()).")
        return self.som.shape

    def train(self) -> ToroidalSOM | None:
        """Fit a SOM on the chosen layer's SOM-tr codes with the panel's settings."""
        layer = self.layer_select.value
        with self.busy(f"training a SOM on {layer}", self.train_button):
            X = self._get(layer)
            som = ToroidalSOM(
                m=self.size.value,
                n=self.size.value,
                sigma=self.sigma.value,
                alpha=self.alpha.value,
                metric=self.metric.value,
                epochs=self.epochs.value,
                batch_size=self.batch.value,
                device=self.device,
                seed=self.seed,
            )
            self.loss_source.data = dict(step=[], qe=[])
            self.progress.reset(total=1, description=layer)
            som.fit(X, callback=self._on_progress)
            self.progress.close()
            self._use(som)
            self.set_status(
                f"{layer}: {som.m}x{som.n} SOM, {som.n_steps_} steps, final QE "
                f"{som.history_['qe'][-min(len(som.history_['qe']), 50) :].mean():.4f}, "
                f"topographic error {som.topographic_error(X):.3f}"
            )
        if self.error is not None:
            self.progress.fail()
            return None
        return self.som

    def _on_progress(self, step: int, n_steps: int, history: dict) -> None:
        self.progress(step, n_steps)
        qe = history["qe"]
        start = len(self.loss_source.data["step"])
        if len(qe) > start:
            self.loss_source.stream(dict(step=list(range(start, len(qe))), qe=list(qe[start:])))

    def _use(self, som: ToroidalSOM) -> None:
        self.som = som
        layer = self.layer_select.value
        k = int(self.top_k.value)
        self.bmus = {"SOM-tr": som.bmus(self._get(layer), top_k=k)}
        if self._get_val is not None:
            self.bmus["SOM-val"] = som.bmus(self._get_val(layer), top_k=k)
        if not self.loss_source.data["step"]:
            qe = som.history_["qe"]
            self.loss_source.data = dict(step=list(range(len(qe))), qe=list(qe))
        self.grid.selected = []
        self._render()

    def _on_layer(self, change) -> None:
        # a SOM belongs to one layer: drop it, the user trains again
        self.som, self.bmus = None, {}
        self.grid.set_grid(np.zeros((0, 0)), marks=[], selected=[])
        self.unit_info.value = f"<i>train a SOM on {html.escape(change['new'])}</i>"

    # ------------------------------------------------------------------ the map
    def unit_values(self, color_by: str | None = None) -> np.ndarray:
        """The (m, n) values the map is coloured by."""
        color_by = color_by or self.color_by.value
        m, n = self.shape
        top1 = self.bmus[self.split_select.value][:, 0]
        if color_by == "density":
            return np.bincount(top1, minlength=m * n).reshape(m, n).astype(float)
        if color_by == "u-matrix":
            return telescope.u_matrix(self.som.weights_, (m, n), metric=self.som.metric)
        if color_by == "class":
            labels = self._labels()
            out = np.full(m * n, np.nan)
            for u in np.unique(top1):
                out[u] = np.bincount(labels[top1 == u]).argmax()
            return out.reshape(m, n)
        raise ValueError(f"color_by must be one of {COLOR_BY}, got {color_by!r}.")

    def _labels(self) -> np.ndarray:
        return self.val_labels if self.split_select.value == "SOM-val" else self.labels

    def _render(self) -> None:
        if self.som is None:
            return
        m, n = self.shape
        values = self.unit_values()
        top1 = self.bmus[self.split_select.value][:, 0]
        counts = np.bincount(top1, minlength=m * n)
        labels = self._labels()
        tips = np.empty((m, n), dtype=object)
        for u in range(m * n):
            r, c = divmod(u, n)
            mix = np.bincount(labels[top1 == u], minlength=len(self.classes))
            top = ", ".join(f"{self.classes[i]}: {mix[i]}" for i in np.argsort(-mix)[:3] if mix[i])
            tips[r, c] = f"unit {u} ({r}, {c}): {counts[u]} inputs" + (f"; {top}" if top else "")
        text = np.full((m, n), "", dtype=object)
        marks = []
        cls = self.class_select.value
        if cls is not None and cls >= 0:
            sel = labels == cls
            units = np.unique(self.bmus[self.split_select.value][sel].ravel())
            marks = [list(divmod(int(u), n)) for u in units]
            centres = telescope.class_centres(
                self.bmus["SOM-tr"], self.labels, (m, n), classes=[cls]
            )
            if np.all(np.isfinite(centres)):
                cu = int(telescope.centre_units(centres, (m, n))[0])
                text[divmod(cu, n)] = "C"
        colormap = {"density": "viridis", "class": "tab10", "u-matrix": "greys"}[
            self.color_by.value
        ]
        self.grid.set_grid(
            values,
            labels=tips,
            text=text,
            marks=marks,
            colormap=colormap,
            title=f"{self.layer_select.value}: {self.color_by.value}",
        )
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
        top1 = self.bmus[split][:, 0]
        idx = np.flatnonzero(top1 == u)
        self.selected_indices = idx
        labels = self._labels()
        mix = np.bincount(labels[idx], minlength=len(self.classes)) if idx.size else []
        rows = "".join(
            f"<tr><td>{html.escape(self.classes[i])}</td><td>{mix[i]}</td></tr>"
            for i in np.argsort(-np.asarray(mix))
            if len(mix) and mix[i]
        )
        images = self.val_images if split == "SOM-val" else self.images
        thumbs = ""
        if images is not None and idx.size:
            thumbs = "<div>" + "".join(_thumb(images[i]) for i in idx[:_MAX_THUMBS]) + "</div>"
        with hold_sync(self.unit_info):
            self.unit_info.value = (
                f"<b>unit {u}</b> (row {r}, col {c}): {idx.size} {html.escape(str(split))} inputs"
                + (f"<table>{rows}</table>" if rows else "")
                + thumbs
                + (
                    f"<small>indices: {', '.join(map(str, idx[:40]))}"
                    + (" ..." if idx.size > 40 else "")
                    + "</small>"
                    if idx.size
                    else ""
                )
            )
