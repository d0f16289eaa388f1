"""introspect_widgets: the Jupyter layer of introspect-widgets.

``plots`` holds pure bokeh builders (data -> layout backed by ColumnDataSource),
``panels`` ipywidgets compositions that drive the core, ``widgets`` anywidget views, and
``Dashboard(study)`` the four lenses of a study around one input inspector
(``DashboardPicker()``: a recipe menu that opens one).
"""

__version__ = "0.1.0"

__all__ = ["Dashboard", "DashboardPicker"]


def __getattr__(name: str):
    if name == "Dashboard":  # lazy: importing the package does not import bokeh or torch
        from .dashboard import Dashboard

        return Dashboard
    if name == "DashboardPicker":
        from .dashboard_picker import DashboardPicker

        return DashboardPicker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
