"""Dashboard: the four lenses of a :class:`~introspect.Study` around one input inspector.

::

    from introspect import Study
    from introspect_widgets import Dashboard

    study = Study.from_recipe("small_cnn@digits", device="cpu")
    dash = Dashboard(study)      # on screen at once; the lenses fill in as they are computed
    dash                         # (a notebook cell ending in it shows it)

Tabs (every one computed through the study's cached methods, with a status line):

- **Telescope**: the toroidal SOM of one layer (``study.telescope``), units coloured by the
  training split's BMU density or majority class, the test inputs as points at their BMU.
- **Library**: the confusion index of one layer's library network (``study.library``) on a
  fixed [0, 1] colour scale, and the CPL histogram (clean test inputs, and PGD ones).
- **Self-introspection**: the 2-D activation map (``study.selfintro``): the test inputs'
  codes ``z`` coloured by class over the estimated error ``log10 ê``.
- **Manifolds**: CAM dimension (with ``n``) against the class-wise PGD accuracy
  (``study.manifolds``), and every test input's distance to its class manifold.
- **Confusion matrix** of the network on the test split.
- **Detect** (on demand: **Run detection**, ``dash.compute_detect()`` or ``detect=``):
  ``study.detect`` with detectors that reuse the tabs' SOMs, libraries and introspector;
  ROC curves of every detector for the chosen attack and eps, and the chosen detector's
  score histogram, clean vs perturbed, with one point per input under it.

One selection, a list of test-split indices (``dash.selection``), is shared by all of
them: a SOM unit, a confusion-index cell, a lasso or tap on the activation map or the
manifold strip, a class in the manifold scatter, a confusion-matrix cell or a point
under the Detect tab's histogram sets it, and
every lens highlights the selected inputs. The inspector on the right shows the first
selected input and what each lens says about it; **Attack this input** runs a PGD or
iterative FGSM path from it and draws the path in every lens at once.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import threading
import time

import ipywidgets as W
import numpy as np
import torch
import traitlets
from bokeh.layouts import column, row
from bokeh.models import (
    BasicTicker,
    ColorBar,
    ColumnDataSource,
    HoverTool,
    LabelSet,
    LinearColorMapper,
    Range1d,
    Span,
    TapTool,
)
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

from introspect import progress

from .panels._base import Panel, ProgressBar, bokeh_widget, guarded, hold_sync
from .plots import one_toolbar
from .plots.library import cpl_histogram, histogram_data
from .plots.selfintro import EXTENT, _map_figure, class_palette
from .widgets import GridView

__all__ = [
    "Dashboard",
    "DashboardState",
    "attack_path",
    "default_params",
    "detect_params",
    "ATTACKS",
    "LENSES",
    "TABS",
]

LENSES = ("telescope", "library", "selfintro", "manifolds", "confusion")
_TITLES = {
    "telescope": "Telescope (SOM)",
    "library": "Library networks",
    "selfintro": "Self-introspection",
    "manifolds": "Manifolds",
    "confusion": "Confusion matrix",
    "detect": "Detect",
}
TABS = (*LENSES, "detect")
"""Every tab; ``detect`` (ROC curves of every detector, ``Study.detect``) is computed on
demand (its button, :meth:`Dashboard.compute_detect`, or ``detect=`` at construction)."""
ATTACKS = {
    "untargeted PGD": "pgd",
    "targeted PGD": "pgd-targeted",
    "targeted iterative FGSM": "fgsm-targeted",
}
_EMPTY_UNIT = "#eeeeee"
_PINK = "#ff0066"  # the selection (and the attack path's current step) in every lens


# ----------------------------------------------------------------------------- helpers
def _esc(text) -> str:
    return html.escape(str(text))


def _png_uri(img, max_side: int = 112) -> tuple[str, int, int]:
    """A (C, H, W) image in [0, 1] as a PNG data URI, scaled by a whole factor (no stretch)."""
    from PIL import Image

    a = np.asarray(img, dtype=np.float64)
    a = a[0] if a.ndim == 3 and a.shape[0] == 1 else a
    if a.ndim == 3:
        a = np.moveaxis(a[:3], 0, -1)
    u8 = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    im = Image.fromarray(u8)
    h, w = u8.shape[:2]
    k = max(1, max_side // max(h, w))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(), w * k, h * k


def _img_tag(img, max_side: int = 112, cls: str = "") -> str:
    uri, w, h = _png_uri(img, max_side)
    return (
        f'<img class="{cls}" src="{uri}" width="{w}" height="{h}" '
        'style="image-rendering:pixelated;image-rendering:crisp-edges;'
        f'width:{w}px;height:{h}px;border:1px solid #bbb">'
    )


def _split_tensors(study, split: str) -> tuple[torch.Tensor, np.ndarray]:
    """Images (N, C, H, W) and labels (N,) of a study's split."""
    return study.images(split).float(), np.asarray(study.labels(split), dtype=np.int64)


def _split_len(study, split: str) -> int:
    ds = study.data(split)
    return len(ds[0]) if isinstance(ds, tuple) else len(ds)


def _feature_layers(study) -> list[str]:
    """The study's layers without the classifier (its output is not a representation)."""
    from introspect.models import resolve_layer

    arch = study.architecture  # names only: a lazy recipe study does not train here
    clf = getattr(arch, "classifier_path", None)
    out = []
    for name in study.layers:
        if name == "penultimate" or name.endswith(":input"):
            continue
        try:
            if clf is not None and resolve_layer(arch, name) == clf:
                continue
        except ValueError:
            pass
        out.append(name)
    return out or list(study.layers)


def _point_labels(x, y, texts, offset: float = 7.0):
    """Labels beside scatter points that stay inside the frame and do not overprint.

    Returns ``(text, align, dx)``: a point in the right half of the x span is labelled to
    its left (right-aligned), the others to their right; points at the same place share
    one label (the first carries all the names, the others none).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    finite = x[np.isfinite(x)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    text, seen = list(texts), {}
    for i, key in enumerate(zip(np.round(x, 6), np.round(y, 6))):
        if key in seen:
            j = seen[key]
            text[j] = f"{text[j].split(' (')[0]}, {text[i]}"
            text[i] = ""
        else:
            seen[key] = i
    right = [bool(v > mid) for v in x]
    align = ["right" if r else "left" for r in right]
    dx = [-offset if r else offset for r in right]
    return text, align, dx


def _unique_names(names) -> list[str]:
    """Class names as distinct strings (bokeh factor ranges refuse duplicates)."""
    seen: dict[str, int] = {}
    out = []
    for n in map(str, names):
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n} ({k})")
    return out


def _viridis(values, lo=None, hi=None) -> list[str]:
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    lo = float(finite.min()) if lo is None and finite.size else (lo or 0.0)
    hi = float(finite.max()) if hi is None and finite.size else (hi if hi is not None else 1.0)
    t = np.clip((v - lo) / max(hi - lo, 1e-12), 0, 1)
    idx = np.nan_to_num(t * (len(Viridis256) - 1)).astype(int)
    return [Viridis256[i] if np.isfinite(x) else _EMPTY_UNIT for i, x in zip(idx, v)]


def _selfintro_layers(study, features: list[str]) -> list[str]:
    """The last three representation layers and the classifier: the InfoVAE's input stays
    small (the first conv layers of a CNN are most of its units), the map still sees the
    answer."""
    rest = [k for k in study.layers if k not in features and k != "penultimate"]
    return [k for k in study.layers if k in features[-3:] or k in rest]


def _figure(title, width, height, x_label=None, y_label=None, tools="save", **kwargs):
    """A bokeh figure: title, size, axis labels and tools (``kwargs``: ranges and the rest)."""
    labels = dict(x_axis_label=x_label, y_axis_label=y_label)
    return figure(title=title, width=width, height=height, tools=tools, **labels, **kwargs)


def _hover(fig, renderer, tooltips, tap: bool = False) -> None:
    """Tooltips on ``renderer`` alone; with ``tap``, the figure's taps select in it alone."""
    fig.add_tools(HoverTool(renderers=[renderer], tooltips=tooltips))
    if tap:
        fig.select_one(TapTool).renderers = [renderer]


def _cells(fig, source, fill_color, **kwargs):
    """Unit squares at the source's (x, y); a tap does not fade the other cells."""
    return fig.rect(
        "x", "y", 1, 1, source=source, fill_color=fill_color, nonselection_fill_alpha=1.0,
        selection_fill_alpha=1.0, **kwargs,
    )  # fmt: skip


def _outline(fig, source, color) -> None:
    """Empty unit squares at the source's (x, y): the cells of the selection."""
    fig.rect("x", "y", 1, 1, source=source, fill_alpha=0, line_color=color, line_width=2.5)


def _points(fig, x, y, source, size, alpha, faded, selected_size, **kwargs):
    """Inputs coloured by class: the selected ones pink and ``selected_size``, the others
    at alpha ``faded``."""
    pts = fig.scatter(
        x, y, source=source, size=size, color="color", alpha=alpha, selection_color=_PINK,
        selection_alpha=1.0, nonselection_alpha=faded, **kwargs,
    )  # fmt: skip
    pts.selection_glyph.size = selected_size
    return pts


def _path(fig, x, y, source, size=5, hollow=False, line_source=None, **line_kwargs):
    """An attack path: a black line (through ``line_source``, default ``source``) and a
    marker per step, white ones with ``hollow``; returns the markers."""
    line_source = source if line_source is None else line_source
    fig.line(x, y, source=line_source, color="black", line_width=2, **line_kwargs)
    if hollow:
        return fig.scatter(
            x, y, source=source, size=size, color="white", line_color="black", line_width=1.5
        )
    return fig.scatter(x, y, source=source, size=size, color="black")


def _star(fig, x, y, source, size=14, **kwargs) -> None:
    """The attack path's current step."""
    fig.scatter(x, y, source=source, marker="star", size=size, color=_PINK, **kwargs)


def _class_axis(axis, names, offset=0) -> None:
    """Class names as the ticks of ``axis``, class ``k`` at ``k + offset``."""
    ticks = [k + offset for k in range(len(names))]
    axis.ticker = ticks
    axis.major_label_overrides = dict(zip(ticks, names))


def _empty_note(fig, source, text: str) -> None:
    """``text`` in an empty plot (instead of bare axes), hidden while ``source`` has rows."""
    from bokeh.models import Label

    note = Label(
        x=12, y=fig.height / 2 - 20, x_units="screen", y_units="screen", text=text,
        text_font_size="11px", text_color="#666666",
    )  # fmt: skip
    fig.add_layout(note)

    def follow(attr, old, new):
        note.visible = not any(len(v) for v in (new or {}).values())

    source.on_change("data", follow)


def _small_legend(fig) -> None:
    fig.legend.location = "top_left"
    fig.legend.label_text_font_size = "8pt"


def _number(cls, value, low, high, description, style, **kwargs):
    """A bounded number box of the attack controls."""
    kwargs.update(description=description, style=style, layout=W.Layout(width="170px"))
    return cls(value=value, min=low, max=high, **kwargs)


def _empty_hist() -> dict:
    return dict(left=[], right=[], clean=[], adversarial=[])


def _cpl(stack, scores: dict) -> np.ndarray:
    """CPL of every row across the stack's layers (NaN with a single layer: nothing to compare)."""
    if len(scores) < 2:
        return np.full(len(next(iter(scores.values()))), np.nan)
    return np.asarray(stack.cpl(None, scores=scores), dtype=np.float64)


def default_params(study) -> dict:
    """Fast defaults of every lens for ``study`` (about a minute on 2 CPU cores for digits).

    Returns
    -------
    dict lens -> dict of keyword arguments
        ``telescope``: SOMs of ``layers`` (the study's layers without the classifier) of
        ``size`` x ``size`` units, ``epochs``; ``library``: ``theta`` on the last two of
        those layers; ``selfintro``: small InfoVAE / ErrorEstimator (``vae`` and
        ``estimator`` are their keyword arguments) on the last three of those layers and
        the classifier; ``manifolds``: ``layer``,
        ``threshold`` and the PGD ``eps`` / ``n`` / ``nb_iter`` of the class-wise
        accuracy; ``attack``: the path of **Attack this input**.
    """
    layers = _feature_layers(study)
    return dict(
        telescope=dict(
            layers=layers, layer=layers[-1], size=10, epochs=3, batch_size=10, top_k=10, seed=0
        ),
        library=dict(layers=layers[-2:], theta=0.6, top_k=3),
        selfintro=dict(
            layers=_selfintro_layers(study, layers),
            vae=dict(hidden=(128, 128), epochs=20, batch_size=128),
            estimator=dict(hidden=(64, 64), epochs=20, batch_size=64),
            seed=0,
        ),
        manifolds=dict(layer="penultimate", threshold=0.95, eps=0.03, n=300, nb_iter=10, seed=0),
        attack=dict(kind="pgd", steps=20, step_size=0.01, eps=0.1, target=None),
    )


def detect_params(study, params: dict | None = None) -> dict:
    """Keyword arguments of ``study.detect`` for the Detect tab: a few fast attacks, and
    per-lens detector settings equal to the dashboard's own lens parameters, so the
    detectors reuse the SOMs, libraries and introspector the other tabs fitted.

    ``params`` is :func:`default_params` (or the dashboard's ``params``).
    """
    p = params or default_params(study)
    tel, lib, si = p["telescope"], p["library"], p["selfintro"]
    return dict(
        attacks=["pgd", "fgsm", "uniform", "gaussian"],
        eps=[0.1, 0.2],
        n=200,
        nb_iter=10,
        options=dict(
            telescope={k: tel[k] for k in ("layers", "size", "epochs", "top_k", "seed", "batch_size")
                       if k in tel},
            library={k: lib[k] for k in ("layers", "theta", "top_k") if k in lib},
            selfintro={k: si[k] for k in ("layers", "vae", "estimator", "seed") if k in si},
            manifolds=dict(layer=p["manifolds"].get("layer", "penultimate"),
                           threshold=p["manifolds"].get("threshold", 0.95)),
        ),
    )  # fmt: skip


def attack_path(
    model,
    x: torch.Tensor,
    y: int,
    kind: str = "pgd",
    *,
    target: int | None = None,
    steps: int = 20,
    step_size: float = 0.01,
    eps: float = 0.1,
    device="cpu",
) -> torch.Tensor:
    """Every step of an attack on one image, through :mod:`introspect.attacks`.

    Parameters
    ----------
    model : nn.Module in eval mode, images in [0, 1]
    x : Tensor of shape (C, H, W) in [0, 1]
    y : int
        The input's label.
    kind : {"pgd", "pgd-targeted", "fgsm-targeted"}
        ``pgd``: untargeted L-inf PGD, one :func:`introspect.attacks.pgd` step of
        ``step_size`` at a time (no random start), projected on the ``eps`` ball around
        ``x``; ``pgd-targeted``: the same towards ``target``; ``fgsm-targeted``:
        :func:`introspect.attacks.iterative_fgsm` towards ``target`` with ``record=True``
        (no projection, as in Pardo et al.).
    steps, step_size, eps : int, float, float

    Returns
    -------
    Tensor of shape (steps + 1, C, H, W); index 0 is ``x``.
    """
    from introspect.attacks import iterative_fgsm, pgd

    if kind not in ATTACKS.values():
        raise ValueError(f"kind must be one of {sorted(ATTACKS.values())}; got {kind!r}.")
    x = torch.as_tensor(x).float()
    if x.ndim != 3:
        raise ValueError(f"attack_path takes one image (C, H, W); got shape {tuple(x.shape)}.")
    targeted = kind != "pgd"
    if targeted and target is None:
        raise ValueError("a targeted attack needs target=<class>.")
    goal = torch.tensor([int(target if targeted else y)])
    if kind == "fgsm-targeted":
        return iterative_fgsm(
            model,
            x[None],
            goal,
            steps=int(steps),
            step_size=float(step_size),
            loss="ce",
            record=True,
            device=device,
        )[0]
    x0 = x[None]
    cur, path = x0, [x0]
    for _ in range(int(steps)):
        nxt = pgd(
            model,
            cur,
            goal,
            eps=float(step_size),
            nb_iter=1,
            eps_iter=float(step_size),
            rand_init=False,
            targeted=targeted,
            device=device,
            seed=None,
        )
        cur = torch.min(torch.max(nxt, x0 - eps), x0 + eps).clamp(0.0, 1.0)
        path.append(cur)
    return torch.cat(path)


class DashboardState(traitlets.HasTraits):
    """The dashboard's shared state: observe it with ``dash.state.observe(fn, "selection")``.

    Traits
    ------
    selection : list of int
        Test-split indices of the selected inputs (the inspector shows the first).
    origin : str
        Which lens set it (``"telescope"``, ``"library"``, ``"selfintro"``,
        ``"manifolds"``, ``"confusion"`` or ``"python"``) and how, in words.
    """

    selection = traitlets.List(traitlets.Int())
    origin = traitlets.Unicode("")


# ----------------------------------------------------------------------------- dashboard
class Dashboard(Panel):
    """The four lenses of a study as tabs around a shared input inspector.

    Parameters
    ----------
    study : introspect.Study
    telescope, library, selfintro, manifolds : dict or result, optional
        Keyword arguments of the study's method that override :func:`default_params`
        (``telescope`` also takes ``layers``, the SOMs to fit, and ``layer``, the one
        shown), or an already computed result: a ``TelescopeResult`` (or a list of them),
        a ``LibraryResult``, a fitted ``SelfIntrospector`` or a ``ManifoldResult``. In
        ``selfintro``, ``vae`` and ``estimator`` may be dicts of keyword arguments or
        unfitted ``InfoVAE`` / ``ErrorEstimator`` objects.
    attack : dict, optional
        Defaults of the attack controls: ``kind`` ("pgd", "pgd-targeted",
        "fgsm-targeted"), ``steps``, ``step_size``, ``eps``, ``target``.
    detect : dict or bool, optional
        The Detect tab: keyword arguments of ``study.detect`` over
        :func:`detect_params`. Given (or True), :meth:`compute` runs it after the lenses;
        otherwise the tab's **Run detection** button (or :meth:`compute_detect`) does.
    split : str
        The split the lenses show and the selection indexes (default ``"test"``).
    autostart : bool
        Start computing when the dashboard is first displayed, so it is on screen (with
        a progress bar and a status line per tab) before the first long step: in a
        kernel right after the displaying cell, else in a background thread. Headless,
        call :meth:`compute`.

    Attributes
    ----------
    selection : list of int
        The shared selection; settable (``dash.selection = [3, 7]``).
    state : DashboardState
        The selection as traitlets (observe it).
    params : dict lens -> dict
    results : dict lens -> result
        ``telescope`` is a dict layer -> TelescopeResult.
    path : dict or None
        The last attack path (see :meth:`attack`).
    timings : dict stage -> seconds
    """

    def __init__(
        self,
        study,
        *,
        telescope=None,
        library=None,
        selfintro=None,
        manifolds=None,
        attack: dict | None = None,
        detect: dict | bool | None = None,
        split: str = "test",
        autostart: bool = True,
    ):
        super().__init__(title="introspect dashboard")
        self.study = study
        self.split = split if split in study.datasets else next(iter(study.datasets))
        self.autostart = bool(autostart)
        self.state = DashboardState()
        self.params = default_params(study)
        self.results: dict = {}
        self._given: dict = {}
        for lens, arg in (
            ("telescope", telescope),
            ("library", library),
            ("selfintro", selfintro),
            ("manifolds", manifolds),
        ):
            if isinstance(arg, dict):
                self.params[lens] = {**self.params[lens], **arg}
            elif arg is not None:
                self._given[lens] = arg
        self.params["attack"] = {**self.params["attack"], **(attack or {})}
        self._adopt_given()
        self._detect_on_compute = bool(detect)
        self.params["detect"] = {
            **detect_params(study, self.params),
            **(detect if isinstance(detect, dict) else {}),
        }
        self.classes = [str(c) for c in study.classes]
        self.names = _unique_names(self.classes)
        self.n_classes = len(self.classes)
        self.palette = class_palette(self.n_classes)
        self.n_inputs = _split_len(study, self.split)
        self.path: dict | None = None
        self.timings: dict[str, float] = {}
        self.ready: dict[str, bool] = {k: False for k in LENSES}
        self._lock = threading.RLock()
        self._syncing = False
        self._thread: threading.Thread | None = None
        self._started = False
        self._x: torch.Tensor | None = None
        self.labels: np.ndarray | None = None
        self.preds: np.ndarray | None = None
        self.per_input: dict = {}

        self._build_header()
        self._build_telescope()
        self._build_library()
        self._build_selfintro()
        self._build_manifolds()
        self._build_confusion()
        self._build_detect()
        self._build_inspector()
        pages = [self.pages[k] for k in TABS]
        self.tabs = W.Tab(children=pages, titles=[_TITLES[k] for k in TABS])
        # the tabs need ~780 px (the library and detect views); with less room beside the
        # inspector (a 1280 px window with JupyterLab's file browser open leaves ~850 px)
        # the inspector wraps below them instead of squeezing them (their plots were
        # clipped, the Run detection button shrank to "R")
        self.tabs.layout = W.Layout(flex="1 1 auto", min_width="780px")
        body = W.HBox(
            [self.tabs, self.inspector_box],
            layout=W.Layout(width="100%", flex_flow="row wrap"),
        )
        self.children = [self.header, body]
        self.state.observe(guarded(self.errors, self._on_selection), names=["selection"])

    # ------------------------------------------------------------------ params
    def _adopt_given(self) -> None:
        g = self._given
        if "telescope" in g:
            tel = g["telescope"]
            tels = (
                list(tel.values())
                if isinstance(tel, dict)
                else (list(tel) if isinstance(tel, (list, tuple)) else [tel])
            )
            self.results["telescope"] = {t.layer: t for t in tels}
            self.params["telescope"].update(
                layers=[t.layer for t in tels], layer=tels[-1].layer, size=tels[-1].shape[0]
            )
        if "library" in g:
            self.results["library"] = g["library"]
            self.params["library"]["layers"] = list(g["library"].stack.layers_)
        if "selfintro" in g:
            self.results["selfintro"] = g["selfintro"]
        if "manifolds" in g:
            man = g["manifolds"]
            self.results["manifolds"] = man
            p = self.params["manifolds"]
            p.update(layer=man.manifolds.layer or p["layer"], threshold=man.manifolds.threshold)
            rob = man.robustness
            if rob is not None:
                p.update(
                    eps=float(rob.eps[0]),
                    n=int(rob.attack.get("n", p["n"])),
                    nb_iter=int(rob.attack.get("nb_iter", p["nb_iter"])),
                    seed=int(rob.attack.get("seed", p["seed"])),
                )
            else:
                p["eps"] = None

    # ------------------------------------------------------------------ selection API
    @property
    def selection(self) -> list[int]:
        """Test-split indices of the selected inputs (set it to select from Python)."""
        return list(self.state.selection)

    @selection.setter
    def selection(self, indices) -> None:
        self.set_selection(indices, "python")

    def set_selection(self, indices, origin: str = "python") -> None:
        """Select ``indices`` (test-split positions), as lens ``origin`` would."""
        idx = [int(i) for i in np.asarray(indices, dtype=np.int64).ravel()]
        bad = [i for i in idx if not 0 <= i < self.n_inputs]
        if bad:
            raise IndexError(
                f"selection indices must be in [0, {self.n_inputs - 1}] ({self.split} split); "
                f"got {bad[:5]}."
            )
        idx = list(dict.fromkeys(idx))  # unique, in order
        with self._lock:
            self.state.origin = origin
            if idx == list(self.state.selection):
                self._push_selection()  # same inputs from another lens: re-mark the lenses
            self.state.selection = idx

    def clear_selection(self) -> None:
        self.set_selection([], "python")

    # lens handlers (also what the browser's taps end in) ------------------------------
    def select_som_unit(self, unit, layer: str | None = None) -> list[int]:
        """Select the inputs whose best-matching unit is ``unit`` (int, or (row, col))."""
        tel = self._tel(layer)
        m, n = tel.shape
        u = int(unit[0]) * n + int(unit[1]) if isinstance(unit, (tuple, list)) else int(unit)
        if not 0 <= u < m * n:
            raise IndexError(f"unit must be in [0, {m * n - 1}]; got {u}.")
        idx = np.flatnonzero(tel.bmus[self.split][:, 0] == u)
        r, c = divmod(u, n)
        self.set_selection(idx, f"telescope: SOM unit {u} (row {r}, col {c}) of {tel.layer}")
        return idx.tolist()

    def select_ci_cell(self, d1: int, d2: int, layer: str | None = None) -> list[int]:
        """Select the inputs of true class ``d1`` whose strongest rival class is ``d2``.

        The rival is the class the layer's library network scores highest after ``d1``;
        the diagonal cell (``d1 == d2``) selects every input of class ``d1``.
        """
        self._need("library")
        layer = layer or self.lib_layer.value
        d1, d2 = int(d1), int(d2)
        sel = self.labels == d1
        if d1 != d2:
            sel &= self.per_input["rival"][layer] == d2
        idx = np.flatnonzero(sel)
        self.set_selection(
            idx,
            f"library: confusion index cell ({self.classes[d1]}, {self.classes[d2]}) of {layer}",
        )
        return idx.tolist()

    def select_map_points(self, indices) -> list[int]:
        """Select inputs picked on the activation map (tap or lasso): test indices."""
        idx = [int(i) for i in indices]
        self.set_selection(idx, f"self-introspection: {len(idx)} points on the map")
        return idx

    def select_class(self, k: int) -> list[int]:
        """Select every input of class ``k`` (a class in the manifold scatter)."""
        self._need("confusion")
        idx = np.flatnonzero(self.labels == int(k))
        self.set_selection(idx, f"manifolds: class {self.classes[int(k)]}")
        return idx.tolist()

    def select_cm_cell(self, true: int, pred: int) -> list[int]:
        """Select the inputs of class ``true`` that the network answers ``pred``."""
        self._need("confusion")
        idx = np.flatnonzero((self.labels == int(true)) & (self.preds == int(pred)))
        self.set_selection(
            idx,
            f"confusion matrix: true {self.classes[int(true)]}, predicted {self.classes[int(pred)]}",
        )
        return idx.tolist()

    def highlighted(self) -> dict:
        """What each lens highlights now.

        Returns
        -------
        dict
            ``telescope``, ``library``, ``selfintro``, ``manifolds``: sorted test indices
            of the highlighted inputs; ``confusion``: sorted [true, pred] cells outlined in
            the confusion matrix; ``ci``: sorted [d1, d2] cells outlined in the confusion
            index; ``classes``: classes highlighted in the manifold scatter; ``units``:
            SOM units outlined; ``detect``: sorted test indices whose points are
            highlighted under the Detect tab's histogram (the selected inputs that are
            pairs of the shown setting).
        """
        pts = self.det_points.data["index"]
        return {
            "telescope": sorted(int(i) for i in self.som_points.selected.indices),
            "library": sorted(int(i) for i in self.lib_sel.data["index"]),
            "selfintro": sorted(int(i) for i in self.map_points.selected.indices),
            "manifolds": sorted(int(i) for i in self.strip_points.selected.indices),
            "confusion": sorted([int(a), int(b)] for a, b in self.cm_grid.marks),
            "ci": sorted(
                [int(a), int(b)] for a, b in zip(self.ci_marks.data["i"], self.ci_marks.data["j"])
            ),
            "classes": sorted(int(i) for i in self.class_marks.data["cls"]),
            "units": sorted(int(u) for u in self.som_marks.data["unit"]),
            "detect": sorted({int(pts[k]) for k in self.det_points.selected.indices}),
        }

    # ------------------------------------------------------------------ computing
    def _ipython_display_(self):
        base = getattr(super(), "_ipython_display_", None)
        if base is not None:  # the panels' display: BokehJS, then the widget
            base()
        else:  # pragma: no cover - older panels: the widget alone
            from IPython.display import display

            display(self.widget)
        if self.autostart and not self._started:
            self._start_after_display()

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if self.autostart and not self._started:
            self._start_after_display()
        return bundle

    def _start_after_display(self) -> None:
        """Compute once the dashboard is on screen, as a long action with progress and Cancel.

        The lenses are computed in a background thread (:meth:`start`), so the dashboard,
        its progress line and its Cancel button stay live while they compute. Capture
        hooks record only the thread that installed them, so a cell that runs the study's
        model meanwhile does not disturb the capture; call :meth:`wait` before reading
        what the dashboard computed.
        """
        self._started = True
        self.set_status("on screen; computing the lenses...")
        self.start()

    def start(self) -> threading.Thread | None:
        """Compute every lens in a background thread (the widgets update as it goes).

        The kernel stays free meanwhile (Cancel stops the computation at its next step;
        nothing half-done is cached). Returns the worker thread.
        """
        with self._lock:
            self._started = True
            if not self.running:
                self.run_task("computing the lenses", self.compute, background=True)
        return self._thread

    def wait(self, timeout: float | None = None) -> Dashboard:
        """Wait until the lenses are computed (or the computation was cancelled)."""
        if self.autostart and not self._started:
            self.start()
        super().wait(timeout)
        return self

    def compute(self) -> Dashboard:
        """Compute every lens now (cached in the study's workdir); returns ``self``.

        This is what displaying the dashboard does by itself (see ``autostart``); call it
        headless. Lenses already computed (or given) are kept.

        A stage that fails shows its error in its tab and in the error box; the other
        stages still run.
        """
        self._started = True
        stages = [("data", "the test inputs and the network's answers")] + [
            (k, _TITLES[k]) for k in ("telescope", "library", "selfintro", "manifolds")
        ]
        self._set_state("computing")
        self.progress.reset(total=len(stages), description="lenses")
        try:
            return self._compute_stages(stages)
        except progress.Cancelled:
            self.progress.fail()
            self._set_state("cancelled")
            raise

    def _compute_stages(self, stages) -> Dashboard:
        failed = []
        t_all = time.perf_counter()
        for k, (stage, what) in enumerate(stages):
            progress.report("lenses", k, len(stages))
            if stage != "data" and self.labels is None:
                failed.append(stage)
                self._tab_status(stage, "not computed: the test inputs could not be loaded", True)
                continue
            self.set_status(f"computing {what}...")
            t0 = time.perf_counter()
            try:
                getattr(self, f"_compute_{stage}")()
            except Exception as err:
                failed.append(stage)
                self.errors.show(err, f"dashboard: {what}")
                lens = "confusion" if stage == "data" else stage
                self._tab_status(lens, f"failed: {type(err).__name__}: {err}", True)
            self.timings[stage] = time.perf_counter() - t0
            self.progress.update(1)
            with self._lock:
                self._push_selection()
        if self._detect_on_compute and self.labels is not None:
            self.set_status("computing the detectors' ROC curves...")
            t0 = time.perf_counter()
            try:
                self.compute_detect()
            except Exception as err:
                failed.append("detect")
                self.errors.show(err, "dashboard: detect")
                self._tab_status("detect", f"failed: {type(err).__name__}: {err}", True)
            self.timings["detect"] = time.perf_counter() - t0
        self.timings["total"] = time.perf_counter() - t_all
        if failed:
            self.progress.fail()
            self.set_status(f"done with errors in {', '.join(failed)}")
        else:
            self.progress.close()
            self.set_status(f"all lenses ready in {self.timings['total']:.1f}s")
        self._set_state("ready" if not failed else "error")
        return self

    def _set_state(self, state: str) -> None:
        self.state_html.value = (
            f'<span class="introspect-dash-state" data-state="{state}">{_esc(state)}</span>'
        )
        # after a Cancel (or before a start, or after a failed stage): a way on in the page
        self.compute_button.description = "Compute" if state == "waiting" else "Resume"
        shown = state in ("waiting", "cancelled", "error")
        self.compute_button.layout.display = None if shown else "none"

    def _tab_status(self, lens: str, text: str, error: bool = False) -> None:
        color = "#b00020" if error else "#444"
        self.tab_status[lens].value = (
            f'<div class="introspect-dash-status" data-lens="{lens}" style="color:{color}">'
            f"{_esc(text)}</div>"
        )

    def _need(self, lens: str) -> None:
        ok = self.labels is not None if lens == "confusion" else self.ready.get(lens)
        if not ok:
            raise RuntimeError(f"the {lens} lens is not computed yet (dash.compute()).")

    def _tel(self, layer=None):
        self._need("telescope")
        layer = layer or self.som_layer.value
        return self.results["telescope"][layer]

    # stages ------------------------------------------------------------------------
    def _compute_data(self):
        s = self.study
        self._tab_status("confusion", "loading the test inputs...")
        x, y = _split_tensors(s, self.split)
        shown = self.params["telescope"]["layer"]
        store = s.capture("codes", self.split, layers=[shown])
        preds = np.asarray(store.preds, dtype=np.int64)
        with self._lock:
            self._x, self.labels, self.preds = x, y, preds
        cm = np.zeros((self.n_classes, self.n_classes), dtype=np.int64)
        np.add.at(cm, (y, preds), 1)
        self.cm = cm
        tips = [
            [
                f"true {self.classes[i]}, predicted {self.classes[j]}: {cm[i, j]} inputs"
                for j in range(self.n_classes)
            ]
            for i in range(self.n_classes)
        ]
        text = [[str(v) if v else "" for v in r] for r in cm]
        self.cm_grid.set_grid(cm, labels=tips, text=text, title="rows: true, columns: predicted")
        self.ready["confusion"] = True
        acc = float((preds == y).mean()) if len(y) else float("nan")
        self._tab_status(
            "confusion",
            f"{len(y)} {self.split} inputs, accuracy {acc:.3f}; click a cell to select its inputs",
        )
        with hold_sync(self.target):
            self.target.options = [(c, k) for k, c in enumerate(self.classes)]
            t = self.params["attack"].get("target")
            self.target.value = int(t) if t is not None else (1 if self.n_classes > 1 else 0)

    def _compute_telescope(self):
        p = dict(self.params["telescope"])
        layers, shown = list(p.pop("layers")), p.pop("layer")
        res = self.results.setdefault("telescope", {})
        for k, layer in enumerate(layers):
            if layer not in res:
                self._tab_status(
                    "telescope",
                    f"fitting a {p['size']}x{p['size']} SOM on {layer} ({k + 1}/{len(layers)})...",
                )
                self.step_bar.reset(total=1, description=layer)
                res[layer] = self.study.telescope(layer=layer, callback=self._som_step, **p)
                self.step_bar.close()
        self.ready["telescope"] = True
        with hold_sync(self.som_layer):
            self.som_layer.options = list(res)
            self.som_layer.value = shown if shown in res else list(res)[-1]
        self._render_som()
        self._tab_status(
            "telescope", f"SOMs of {', '.join(res)}; click a unit to select its {self.split} inputs"
        )

    def _som_step(self, step, total, info=None):
        self.step_bar(step, total)

    def _compute_library(self):
        p = self.params["library"]
        layers = list(p["layers"])
        if "library" not in self.results:
            self._tab_status(
                "library",
                f"building library networks of {', '.join(layers)} (theta {p['theta']})...",
            )
            self.results["library"] = self.study.library(
                theta=p["theta"], top_k=p["top_k"], layers=layers
            )
        lib = self.results["library"]
        layers = list(lib.stack.layers_)
        store = self.study.capture("flatten", self.split, layers=layers)
        scores = lib.stack.predict_scores({k: store.layer(k) for k in layers})
        cpl = _cpl(lib.stack, scores)
        pred = {k: np.asarray(v).argmax(1) for k, v in scores.items()}
        rival = {}
        for k, v in scores.items():
            v = np.array(v, dtype=np.float64)
            v[np.arange(len(v)), self.labels] = -np.inf
            rival[k] = v.argmax(1)
        cpl_adv = None
        mp = self.params["manifolds"]
        if mp.get("eps"):
            self._tab_status("library", f"CPL of PGD inputs (eps {mp['eps']:g})...")
            adv = self.study.attack(
                "pgd",
                mp["eps"],
                n=mp["n"],
                split=self.split,
                nb_iter=mp["nb_iter"],
                seed=mp["seed"],
            )
            acts, _ = self.study.activations(adv.x_adv, reducer="flatten", layers=layers)
            cpl_adv = _cpl(lib.stack, lib.stack.predict_scores({k: acts[k] for k in layers}))
        with self._lock:
            self.per_input.update(lib_scores=scores, lib_pred=pred, rival=rival, cpl=cpl)
            self.ready["library"] = True
        self._cpl_adv = cpl_adv
        with hold_sync(self.lib_layer):
            self.lib_layer.options = layers
            self.lib_layer.value = layers[-1]
        self._render_ci()
        self._render_cpl_hist()
        agree = ", ".join(f"{k} {lib.agreement[k]['top1']:.2f}" for k in layers)
        self._tab_status(
            "library",
            f"agreement with the network (top-1): {agree}; click a cell to select its inputs",
        )

    def _compute_selfintro(self):
        from introspect.selfintro import ErrorEstimator, InfoVAE

        if "selfintro" not in self.results:
            p = self.params["selfintro"]
            dev = str(self.study.device)
            vae, est = p.get("vae"), p.get("estimator")
            if isinstance(vae, dict):
                vae = InfoVAE(device=dev, seed=p.get("seed", 0), **vae)
            if isinstance(est, dict):
                est = ErrorEstimator(device=dev, seed=p.get("seed", 0), **est)
            self._tab_status("selfintro", "fitting the InfoVAE and the error estimator...")
            self.results["selfintro"] = self.study.selfintro(
                layers=p.get("layers"), vae=vae, estimator=est, seed=p.get("seed", 0)
            )
        si = self.results["selfintro"]
        self._tab_status("selfintro", f"mapping the {self.split} inputs...")
        a = si.analyze(self._x)
        g = np.linspace(-EXTENT, EXTENT, 81)
        zz = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2).astype(np.float32)
        surf = np.asarray(si.estimator_.predict_log10(zz)).reshape(len(g), len(g))
        with self._lock:
            self.per_input.update(
                z=np.asarray(a["z"]), log10_error=np.asarray(a["log10_error_hat"])
            )
            self.ready["selfintro"] = True
        self._render_map(surf)
        self._tab_status(
            "selfintro",
            "tap or lasso points to select them; the background is log10 of the estimated error",
        )

    def _compute_manifolds(self):
        from introspect.manifolds import class_subspaces, subspace_residual

        p = self.params["manifolds"]
        if "manifolds" not in self.results:
            self._tab_status(
                "manifolds", "class activation manifolds and class-wise PGD accuracy..."
            )
            self.results["manifolds"] = self.study.manifolds(
                layer=p["layer"],
                split=self.split,
                threshold=p["threshold"],
                eps=p["eps"],
                n=p["n"],
                nb_iter=p["nb_iter"],
                seed=p["seed"],
            )
        fit_split = "train" if "train" in self.study.datasets else self.split
        tr = self.study.capture("flatten", fit_split, layers=[p["layer"]])
        te = self.study.capture("flatten", self.split, layers=[p["layer"]])
        ytr = np.asarray(tr.labels, dtype=np.int64)
        subspaces = class_subspaces(tr.layer(p["layer"]), ytr, p["threshold"])
        res = subspace_residual(te.layer(p["layer"]), self.labels, subspaces)
        train_res = subspace_residual(tr.layer(p["layer"]), ytr, subspaces)
        typical = {int(c): float(np.median(train_res[ytr == c])) for c in subspaces}
        with self._lock:
            self.subspaces = subspaces
            self.per_input.update(residual=res, residual_typical=typical)
            self.ready["manifolds"] = True
        self._render_manifolds()
        self._tab_status(
            "manifolds",
            f"{p['layer']}, threshold {p['threshold']:.2f}; subspaces from the {fit_split} "
            "split; tap a class or lasso inputs to select them",
        )

    # ------------------------------------------------------------------ views
    def _build_header(self):
        self.progress = ProgressBar("lenses")
        self.step_bar = ProgressBar("step", min_interval=0.1)  # inside a stage (SOM fits)
        self.state_html = W.HTML()
        self.compute_button = W.Button(
            description="Compute",
            button_style="primary",
            tooltip="compute the lenses not computed yet (those computed are kept)",
        )
        self.compute_button.on_click(guarded(self.errors, lambda _b: self.start()))
        self._set_state("waiting")
        self.selection_html = W.HTML(self._selection_text())
        self.pages: dict[str, W.Widget] = {}
        self.tab_status = {k: W.HTML() for k in TABS}
        self.readouts = {k: W.HTML() for k in TABS}
        for k in LENSES:
            self._tab_status(k, "waiting for the computation to start...")
        self._tab_status("detect", "not computed: press Run detection (attacks and fits)")
        self.clear_button = W.Button(description="Clear selection")
        self.clear_button.on_click(guarded(self.errors, lambda _b: self.clear_selection()))
        self.header = W.VBox(
            [
                W.HBox(
                    [self.progress.widget, self.state_html, self.compute_button, self.clear_button]
                ),
                self.step_bar.widget,
                self.selection_html,
            ]
        )

    def _page(self, lens, *parts):
        page = W.VBox([self.tab_status[lens], *parts, self.readouts[lens]])
        page.add_class(f"introspect-dash-{lens}")
        self.pages[lens] = page

    def _view(self, layout, name):
        w = bokeh_widget(layout)
        w.add_class(f"introspect-dash-{name}")
        return w

    # telescope -----------------------------------------------------------------------
    def _build_telescope(self):
        p = self.params["telescope"]
        m = n = int(p["size"])
        self.som_layer = W.Dropdown(
            options=list(p["layers"]), value=p["layer"], description="layer"
        )
        self.som_color = W.ToggleButtons(
            options=["density", "class"],
            value="density",
            description="colour",
            style={"button_width": "80px"},
        )
        self.som_units = ColumnDataSource(
            dict(x=[], y=[], unit=[], row=[], col=[], color=[], count=[], major=[])
        )
        self.som_points = ColumnDataSource(dict(x=[], y=[], index=[], label=[], color=[]))
        self.som_marks = ColumnDataSource(dict(x=[], y=[], unit=[]))
        self.som_path = ColumnDataSource(dict(x=[], y=[], step=[], unit=[], answer=[]))
        self.som_path_line = ColumnDataSource(dict(x=[], y=[]))
        self.som_cur = ColumnDataSource(dict(x=[], y=[]))
        size = 360
        fig = _figure(
            None, size, size, tools="tap", x_range=Range1d(0, n), y_range=Range1d(m, 0),
            toolbar_location=None, min_border=0,
        )  # fmt: skip
        fig.axis.visible = False
        fig.grid.visible = False
        fig.outline_line_color = None
        units = _cells(
            fig, self.som_units, "color", line_color="white", line_alpha=0.6,
            nonselection_line_alpha=0.6,
        )  # fmt: skip
        _outline(fig, self.som_marks, "black")
        _points(fig, "x", "y", self.som_points, 4, 0.8, 0.35, 8, line_color="black", line_width=0.3)
        path = _path(fig, "x", "y", self.som_path, 7, hollow=True, line_source=self.som_path_line)
        _star(fig, "x", "y", self.som_cur, 16, line_color="black")
        tips = [("unit", "@unit (row @row, col @col)"), (f"{self.split} inputs", "@count")]
        _hover(fig, units, [*tips, ("majority class (train)", "@major")], tap=True)
        _hover(fig, path, [("step", "@step"), ("answer", "@answer")])
        self.som_figure = fig
        self.som_units.selected.on_change("indices", self._guarded_cb(self._on_som_tap))
        self.som_view = self._view(fig, "som")
        self.som_caption = W.HTML()
        self.som_layer.observe(guarded(self.errors, lambda _c: self._render_som()), "value")
        self.som_color.observe(guarded(self.errors, lambda _c: self._render_som()), "value")
        self._page(
            "telescope", W.HBox([self.som_layer, self.som_color]), self.som_caption, self.som_view
        )

    def _guarded_cb(self, fn):
        """A bokeh selection callback whose errors show in the panel.

        It ignores our own pushes and empty selections: jupyter_bokeh sends every change
        made from Python back from the browser (and calls the callbacks again), so the
        dashboard only ever resets a tap source to ``[]`` from Python, and a tap on nothing
        leaves the selection as it is (the **Clear selection** button clears it).
        """

        def cb(attr, old, new):
            if self._syncing or not len(new):
                return
            try:
                fn([int(k) for k in new])
            except Exception as err:
                self.errors.show(err, "selection")

        return cb

    @contextlib.contextmanager
    def _quiet(self):
        """Update the lenses' sources (the taps this echoes are ignored), then re-mark the
        selection in them."""
        with self._lock:
            self._syncing = True
            try:
                yield
            finally:
                self._syncing = False
            self._push_selection()

    def _on_som_tap(self, indices):
        self.select_som_unit(int(self.som_units.data["unit"][indices[0]]))

    def _unit_xy(self, units, shape):
        m, n = shape
        r, c = np.divmod(np.asarray(units, dtype=np.int64), n)
        return c + 0.5, r + 0.5

    def _render_som(self):
        if not self.ready["telescope"]:
            return
        tel = self._tel()
        m, n = tel.shape
        top1 = tel.bmus[self.split][:, 0]
        counts = np.bincount(top1, minlength=m * n)
        tr = "train" if "train" in tel.bmus else self.split
        tr_top1, tr_lab = tel.bmus[tr][:, 0], np.asarray(tel.labels[tr])
        major = np.full(m * n, -1)
        for u in np.unique(tr_top1):
            major[u] = np.bincount(tr_lab[tr_top1 == u]).argmax()
        if self.som_color.value == "density":
            dens = np.asarray(tel.density, dtype=np.float64)
            if dens.shape != (m, n):  # a finer KDE grid: sample it at the units
                dens = dens[:: max(1, dens.shape[0] // m), :: max(1, dens.shape[1] // n)][:m, :n]
            colors = _viridis(dens.ravel())
        else:
            colors = [self.palette[k] if k >= 0 else _EMPTY_UNIT for k in major]
        units = np.arange(m * n)
        ux, uy = self._unit_xy(units, (m, n))
        rng = np.random.default_rng(0)
        jx, jy = rng.uniform(-0.38, 0.38, (2, len(top1)))
        px, py = self._unit_xy(top1, (m, n))
        with self._lock:
            with self._quiet():
                self.som_figure.x_range.end, self.som_figure.y_range.start = n, m
                self.som_units.data = dict(
                    x=ux,
                    y=uy,
                    unit=units,
                    row=units // n,
                    col=units % n,
                    color=colors,
                    count=counts,
                    major=[self.classes[k] if k >= 0 else "-" for k in major],
                )
                self.som_points.data = dict(
                    x=px + jx,
                    y=py + jy,
                    index=np.arange(len(top1)),
                    label=[self.classes[k] for k in self.labels],
                    color=[self.palette[k] for k in self.labels],
                )
                self.som_units.selected.indices = []
            self._draw_path()
        what = "BMU density" if self.som_color.value == "density" else "majority class"
        full = int(counts.argmax())
        self.som_caption.value = (
            f"<b>{_esc(tel.layer)}</b>: {m}x{n} toroidal SOM, colour: {what} of the training "
            f"split; points: the {len(top1)} {_esc(self.split)} inputs at their BMU "
            f'(<span class="introspect-dash-fullest" data-unit="{full}" data-row="{full // n}" '
            f'data-col="{full % n}" data-count="{counts[full]}">fullest unit {full} '
            f"(row {full // n}, col {full % n}): {counts[full]} inputs</span>)"
        )

    # library -------------------------------------------------------------------------
    def _build_library(self):
        C = self.n_classes
        self.lib_layer = W.Dropdown(
            options=list(self.params["library"]["layers"]), description="layer"
        )
        self.ci_source = ColumnDataSource(
            dict(x=[], y=[], i=[], j=[], ci=[], ci_text=[], d1=[], d2=[])
        )
        self.ci_marks = ColumnDataSource(dict(x=[], y=[], i=[], j=[], count=[]))
        mapper = LinearColorMapper(palette=Viridis256, low=0.0, high=1.0, nan_color="#f0f0f0")
        side = max(260, min(420, 26 * C + 90))
        ci = _figure(
            "confusion index (rows: true d1, columns: rival d2)", side + 70, side, "d2", "d1",
            "tap,save", x_range=Range1d(0, C), y_range=Range1d(C, 0),
        )  # fmt: skip
        rect = _cells(ci, self.ci_source, {"field": "ci", "transform": mapper}, line_color=None)
        _outline(ci, self.ci_marks, _PINK)
        ticker = BasicTicker(desired_num_ticks=5)
        ci.add_layout(ColorBar(color_mapper=mapper, ticker=ticker, width=10, title="CI"), "right")
        tips = [("d1 (true)", "@d1"), ("d2 (rival)", "@d2"), ("CI", "@ci_text")]
        _hover(ci, rect, tips, tap=True)
        for ax in (ci.xaxis, ci.yaxis):
            _class_axis(ax, self.names, 0.5)
        ci.xaxis.major_label_orientation = 0.9 if max(map(len, self.names), default=1) > 2 else 0
        self.ci_figure = ci
        self.ci_source.selected.on_change("indices", self._guarded_cb(self._on_ci_tap))

        h = cpl_histogram(
            [], [], "CPL of the inputs (selected: pink)", 30, 420, 260, density=False,
            labels=("clean", "PGD"), alpha=(0.55, 0.45),
            x_axis_label="CPL (consistency across layers)", y_axis_label="inputs", tools="save",
        )  # fmt: skip
        self.cpl_hist = h.select_one({"name": "cpl-hist"})
        self.cpl_hist.data = _empty_hist()
        self.lib_sel = ColumnDataSource(dict(cpl=[], y=[], index=[], label=[]))
        sel = h.scatter(
            "cpl",
            "y",
            source=self.lib_sel,
            marker="triangle",
            size=9,
            color=_PINK,
            line_color="black",
        )
        _hover(h, sel, [("input", "#@index"), ("label", "@label"), ("CPL", "@cpl{0.000}")])
        self.cpl_span = Span(
            location=0, dimension="height", line_color=_PINK, line_dash="dashed", visible=False
        )
        h.add_layout(self.cpl_span)
        self.cpl_figure = h

        self.lib_path = ColumnDataSource(dict(step=[], cpl=[], answers=[]))
        self.lib_path_pred = ColumnDataSource(dict(step=[], y=[], who=[], color=[]))
        self.lib_cur = ColumnDataSource(dict(step=[], cpl=[]))
        pc = _figure("attack path: CPL per step", 290, 200, "step", "CPL")
        _empty_note(pc, self.lib_path, "Attack this input (inspector): its path")
        pcs = _path(pc, "step", "cpl", self.lib_path)
        _star(pc, "step", "cpl", self.lib_cur)
        tips = [("step", "@step"), ("CPL", "@cpl{0.000}"), ("answers", "@answers")]
        _hover(pc, pcs, tips)
        pp = _figure(
            "attack path: answer per step", 290, 220, "step", y_range=Range1d(-0.5, C - 0.5)
        )
        pps = pp.scatter(
            "step", "y", source=self.lib_path_pred, color="color", size=6, legend_field="who"
        )
        _hover(pp, pps, [("step", "@step"), ("", "@who")])
        _class_axis(pp.yaxis, self.names)
        _small_legend(pp)
        _empty_note(pp, self.lib_path_pred, "each layer's answer per step, after an attack")
        self.lib_path_figure, self.lib_pred_figure = pc, pp
        # one merged toolbar for the four plots (plots.one_toolbar, as the figures)
        self.lib_view = self._view(one_toolbar(column(row(ci), h, row(pc, pp))), "library")
        self.lib_layer.observe(guarded(self.errors, lambda _c: self._render_ci()), "value")
        self._page("library", self.lib_layer, self.lib_view)

    def _on_ci_tap(self, indices):
        k = indices[0]
        self.select_ci_cell(int(self.ci_source.data["i"][k]), int(self.ci_source.data["j"][k]))

    def _render_ci(self):
        if not self.ready["library"]:
            return
        layer = self.lib_layer.value
        ci = np.asarray(self.results["library"].confusion[layer], dtype=np.float64)
        C = self.n_classes
        i, j = np.divmod(np.arange(C * C), C)
        vals = ci.ravel().copy()
        text = [f"{v:.3f}" if np.isfinite(v) else "-" for v in vals]
        diag = i == j
        vals[diag] = np.nan  # always 1: left blank (still a cell to tap: all of class d1)
        text = [f"{t} (diagonal: every input of d1)" if d else t for t, d in zip(text, diag)]
        with self._quiet():
            self.ci_source.data = dict(
                x=j + 0.5,
                y=i + 0.5,
                i=i,
                j=j,
                ci=vals,
                ci_text=text,
                d1=[self.classes[a] for a in i],
                d2=[self.classes[b] for b in j],
            )
            self.ci_source.selected.indices = []
        self.ci_figure.title.text = f"{layer}: confusion index (rows: true d1, columns: rival d2)"

    def _render_cpl_hist(self):
        clean = self.per_input["cpl"]
        adv = self._cpl_adv if self._cpl_adv is not None else np.zeros(0)
        clean, adv = clean[np.isfinite(clean)], adv[np.isfinite(adv)]
        if not clean.size and not adv.size:  # one library layer: no CPL
            self.cpl_hist.data = _empty_hist()
            return
        self.cpl_hist.data = histogram_data(clean, adv, bins=30, density=False)

    # self-introspection ----------------------------------------------------------------
    def _build_selfintro(self):
        self.map_points = ColumnDataSource(
            dict(z1=[], z2=[], index=[], label=[], answer=[], color=[], error=[])
        )
        self.map_surface = ColumnDataSource(dict(image=[np.zeros((1, 1))]))
        self.map_path = ColumnDataSource(dict(z1=[], z2=[], step=[], answer=[], error=[]))
        self.map_cur = ColumnDataSource(dict(z1=[], z2=[]))
        self.map_mapper = LinearColorMapper(palette=Viridis256, low=-3, high=0)
        p = _map_figure(
            "activation map: codes z of the inputs", 460, height=430,
            tools="tap,lasso_select,box_select,pan,wheel_zoom,reset,save", output_backend="canvas",
        )  # fmt: skip
        self.map_image = p.image(
            image="image",
            source=self.map_surface,
            x=-EXTENT,
            y=-EXTENT,
            dw=2 * EXTENT,
            dh=2 * EXTENT,
            color_mapper=self.map_mapper,
            alpha=0.55,
        )
        p.add_layout(ColorBar(color_mapper=self.map_mapper, width=8, title="log10 ê"), "right")
        pts = _points(
            p, "z1", "z2", self.map_points, 5, 0.85, 0.25, 9, line_color="black", line_width=0.2
        )
        tips = [("input", "#@index"), ("label", "@label"), ("answer", "@answer")]
        _hover(p, pts, [*tips, ("log10 ê", "@error{0.00}")], tap=True)
        mp = _path(p, "z1", "z2", self.map_path, 6, hollow=True)
        tips = [("step", "@step"), ("answer", "@answer"), ("log10 ê", "@error{0.00}")]
        _hover(p, mp, tips)
        _star(p, "z1", "z2", self.map_cur, 16, line_color="black")
        self.map_figure = p
        self.map_points.selected.on_change("indices", self._guarded_cb(self._on_map_select))
        self.map_error_bg = W.Checkbox(value=True, description="estimated error background")
        self.map_error_bg.observe(
            guarded(self.errors, lambda c: setattr(self.map_image, "visible", bool(c["new"]))),
            "value",
        )
        self.map_view = self._view(p, "map")
        self._page("selfintro", self.map_error_bg, self.map_view)

    def _on_map_select(self, indices):
        idx = [int(self.map_points.data["index"][k]) for k in indices]
        if sorted(idx) != sorted(self.state.selection):  # not the echo of our highlight
            self.select_map_points(idx)

    def _render_map(self, surf):
        z, err = self.per_input["z"], self.per_input["log10_error"]
        lo, hi = float(np.nanpercentile(surf, 2)), float(np.nanpercentile(surf, 98))
        with self._quiet():
            self.map_mapper.low, self.map_mapper.high = lo, max(hi, lo + 1e-6)
            self.map_surface.data = dict(image=[surf])
            self.map_points.data = dict(
                z1=z[:, 0],
                z2=z[:, 1],
                index=np.arange(len(z)),
                label=[self.classes[k] for k in self.labels],
                answer=[self.classes[k] for k in self.preds],
                color=[self.palette[k] for k in self.labels],
                error=err,
            )

    # manifolds -------------------------------------------------------------------------
    def _build_manifolds(self):
        C = self.n_classes
        self.class_points = ColumnDataSource(
            dict(
                dim=[], acc=[], name=[], n=[], clean=[], color=[], text=[], align=[], dx=[], cls=[]
            )  # fmt: skip
        )
        p = _figure(
            "CAM dimension vs PGD accuracy", 340, 330, "CAM dimension", "PGD accuracy of the class",
            "tap,save", y_range=Range1d(-0.05, 1.08),
        )  # fmt: skip
        pts = p.scatter(
            "dim",
            "acc",
            source=self.class_points,
            size=11,
            color="color",
            line_color="black",
            selection_line_color=_PINK,
            selection_line_width=3,
            nonselection_alpha=0.35,
        )
        self.class_marks = ColumnDataSource(dict(dim=[], acc=[], cls=[]))
        p.scatter(
            "dim",
            "acc",
            source=self.class_marks,
            size=19,
            fill_alpha=0,
            line_color=_PINK,
            line_width=2.5,
        )
        p.add_layout(
            LabelSet(
                x="dim",
                y="acc",
                text="text",
                source=self.class_points,
                x_offset="dx",  # beside the point, towards the middle of the plot
                y_offset=3,
                text_align="align",
                text_font_size="8pt",
            )
        )
        tips = [("class", "@name"), ("dim", "@dim (n @n)"), ("PGD acc", "@acc{0.00}")]
        _hover(p, pts, [*tips, ("clean acc", "@clean{0.00}")], tap=True)
        # labels of the right half sit left of their points ("digit9 (n 30)" was cut at
        # the frame's right edge), and points at one place share one label
        p.x_range.range_padding = 0.15
        self.class_figure = p
        self.class_points.selected.on_change("indices", self._guarded_cb(self._on_class_tap))

        self.strip_points = ColumnDataSource(dict(x=[], residual=[], index=[], label=[], color=[]))
        s = _figure(
            "distance to the class manifold", 300, 300, "class",
            "residual outside the class subspace", "tap,lasso_select,box_select,reset,save",
            x_range=Range1d(-0.6, C - 0.4),
        )  # fmt: skip
        sp = _points(s, "x", "residual", self.strip_points, 4, 0.7, 0.25, 8)
        tips = [("input", "#@index"), ("label", "@label"), ("residual", "@residual{0.000}")]
        _hover(s, sp, tips, tap=True)
        _class_axis(s.xaxis, self.names)
        if C * max(map(len, self.names), default=1) > 30:
            s.xaxis.major_label_orientation = 0.9
        self.strip_figure = s
        self.strip_points.selected.on_change("indices", self._guarded_cb(self._on_strip_select))

        self.man_path = ColumnDataSource(dict(step=[], residual=[], residual_pred=[], answer=[]))
        self.man_cur = ColumnDataSource(dict(step=[], residual=[]))
        q = _figure("attack path: distance to the class manifold", 600, 220, "step", "residual")
        _empty_note(q, self.man_path, "Attack this input (inspector) to draw its path here")
        qs = _path(q, "step", "residual", self.man_path, legend_label="true class")
        q.line(
            "step",
            "residual_pred",
            source=self.man_path,
            color="#D55E00",
            line_width=1.5,
            line_dash="dashed",
            legend_label="answered class",
        )
        _star(q, "step", "residual", self.man_cur)
        tips = [("step", "@step"), ("residual", "@residual{0.000}"), ("answer", "@answer")]
        _hover(q, qs, tips)
        _small_legend(q)
        self.man_path_figure = q
        self.man_view = self._view(one_toolbar(column(row(p, s), q)), "manifolds")
        self._page("manifolds", self.man_view)

    def _on_class_tap(self, indices):
        self.select_class(int(self.class_points.data["cls"][indices[0]]))

    def _on_strip_select(self, indices):
        idx = [int(self.strip_points.data["index"][k]) for k in indices]
        if sorted(idx) != sorted(self.state.selection):  # not the echo of our highlight
            self.set_selection(idx, f"manifolds: {len(idx)} inputs in the distance plot")

    def _render_manifolds(self):
        man = self.results["manifolds"]
        cm = man.manifolds
        dims = {int(c): int(d) for c, d in zip(cm.classes, cm.dims)}
        ns = {int(c): int(v) for c, v in zip(cm.classes, cm.n)}
        rob = man.robustness
        if rob is not None:
            acc = {int(c): float(a) for c, a in zip(rob.classes, rob.adv_acc[0])}
            clean = {int(c): float(a) for c, a in zip(rob.classes, rob.clean_acc)}
            self.class_figure.yaxis.axis_label = f"PGD accuracy of the class (eps {rob.eps[0]:g})"
        else:
            right = self.labels == self.preds
            clean = {
                k: float(right[self.labels == k].mean())
                if (self.labels == k).any()
                else float("nan")
                for k in range(self.n_classes)
            }
            acc = clean
            self.class_figure.yaxis.axis_label = "clean accuracy of the class"
        cls = [k for k in range(self.n_classes) if k in dims]
        text, align, dx = _point_labels(
            [dims[k] for k in cls], [acc.get(k, np.nan) for k in cls],
            [f"{self.classes[k]} (n {ns[k]})" for k in cls],
        )  # fmt: skip
        res = self.per_input["residual"]
        rng = np.random.default_rng(1)
        with self._quiet():
            self.class_points.data = dict(
                dim=[dims[k] for k in cls],
                acc=[acc.get(k, np.nan) for k in cls],
                name=[self.classes[k] for k in cls],
                n=[ns[k] for k in cls],
                clean=[clean.get(k, np.nan) for k in cls],
                color=[self.palette[k] for k in cls],
                text=text,
                align=align,
                dx=dx,
                cls=cls,
            )
            self.strip_points.data = dict(
                x=self.labels + rng.uniform(-0.3, 0.3, len(res)),
                residual=res,
                index=np.arange(len(res)),
                label=[self.classes[k] for k in self.labels],
                color=[self.palette[k] for k in self.labels],
            )

    # confusion matrix ------------------------------------------------------------------
    def _build_confusion(self):
        cell = 28 if self.n_classes <= 20 else max(6, 560 // self.n_classes)
        self.cm_grid = GridView(cell_size=cell, colormap="blues", title="")
        self.cm_grid.observe(guarded(self.errors, self._on_cm_click), names="selected")
        names = ", ".join(f"{k}: {_esc(c)}" for k, c in enumerate(self.classes[:30]))
        more = " ..." if self.n_classes > 30 else ""
        self.cm_legend = W.HTML(
            f"<small>rows: true class, columns: the network's answer, in class order "
            f"({names}{more})</small>"
        )
        self._page("confusion", self.cm_grid, self.cm_legend)

    def _on_cm_click(self, change):
        if self._syncing:
            return
        cells = change["new"]
        if not cells:
            return self.set_selection([], "confusion matrix: no cell")
        self.select_cm_cell(*cells[0])

    # inspector -------------------------------------------------------------------------
    def _build_inspector(self):
        a = self.params["attack"]
        style = {"description_width": "70px"}
        self.inspector_html = W.HTML(self._inspector_text())
        self.attack_kind = W.Dropdown(
            options=list(ATTACKS),
            description="attack",
            style=style,
            value=next(k for k, v in ATTACKS.items() if v == a["kind"]),
            layout=W.Layout(width="calc(100% - 4px)"),  # its 2 px margins: 300 px stuck out
        )
        self.target = W.Dropdown(
            options=[], description="target", style=style, layout=W.Layout(width="calc(100% - 4px)")
        )
        self.steps = _number(W.BoundedIntText, int(a["steps"]), 1, 500, "steps", style)
        self.step_size = _number(
            W.BoundedFloatText, float(a["step_size"]), 0.0, 1.0, "step size", style, step=0.005
        )
        self.eps = _number(W.BoundedFloatText, float(a["eps"]), 0.0, 1.0, "eps", style, step=0.01)
        self.attack_button = self.button(
            "Attack this input", self._attack_clicked, button_style="warning"
        )
        self.path_step = W.IntSlider(
            value=0, min=0, max=0, description="step", style=style, continuous_update=False
        )
        self.path_html = W.HTML()
        self.path_step.observe(guarded(self.errors, lambda c: self._show_step(c["new"])), "value")
        self.attack_kind.observe(guarded(self.errors, self._kind_changed), "value")
        self._kind_changed({"new": self.attack_kind.value})
        self.inspector_box = W.VBox(
            [
                W.HTML("<b>Inspector</b>"),
                self.inspector_html,
                W.HTML("<b>Attack</b>"),
                self.attack_kind,
                self.target,
                W.HBox([self.steps, self.step_size]),
                self.eps,
                self.attack_button,
                self.path_step,
                self.path_html,
            ],
            layout=W.Layout(width="340px", min_width="300px", padding="0 0 0 8px"),
        )
        self.inspector_box.add_class("introspect-dash-inspector")

    def _kind_changed(self, change):
        kind = ATTACKS[change["new"]]
        with hold_sync(self.target, self.eps):
            self.target.disabled = kind == "pgd"
            self.eps.disabled = kind == "fgsm-targeted"

    def inspect(self, i: int) -> dict:
        """What every lens says about input ``i`` of the split (what the inspector shows).

        Returns
        -------
        dict with ``index``, ``label``, ``answer`` (class numbers), ``label_name``,
        ``answer_name``, and where computed: ``telescope`` {layer: {"bmu", "row", "col",
        "d_class"}}, ``library`` {"pred": {layer: int}, "cpl": float}, ``selfintro``
        {"z": (2,), "log10_error": float}, ``manifolds`` {"residual", "dim", "typical"}.
        """
        self._need("confusion")
        i = int(i)
        lab, ans = int(self.labels[i]), int(self.preds[i])
        out = dict(
            index=i,
            label=lab,
            answer=ans,
            label_name=self.classes[lab],
            answer_name=self.classes[ans],
        )
        if self.ready["telescope"]:
            tel = {}
            for layer, t in self.results["telescope"].items():
                u = int(t.bmus[self.split][i, 0])
                r, c = divmod(u, t.shape[1])
                tel[layer] = dict(bmu=u, row=r, col=c, d_class=float(t.d_class[self.split][i]))
            out["telescope"] = tel
        if self.ready["library"]:
            out["library"] = dict(
                pred={k: int(v[i]) for k, v in self.per_input["lib_pred"].items()},
                cpl=float(self.per_input["cpl"][i]),
            )
        if self.ready["selfintro"]:
            out["selfintro"] = dict(
                z=self.per_input["z"][i].astype(float),
                log10_error=float(self.per_input["log10_error"][i]),
            )
        if self.ready["manifolds"]:
            cm = self.results["manifolds"].manifolds
            dims = {int(c): int(d) for c, d in zip(cm.classes, cm.dims)}
            out["manifolds"] = dict(
                residual=float(self.per_input["residual"][i]),
                dim=int(self.subspaces[lab][1].shape[0]) if lab in self.subspaces else None,
                cam_dim=dims.get(lab),
                typical=self.per_input["residual_typical"].get(lab),
            )
        return out

    def _inspector_text(self) -> str:
        sel = self.state.selection
        if not sel or self.labels is None:
            hint = (
                "select inputs in any lens: a SOM unit, a confusion-index cell, points on "
                "the activation map, a class, a confusion-matrix cell"
            )
            if sel:
                hint = "computing..."
            return f'<div class="introspect-inspector" data-index="">{_esc(hint)}</div>'
        info = self.inspect(sel[0])
        i = info["index"]
        ok = info["label"] == info["answer"]
        verdict = (
            '<span style="color:#2ca02c">right</span>'
            if ok
            else '<span style="color:#d62728">wrong</span>'
        )
        rows = []

        def section(title):
            rows.append(
                f'<tr><th colspan="3" style="text-align:left;padding-top:4px">'
                f"{_esc(title)}</th></tr>"
            )

        def line(*cells):
            rows.append(
                "<tr>" + "".join(f"<td style='padding:0 6px 0 0'>{c}</td>" for c in cells) + "</tr>"
            )

        if "telescope" in info:
            section("telescope: BMU per layer, distance to the class centre")
            for layer, t in info["telescope"].items():
                line(
                    _esc(layer),
                    f"unit {t['bmu']} ({t['row']}, {t['col']})",
                    f"D_class {t['d_class']:.2f}",
                )
        if "library" in info:
            section("library networks: prediction per layer")
            for layer, k in info["library"]["pred"].items():
                line(_esc(layer), f"predicts <b>{_esc(self.classes[k])}</b>", "")
            if np.isfinite(info["library"]["cpl"]):
                med = float(np.median(self.per_input["cpl"]))
                line("CPL", f"{info['library']['cpl']:.3f}", f"(median {med:.3f})")
        if "selfintro" in info:
            z = info["selfintro"]["z"]
            section("self-introspection")
            line("z", f"({z[0]:.2f}, {z[1]:.2f})", "")
            line(
                "log10 ê",
                f"{info['selfintro']['log10_error']:.2f}",
                f"(ê {10 ** info['selfintro']['log10_error']:.3g})",
            )
        if "manifolds" in info:
            mi = info["manifolds"]
            section(f"manifold of class {self.classes[info['label']]}")
            typ = f"(train median {mi['typical']:.3f})" if mi["typical"] is not None else ""
            line("distance", f"{mi['residual']:.3f}", typ)
            line("dimension", f"{mi['dim']} at {self.params['manifolds']['threshold']:.2f}", "")
        more = f" (first of {len(sel)} selected)" if len(sel) > 1 else ""
        img = _img_tag(self._x[i].numpy(), cls="introspect-inspector-image")
        return (
            f'<div class="introspect-inspector" data-index="{i}">'
            f'<div style="display:flex;gap:10px;align-items:flex-start">{img}<div>'
            f"<b>input #{i}</b> of the {_esc(self.split)} split{more}<br>"
            f"label <b>{_esc(info['label_name'])}</b><br>"
            f"network's answer <b>{_esc(info['answer_name'])}</b> ({verdict})</div></div>"
            f'<table style="font-size:12px;margin-top:4px">{"".join(rows)}</table></div>'
        )

    def _selection_text(self) -> str:
        sel = self.state.selection
        origin = self.state.origin or "python"
        head = ", ".join(f"#{i}" for i in sel[:8]) + (" ..." if len(sel) > 8 else "")
        body = (
            f"<b>{len(sel)}</b> selected ({_esc(origin)}): {head}"
            if sel
            else f"nothing selected ({_esc(origin)})"
        )
        return f'<div class="introspect-dash-selection" data-count="{len(sel)}">{body}</div>'

    def _readout(self, lens: str, count: int, extra: str = "") -> None:
        sel = self.state.selection
        first = f"; first #{sel[0]}" if sel else ""
        self.readouts[lens].value = (
            f'<div class="introspect-dash-readout" data-lens="{lens}" data-count="{count}">'
            f"<b>{count}</b> selected inputs highlighted{_esc(extra)}{first}</div>"
        )

    # ------------------------------------------------------------------ propagation
    def _on_selection(self, change) -> None:
        with self._lock:
            self._push_selection()

    def _push_selection(self) -> None:
        """Highlight the selection in every computed lens and show the first in the inspector."""
        sel = np.asarray(self.state.selection, dtype=np.int64)
        self._syncing = True
        try:
            self.selection_html.value = self._selection_text()
            origin = self.state.origin
            if self.labels is not None:
                cells = sorted({(int(self.labels[i]), int(self.preds[i])) for i in sel})
                with self.cm_grid.hold_sync():
                    self.cm_grid.marks = [list(c) for c in cells]
                    if not origin.startswith("confusion"):
                        self.cm_grid.selected = []
                self._readout("confusion", len(sel), f" in {len(cells)} cells")
            if self.ready["telescope"]:
                tel = self._tel()
                units = np.unique(tel.bmus[self.split][sel, 0]) if sel.size else np.zeros(0, int)
                ux, uy = self._unit_xy(units, tel.shape)
                self.som_points.selected.indices = sel.tolist()
                self.som_marks.data = dict(x=ux, y=uy, unit=units)
                if not origin.startswith("telescope"):
                    self.som_units.selected.indices = []
                self._readout("telescope", len(sel), f" on {len(units)} units of {tel.layer}")
            if self.ready["library"]:
                cpl = self.per_input["cpl"]
                top = max(self.cpl_hist.data["clean"], default=1)
                self.lib_sel.data = dict(
                    cpl=cpl[sel],
                    y=np.full(sel.size, -0.03 * max(float(top), 1.0)),
                    index=sel,
                    label=[self.classes[k] for k in self.labels[sel]],
                )
                if sel.size and np.isfinite(cpl[sel[0]]):
                    self.cpl_span.location, self.cpl_span.visible = float(cpl[sel[0]]), True
                else:
                    self.cpl_span.visible = False
                layer = self.lib_layer.value
                rival = self.per_input["rival"][layer]
                cells = sorted({(int(self.labels[i]), int(rival[i])) for i in sel})
                ci, cj = (np.asarray([c[0] for c in cells]), np.asarray([c[1] for c in cells]))
                self.ci_marks.data = dict(
                    x=cj + 0.5, y=ci + 0.5, i=ci, j=cj, count=np.ones(len(cells))
                )
                if not origin.startswith("library"):
                    self.ci_source.selected.indices = []
                self._readout("library", len(sel), f" (CI cells of {layer}: {len(cells)})")
            if self.ready["selfintro"]:
                self.map_points.selected.indices = sel.tolist()
                self._readout("selfintro", len(sel), " on the map")
            if self.ready["manifolds"]:
                self.strip_points.selected.indices = sel.tolist()
                classes = sorted({int(k) for k in self.labels[sel]})
                d = self.class_points.data
                rows = [k for k, c in enumerate(d["cls"]) if c in classes]
                self.class_marks.data = dict(
                    dim=[d["dim"][k] for k in rows],
                    acc=[d["acc"][k] for k in rows],
                    cls=[d["cls"][k] for k in rows],
                )
                if not origin.startswith("manifolds: class"):
                    self.class_points.selected.indices = []
                self._readout("manifolds", len(sel), f" in {len(classes)} classes")
            if self.results.get("detect") is not None:
                pts = self.det_points.data["index"]
                chosen = set(sel.tolist())
                self.det_points.selected.indices = [k for k, i in enumerate(pts) if i in chosen]
                pairs = len({i for i in pts if i in chosen})
                self._readout("detect", len(sel), f" ({pairs} of them are pairs of this setting)")
            self.inspector_html.value = self._inspector_text()
        finally:
            self._syncing = False

    # ------------------------------------------------------------------ detect
    def _build_detect(self):
        from introspect.detect import make_detectors

        from .plots.compare import roc_plot

        p = self.params["detect"]
        names = list(make_detectors(self.study, p.get("detectors"), p.get("options")))
        self.det_attack = W.Dropdown(options=[], description="attack")
        self.det_eps = W.Dropdown(options=[], description="eps")
        self.det_detector = W.Dropdown(options=names, value=names[0], description="histogram")
        self.det_button = W.Button(description="Run detection", button_style="primary")
        self.det_button.on_click(guarded(self.errors, lambda _b: self._detect_clicked()))
        self.det_roc_figure, self.det_roc = roc_plot(
            dict.fromkeys(names, ([], [])), title="ROC (perturbed = positive)", width=360,
            height=360,
        )  # fmt: skip
        self.det_roc_figure.legend.visible = len(names) <= 12
        self.det_hist = ColumnDataSource(dict(left=[], right=[], clean=[], perturbed=[]))
        self.det_points = ColumnDataSource(dict(x=[], y=[], index=[], side=[], label=[], color=[]))
        h = _figure(
            "scores: clean vs perturbed (tap a point to select its input)", 380, 360,
            "score (higher = more suspicious)", "inputs", "tap,box_select,reset,save",
        )  # fmt: skip
        h.quad(left="left", right="right", top="clean", bottom=0, source=self.det_hist,
               color="#0072B2", alpha=0.45, legend_label="clean")  # fmt: skip
        h.quad(left="left", right="right", top="perturbed", bottom=0, source=self.det_hist,
               color="#D55E00", alpha=0.45, legend_label="perturbed")  # fmt: skip
        pts = _points(h, "x", "y", self.det_points, 6, 0.8, 0.3, 11, line_color="black")
        tips = [("input", "#@index"), ("label", "@label"), ("", "@side"), ("score", "@x{0.000}")]
        _hover(h, pts, tips, tap=True)
        _small_legend(h)
        _empty_note(h, self.det_hist, "Press Run detection: scores of clean and perturbed")
        _empty_note(self.det_roc_figure, self.det_hist, "Press Run detection to draw ROC curves")
        self.det_hist_figure = h
        self.det_points.selected.on_change("indices", self._guarded_cb(self._on_det_tap))
        for w in (self.det_attack, self.det_eps, self.det_detector):
            w.observe(guarded(self.errors, lambda _c: self._render_detect()), names="value")
        self.det_view = self._view(one_toolbar(row(self.det_roc_figure, h)), "detect")
        self.det_button.layout = W.Layout(flex="0 0 auto", width="auto")
        self._page(
            "detect",
            W.HBox(
                [self.det_button, self.det_attack, self.det_eps, self.det_detector],
                layout=W.Layout(flex_flow="row wrap"),
            ),
            self.det_view,
        )

    def _detect_clicked(self):
        with self.busy("detecting", self.det_button):
            self.compute_detect()

    def _det_step(self, done, total, info=None):
        self.step_bar.reset(total=total, description="detect") if done == 1 else None
        self.step_bar.update(1)
        self._tab_status("detect", f"{done}/{total}: {info}")

    def compute_detect(self) -> Dashboard:
        """Run ``study.detect`` with ``params["detect"]`` (cached attacks and fits) and draw
        the ROC curves; returns ``self``."""
        if self.labels is None:
            self._compute_data()
        self._tab_status("detect", "fitting the detectors and attacking...")
        table = self.study.detect(**self.params["detect"], callback=self._det_step)
        self.step_bar.close()
        self.results["detect"] = table
        settings = table.settings
        self._det_rendering = True
        try:
            attacks = list(dict.fromkeys(a for a, _ in settings))
            self.det_attack.options = attacks
            self.det_attack.value = attacks[0]
            self._det_eps_options()
        finally:
            self._det_rendering = False
        self._render_detect()
        self._tab_status(
            "detect",
            f"{len(table.detectors)} detectors fitted on the train split; pairs are the "
            f"{self.split} inputs an attack flipped (noise: every clean-correct input). "
            "Tap a point below the histogram to select that input in every lens.",
        )
        with self._lock:
            self._push_selection()
        return self

    def _det_eps_options(self) -> None:
        table = self.results["detect"]
        eps = [e for a, e in table.settings if a == self.det_attack.value]
        self.det_eps.options = [("-" if e is None else f"{e:g}", e) for e in eps]
        self.det_eps.value = eps[0]

    def _render_detect(self) -> None:
        table = self.results.get("detect")
        if table is None or getattr(self, "_det_rendering", False):
            return
        a = self.det_attack.value
        if all(e != self.det_eps.value for x, e in table.settings if x == a):
            self._det_rendering = True
            try:
                self._det_eps_options()
            finally:
                self._det_rendering = False
        e = self.det_eps.value
        for d, src in self.det_roc.items():
            f, t = table.roc(d, a, e)
            src.data = dict(fpr=np.asarray(f, float).tolist(), tpr=np.asarray(t, float).tolist())
        s = table.scores[(a, e)]
        d = self.det_detector.value
        clean, pert = np.asarray(s["clean"][d]), np.asarray(s["perturbed"][d])
        both = np.r_[clean, pert]
        if both.size:
            edges = np.histogram_bin_edges(both, bins=30)
            hc, _ = np.histogram(clean, edges)
            hp, _ = np.histogram(pert, edges)
        else:
            edges, hc, hp = np.zeros(1), np.zeros(0), np.zeros(0)
        self.det_hist.data = dict(left=edges[:-1], right=edges[1:], clean=hc, perturbed=hp)
        top = max(1.0, float(max(hc.max(initial=0), hp.max(initial=0))))
        idx = np.asarray(s["index"], dtype=np.int64)
        lab = [self.classes[int(k)] for k in s["y"]]
        self.det_points.selected.indices = []
        self.det_points.data = dict(
            x=both,
            y=np.r_[np.full(len(clean), -0.06 * top), np.full(len(pert), -0.14 * top)],
            index=np.r_[idx, idx].tolist(),
            side=["clean"] * len(clean) + ["perturbed"] * len(pert),
            label=lab + lab,
            color=["#0072B2"] * len(clean) + ["#D55E00"] * len(pert),
        )
        auc = table.get(d, a, e)
        self.det_hist_figure.title.text = (
            f"{d} on {a}{'' if e is None else f' {e:g}'}: AUROC {auc:.3f}, {len(idx)} pairs "
            "(tap a point to select its input)"
        )
        with self._lock:
            self._push_selection()

    def _on_det_tap(self, indices):
        pts = self.det_points.data["index"]
        idx = list(dict.fromkeys(int(pts[k]) for k in indices))
        if sorted(idx) != sorted(self.state.selection):  # not the echo of our highlight
            self.set_selection(idx, f"detect: {len(idx)} inputs of the {self.det_detector.value} "
                                    "histogram")  # fmt: skip

    # ------------------------------------------------------------------ attacks
    def _attack_clicked(self):
        with self.busy("attacking", self.attack_button):
            self.attack()
        if self.error is None:
            self.set_status(self.path_summary())

    def attack(
        self,
        index: int | None = None,
        kind: str | None = None,
        *,
        target=None,
        steps: int | None = None,
        step_size: float | None = None,
        eps: float | None = None,
    ) -> dict:
        """Attack one input (default: the first selected) and draw its path in every lens.

        Parameters default to the attack controls; ``kind`` is "pgd", "pgd-targeted" or
        "fgsm-targeted" (see :func:`attack_path`).

        Returns
        -------
        dict (also ``dash.path``) with ``index``, ``kind``, ``x`` (S, C, H, W), ``pred``
        (S,) the network's answers, ``bmu`` {layer: (S,) units}, ``lib_pred`` {layer:
        (S,)}, ``cpl`` (S,), ``z`` (S, 2), ``log10_error`` (S,), ``residual`` (S,) to the
        input's class manifold and ``residual_pred`` (S,) to the answered class's; S is
        ``steps + 1`` (step 0 is the clean input).
        """
        self._need("confusion")
        if index is None:
            if not self.state.selection:
                raise RuntimeError("select an input first (in any lens), then attack it.")
            index = self.state.selection[0]
        i = int(index)
        kind = kind or ATTACKS[self.attack_kind.value]
        target = target if target is not None else self.target.value
        steps = int(steps if steps is not None else self.steps.value)
        step_size = float(step_size if step_size is not None else self.step_size.value)
        eps = float(eps if eps is not None else self.eps.value)
        s = self.study
        y = int(self.labels[i])
        settings = dict(target=target, steps=steps, step_size=step_size, eps=eps)
        x_path = attack_path(s.model, self._x[i], y, kind, device=s.device, **settings)
        out = dict(index=i, kind=kind, **settings, x=x_path, label=y)
        layers = []
        if self.ready["telescope"]:
            layers += list(self.results["telescope"])
        codes, logits = s.activations(x_path, reducer="codes", layers=layers or None)
        out["pred"] = np.asarray(logits).argmax(1)
        if self.ready["telescope"]:
            out["bmu"] = {
                k: t.som.bmus(np.asarray(codes[k], dtype=np.float32), top_k=1)[:, 0]
                for k, t in self.results["telescope"].items()
            }
        flat_layers = []
        if self.ready["library"]:
            flat_layers += list(self.results["library"].stack.layers_)
        if self.ready["manifolds"]:
            flat_layers.append(self.params["manifolds"]["layer"])
        if flat_layers:
            flat, _ = s.activations(
                x_path, reducer="flatten", layers=list(dict.fromkeys(flat_layers))
            )
            if self.ready["library"]:
                stack = self.results["library"].stack
                H = {k: flat[k] for k in stack.layers_}
                scores = stack.predict_scores(H)
                out["lib_pred"] = {k: np.asarray(v).argmax(1) for k, v in scores.items()}
                out["cpl"] = _cpl(stack, scores)
            if self.ready["manifolds"]:
                from introspect.manifolds import subspace_residual

                F = flat[self.params["manifolds"]["layer"]]
                out["residual"] = subspace_residual(F, y, self.subspaces)
                known = np.asarray([p if p in self.subspaces else y for p in out["pred"]])
                out["residual_pred"] = subspace_residual(F, known, self.subspaces)
        if self.ready["selfintro"]:
            a = self.results["selfintro"].analyze(x_path)
            out["z"], out["log10_error"] = np.asarray(a["z"]), np.asarray(a["log10_error_hat"])
        with self._lock:
            self.path = out
            self._draw_path()
            with hold_sync(self.path_step):
                self.path_step.max = steps
                self.path_step.value = steps
            self._show_step(steps)
        return out

    def path_summary(self) -> str:
        p = self.path
        if p is None:
            return "no attack yet"
        a, b = self.classes[int(p["pred"][0])], self.classes[int(p["pred"][-1])]
        flip = next((k for k, v in enumerate(p["pred"]) if v != p["pred"][0]), None)
        when = f", first flip at step {flip}" if flip is not None else ", no flip"
        return f"{p['kind']} on #{p['index']}: answer {a} -> {b} after {p['steps']} steps{when}"

    def _draw_path(self):
        p = self.path
        if p is None:
            return
        steps = np.arange(len(p["pred"]))
        answers = [self.classes[int(k)] for k in p["pred"]]
        if "bmu" in p and self.ready["telescope"]:
            tel = self._tel()
            m, n = tel.shape
            u = p["bmu"][tel.layer]
            x, y = self._unit_xy(u, (m, n))
            lx, ly = [], []
            for k in range(len(u)):  # break the line where it wraps around the torus
                if k and (abs(x[k] - x[k - 1]) > n / 2 or abs(y[k] - y[k - 1]) > m / 2):
                    lx.append(np.nan)
                    ly.append(np.nan)
                lx.append(float(x[k]))
                ly.append(float(y[k]))
            self.som_path.data = dict(x=x, y=y, step=steps, unit=u, answer=answers)
            self.som_path_line.data = dict(x=lx, y=ly)
        if "cpl" in p:
            txt = [
                ", ".join(f"{k}: {self.classes[int(v[s])]}" for k, v in p["lib_pred"].items())
                + f"; network: {answers[s]}"
                for s in steps
            ]
            self.lib_path.data = dict(step=steps, cpl=p["cpl"], answers=txt)
            colors = ["#0072B2", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#999999"]
            rows = dict(step=[], y=[], who=[], color=[])
            for j, (k, v) in enumerate([("network", p["pred"]), *p["lib_pred"].items()]):
                off = (j - len(p["lib_pred"]) / 2) * 0.08
                rows["step"] += list(steps)
                rows["y"] += list(np.asarray(v, dtype=float) + off)
                rows["who"] += [f"{k}" if k == "network" else f"library {k}"] * len(steps)
                rows["color"] += ["black" if k == "network" else colors[j % len(colors)]] * len(
                    steps
                )
            self.lib_path_pred.data = rows
        if "z" in p:
            self.map_path.data = dict(
                z1=p["z"][:, 0], z2=p["z"][:, 1], step=steps, answer=answers, error=p["log10_error"]
            )
        if "residual" in p:
            self.man_path.data = dict(
                step=steps, residual=p["residual"], residual_pred=p["residual_pred"], answer=answers
            )

    def _show_step(self, k: int) -> None:
        p = self.path
        if p is None:
            return
        k = int(min(max(k, 0), len(p["pred"]) - 1))
        if len(self.som_path.data["x"]) > k:
            self.som_cur.data = dict(x=[self.som_path.data["x"][k]], y=[self.som_path.data["y"][k]])
        if "cpl" in p:
            self.lib_cur.data = dict(step=[k], cpl=[p["cpl"][k]])
        if "z" in p:
            self.map_cur.data = dict(z1=[p["z"][k, 0]], z2=[p["z"][k, 1]])
        if "residual" in p:
            self.man_cur.data = dict(step=[k], residual=[p["residual"][k]])
        parts = [f"network: <b>{_esc(self.classes[int(p['pred'][k])])}</b>"]
        if "bmu" in p:
            parts.append("BMU " + ", ".join(f"{_esc(n)} {int(u[k])}" for n, u in p["bmu"].items()))
        if "cpl" in p:
            parts.append(
                "library "
                + ", ".join(
                    f"{_esc(n)}: {_esc(self.classes[int(v[k])])}" for n, v in p["lib_pred"].items()
                )
                + f"; CPL {p['cpl'][k]:.3f}"
            )
        if "z" in p:
            parts.append(
                f"z ({p['z'][k, 0]:.2f}, {p['z'][k, 1]:.2f}), log10 ê {p['log10_error'][k]:.2f}"
            )
        if "residual" in p:
            parts.append(f"distance to the class manifold {p['residual'][k]:.3f}")
        linf = float((p["x"][k] - p["x"][0]).abs().max())
        img = _img_tag(p["x"][k].numpy(), 84, "introspect-attack-image")
        self.path_html.value = (
            f'<div class="introspect-dash-path" data-steps="{len(p["pred"])}">'
            f'<div style="display:flex;gap:8px">{img}<div><b>step {k}</b> of {len(p["pred"]) - 1} '
            f"({_esc(p['kind'])} on #{p['index']}, L-inf {linf:.3f})<br>"
            + "<br>".join(parts)
            + f"</div></div><div>{_esc(self.path_summary())}</div></div>"
        )
