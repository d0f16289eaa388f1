"""anywidget views (ES modules in ``introspect_widgets/static``, no build step)."""

from .grid import COLORMAPS, GridView

__all__ = ["GridView", "COLORMAPS"]
