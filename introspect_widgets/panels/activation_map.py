"""ActivationMapPanel: a classifier's self-introspective map (Pardo et al. 2022), explorable.

Controls -> one core call -> one view:

- **Fit / load** (``Study.selfintro``, cached in the study's workdir) -> the map of a
  split: every input a point, coloured by class, by correctness or by estimated error;
  hovering shows the input image, its label and the answer.
- Clicking a point (or typing its index) -> ``SelfIntrospector.analyze`` of that input ->
  its activations in the network reordered by preferred class (heatmap) above the
  brainbow colours of the units.
- **Run** (``introspect.attacks.noise_path`` or a targeted ``iterative_fgsm``) ->
  ``SelfIntrospector.embed_trajectory`` -> the path of the input on the map; the step
  slider (with a play button) grows it step by step.
"""

from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import torch
from bokeh.layouts import column, row
from bokeh.models import (
    ColumnDataSource,
    HoverTool,
    Legend,
    LegendItem,
    LinearColorMapper,
    Range1d,
    TapTool,
)
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

from introspect.attacks import iterative_fgsm, noise_path
from introspect.selfintro import SelfIntrospector

from ..plots import colour_bar, one_toolbar
from ..plots.images import thumbnail_uri
from ..plots.selfintro import EXTENT, class_palette, image_rgba
from ._base import Panel, as_study, bokeh_widget, hold_sync
from ._empty import EmptyState

# noise_path (introspect.attacks) and thumbnail_uri (plots.images) stay importable here
__all__ = ["ActivationMapPanel", "COLOR_BY", "noise_path", "thumbnail_uri"]

COLOR_BY = ("class", "correctness", "estimated error")
ATTACKS = ("targeted FGSM", "noise sweep")
_OK, _BAD = "#2ca02c", "#d62728"


def _error_colors(v: np.ndarray, lo: float, hi: float) -> list[str]:
    t = np.clip((np.asarray(v) - lo) / max(hi - lo, 1e-9), 0, 1)
    idx = (t * (len(Viridis256) - 1)).astype(int)
    return [Viridis256[i] for i in idx]


class ActivationMapPanel(Panel):
    """The 2-D activation map of a dataset, with per-input activations and trajectories.

    **Fit / load** calls ``study.selfintro(layers, vae=..., estimator=...)`` (fitted on the
    training split, cached in the study's workdir, so a figure or your own call with the
    same settings shares it) and maps ``split``.

    Parameters
    ----------
    study : Study or str
        A :class:`introspect.Study` of a classifier (e.g. Pardo's Net1), or a recipe name
        (``"net1_mlp@digits"``, ``"net1_mlp@mnist"``) made one by
        :meth:`introspect.Study.from_recipe` (with ``workdir``, ``device``, ``data_root``,
        ``n_per_class``).
    split : str
        The study's split shown on the map.
    layers : list of str, optional
        Hidden layers of the map (default: the study's layers).
    vae, estimator : InfoVAE, ErrorEstimator, optional
        Unfitted templates with the hyperparameters to use (``Study.selfintro``'s
        defaults otherwise: the paper's Table 2).
    max_points : int
        At most this many inputs on the map (70,000 stay responsive with WebGL).
    max_thumbnails : int
        Hover thumbnails are made for at most this many points (PNG data URIs); the
        others show label and answer only.
    seed : int
        Of the fit, the subset of ``max_points`` and the noise sweep.
    fit : bool
        Fit / load at once (default: when **Fit / load** is pressed).
    """

    def __init__(
        self,
        study,
        *,
        split: str = "test",
        layers=None,
        vae=None,
        estimator=None,
        max_points: int = 70_000,
        max_thumbnails: int = 20_000,
        seed: int = 0,
        fit: bool = False,
        workdir: str = "introspect-work",
        device: str = "cpu",
        data_root: str | None = None,
        n_per_class: int | None = None,
    ):
        super().__init__(title="Self-introspection: activation map")
        self.study = as_study(
            study, "ActivationMapPanel", workdir=workdir, device=device, data_root=data_root,
            n_per_class=n_per_class,
        )  # fmt: skip
        self.si: SelfIntrospector | None = None
        self.split, self.layers = split, layers
        self.vae, self.estimator = vae, estimator
        self.max_points, self.max_thumbnails = int(max_points), int(max_thumbnails)
        self.seed = int(seed)
        self.x: torch.Tensor | None = None
        self.result: dict | None = None  # analyze() of the mapped inputs
        self.trajectory: dict | None = None
        self.selected: int | None = None

        style = {"description_width": "80px"}
        self.fit_button = self.button("Fit / load", self._fit, button_style="primary")
        self.color_by = W.ToggleButtons(options=list(COLOR_BY), value="class", description="colour")
        self.index = W.BoundedIntText(value=0, min=0, max=0, description="input #", style=style)
        self.show_button = self.button("Show", lambda: self.select(self.index.value))
        self.attack = W.Dropdown(
            options=list(ATTACKS), value=ATTACKS[0], description="run", style=style
        )
        self.target = W.Dropdown(options=[], description="target", style=style)
        self.n_steps = W.BoundedIntText(
            value=100, min=1, max=10_000, description="steps", style=style
        )
        self.step_size = W.BoundedFloatText(
            value=0.01,
            min=0.0,
            max=1.0,
            step=0.005,
            description="step / σ max",
            style={"description_width": "95px"},  # at 80 px it read "step / σ m..."
        )
        self.run_button = self.button("Run", self._run_trajectory, button_style="warning")
        self.step = W.IntSlider(value=0, min=0, max=0, description="step", continuous_update=True)
        self.play = W.Play(value=0, min=0, max=0, interval=60, description="play")
        W.jslink((self.play, "value"), (self.step, "value"))
        self.observe(self.color_by, self._recolor)
        self.observe(self.step, self._show_step)
        self.observe(self.attack, self._attack_changed)

        self._build_views()
        self.view = bokeh_widget(self.layout)
        # before Fit / load: a message instead of empty axes (the views show with the
        # first points on the map)
        self.view_box = EmptyState(
            self.view,
            "Press Fit / load to fit the self-introspective map of the study (an InfoVAE "
            "over every hidden layer and an error estimator, on the training split; cached "
            f"in the workdir) and draw the {split} inputs here as points. Then click a point "
            "to see its activations and run an attack on it.",
            sources=[self.points],
            width=640,
        )
        self._auto_target: int | None = None  # the target last picked for an input
        # new classes (a fit): no choice of the user stands
        self.observe(self.target, self._forget_target, names="options")
        self.children = [
            W.HBox([self.fit_button, self.color_by], layout=W.Layout(flex_flow="row wrap")),
            W.HBox([self.index, self.show_button]),
            W.HBox(
                [self.attack, self.target, self.n_steps, self.step_size, self.run_button],
                layout=W.Layout(flex_flow="row wrap"),
            ),
            W.HBox([self.play, self.step]),
            self.view_box,
        ]
        if fit:  # in a notebook: once the panel is on screen, with progress and Cancel
            self.after_display(self._fit)

    # ------------------------------------------------------------------ views
    def _build_views(self):
        self.points = ColumnDataSource(
            dict(
                z1=[],
                z2=[],
                color=[],
                label=[],
                answer=[],
                error=[],
                thumb=[],
                index=[],
                label_html=[],
                answer_html=[],
            ),
            name="points",
        )
        # a fixed square frame: the key under it adds height instead of squashing the map
        p = figure(
            title="activation map",
            frame_width=440,
            frame_height=440,
            x_range=Range1d(-EXTENT, EXTENT),
            y_range=Range1d(-EXTENT, EXTENT),
            output_backend="webgl",
            tools="pan,wheel_zoom,box_zoom,reset,tap,save",
            match_aspect=True,
        )
        p.xaxis.axis_label, p.yaxis.axis_label = "z1", "z2"
        self.point_renderer = p.scatter(
            "z1", "z2", source=self.points, color="color", size=4, alpha=0.7
        )
        # the key under the map: one entry per class (or correct / misclassified), each
        # drawn with the glyph of a point of its colour (set by _key); under "estimated
        # error" a colour bar of log10 ê stands in its place
        self.key = Legend(
            items=[], orientation="horizontal", label_text_font_size="8pt", glyph_width=12,
            glyph_height=12, spacing=6, padding=2, margin=2,
        )  # fmt: skip
        p.add_layout(self.key, "below")
        self.error_mapper = LinearColorMapper(palette=Viridis256, low=-6.0, high=0.0)
        self.error_bar = colour_bar(
            p, self.error_mapper, "log10 ê (estimated error; low: likely right)", place="below"
        )
        self.error_bar.visible = False
        # An HTML tooltip: bokeh < 3.8 puts @field values into it unescaped, so the class names
        # come html-escaped in *_html columns and are inserted as they are ({safe}).
        p.add_tools(
            HoverTool(
                renderers=[self.point_renderer],
                tooltips="""
                <div><img src="@thumb" width="48" height="48" style="image-rendering:pixelated"
                 onerror="this.style.display='none'"></div>
                <div>#@index label <b>@label_html{safe}</b> answer <b>@answer_html{safe}</b></div>
                <div>log10 ê = @error{0.00}</div>""",
            )
        )
        p.select_one(TapTool).renderers = [self.point_renderer]
        self.traj = ColumnDataSource(dict(z1=[], z2=[], step=[], answer=[]))
        self.traj_all = ColumnDataSource(dict(z1=[], z2=[]))
        p.line("z1", "z2", source=self.traj_all, color="grey", line_dash="dotted", alpha=0.5)
        p.line("z1", "z2", source=self.traj, color="black", line_width=2.5)
        tr = p.scatter("z1", "z2", source=self.traj, color="black", size=5)
        p.add_tools(HoverTool(renderers=[tr], tooltips=[("step", "@step"), ("answer", "@answer")]))
        self.cross = ColumnDataSource(dict(z1=[], z2=[]))
        p.scatter(
            "z1", "z2", source=self.cross, marker="cross", size=18, color="black", line_width=3
        )
        self.map_figure = p
        self.points.selected.on_change("indices", self._tapped)

        self.image = ColumnDataSource(dict(image=[np.zeros((1, 1), np.uint32)]))
        im = figure(
            title="input", frame_width=180, frame_height=180, x_range=Range1d(0, 1),
            y_range=Range1d(0, 1), tools="", toolbar_location=None,
        )  # fmt: skip
        im.image_rgba(image="image", source=self.image, x=0, y=0, dw=1, dh=1)
        im.axis.visible = False
        im.title.text_font_size = "9pt"  # "step 12: answer 4, log10 ê -5.54" fits 180 px
        self.image_figure = im

        self.heat = ColumnDataSource(dict(image=[np.zeros((1, 1))], dw=[1], dh=[1]))
        self.heat_mapper = LinearColorMapper(palette=Viridis256, low=-1.0, high=4.0)
        h = figure(
            title="activations, units reordered by preferred class", width=720, height=220,
            tools="hover,save,reset", tooltips=[("activation", "@image{0.00}")],
        )  # fmt: skip
        h.image(
            image="image",
            source=self.heat,
            x=0,
            y=0,
            dw="dw",
            dh="dh",
            color_mapper=self.heat_mapper,
        )
        h.y_range.flipped = True
        h.yaxis.axis_label = "layer"
        colour_bar(h, self.heat_mapper, "activation")
        self.heat_figure = h
        self.rainbow = ColumnDataSource(dict(image=[np.zeros((1, 1), np.uint32)], dw=[1], dh=[1]))
        b = figure(
            title="brainbow colour of each unit (same order)", width=720, height=140, tools="save"
        )
        b.image_rgba(image="image", source=self.rainbow, x=0, y=0, dw="dw", dh="dh")
        b.y_range.flipped = True
        b.x_range = h.x_range
        self.brainbow_figure = b
        # the map and the input side by side, the activations under them: 750 px wide (the
        # activations beside the map made 1,270 px, clipped in a notebook at 1280 px)
        # one merged toolbar for the four plots (as every figure's layout: plots.one_toolbar)
        self.layout = one_toolbar(column(row(p, im), h, b))

    # ------------------------------------------------------------------ fitting
    def _fit(self):
        def body():
            self.si = self.study.selfintro(
                self.layers, vae=self.vae, estimator=self.estimator, seed=self.seed
            )
            y = self.study.labels(self.split)
            keep = None
            if len(y) > self.max_points:
                keep = np.sort(
                    np.random.default_rng(self.seed).choice(len(y), self.max_points, replace=False)
                )
                y = y[keep]
            x = self.study.images(self.split, keep)
            self.x, self.labels = x, np.asarray(y)
            self.result = self.si.analyze(x)
            del self.result["hidden"]  # (N, D) can be GBs for 70,000 inputs; recomputed per click
            self.classes = list(self.study.classes)
            self._order = self.si.global_order()
            rgb = self.si.brainbow()
            self._brainbow = {n: rgb[n][o] for n, o in self.si.unit_order().items()}
            self._fill_points()
            with hold_sync(self.index, self.target):
                self.index.max = len(x) - 1
                self.target.options = [(c, k) for k, c in enumerate(self.classes)]
                self.target.value = 0  # a Dropdown keeps None after new options
            acc = float((self.result["pred"] == self.labels).mean())
            self.set_status(f"{len(x)} inputs mapped; accuracy {acc:.4f}")
            self.select(0)

        self.run_task("fitting the self-introspective map", body, self.fit_button)

    def _fill_points(self):
        r = self.result
        n = len(self.labels)
        thumbs = [
            thumbnail_uri(self.x[i].numpy()) if i < self.max_thumbnails else "" for i in range(n)
        ]
        label = [str(self.classes[k]) for k in self.labels]
        answer = [str(self.classes[k]) for k in r["pred"]]
        self.points.data = dict(
            z1=r["z"][:, 0],
            z2=r["z"][:, 1],
            color=self._colors(),
            label=label,
            answer=answer,
            error=r["log10_error_hat"],
            thumb=thumbs,
            index=np.arange(n),
            label_html=[html.escape(s) for s in label],
            answer_html=[html.escape(s) for s in answer],
        )
        self._key()

    def _colors(self) -> list[str]:
        r = self.result
        mode = self.color_by.value
        if mode == "class":
            pal = class_palette(len(self.classes))
            return [pal[k] for k in self.labels]
        if mode == "correctness":
            return [_OK if ok else _BAD for ok in (r["pred"] == self.labels)]
        e = r["log10_error_hat"]
        lo, hi = float(np.percentile(e, 1)), float(np.percentile(e, 99))
        self.error_mapper.update(low=lo, high=max(hi, lo + 1e-9))
        return _error_colors(e, lo, hi)

    def _key(self) -> None:
        """The map's key for the colour mode: an entry per class present (in class order)
        or for correct / misclassified, each showing the glyph of its first point; under
        estimated error the colour bar instead."""
        mode = self.color_by.value
        error = mode == "estimated error"
        self.key.visible, self.error_bar.visible = not error, error
        if mode == "class":
            groups = [(str(c), self.labels == k) for k, c in enumerate(self.classes)]
        elif mode == "correctness":
            ok = self.result["pred"] == self.labels
            groups = [("correct", ok), ("misclassified", ~ok)]
        else:
            groups = []
        self.key.items = [
            LegendItem(label=name, renderers=[self.point_renderer], index=int(np.argmax(rows)))
            for name, rows in groups
            if rows.any()
        ]
        self.key.nrows = max(1, -(-len(self.key.items) // 5))  # rows of at most 5 entries

    def _recolor(self, change=None):
        if self.result is None:
            return
        self.points.patch({"color": [(slice(None), self._colors())]})
        self._key()

    # ------------------------------------------------------------------ one input
    def _tapped(self, attr, old, new):
        if new:
            self.select(int(new[0]))

    def select(self, i: int) -> None:
        """Show input ``i``: its image, its cross on the map and its reordered activations."""
        if self.result is None:
            raise RuntimeError("nothing mapped yet: press 'Fit / load' first")
        i = int(i)
        if not 0 <= i < len(self.labels):
            raise IndexError(f"input # must be in [0, {len(self.labels) - 1}]; got {i}")
        self.selected = i
        r = self.result
        lab, pr = int(self.labels[i]), int(r["pred"][i])
        self.image.data = dict(image=[image_rgba(self.x[i].numpy())])
        self.image_figure.title.text = f"#{i}: label {self.classes[lab]}, answer {self.classes[pr]}"
        self.cross.data = dict(z1=[r["z"][i, 0]], z2=[r["z"][i, 1]])
        self._show_activations(self.si.analyze(self.x[i : i + 1])["hidden"][0])
        with hold_sync(self.index):
            self.index.value = i
        self._default_target(i)
        self.trajectory = None
        self.traj.data = dict(z1=[], z2=[], step=[], answer=[])
        self.traj_all.data = dict(z1=[], z2=[])

    def _layer_rows(self, vec: np.ndarray) -> np.ndarray:
        widths = [s.stop - s.start for s in self.si.layer_slices_.values()]
        M = np.full((len(widths), max(widths)), np.nan)
        start = 0
        for j, w in enumerate(widths):
            M[j, :w] = vec[start : start + w]
            start += w
        return M

    def _show_activations(self, h: np.ndarray) -> None:
        M = self._layer_rows(np.asarray(h)[self._order])
        self.heat.data = dict(image=[M], dw=[M.shape[1]], dh=[M.shape[0]])
        widths = [len(v) for v in self._brainbow.values()]
        rgb = np.zeros((len(widths), max(widths), 3))
        for j, v in enumerate(self._brainbow.values()):
            rgb[j, : len(v)] = v
        img = image_rgba(np.moveaxis(rgb, -1, 0))[::-1]
        self.rainbow.data = dict(image=[img], dw=[rgb.shape[1]], dh=[rgb.shape[0]])

    # ------------------------------------------------------------------ trajectories
    def runner_up(self, i: int) -> int:
        """The class the network scores highest for input ``i`` besides its label.

        The default target of the FGSM attack: the nearest other class, so the attack
        succeeds within the default steps (on ``net1_mlp@digits`` for 58 of the first 60
        test inputs at 100 steps of 0.01) and never aims at the input's own class.
        """
        with torch.no_grad():
            out = self.study.model(self.x[int(i) : int(i) + 1].to(self.study.device))
        scores = out[0].detach().cpu().numpy().astype(float)
        scores[int(self.labels[int(i)])] = -np.inf
        return int(np.argmax(scores))

    def _default_target(self, i: int) -> None:
        """Set the target to the runner-up of input ``i``, unless the user chose another
        one since the last pick (a choice is kept while it is not the input's label)."""
        if not self.target.options:
            return
        value = self.target.value
        chosen = self._auto_target is not None and value not in (self._auto_target, None)
        if chosen and value != int(self.labels[i]):
            return
        self._auto_target = self.runner_up(i)
        self.target.value = self._auto_target

    def _forget_target(self, change) -> None:
        self._auto_target = None

    def _attack_changed(self, change):
        noise = change["new"] == "noise sweep"
        with hold_sync(self.target, self.step_size):
            self.target.disabled = noise
            self.step_size.value = 0.3 if noise else 0.01

    def _run_trajectory(self):
        def body():
            if self.selected is None:
                raise RuntimeError("select an input first (click a point or type its index)")
            self.trajectory = self.run_trajectory(
                self.selected, self.attack.value, self.target.value, self.n_steps.value,
                self.step_size.value,
            )  # fmt: skip
            with hold_sync(self.step, self.play):
                n = len(self.trajectory["z"]) - 1
                self.play.max = self.step.max = n
                self.play.value = self.step.value = 0
            self._show_step({"new": 0})
            self.traj_all.data = dict(z1=self.trajectory["z"][:, 0], z2=self.trajectory["z"][:, 1])
            t = self.trajectory
            self.set_status(
                f"{self.attack.value}: answer {self.classes[t['pred'][0]]} -> "
                f"{self.classes[t['pred'][-1]]} after {len(t['z']) - 1} steps"
            )

        self.run_task(f"running {self.attack.value}", body, self.run_button)

    def run_trajectory(self, i, attack, target, steps, step) -> dict:
        """The path of input ``i`` on the map under an attack or a noise sweep (core calls).

        Returns dict with ``z`` (steps + 1, 2), ``pred`` and ``log10_error_hat`` (steps + 1,).
        """
        x = self.x[int(i)]
        if attack == "targeted FGSM":
            if target is None:
                raise ValueError("choose a target class for the FGSM attack")
            path = iterative_fgsm(
                self.study.model, x[None], torch.tensor([int(target)]), steps=int(steps),
                step_size=float(step), loss="mse", device=self.study.device,
            )[0]  # fmt: skip
        elif attack == "noise sweep":
            path = noise_path(x, float(step), int(steps), seed=self.seed)
        else:
            raise ValueError(f"attack must be one of {ATTACKS}; got {attack!r}")
        a = self.si.analyze(path)
        return {"z": a["z"], "pred": a["pred"], "log10_error_hat": a["log10_error_hat"], "x": path}

    def _show_step(self, change):
        if self.trajectory is None:
            return
        k = int(change["new"]) + 1
        t = self.trajectory
        self.traj.data = dict(
            z1=t["z"][:k, 0],
            z2=t["z"][:k, 1],
            step=np.arange(k),
            answer=[self.classes[p] for p in t["pred"][:k]],
        )
        self.cross.data = dict(z1=[t["z"][k - 1, 0]], z2=[t["z"][k - 1, 1]])
        h = self.si.analyze(t["x"][k - 1 : k])
        self.image.data = dict(image=[image_rgba(t["x"][k - 1].numpy())])
        self.image_figure.title.text = (
            f"step {k - 1}: answer {self.classes[int(h['pred'][0])]}, "
            f"log10 ê {h['log10_error_hat'][0]:.2f}"
        )
        self._show_activations(h["hidden"][0])
