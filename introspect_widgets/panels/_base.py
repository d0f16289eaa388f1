"""Shared pieces of every panel: error box, progress bar, hold_sync, bokeh embedding.

A panel is a plain Python object that owns its ipywidgets, bokeh figures and anywidget
views. It is displayed through ``_repr_mimebundle_`` (so a notebook cell ending in the
panel shows it) and driven headless in tests by setting widget values and calling
``button.click()``.

Pattern::

    class MyPanel(Panel):
        def __init__(self):
            super().__init__(title="My method")
            self.run = self.button("Run", self._run)   # handler errors go to the error box
            self.view = bokeh_widget(layout)            # jupyter_bokeh.BokehModel
            self.children = [self.run, self.view]      # laid out under title, above status

        def _run(self):
            with self.busy("fitting", self.run):        # disables the button, shows errors
                ...
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
import traceback
from collections.abc import Callable, Iterable

import ipywidgets as W

__all__ = [
    "Panel",
    "ErrorBox",
    "ProgressBar",
    "hold_sync",
    "bokeh_widget",
    "bokeh_views",
    "refresh_bokeh_views",
    "PanelBox",
    "ensure_bokehjs",
    "guarded",
    "eps_label",
    "parse_eps",
    "labels_for",
    "as_study",
    "study_name",
    "TaskBar",
    "in_kernel",
    "recipe_fields",
]


@contextlib.contextmanager
def hold_sync(*widgets: W.Widget):
    """Batch the trait changes of several widgets into one message per widget.

    ``with hold_sync(slider, label): slider.max = 10; slider.value = 3; label.value = "x"``
    sends each widget's changes together on exit, so the front end never sees a
    half-updated state (e.g. a value above the old maximum).
    """
    with contextlib.ExitStack() as stack:
        for w in widgets:
            if w is not None:
                stack.enter_context(w.hold_sync())
        yield


class ErrorBox(W.HTML):
    """Shows the last error of a panel in red with its traceback folded underneath.

    Errors are never swallowed: the exception is kept in ``error`` (and its formatted
    text in ``text``) and shown in the panel until :meth:`clear` or the next success.
    """

    def __init__(self, **kwargs):
        super().__init__(value="", **kwargs)
        self.error: BaseException | None = None
        self.text = ""
        self.layout.display = "none"

    def show(self, err: BaseException, context: str = "") -> None:
        self.error = err
        tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        head = f"{context}: " if context else ""
        self.text = f"{head}{type(err).__name__}: {err}"
        self.value = (
            '<div class="introspect-error" style="color:#b00020;border:1px solid #b00020;'
            'padding:4px 8px;border-radius:3px;white-space:pre-wrap;font-family:monospace">'
            f"<b>{html.escape(self.text)}</b>"
            f"<details><summary>traceback</summary>{html.escape(tb)}</details></div>"
        )
        self.layout.display = None

    def clear(self) -> None:
        self.error, self.text, self.value = None, "", ""
        self.layout.display = "none"


def guarded(errors: ErrorBox, fn: Callable, context: str = "") -> Callable:
    """Wrap a widget callback so that an exception is shown in ``errors``.

    Works for button handlers (``fn(button)``), observers (``fn(change)``) and plain
    callables. The wrapped function returns ``None`` when it failed.
    """

    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # shown in the panel, kept in errors.error
            errors.show(err, context)
            return None

    wrapper.__wrapped__ = fn
    wrapper.__name__ = getattr(fn, "__name__", "callback")
    return wrapper


class ProgressBar:
    """An ipywidgets progress bar with a tqdm-like and a callback interface.

    Use it as ``callback(done, total)`` (e.g. ``capture(..., callback=bar)``) or like a
    tqdm bar (``bar.reset(total=n); bar.update(k); bar.close()``). ``widget`` is the
    ``HBox`` to lay out; ``fraction`` is in [0, 1].
    """

    def __init__(self, description: str = "", total: int = 1, min_interval: float = 0.0):
        self.bar = W.FloatProgress(
            value=0.0,
            min=0.0,
            max=1.0,
            description=description,
            bar_style="",
            layout=W.Layout(width="320px"),
        )
        self.label = W.Label(value="")
        self.widget = W.HBox([self.bar, self.label])
        self.total = max(int(total), 1)
        self.n = 0
        self.min_interval = min_interval
        self._last = 0.0
        self._t0 = time.perf_counter()
        # a fit may report from a worker thread while the kernel thread resets the bar:
        # one render at a time (hold_sync's pending-state set is not thread-safe)
        self._lock = threading.RLock()

    # callback interface --------------------------------------------------
    def __call__(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = max(int(total), 1)
        self.n = int(done)
        self._render(force=self.n >= self.total)

    # tqdm-like interface -------------------------------------------------
    def reset(self, total: int | None = None, description: str | None = None) -> ProgressBar:
        if total is not None:
            self.total = max(int(total), 1)
        if description is not None:
            self.bar.description = description
        self.n, self._t0, self._last = 0, time.perf_counter(), 0.0
        self.bar.bar_style = ""
        self._render(force=True)
        return self

    def update(self, k: int = 1) -> None:
        self.n += int(k)
        self._render(force=self.n >= self.total)

    def set_description(self, text: str) -> None:
        self.bar.description = text

    def close(self, style: str = "success") -> None:
        self.bar.bar_style = style
        self._render(force=True)

    def fail(self) -> None:
        self.close("danger")

    @property
    def fraction(self) -> float:
        return min(self.n / self.total, 1.0)

    def _render(self, force: bool = False) -> None:
        with self._lock:
            now = time.perf_counter()
            if not force and now - self._last < self.min_interval:
                return
            self._last = now
            elapsed = now - self._t0
            rate = self.n / elapsed if elapsed > 0 else 0.0
            with hold_sync(self.bar, self.label):
                self.bar.value = self.fraction
                self.label.value = f"{self.n}/{self.total} ({rate:,.0f}/s)"


def in_kernel() -> bool:
    """Whether this runs inside a Jupyter kernel (the front end can click meanwhile)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class TaskBar:
    """What a long action is doing: stage, k/n and time left, a bar, and a Cancel button.

    Hidden while nothing runs. :meth:`show` is the sink's display
    (:class:`introspect.progress.Tracker` calls it, throttled); :meth:`finish` leaves the
    last line visible with how it ended. ``cancel_button`` asks the running action to
    stop at its next progress report.
    """

    def __init__(self):
        self.bar = W.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=W.Layout(width="240px"), bar_style="info"
        )
        self.label = W.HTML(value="")
        self.cancel_button = W.Button(
            description="Cancel",
            button_style="danger",
            icon="stop",
            tooltip="stop the running action at its next step; nothing half-done is stored",
            layout=W.Layout(width="100px"),
        )
        self.widget = W.HBox([self.cancel_button, self.bar, self.label])
        self.widget.add_class("introspect-task")
        self.widget.layout.display = "none"
        self._lock = threading.RLock()

    def start(self, what: str) -> None:
        with self._lock, hold_sync(self.bar, self.label, self.cancel_button):
            self.bar.value, self.bar.bar_style = 0.0, "info"
            self.label.value = f"{html.escape(what)}: starting"
            self.cancel_button.disabled = False
            self.cancel_button.description = "Cancel"
            self.cancel_button.layout.visibility = "visible"
            self.widget.layout.display = None
        self.what = what

    def show(self, tracker) -> None:
        with self._lock, hold_sync(self.bar, self.label):
            frac = (tracker.done / tracker.total) if tracker.total else 0.0
            self.bar.value = min(max(frac, 0.0), 1.0)
            self.label.value = (
                f"{html.escape(self.what)}: {html.escape(tracker.describe())}"
                f" <small>({tracker.elapsed:.0f} s)</small>"
            )

    def cancelling(self) -> None:
        with self._lock:
            self.cancel_button.disabled = True
            self.cancel_button.description = "Cancelling"

    def finish(self, text: str, style: str) -> None:
        with self._lock, hold_sync(self.bar, self.label, self.cancel_button):
            if style == "success":
                self.bar.value = 1.0
            self.bar.bar_style = style
            self.label.value = html.escape(text)
            self.cancel_button.disabled = True
            self.cancel_button.description = "Cancel"
            self.cancel_button.layout.visibility = "hidden"  # nothing runs: nothing to stop


def eps_label(eps) -> str:
    """How an attack budget is shown: as the user wrote it, else a short exact repr.

    A string (``"8/255"``, ``" 0.1 "``) is kept as written (stripped); a float is shown by
    its shortest round-trip repr (``0.05`` -> ``"0.05"``), or as ``"k/255"`` when it is
    exactly ``k/255`` and that is shorter (``8/255`` -> ``"8/255"``, not
    ``"0.03137254901960784"``; reduced: ``85/255`` -> ``"1/3"``). Parsing the label
    (:func:`parse_eps`) gives the float back.
    """
    if isinstance(eps, str):
        return eps.strip()
    from fractions import Fraction

    e = float(eps)
    short = repr(e)
    k = round(e * 255)
    frac = str(Fraction(k, 255))  # 8/255 stays 8/255; 85/255 is 1/3
    if k and float(k) / 255 == e and len(frac) < len(short):
        return frac
    return short


def _eps_value(token) -> float:
    if isinstance(token, str):
        from fractions import Fraction

        text = token.strip()
        try:
            return float(Fraction(text)) if "/" in text else float(text)
        except (ValueError, ZeroDivisionError) as err:
            raise ValueError(f"eps {text!r} is not a number or a fraction such as 8/255") from err
    return float(token)


def parse_eps(eps) -> tuple[list[float], list[str]]:
    """Budgets and their labels from ``"0.05, 8/255"`` or a list of floats / strings.

    Returns ``(values, labels)``; ``labels[i]`` is :func:`eps_label` of what was given,
    so a slider over the labels reads what the user wrote.
    """
    tokens = (
        [t for t in eps.replace(";", ",").split(",") if t.strip()]
        if isinstance(eps, str)
        else list(eps)
    )
    values = [_eps_value(t) for t in tokens]
    return values, [eps_label(t) for t in tokens]


def labels_for(values, known_values=(), known_labels=()) -> list[str]:
    """Labels of ``values``: the known label of an equal budget, else :func:`eps_label`."""
    out = []
    for v in values:
        v = float(v)
        match = [lab for kv, lab in zip(known_values, known_labels) if abs(kv - v) <= 1e-12]
        out.append(match[0] if match else eps_label(v))
    return out


def ensure_bokehjs() -> bool:
    """Publish BokehJS into the notebook output here (inline: works offline).

    ``jupyter_bokeh.BokehModel`` views need BokehJS in the page, which
    ``bokeh.io.output_notebook`` provides; without it the browser reports "Could not
    create a view". A page reload forgets what an earlier cell loaded, and a plot made
    inside a button callback has no output to load it into, so every panel publishes
    BokehJS with its own display (:meth:`Panel._ipython_display_`), just before the
    widget: the page that shows the panel always has it, after a re-run or a reload too.
    Outside a Jupyter kernel (tests, scripts) this does nothing; returns whether it
    published.
    """
    if not in_kernel():
        return False
    from bokeh.io.notebook import load_notebook
    from bokeh.resources import INLINE

    load_notebook(resources=INLINE, hide_banner=True)
    return True


_LIVE_CLASS = None


def _live_bokeh_class():
    """The ``jupyter_bokeh.BokehModel`` subclass every panel embeds (made on first use)."""
    global _LIVE_CLASS
    if _LIVE_CLASS is not None:
        return _LIVE_CLASS
    from jupyter_bokeh import BokehModel

    class LiveBokehModel(BokehModel):
        """A ``BokehModel`` whose ``render_bundle`` follows the document.

        ``BokehModel`` builds ``render_bundle`` (the document's JSON a view draws from)
        once, when it is made, and sends later changes as patches to the views that
        exist at that moment. A change made before the view exists (a panel given data,
        filled before it is displayed) or a page reload (the view is rebuilt from the
        bundle) therefore showed the document as it was at creation: empty plots. Here a
        patch marks the bundle stale, and it is rebuilt from the document as it is now
        when the front end asks for the widget's state (a reload, a new view) and pushed
        when the widget or its panel is displayed (:meth:`refresh`). Patches and bundle
        rebuilds hold one lock, so a fit reporting from a worker thread cannot serialise
        the document while another thread does.
        """

        def __init__(self, model, **kwargs):
            self._bundle_lock = threading.RLock()
            self._stale = False
            super().__init__(model, **kwargs)

        @property
        def stale(self) -> bool:
            """Whether the document changed since ``render_bundle`` was made."""
            return self._stale

        def _document_patched(self, event) -> None:
            with self._bundle_lock:
                self._stale = True  # also for changes made in the browser (selections)
                super()._document_patched(event)

        def _sync_model(self, model, content, buffers) -> None:
            # an event from the browser (a tap, a range) changes the document too: under
            # the same lock as the patches (bokeh's PATCH-DOC and to_json iterate the
            # document's set of new models, which another thread's change may grow:
            # "Set changed size during iteration")
            with self._bundle_lock:
                super()._sync_model(model, content, buffers)

        def _fresh_bundle(self):
            self._stale = False
            return self._model_to_traits(self._model)

        def refresh(self) -> bool:
            """Send a bundle of the document as it is now if it changed; returns whether.

            Views that exist redraw from it (as a re-display does); views made later
            start from it.
            """
            with self._bundle_lock:
                if not self._stale:
                    return False
                self.render_bundle = self._fresh_bundle()
                return True

        def get_state(self, key=None, drop_defaults=False):
            wants = (
                key is None
                or key == "render_bundle"
                or (not isinstance(key, str) and "render_bundle" in key)
            )
            with self._bundle_lock:
                if wants and self._stale:
                    # the front end asks (a reload, a new view): give it the document as it
                    # is; no separate update message, the state goes out with this reply
                    self._trait_values["render_bundle"] = self._fresh_bundle()
                return super().get_state(key=key, drop_defaults=drop_defaults)

        def _repr_mimebundle_(self, **kwargs):
            self.refresh()
            return super()._repr_mimebundle_(**kwargs)

        def close(self) -> None:
            # BokehModel.close is not idempotent (a second close, e.g. at garbage
            # collection after a panel replaced its view, raised KeyError in __del__)
            W.DOMWidget.close(self)
            if self._document is not None:
                with contextlib.suppress(KeyError):
                    self._document.remove_on_change(self)

    _LIVE_CLASS = LiveBokehModel
    return LiveBokehModel


def bokeh_widget(layout) -> W.Widget:
    """Embed a bokeh layout as a live ``jupyter_bokeh.BokehModel`` widget.

    Changes made later to the layout's models (``source.data = ...``, ``fig.title.text``)
    are synced to the browser in place, and the widget draws the document as it is now
    on first display, on a re-display and after a page reload (``LiveBokehModel``; fill
    the sources before or after wrapping, both work). BokehJS is published with each
    panel display (:func:`ensure_bokehjs`, :meth:`Panel._ipython_display_`). If
    jupyter_bokeh cannot wrap the layout, an HTML widget explaining why is returned
    instead, so the panel still shows.
    """
    try:
        return _live_bokeh_class()(layout)
    except Exception as err:  # pragma: no cover - depends on the installed front end
        return W.HTML(
            '<div style="color:#b00020">bokeh view unavailable '
            f"({html.escape(type(err).__name__)}: {html.escape(str(err))}); "
            "install jupyter_bokeh>=4 in the kernel and the JupyterLab extension.</div>"
        )


def bokeh_views(widget: W.Widget) -> list[W.Widget]:
    """The live bokeh widgets (:func:`bokeh_widget`) in a widget tree, depth first."""
    out, stack, seen = [], [widget], set()
    while stack:
        w = stack.pop()
        if id(w) in seen:
            continue
        seen.add(id(w))
        if callable(getattr(w, "refresh", None)) and hasattr(w, "render_bundle"):
            out.append(w)
        stack.extend(reversed(list(getattr(w, "children", ()) or ())))
    return out


def refresh_bokeh_views(widget: W.Widget) -> int:
    """Push a current bundle to every stale bokeh view under ``widget``; returns how many."""
    return sum(bool(v.refresh()) for v in bokeh_views(widget))


class PanelBox(W.VBox):
    """The ``VBox`` of a panel: displaying it publishes BokehJS and refreshes its views.

    So ``display(panel.widget)`` draws as ``panel`` does: BokehJS in the page before the
    widget, and every bokeh view drawing its document as it is now.
    """

    def _repr_mimebundle_(self, **kwargs):
        ensure_bokehjs()
        refresh_bokeh_views(self)
        return super()._repr_mimebundle_(**kwargs)


def as_study(
    study,
    where: str,
    *,
    workdir="introspect-work",
    device: str = "cpu",
    data_root=None,
    n_per_class: int | None = None,
):
    """The :class:`introspect.Study` a panel works on.

    A ``Study`` is used as it is; a recipe name (``"small_cnn@digits"``) goes through
    :meth:`introspect.Study.from_recipe` with ``workdir``, ``device``, ``data_root`` and
    ``n_per_class`` (the model trains once and is cached in ``workdir``), lazily: the
    training runs at the panel's first long action (Train, Compute, Fit), which shows its
    progress and can cancel it, so the panel is on screen first. Anything else is
    refused with a ``TypeError`` that says what to pass.
    """
    from introspect import Study

    if isinstance(study, Study):
        return study
    if isinstance(study, str):
        return Study.from_recipe(
            study,
            workdir=workdir,
            device=device,
            data_root=data_root,
            n_per_class=n_per_class,
            progress=False,
            lazy=True,  # a recipe that trains does it at the panel's first long action
        )
    hint = ""
    try:
        from torch import nn

        if isinstance(study, nn.Module):
            hint = (
                " For your own model: Study(model, train=train_ds, test=test_ds, "
                "layers=[...], workdir=...)."
            )
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    raise TypeError(
        f"{where} takes an introspect.Study or a recipe name such as 'small_cnn@digits' "
        f"(see introspect.recipes.RECIPES); got {type(study).__name__}.{hint}"
    )


def recipe_fields(data_root, n_per_class, style, root_layout=None, **n_kwargs):
    """The two fields every recipe picker has: the data root and the images per class.

    ``n_per_class`` 0 (or None) means all; ``n_kwargs`` go to the per-class field
    (``layout``, ``tooltip``).
    """
    root = W.Text(
        value=data_root or "",
        description="data root",
        placeholder="$INTROSPECT_DATA (not needed for digits)",
        style=style,
        layout=root_layout or W.Layout(width="300px"),
    )
    per_class = W.BoundedIntText(
        value=n_per_class or 0, min=0, max=10**7, description="per class", style=style,
        **n_kwargs,
    )  # fmt: skip
    return root, per_class


def study_name(study, default: str = "study") -> str:
    """A short name of a study: its recipe when it came from one, else ``default``."""
    return str(getattr(study, "recipe", None) or default)


class Panel:
    """Base of the introspect panels: title, children, status line and error box.

    Subclasses set ``self.children`` (a list of widgets) in ``__init__``; ``widget`` is
    the assembled ``VBox``. Use :meth:`button` for buttons whose handler errors are shown
    in the panel, :meth:`observe` for guarded observers, and :meth:`busy` around a long
    call.
    """

    def __init__(self, title: str = ""):
        self.title = W.HTML(f"<b>{html.escape(title)}</b>") if title else None
        self.status = W.HTML(value="")
        self.errors = ErrorBox()
        self.children: list[W.Widget] = []
        self._widget: W.VBox | None = None
        self.task = TaskBar()
        self.task.cancel_button.on_click(lambda _b: self.cancel())
        #: run long actions in a worker thread (None: when in a Jupyter kernel, so that
        #: Cancel and the other controls stay live while they run)
        self.background: bool | None = None
        self.last_task: dict | None = None
        self._tracker = None
        self._active = False
        self._thread: threading.Thread | None = None
        self._task_lock = threading.Lock()
        self._on_display: list[Callable[[], None]] = []
        self._clicking = 0

    # layout ---------------------------------------------------------------
    @property
    def widget(self) -> W.VBox:
        if self._widget is None:
            parts = [self.title] if self.title is not None else []
            parts += [*self.children, self.task.widget, self.status, self.errors]
            self._widget = PanelBox(parts, layout=W.Layout(width="100%"))
            self._widget.add_class("introspect-panel")
        return self._widget

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        self._displayed()
        return bundle

    def _ipython_display_(self):
        """BokehJS, then the panel: each display brings what its bokeh views need.

        The panel's ``PanelBox`` publishes BokehJS and pushes a current bundle to every
        bokeh view whose document changed since its last bundle (:func:`bokeh_widget`).
        Work the constructor deferred (:meth:`after_display`) starts now, with the panel
        on screen.
        """
        from IPython.display import display

        display(self.widget)
        self._displayed()

    def after_display(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the panel is on screen (in a kernel), else right now.

        For a long first step that a constructor was asked for (``fit=True``): in a
        notebook the panel shows first, with its progress line and Cancel, and the step
        runs as a background action; headless (a script, a test) it runs at once.
        """
        if in_kernel():
            self._on_display.append(lambda: self._as_click(action))
        else:
            action()

    def _displayed(self) -> None:
        pending, self._on_display = self._on_display, []
        for action in pending:
            action()

    # helpers --------------------------------------------------------------
    @property
    def error(self) -> BaseException | None:
        """The exception shown in the panel, or ``None``."""
        return self.errors.error

    def set_status(self, text: str) -> None:
        self.status.value = html.escape(text)

    def button(self, description: str, handler: Callable[[], None], **kwargs) -> W.Button:
        """A button whose ``handler()`` (no arguments) shows its errors in the panel."""
        b = W.Button(description=description, **kwargs)
        b.on_click(guarded(self.errors, lambda _b: self._as_click(handler), description))
        return b

    def _as_click(self, action: Callable[[], object]):
        """Run ``action`` as the front end's request: its long actions go to the background."""
        self._clicking += 1
        try:
            return action()
        finally:
            self._clicking -= 1

    def observe(self, widget: W.Widget, handler: Callable, names: str | Iterable[str] = "value"):
        """``widget.observe`` with the handler's errors shown in the panel."""
        widget.observe(guarded(self.errors, handler), names=names)

    @contextlib.contextmanager
    def busy(self, what: str, *disable: W.Widget):
        """Disable ``disable`` widgets, show ``what`` as status; errors go to the error box.

        The exception is shown in the panel and not re-raised (the caller's code after
        the ``with`` block still runs; check ``self.error``).
        """
        for w in disable:
            w.disabled = True
        self.errors.clear()
        self.set_status(f"{what}...")
        try:
            yield
        except Exception as err:
            self.errors.show(err, what)
            self.set_status(f"{what} failed")
        finally:
            for w in disable:
                w.disabled = False

    # long actions -------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether a long action (:meth:`run_task`) is running."""
        return self._active

    def run_task(
        self,
        what: str,
        fn: Callable[[], object],
        *disable: W.Widget,
        background: bool | None = None,
    ) -> None:
        """Run ``fn()`` as a long action: progress line, Cancel, errors in the panel.

        The toolkit's loops report their stage and k/n to the panel's
        :class:`~introspect.progress.Tracker` (shown as "capture 120/360, 4 s left");
        :meth:`cancel` (the Cancel button) stops ``fn`` at its next report with
        :class:`introspect.progress.Cancelled`, and since every cached stage stores its
        result only when it finished, nothing half-done is stored. ``disable`` widgets
        are disabled meanwhile.

        Where it runs: with ``background=True`` (here or as the panel's ``background``)
        in a worker thread; with ``background`` None, in a worker thread when a button
        was clicked in a notebook (or a deferred first step started on display), so
        Cancel and the views stay live while it runs, and here otherwise: a call from
        code (``panel.compute()`` in a cell, a script, a test) returns when it is done,
        with its results in place. :meth:`wait` blocks until a worker ends.

        ``last_task`` records how the last action ended: ``{"what", "outcome"
        ("done" | "cancelled" | "failed"), "seconds", "stage"}``.
        """
        from introspect import progress

        with self._task_lock:
            if self.running:
                raise RuntimeError(
                    f"{self.task.what} is still running: wait for it to finish "
                    "(panel.wait()) or press Cancel"
                )
            tracker = progress.Tracker(on_change=self.task.show, max_rate=4.0)
            self._tracker, self._active = tracker, True
            for w in disable:
                w.disabled = True
            self.errors.clear()
            self.set_status(f"{what}...")
            self.task.start(what)

            def work():
                outcome, t0 = "failed", time.perf_counter()
                try:
                    with progress.watch(tracker):
                        fn()
                    outcome = "done"
                except progress.Cancelled as err:
                    outcome = "cancelled"
                    self.set_status(f"{what} cancelled: {err}")
                except Exception as err:  # shown in the panel, kept in errors.error
                    self.errors.show(err, what)
                    self.set_status(f"{what} failed")
                finally:
                    dt = time.perf_counter() - t0
                    self.last_task = dict(
                        what=what, outcome=outcome, seconds=dt, stage=tracker.describe()
                    )
                    style = {"done": "success", "cancelled": "warning"}.get(outcome, "danger")
                    last = ""  # where it ended: "capture 360/360"
                    if outcome == "done" and tracker.stage and tracker.total is not None:
                        last = f" ({tracker.stage} {tracker.done}/{tracker.total})"
                    self.task.finish(f"{what}: {outcome} after {dt:.1f} s{last}", style)
                    for w in disable:
                        w.disabled = False
                    self._active = False

            if background is None:
                background = self.background
            if background is None:  # a click in a notebook: keep the kernel free for Cancel
                background = bool(self._clicking) and in_kernel()
            background = bool(background)
            if background:
                self._thread = threading.Thread(target=work, name=f"introspect-{what}", daemon=True)
                self._thread.start()
                return
        work()

    def _finished_ok(self) -> bool:
        """Whether the last long action ended here and succeeded (not running, not failed)."""
        return not self._active and (self.last_task or {}).get("outcome") == "done"

    def cancel(self) -> bool:
        """Ask the running long action to stop at its next step; returns whether one ran."""
        tracker = self._tracker
        if tracker is None or not self._active:
            return False
        tracker.cancel()
        self.task.cancelling()
        return True

    def wait(self, timeout: float | None = None):
        """Block until the running long action ends (returns the panel)."""
        self._displayed()  # a deferred first step not yet started (no display) starts now
        th = self._thread
        if th is not None:
            th.join(timeout)
        return self
