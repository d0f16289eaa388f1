"""introspect_widgets: the Jupyter layer of introspect-widgets.

``plots`` holds pure bokeh builders (data -> layout backed by ColumnDataSource),
``panels`` ipywidgets compositions that drive the core, ``widgets`` anywidget views.
"""

__version__ = "0.1.0"
