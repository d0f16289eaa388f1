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
    "ensure_bokehjs",
    "guarded",
    "as_study",
    "study_name",
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
        now = time.perf_counter()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        elapsed = now - self._t0
        rate = self.n / elapsed if elapsed > 0 else 0.0
        with hold_sync(self.bar, self.label):
            self.bar.value = self.fraction
            self.label.value = f"{self.n}/{self.total} ({rate:,.0f}/s)"


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
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return False
    from bokeh.io.notebook import load_notebook
    from bokeh.resources import INLINE

    load_notebook(resources=INLINE, hide_banner=True)
    return True


def bokeh_widget(layout) -> W.Widget:
    """Embed a bokeh layout as a ``jupyter_bokeh.BokehModel`` widget.

    Changes made later to the layout's models (``source.data = ...``, ``fig.title.text``)
    are synced to the browser in place. BokehJS is published with each panel display
    (:func:`ensure_bokehjs`, :meth:`Panel._ipython_display_`). If jupyter_bokeh cannot wrap the layout, an HTML widget
    explaining why is returned instead, so the panel still shows.
    """
    try:
        from jupyter_bokeh import BokehModel

        return BokehModel(layout)
    except Exception as err:  # pragma: no cover - depends on the installed front end
        return W.HTML(
            '<div style="color:#b00020">bokeh view unavailable '
            f"({html.escape(type(err).__name__)}: {html.escape(str(err))}); "
            "install jupyter_bokeh>=4 in the kernel and the JupyterLab extension.</div>"
        )


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
    ``n_per_class`` (the model trains once and is cached in ``workdir``). Anything else is
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

    # layout ---------------------------------------------------------------
    @property
    def widget(self) -> W.VBox:
        if self._widget is None:
            parts = [self.title] if self.title is not None else []
            parts += [*self.children, self.status, self.errors]
            self._widget = W.VBox(parts, layout=W.Layout(width="100%"))
            self._widget.add_class("introspect-panel")
        return self._widget

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):
        """BokehJS, then the panel: each display brings what its bokeh views need."""
        from IPython.display import display

        ensure_bokehjs()
        display(self.widget)

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
        b.on_click(guarded(self.errors, lambda _b: handler(), description))
        return b

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
