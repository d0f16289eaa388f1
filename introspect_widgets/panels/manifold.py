"""ManifoldPanel: CAM dimension vs class-wise adversarial accuracy, study by study."""

from __future__ import annotations

import html
import warnings
from collections.abc import Mapping, Sequence

import ipywidgets as W
import numpy as np

from introspect import Study
from introspect.manifolds import (
    CappedDimensionWarning,
    ClassManifolds,
    correlation_or_none,
    manifold_summary,
)

from ..plots import one_toolbar
from ..plots.images import strip_uri
from ..plots.manifolds import corr_text, fit_line, scatter_plot, scatter_source_data
from ._base import Panel, as_study, bokeh_widget, labels_for, parse_eps, study_name
from ._empty import empty_message

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


def _named_studies(studies, **recipe_kw) -> dict:
    """``{name: Study}`` from one study, a recipe name, a mapping or a sequence of them."""
    if studies is None:
        return {}
    where = "ManifoldPanel"
    if isinstance(studies, (Study, str)):
        s = as_study(studies, where, **recipe_kw)
        return {studies if isinstance(studies, str) else study_name(s): s}
    if isinstance(studies, Mapping):
        return {str(k): as_study(v, where, **recipe_kw) for k, v in studies.items()}
    if isinstance(studies, Sequence):
        out = {}
        for i, v in enumerate(studies):
            s = as_study(v, where, **recipe_kw)
            name = v if isinstance(v, str) else study_name(s, f"study {i}")
            out[name if name not in out else f"{name} ({i})"] = s
        return out
    as_study(studies, where)  # raises the TypeError that says what to pass
    raise AssertionError("unreachable")  # pragma: no cover


class ManifoldPanel(Panel):
    """Class activation manifolds against class-wise PGD accuracy, for several studies.

    One scatter per study (side by side): a point per class at (CAM dimension, PGD
    accuracy); hovering shows the class name, its number of images n, its participation
    ratio and a few of its images. The **eps** slider picks the attack budget, the
    **threshold** slider the explained variance that defines the dimension; both update
    the points and the Pearson/Spearman r in the titles in place (the threshold is
    re-applied to the stored explained-variance curves, no new PCA; grey points are
    capped by n, :func:`introspect.manifolds.is_capped`). The **class** menu picks the
    class whose explained-variance curves (one per study) are drawn below.

    **Compute** calls ``study.manifolds(layer, split, eps=..., n=...)`` for every
    selected study (capture and PGD cached in each study's workdir) and
    :func:`introspect.manifolds.manifold_summary`; precomputed ``results`` (the
    ``results`` of a ``manifolds.*`` figure's data) can be shown instead.

    Parameters
    ----------
    studies : Study, str, dict of str -> Study, or list, optional
        One :class:`introspect.Study`, several by name (``{"normal": s1, "robust": s2}``)
        or a list; recipe names (``"small_cnn@digits"``) are made studies by
        :meth:`introspect.Study.from_recipe` (with ``workdir``, ``device``,
        ``data_root``, ``n_per_class``). Compare studies of one dataset.
    results : dict of str -> dict, optional
        Per-model results shaped like :func:`~introspect.manifolds.manifold_summary`
        (e.g. ``data["results"]`` of ``manifolds.robustness``); shown at once.
    split : str
        The split whose images form the manifolds and are attacked.
    layer : str
        The layer of the manifolds (the thesis: ``"penultimate"``).
    eps : list of float or str
        PGD budgets computed by **Compute**; ``"8/255"`` is a fraction. The eps slider and
        the plot titles show each budget as it was given; it starts at the last. The
        default suits images in [0, 1] of small CNNs on digits: at 0.03 the normally
        trained ``small_cnn@digits`` keeps 31-94 % of a class (some classes robust, some
        not) and the PGD-trained one 83-100 %; at 0.1 the normal model kept none of any
        class (a flat row of zeros, no structure to compare).
    n : int, optional
        Inputs of the split attacked (a seeded subset; None: all).
    threshold : float
        Initial explained-variance threshold.
    nb_iter, seed
        PGD steps and seed.
    n_thumbnails : int
        Images per class shown on hover (0: none).
    """

    def __init__(
        self,
        studies=None,
        *,
        results: dict | None = None,
        split: str = "test",
        layer: str = "penultimate",
        eps=(0.01, 0.02, 0.03),
        n: int | None = None,
        threshold: float = 0.95,
        nb_iter: int = 10,
        seed: int = 0,
        n_thumbnails: int = 3,
        workdir: str = "introspect-work",
        device: str = "cpu",
        data_root: str | None = None,
        n_per_class: int | None = None,
    ):
        super().__init__(title="Class activation manifolds vs adversarial robustness")
        self.studies = _named_studies(
            studies, workdir=workdir, device=device, data_root=data_root, n_per_class=n_per_class
        )
        if not self.studies and not results:
            raise TypeError(
                "ManifoldPanel takes an introspect.Study, several ({'normal': s1, 'robust': "
                "s2}) or recipe names such as 'small_cnn@digits'; or precomputed results=."
            )
        self.split, self.layer = split, layer
        self.settings = dict(n=n, nb_iter=int(nb_iter))
        self.seed = int(seed)
        self.n_thumbnails = n_thumbnails
        self.results: dict[str, dict] = dict(results or {})
        self.thumbnails: dict[str, list[str]] = {}
        self.correlations: dict[str, dict | None] = {}
        self.dims: dict[str, np.ndarray] = {}
        self._sources: dict = {}
        self._subtitles: dict = {}

        style = {"description_width": "80px"}
        names = list(dict.fromkeys([*self.results, *self.studies]))
        self.model_select = W.SelectMultiple(
            options=names,
            value=tuple(self.results or self.studies),
            rows=min(max(len(names), 2), 6),
            description="models",
            layout=W.Layout(width="360px"),
            style=style,
        )
        self._eps_given = parse_eps(eps)
        self.eps_text = W.Text(
            value=", ".join(self._eps_given[1]),
            description="eps list",
            style=style,
            tooltip="PGD budgets computed by Compute",
        )
        self.compute_button = self.button(
            "Compute", self.compute, button_style="primary", icon="play"
        )
        self.compute_button.disabled = not self.studies
        # (label, index) pairs: the value indexes self.eps_values, the readout is the label
        self.eps_slider = W.SelectionSlider(
            options=[("-", -1)], value=-1, description="eps", style=style
        )
        self.eps_values: list[float] = []
        self.eps_labels: list[str] = []
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
        # until the first Compute (or given results) a message, not an empty plot
        self.empty_state = W.HTML(
            empty_message(
                "Press Compute to attack every selected model at each eps and plot its "
                "classes: CAM dimension (x) against PGD accuracy (y), one point per class."
            )
        )
        self.view_box = W.VBox([self.empty_state])
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
        """``study.manifolds`` of every selected study (cached in its workdir), shown."""

        def body():
            names = list(self.model_select.value)
            if not names:
                raise ValueError("select at least one model")
            eps, labels = parse_eps(self.eps_text.value)
            self._eps_given = (eps, labels)
            if not eps:
                raise ValueError("give at least one eps, e.g. 0.05, 0.1")
            for name in names:
                study = self.studies.get(name)
                if study is None:
                    continue  # precomputed results: shown as they are
                self.set_status(
                    f"{name}: capture, PCA per class and PGD (cached after the first run)..."
                )
                with warnings.catch_warnings():  # capped classes are shown grey instead
                    warnings.simplefilter("ignore", CappedDimensionWarning)
                    res = study.manifolds(
                        self.layer,
                        self.split,
                        threshold=float(self.threshold_slider.value),
                        eps=eps,
                        seed=self.seed,
                        **self.settings,
                    )
                summary = manifold_summary(res.manifolds, res.robustness, seed=self.seed)
                self.results[name] = {"model": name, **summary}
                if self.n_thumbnails:
                    self.thumbnails[name] = self._thumbs(study, self.results[name])
            self._build_view(names)
            self.set_status(
                "; ".join(f"{s}: mean dim {self.results[s]['mean_dim']:.1f}" for s in names)
            )

        self.run_task("compute", body, self.compute_button)

    def _thumbs(self, study, result) -> list[str]:
        labels = study.labels(self.split)
        out = []
        for c in result["manifolds"]["classes"]:
            idx = np.flatnonzero(labels == c)[: self.n_thumbnails]
            out.append(strip_uri(study.images(self.split, idx).numpy()))
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
        eps = [float(e) for e in self.results[specs[0]]["robustness"]["eps"]]
        labels = labels_for(eps, *self._eps_given)
        first = self.results[specs[0]]["manifolds"]
        self._sources = {}  # no refresh of the old view while the controls change
        old = self.eps if self.eps_values and self.eps_slider.value >= 0 else None
        keep = [i for i, e in enumerate(eps) if old is not None and abs(e - old) <= 1e-12]
        self.eps_values, self.eps_labels = eps, labels
        # options, then value, each its own message (not under hold_sync): a selection
        # slider sent both at once kept its old readout in the browser and did not drag
        self.eps_slider.options = [(lab, i) for i, lab in enumerate(labels)]
        self.eps_slider.value = keep[0] if keep else len(eps) - 1
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
        curves.multi_line(
            "xs", "ys", source=curve_src, line_color="color", line_width=2, legend_field="model"
        )  # which curve is which model (the two colours had no key)
        curves.legend.location = "bottom_right"
        curves.add_tools(HoverTool(tooltips=[("model", "@model")]))
        span = Span(location=self.threshold_slider.value, dimension="width", line_dash="dashed")
        curves.add_layout(span)
        self.curve_source, self.curve_figure, self.threshold_span = curve_src, curves, span
        # one merged toolbar for the scatters and the curves (plots.one_toolbar)
        self.bokeh_layout = one_toolbar(column(row(*plots), curves))
        # fill the sources first, then wrap: the view that the new children make in the
        # browser starts from a document that already holds the points (patches sent
        # before a view exists reach no one)
        self._refresh()
        old_views = list(self.view_box.children)
        self.view_box.children = [bokeh_widget(self.bokeh_layout)]
        for w in old_views:
            w.close()

    @property
    def eps(self) -> float:
        """The budget the eps slider selects."""
        return self.eps_values[int(self.eps_slider.value)]

    @property
    def eps_readout(self) -> str:
        """The slider's readout of the selected budget (the plot titles use the same)."""
        return self.eps_labels[int(self.eps_slider.value)]

    def _eps_index(self, spec) -> int:
        eps = [float(e) for e in self.results[spec]["robustness"]["eps"]]
        match = [j for j, e in enumerate(eps) if abs(e - self.eps) <= 1e-12]
        if not match:
            raise ValueError(
                f"{spec} was not attacked at eps {self.eps_readout}; it has "
                f"{labels_for(eps, *self._eps_given)}"
            )
        return match[0]

    def _scatter_data(self, spec, j) -> dict:
        result = self.results[spec]
        d = scatter_source_data(result, j)
        m = ClassManifolds.from_dict(result["manifolds"]).with_threshold(
            float(self.threshold_slider.value), warn=False
        )
        d["dim"] = [int(v) for v in m.dims]
        d["color"] = ["#999999" if c else "#0072B2" for c in m.capped]
        thumbs = self.thumbnails.get(spec) or [""] * len(m.dims)
        d["img"] = list(thumbs)
        d["name_html"] = [html.escape(str(n)) for n in d["name"]]
        return d

    def _refresh(self) -> None:
        """Re-apply eps and threshold: points, fit line, r in the titles, curves."""
        for spec, (p, src, line) in self._sources.items():
            d = self._scatter_data(spec, self._eps_index(spec))
            acc = np.asarray(d["acc"], dtype=float)
            dims = np.asarray(d["dim"], dtype=float)
            corr = correlation_or_none(dims, acc, n_boot=200, seed=self.seed)
            self.correlations[spec] = corr
            self.dims[spec] = dims.astype(np.int64)
            src.data = d
            line.data = fit_line(d["dim"], d["acc"])
            p.title.text = (
                f"{spec}, eps {self.eps_readout}, threshold {self.threshold_slider.value:.2f}"
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
