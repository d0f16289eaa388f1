"""The core package never imports the Jupyter layer (ipywidgets, anywidget, bokeh)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("ipywidgets", "anywidget", "bokeh", "jupyter_bokeh", "introspect_widgets")

SCRIPT = """
import importlib, json, pkgutil, sys
import introspect
names = ["introspect"]
for m in pkgutil.walk_packages(introspect.__path__, "introspect."):
    importlib.import_module(m.name)
    names.append(m.name)
from introspect import figures
figures.FIGURES  # the registry imports every figure module
loaded = sorted({k.split(".")[0] for k in sys.modules})
print(json.dumps({"modules": names, "loaded": loaded}))
"""


def test_core_imports_no_jupyter_modules():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"introspect.capture", "introspect.models", "introspect.figures"} <= set(info["modules"])
    bad = sorted(set(info["loaded"]) & set(FORBIDDEN))
    assert bad == [], f"core imported Jupyter-layer modules: {bad}"
