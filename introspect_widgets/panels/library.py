"""LibraryPanel: a study's library networks per layer, their confusion indices and CPL under PGD."""

from __future__ import annotations

import html

import ipywidgets as W
import numpy as np

from introspect import library as _lib

from ..plots.images import thumbnail_uri
from ..plots.library import ci_heatmap, cpl_histogram, histogram_data
from ._base import Panel, as_study, bokeh_widget, hold_sync, labels_for, parse_eps
from ._empty import EmptyState

__all__ = ["LibraryPanel"]


class LibraryPanel(Panel):
    """Library networks of a study's layers (Lee 2019), explored live.

    - one **theta** slider per layer: that layer's library size and its top-1 / top-3
      agreement with the network's test answers update at once (every theta of the
      grid is precomputed);
    - **CI layer**: the confusion index heatmap of that layer's library at its theta;
    - **eps**: histograms of CPL (the consistency of the layers' predictions, at the
      current thetas) on clean vs PGD inputs, and the AUROC separating them;
    - **input** / **view**: one attacked input (clean or adversarial at eps), its image,
      the network's answer and each layer's top library prediction.

    **Compute** calls :func:`introspect.library.explore` on the study: the libraries
    (``study.library``, built on the training split), the test split's capture and the
    PGD inputs (``study.attack``) all come from the study's cache. A precomputed ``data``
    (what ``explore`` or :func:`~introspect.library.explore_arrays` returns) is shown at
    once.

    Parameters
    ----------
    study : Study or str, optional
        A :class:`introspect.Study` with a train and a test split, or a recipe name made
        one by :meth:`introspect.Study.from_recipe` (with ``workdir``, ``device``,
        ``data_root``, ``n_per_class``). Optional only when ``data`` is given.
    data : dict, optional
        Output of :func:`introspect.library.explore` / ``explore_arrays``.
    layers : list of str, optional
        At least two; default the study's layers.
    thetas : list of float, or dict layer -> list of float
        The theta grid of every layer, or of each.
    eps : list of float or str
        PGD budgets; a string such as ``"8/255"`` is a fraction, and the eps slider and
        the CPL title show each budget as it was given (``8/255`` as ``"8/255"``).
        Default: the budgets of ``data``, else ``(0.05, 0.1, 0.2)``.
    top_k, n_attack, nb_iter, eps_iter, seed
        Passed to :func:`~introspect.library.explore` (``n_attack`` is its ``n``).
    """

    def __init__(
        self,
        study=None,
        *,
        data: dict | None = None,
        layers=None,
        thetas=(0.8, 0.85, 0.9, 0.95),
        eps=None,
        top_k: int = 3,
        n_attack: int = 200,
        nb_iter: int = 40,
        eps_iter: float = 0.01,
        seed: int = 0,
        workdir: str = "introspect-work",
        device: str = "cpu",
        data_root: str | None = None,
        n_per_class: int | None = None,
    ):
        super().__init__(title="Library networks: agreement, confusion and CPL (Lee 2019)")
        if study is None and data is None:
            raise TypeError(
                "LibraryPanel takes an introspect.Study (or a recipe name such as "
                "'mnist_cnn@digits'), or precomputed data=introspect.library.explore(...)."
            )
        self.study = None
        if study is not None:
            self.study = as_study(
                study, "LibraryPanel", workdir=workdir, device=device, data_root=data_root,
                n_per_class=n_per_class,
            )  # fmt: skip
        self.settings = dict(
            top_k=top_k, n=n_attack, nb_iter=nb_iter, eps_iter=eps_iter, seed=seed
        )  # fmt: skip
        self.data: dict | None = None
        self.layer_stats: dict[str, dict] = {}
        self.cpl_clean = self.cpl_adv = None
        self.auroc_value: float | None = None
        self.input_info: dict = {}

        style = {"description_width": "70px"}
        if layers is None:
            layers = self.study.layers if self.study is not None else data["layers"]
        self.study_label = W.HTML(
            "" if self.study is None else f"<code>{html.escape(repr(self.study))}</code>"
        )
        self.layers_text = W.Text(value=", ".join(layers), description="layers", style=style)
        self.thetas_text = W.Text(
            value=", ".join(format(t, "g") for t in thetas) if not isinstance(thetas, dict) else "",
            description="thetas",
            style=style,
            tooltip="theta grid shared by every layer",
        )
        self._theta_dict = dict(thetas) if isinstance(thetas, dict) else None
        if eps is None:  # the budgets of the data shown, else the default grid
            eps = data["eps"] if data is not None else (0.05, 0.1, 0.2)
        self._eps_values, self._eps_labels = parse_eps(eps)
        self.eps_text = W.Text(
            value=", ".join(self._eps_labels),
            description="eps list",
            style=style,
            tooltip="PGD budgets, e.g. 0.05, 8/255",
        )
        self.compute_button = self.button(
            "Compute", self.compute, button_style="primary", icon="play"
        )
        self.compute_button.disabled = self.study is None
        self.sliders_box = W.VBox([])
        self.stats_html = W.HTML()
        self.theta_sliders: dict[str, W.SelectionSlider] = {}
        self.ci_layer = W.Dropdown(options=[], description="CI layer", style=style)
        # options are (label, index) pairs: the value is the index into data["eps"], the
        # readout the budget as the user wrote it (no float round trip through a label)
        self.eps_slider = W.SelectionSlider(
            options=[("-", -1)], value=-1, description="eps", style=style
        )
        self.auroc_html = W.HTML()
        self.input_slider = W.IntSlider(
            value=0, min=0, max=0, description="input", style=style, continuous_update=False
        )
        self.view_toggle = W.ToggleButtons(options=["clean", "adversarial"], value="clean")
        self.input_html = W.HTML()

        self.ci_fig = ci_heatmap(np.eye(2), ["0", "1"], title="confusion index")
        # 400 px: at 340 the x-axis label (CPL, the mean cosine similarity ...) was wider
        # than the plot and cut at both ends
        self.hist_fig = cpl_histogram([0.0], [0.0], title="CPL", width=400)
        self.ci_source = self.ci_fig.select_one({"name": "ci"})
        self.hist_source = self.hist_fig.select_one({"name": "cpl-hist"})
        from bokeh.models import LinearColorMapper

        self.ci_mapper = self.ci_fig.select_one(LinearColorMapper)
        self.ci_view = bokeh_widget(self.ci_fig)
        self.hist_view = bokeh_widget(self.hist_fig)

        self.children = [
            self.study_label,
            W.HBox(
                [
                    W.VBox([self.layers_text, self.thetas_text]),
                    W.VBox([self.eps_text, self.compute_button]),
                ]
            ),
            # until there is data (Compute, or data=) a message instead of a placeholder
            # heatmap and an empty histogram; the views show when the heatmap gets its
            # first real matrix
            EmptyState(
                W.VBox(
                    [
                        W.HBox([self.sliders_box, self.stats_html]),
                        W.HBox(
                            [
                                W.VBox([self.ci_layer, self.ci_view]),
                                W.VBox([self.eps_slider, self.auroc_html, self.hist_view]),
                            ],
                        ),
                        W.HBox([W.VBox([self.input_slider, self.view_toggle]), self.input_html]),
                    ]
                ),
                "Press Compute to build the library networks of each layer at every theta "
                "(on the training split), attack test inputs with PGD at each eps, and show "
                "here: library size and agreement per layer, the confusion index heatmap, "
                "CPL histograms clean vs adversarial with their AUROC, and single inputs.",
                sources=[self.ci_source],
                width=640,
            ),
        ]
        self.results_box = self.children[-1]
        self.observe(self.ci_layer, lambda _c: self._update_ci())
        self.observe(self.eps_slider, lambda _c: self._update_cpl_and_input())
        self.observe(self.input_slider, lambda _c: self._update_input())
        self.observe(self.view_toggle, lambda _c: self._update_input())
        if data is not None:
            self.set_data(data)

    # ------------------------------------------------------------------ compute
    def compute(self) -> None:
        """:func:`introspect.library.explore` of the study with the panel's settings."""

        def body():
            if self.study is None:
                raise ValueError("this panel shows precomputed data: give it a study to compute")
            layers = [s.strip() for s in self.layers_text.value.split(",") if s.strip()]
            eps, labels = parse_eps(self.eps_text.value)
            self._eps_values, self._eps_labels = eps, labels
            if not layers or not eps:
                raise ValueError("give at least one layer and one eps")
            if self._theta_dict is not None and not self.thetas_text.value.strip():
                thetas = self._theta_dict
            else:
                thetas = [float(s) for s in self.thetas_text.value.split(",") if s.strip()]
                if not thetas:
                    raise ValueError("give at least one theta, e.g. 0.8, 0.9")
            self.set_status("capture, libraries and PGD (cached after the first run)...")
            data = _lib.explore(self.study, layers, thetas, eps, **self.settings)
            self.set_data(data)
            self.set_status(f"{data['n_test']} test inputs, {len(data['attack_labels'])} attacked")

        self.run_task("compute", body, self.compute_button)

    # ------------------------------------------------------------------ views
    def set_data(self, data: dict) -> None:
        """Show precomputed explorer data (rebuilds the sliders)."""
        self.data = data
        self.eps_labels = labels_for(data["eps"], self._eps_values, self._eps_labels)
        sliders = {}
        for layer in data["layers"]:
            grid = data["grid"][layer]
            s = W.SelectionSlider(
                options=[(format(t, "g"), i) for i, t in enumerate(grid)],
                value=len(grid) // 2,
                description=layer,
                style={"description_width": "70px"},
                continuous_update=True,
            )
            self.observe(s, lambda _c: self._on_theta())
            sliders[layer] = s
        self.theta_sliders = sliders
        n = len(data["attack_labels"])
        self.sliders_box.children = list(sliders.values())
        # options, then value, each its own message (not under hold_sync): a selection
        # slider sent new options and an index together kept its old readout and range
        # in the browser and could not be dragged
        with hold_sync(self.input_slider):  # first: the observers below read it
            self.input_slider.value = 0
            self.input_slider.max = max(n - 1, 0)
        self.ci_layer.options = data["layers"]
        self.ci_layer.value = data["layers"][0]
        self.eps_slider.options = [(lab, i) for i, lab in enumerate(self.eps_labels)]
        self.eps_slider.value = len(data["eps"]) // 2
        self._on_theta()

    def theta(self, layer: str) -> float:
        """The theta currently selected for ``layer``."""
        return self.data["grid"][layer][self.theta_sliders[layer].value]

    def _on_theta(self) -> None:
        self._update_stats()
        self._update_ci()
        self._update_cpl_and_input()

    def _update_stats(self) -> None:
        d = self.data
        rows = []
        self.layer_stats = {}
        for layer, s in self.theta_sliders.items():
            i = s.value
            st = dict(
                theta=d["grid"][layer][i],
                size=d["sizes"][layer][i],
                top1=d["top1"][layer][i],
                top3=d["top3"][layer][i],
            )
            self.layer_stats[layer] = st
            rows.append(
                f"<tr><td>{html.escape(layer)}</td><td>{st['theta']:g}</td><td>{st['size']}</td>"
                f"<td>{st['top1']:.3f}</td><td>{st['top3']:.3f}</td></tr>"
            )
        self.stats_html.value = (
            "<table style='border-collapse:collapse' cellpadding='3'><tr><th>layer</th>"
            "<th>theta</th><th>size</th><th>top-1</th><th>top-3</th></tr>"
            + "".join(rows)
            + f"</table><small>agreement with the network on {d['n_test']} test inputs</small>"
        )

    def _update_ci(self) -> None:
        d = self.data
        if d is None or self.ci_layer.value not in self.theta_sliders:
            return
        layer = self.ci_layer.value
        ci = np.asarray(d["ci"][layer][self.theta_sliders[layer].value], dtype=float)
        names = d["classes"]
        vals = ci.copy()
        np.fill_diagonal(vals, np.nan)
        flat = vals.ravel()
        self.ci_fig.x_range.factors = names
        self.ci_fig.y_range.factors = list(reversed(names))
        self.ci_source.data = dict(
            d1=[names[i] for i in range(len(names)) for _ in names],
            d2=[n for _ in names for n in names],
            ci=flat,
            ci_text=[f"{v:.3f}" if np.isfinite(v) else "-" for v in flat],
        )
        # the scale stays [0, 1] (the builder's), so heatmaps of layers and thetas compare
        self.ci_fig.title.text = f"confusion index: {layer}, theta {self.theta(layer):g}"

    def _scores(self, layer: str, eps_index: int | None):
        i = self.theta_sliders[layer].value
        if eps_index is None:
            return self.data["scores_clean"][layer][i]
        return self.data["scores_adv"][layer][i][eps_index]

    def _eps_index(self) -> int:
        return int(self.eps_slider.value)

    @property
    def eps(self) -> float:
        """The budget the eps slider selects."""
        return float(self.data["eps"][self._eps_index()])

    @property
    def eps_readout(self) -> str:
        """The slider's readout of the selected budget (the CPL title uses the same)."""
        return self.eps_labels[self._eps_index()]

    def _update_cpl_and_input(self) -> None:
        d = self.data
        if d is None or self.eps_slider.value is None or self.eps_slider.value < 0:
            return
        e = self._eps_index()
        label = self.eps_labels[e]
        layers = d["layers"]
        if len(layers) >= 2:
            self.cpl_clean = _lib.cpl([self._scores(k, None) for k in layers])
            self.cpl_adv = _lib.cpl([self._scores(k, e) for k in layers])
            self.auroc_value = _lib.auroc(self.cpl_clean, self.cpl_adv)
            self.hist_source.data = histogram_data(self.cpl_clean, self.cpl_adv)
            acc = float(np.mean(d["attack_pred_adv"][e] == d["attack_labels"]))
            self.auroc_html.value = (
                f"AUROC (clean positive) <b>{self.auroc_value:.3f}</b>; network accuracy "
                f"{np.mean(d['attack_pred_clean'] == d['attack_labels']):.3f} clean, "
                f"{acc:.3f} at eps {html.escape(label)}"
            )
            self.hist_fig.title.text = f"CPL, eps {label}"
        else:
            self.auroc_html.value = "CPL needs at least two layers"
        self._update_input()

    def _update_input(self) -> None:
        d = self.data
        if d is None or self.eps_slider.value is None or self.eps_slider.value < 0:
            return
        k = int(self.input_slider.value)
        adv = self.view_toggle.value == "adversarial"
        e = self._eps_index() if adv else None
        pred = d["attack_pred_adv"][e][k] if adv else d["attack_pred_clean"][k]
        names = d["classes"]
        per_layer = {
            layer: names[int(np.argmax(self._scores(layer, e)[k]))] for layer in d["layers"]
        }
        self.input_info = dict(
            index=k,
            view=self.view_toggle.value,
            label=names[int(d["attack_labels"][k])],
            dnn=names[int(pred)],
            layers=per_layer,
            cpl=None
            if self.cpl_clean is None
            else float((self.cpl_adv if adv else self.cpl_clean)[k]),
        )
        images = (
            (d["images_adv"][e] if adv else d["images_clean"])
            if d["images_clean"] is not None
            else None
        )
        img = f"<img src='{thumbnail_uri(images[k], scale=4)}'>" if images is not None else ""
        rows = "".join(
            f"<tr><td>{html.escape(layer)}</td><td>{html.escape(v)}</td></tr>"
            for layer, v in per_layer.items()
        )
        cpl_txt = "" if self.input_info["cpl"] is None else f"CPL {self.input_info['cpl']:.3f}<br>"
        self.input_html.value = (
            f"<div style='display:flex;gap:12px;align-items:flex-start'>{img}<div>true class "
            f"<b>{html.escape(self.input_info['label'])}</b><br>network answer "
            f"<b>{html.escape(self.input_info['dnn'])}</b><br>{cpl_txt}"
            f"<table cellpadding='2'><tr><th>layer</th><th>library's top answer</th></tr>"
            f"{rows}</table></div></div>"
        )
