"""EmptyState: a message in place of a view until the view has something to show.

A panel's plots have nothing to draw before its first Compute / Train / Fit, and an empty
bokeh figure (axes, a toolbar, no glyphs; or a 2 x 2 placeholder heatmap) reads as a
broken panel. ``EmptyState(view, message, sources=[...])`` shows ``message`` instead and
hides ``view`` (``layout.display = "none"``); the first time one of ``sources`` (bokeh
``ColumnDataSource``) gets data, whoever sets it (a handler, a worker thread, a
precomputed result), the message goes and the view shows. The view widget is made and
synced from the start (a hidden ipywidget still has its model in the kernel and its
``render_bundle``), so it draws after a page reload as before (``LiveBokehModel``).
"""

from __future__ import annotations

import html

import ipywidgets as W

__all__ = ["EmptyState", "empty_message"]

_STYLE = (
    "color:#555;background:#f6f8fa;border:1px dashed #b0b7c0;border-radius:4px;"
    "padding:14px 16px;max-width:{width}px;box-sizing:border-box;line-height:1.4"
)


def empty_message(text: str, width: int = 520) -> str:
    """The HTML of an empty-state message (escaped text in a dashed box)."""
    style = _STYLE.format(width=int(width))
    return f'<div class="introspect-empty" style="{style}">{html.escape(text)}</div>'


class EmptyState(W.VBox):
    """``view`` behind an empty-state ``message`` until one of ``sources`` holds data.

    Parameters
    ----------
    view : ipywidgets.Widget
        What to show once there is data (a bokeh widget, a box of them).
    message : str
        Plain text shown meanwhile (escaped), e.g. "Press Compute to ...".
    sources : iterable of bokeh ColumnDataSource
        Watched: the first change of ``data`` (set or streamed) that leaves a source with
        rows shows the view. Empty: call :meth:`show_view` yourself.
    width : int
        Maximum width of the message box in pixels.
    """

    def __init__(self, view: W.Widget, message: str, *, sources=(), width: int = 520):
        self.view = view
        self.text = message
        self.message = W.HTML(empty_message(message, width))
        super().__init__([self.message, view])
        self._width = int(width)
        view.layout.display = "none"
        for src in sources:
            src.on_change("data", self._on_data)

    @property
    def empty(self) -> bool:
        """Whether the message is shown (and the view hidden)."""
        return self.view.layout.display == "none"

    def _on_data(self, attr, old, new) -> None:
        if self.empty and any(len(v) for v in (new or {}).values()):
            self.show_view()

    def show_view(self) -> None:
        """Hide the message, show the view."""
        self.message.layout.display = "none"
        self.view.layout.display = None

    def show_empty(self, message: str | None = None) -> None:
        """Show the message again (a new one if given) instead of the view."""
        if message is not None:
            self.text = message
            self.message.value = empty_message(message, self._width)
        self.view.layout.display = "none"
        self.message.layout.display = None
