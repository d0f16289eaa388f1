"""ManifoldPanel: CAM dimension vs class-wise adversarial accuracy, model by model."""

from __future__ import annotations

import base64
import html
import io

import ipywidgets as W
import numpy as np

from introspect import recipes as _recipes
from introspect.figures import _manifolds
from introspect.manifolds import dim_robustness_correlation, dimension_at

from ..plots.manifolds import corr_text, scatter_plot, scatter_source_data
from ._base import Panel, bokeh_widget, hold_sync

__all__ = ["ManifoldPanel"]

# An HTML tooltip: bokeh < 3.8 puts @field values into it unescaped, so the class name comes
# html-escaped in the name_html column and is inserted as it is ({safe}).
_THUMB_TOOLTIP = """
<div style="max-width:260px">
  <div><b>@name_html{safe}</b> &nbsp; dim @dim (n @n), PR @pr</div>
  <div>PGD accuracy @acc{0.00} of @n_attacked; clean @clean{0.00}</div>
  <div><img src="@img" style="image-rendering:pixelated;height:48px"></img></div>
</div>
"""


def _png_strip(images) -> str:
    """A row of images (K, C, H, W) in [0, 1] as a PNG data URI."""
    from PIL import Image

    arr = np.asarray(images, dtype=np.float32)
    if arr.size == 0:
        return ""
    arr = np.concatenate(list(arr), axis=-1)  # (C, H, K*W)
    arr = (np.clip(arr, 0, 1) * 255).astype(np.uint8)
    img = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)[..., :3])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


class ManifoldPanel(Panel):
    """Class activation manifolds against class-wise PGD accuracy, for several models.

    One scatter per model (side by side): a point per class at (CAM dimension, PGD
    accuracy); hovering shows the class name, its number of images n, its participation
    ratio and a few of its images. The **eps** slider picks the attack budget, the
    **threshold** slider the explained variance that defines the dimension; both update
    the points and the Pearson/Spearman r in the titles in place (the threshold is
    re-applied to the stored explained-variance curves, no new PCA). The **class** menu
    picks the class whose explained-variance curves (one per model) are drawn below.

    **Compute** runs :func:`introspect.figures._manifolds.analyse` for the selected
    model recipes (capture and attack cached in ``workdir``); precomputed results (the
    ``results`` of a ``manifolds.*`` figure's data) can be passed instead.

    Parameters
    ----------
    models : list of str
        Recipes selected at start (see :mod:`introspect.figures._recipes`).
    results : dict of str -> dict, optional
        Per-model results as returned by ``_manifolds.analyse`` (e.g.
        ``data["results"]`` of ``manifolds.robustness``); shown at once.
    eps : list of float
        PGD budgets computed by **Compute**.
    threshold : float
        Initial explained-variance threshold.
    dims_split, dims_n_per_class, robust_split, robust_n_per_class, n_classes, nb_iter,
    batch_size, device, workdir, data_root, seed
        As in the ``manifolds.*`` figures.
    n_thumbnails : int
        Images per class shown on hover (0: none).
    """

    def __init__(
        self,
        models=("small_cnn@digits", "small_cnn_pgd@digits"),
        results: dict | None = None,
        eps=(0.02, 0.05, 0.1),
        threshold: float = 0.95,
        dims_split: str = "train",
        dims_n_per_class: int | None = 100,
        robust_split: str = "test",
        robust_n_per_class: int | None = None,
        n_classes: int | None = None,
        nb_iter: int = 10,
        batch_size: int = 128,
        device: str = "cpu",
        workdir: str = "introspect-work",
        data_root: str | None = None,
        seed: int = 0,
        n_thumbnails: int = 3,
    ):
        super().__init__(title="Class activation manifolds vs adversarial robustness")
        self.settings = dict(
            dims_split=dims_split,
            dims_n_per_class=dims_n_per_class,
            robust_split=robust_split,
            robust_n_per_class=robust_n_per_class,
            n_classes=n_classes,
            nb_iter=nb_iter,
            batch_size=batch_size,
        )
        self.device, self.workdir, self.data_root, self.seed = device, workdir, data_root, seed
        self.n_thumbnails = n_thumbnails
        self.results: dict[str, dict] = dict(results or {})
        self.thumbnails: dict[str, list[str]] = {}
        self.correlations: dict[str, dict | None] = {}
        self.dims: dict[str, np.ndarray] = {}
        self._sources: dict = {}
        self._subtitles: dict = {}

        style = {"description_width": "80px"}
        names = list(dict.fromkeys([*self.results, *_recipes.RECIPES, *models]))
        self.model_select = W.SelectMultiple(
            options=names,
            value=tuple(m for m in (list(self.results) or list(models)) if m in names),
            rows=6,
            description="models",
            layout=W.Layout(width="360px"),
            style=style,
        )
        self.eps_text = W.Text(
            value=", ".join(format(e, "g") for e in eps),
            description="eps list",
            style=style,
            tooltip="PGD budgets computed by Compute",
        )
        self.compute_button = self.button(
            "Compute", self.compute, button_style="primary", icon="play"
        )
        self.eps_slider = W.SelectionSlider(options=["-"], description="eps", style=style)
        self.threshold_slider = W.FloatSlider(
            value=threshold,
            min=0.5,
            max=0.99,
            step=0.01,
            description="threshold",
            readout_format=".2f",
            continuous_update=False,
            style=style,
        )
        self.class_select = W.Dropdown(options=[], description="class", style=style)
        self.view_box = W.VBox([])
        self.children = [
            W.HBox(
                [
                    self.model_select,
                    W.VBox(
                        [self.eps_text, self.compute_button, self.eps_slider, self.threshold_slider]
                    ),
                ]
            ),
            self.class_select,
            self.view_box,
        ]
        self.observe(self.eps_slider, lambda _c: self._refresh())
        self.observe(self.threshold_slider, lambda _c: self._refresh())
        self.observe(self.class_select, lambda _c: self._update_curves())
        if self.results:
            self._build_view()

    # ------------------------------------------------------------------ compute
    def compute(self) -> None:
        """Analyse the selected recipes (cached in the workdir) and show them."""
        with self.busy("compute", self.compute_button):
            specs = list(self.model_select.value)
            if not specs:
                raise ValueError("select at least one model")
            eps = [float(s) for s in self.eps_text.value.replace(";", ",").split(",") if s.strip()]
            if not eps:
                raise ValueError("give at least one eps, e.g. 0.05, 0.1")
            _manifolds.register_models()
            for spec in specs:
                self.set_status(
                    f"{spec}: capture, PCA per class and PGD (cached after the first run)..."
                )
                self.results[spec] = _manifolds.analyse(
                    spec,
                    threshold=float(self.threshold_slider.value),
                    eps=eps,
                    workdir=self.workdir,
                    device=self.device,
                    data_root=self.data_root,
                    seed=self.seed,
                    **self.settings,
                )
                if self.n_thumbnails:
                    self.thumbnails[spec] = self._thumbs(spec, self.results[spec])
            self._build_view(specs)
            self.set_status(
                "; ".join(f"{s}: mean dim {self.results[s]['mean_dim']:.1f}" for s in specs)
            )

    def _thumbs(self, spec, result) -> list[str]:
        data = _recipes.recipe_data(
            spec,
            self.settings["robust_split"],
            data_root=self.data_root,
            n_per_class=None,
            seed=self.seed,
        )
        targets = np.asarray(data.targets)
        out = []
        for c in result["manifolds"]["classes"]:
            idx = np.flatnonzero(targets == c)[: self.n_thumbnails]
            out.append(_png_strip([data[int(i)][0].numpy() for i in idx]))
        return out

    # ------------------------------------------------------------------ views
    def _shown(self) -> list[str]:
        return [s for s in self.model_select.value if s in self.results] or list(self.results)

    def _build_view(self, specs=None) -> None:
        from bokeh.layouts import column, row
        from bokeh.models import ColumnDataSource, HoverTool, Span
        from bokeh.plotting import figure

        specs = [s for s in (specs or self._shown()) if s in self.results]
        if not specs:
            return
        classes = {tuple(self.results[s]["manifolds"]["classes"]) for s in specs}
        if len(classes) > 1:
            raise ValueError(
                f"the models {specs} were analysed on different classes; compare models "
                "of one dataset (and one n_classes / seed) side by side"
            )
        eps = self.results[specs[0]]["robustness"]["eps"]
        labels = [format(float(e), "g") for e in eps]
        first = self.results[specs[0]]["manifolds"]
        self._sources = {}  # no refresh of the old view while the controls change
        old = self.eps_slider.value
        with hold_sync(self.eps_slider, self.class_select):
            self.eps_slider.options = labels
            self.eps_slider.value = old if old in labels else labels[-1]
            self.class_select.options = [(str(n), i) for i, n in enumerate(first["class_names"])]
            self.class_select.value = 0
        plots = []
        for spec in specs:
            p, src, line, sub = scatter_plot(self._scatter_data(spec, 0), title=spec)
            if self.thumbnails.get(spec):
                p.tools = [t for t in p.tools if not isinstance(t, HoverTool)]
                p.add_tools(HoverTool(tooltips=_THUMB_TOOLTIP))
            self._sources[spec] = (p, src, line)
            self._subtitles[spec] = sub
            plots.append(p)
        curve_src = ColumnDataSource(dict(xs=[], ys=[], model=[], color=[]))
        curves = figure(
            title="explained variance of the selected class",
            width=420,
            height=280,
            x_axis_label="principal components",
            y_axis_label="cumulative explained variance",
            y_range=(0, 1.02),
        )
        curves.multi_line("xs", "ys", source=curve_src, line_color="color", line_width=2)
        curves.add_tools(HoverTool(tooltips=[("model", "@model")]))
        span = Span(location=self.threshold_slider.value, dimension="width", line_dash="dashed")
        curves.add_layout(span)
        self.curve_source, self.curve_figure, self.threshold_span = curve_src, curves, span
        self.bokeh_layout = column(row(*plots), curves)
        self.view_box.children = [bokeh_widget(self.bokeh_layout)]
        self._refresh()

    def _eps_index(self, spec) -> int:
        eps = self.results[spec]["robustness"]["eps"]
        labels = [format(float(e), "g") for e in eps]
        if self.eps_slider.value not in labels:
            raise ValueError(
                f"{spec} was not attacked at eps {self.eps_slider.value}; it has {labels}"
            )
        return labels.index(self.eps_slider.value)

    def _scatter_data(self, spec, j) -> dict:
        result = self.results[spec]
        d = scatter_source_data(result, j)
        m = result["manifolds"]
        t = float(self.threshold_slider.value)
        dims = np.array([dimension_at(c, t) for c in m["curves"]], dtype=np.int64)
        n = np.asarray(m["n"])
        d["dim"] = dims.tolist()
        d["color"] = [
            "#999999" if (k < 2 or v > m["cap_fraction"] * (k - 1)) else "#0072B2"
            for v, k in zip(dims, n)
        ]
        thumbs = self.thumbnails.get(spec) or [""] * len(dims)
        d["img"] = list(thumbs)
        d["name_html"] = [html.escape(str(n)) for n in d["name"]]
        return d

    def _refresh(self) -> None:
        """Re-apply eps and threshold: points, fit line, r in the titles, curves."""
        from ..plots.manifolds import _fit_line

        for spec, (p, src, line) in self._sources.items():
            d = self._scatter_data(spec, self._eps_index(spec))
            acc = np.asarray(d["acc"], dtype=float)
            dims = np.asarray(d["dim"], dtype=float)
            ok = np.isfinite(acc)
            if ok.sum() >= 3 and np.ptp(dims[ok]) > 0 and np.ptp(acc[ok]) > 0:
                corr = dim_robustness_correlation(dims, acc, n_boot=200, seed=self.seed)
            else:
                corr = None
            self.correlations[spec] = corr
            self.dims[spec] = dims.astype(np.int64)
            src.data = d
            line.data = _fit_line(d["dim"], d["acc"])
            p.title.text = (
                f"{spec}, eps {self.eps_slider.value}, threshold {self.threshold_slider.value:.2f}"
            )
            self._subtitles[spec].text = corr_text(corr)
        self._update_curves()

    def _update_curves(self) -> None:
        if not self._sources or self.class_select.value is None:
            return
        from ..plots import layer_colors

        i = int(self.class_select.value)
        specs = list(self._sources)
        colors = layer_colors(len(specs))
        xs, ys = [], []
        for spec in specs:
            curve = self.results[spec]["manifolds"]["curves"][i]
            xs.append(list(range(1, len(curve) + 1)))
            ys.append(list(curve))
        self.curve_source.data = dict(xs=xs, ys=ys, model=specs, color=colors)
        self.threshold_span.location = float(self.threshold_slider.value)
        name = self.class_select.label
        dims = ", ".join(f"{s}: {int(self.dims[s][i])}" for s in specs if s in self.dims)
        # a bokeh title is drawn as text on the canvas: no HTML, so no escaping (it showed &lt;)
        self.curve_figure.title.text = f"class {name}: dimension {dims}"
