"""ipywidgets panels that drive the core: controls -> one core call -> one view.

Panels are imported lazily: ``from introspect_widgets.panels import CapturePanel`` loads
only ``capture.py``. To add a panel, put it in ``panels/<module>.py`` and add one line
``"ClassName": "<module>"`` to ``_PANELS`` below.
"""

from __future__ import annotations

import importlib

_PANELS = {
    "CapturePanel": "capture",
    "SOMPanel": "som",
    "LibraryPanel": "library",
    "ActivationMapPanel": "activation_map",
    "ManifoldPanel": "manifold",
}

__all__ = sorted(_PANELS)


def __getattr__(name: str):
    if name in _PANELS:
        module = importlib.import_module(f"{__name__}.{_PANELS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PANELS))
