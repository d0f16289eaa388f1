"""The public names of ``introspect`` are the objects of their modules, whatever was imported.

Importing a submodule binds it on its package (``import introspect.capture`` sets
``introspect.capture``), which used to shadow the public function of the same name. The
check runs in a fresh interpreter, after importing every submodule of the package, so no
earlier import in the test session can hide the problem.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import introspect

SCRIPT = """
import importlib, json, pkgutil
import introspect
for m in pkgutil.walk_packages(introspect.__path__, "introspect."):
    importlib.import_module(m.name)
bad = []
for name in introspect.__all__:
    if name == "__version__":
        continue
    module = importlib.import_module("introspect." + introspect._EXPORTS[name])
    if getattr(introspect, name) is not getattr(module, name):
        bad.append([name, repr(getattr(introspect, name))[:120]])
print(json.dumps({"bad": bad, "n": len(introspect.__all__)}))
"""


def _run(script: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_export_is_the_object_of_its_module_after_importing_every_submodule():
    info = _run(SCRIPT)
    assert info["n"] == len(introspect.__all__)
    assert info["bad"] == [], f"exports shadowed by something else: {info['bad']}"


def test_submodule_imports_keep_working():
    info = _run(
        "import json, inspect, introspect.pipeline, introspect\n"
        "from introspect.capture import capture as f\n"
        "import introspect.capture\n"
        "import sys\n"
        "m = sys.modules['introspect.capture']\n"
        "print(json.dumps({'fn': inspect.isfunction(introspect.capture),"
        " 'same': f is introspect.capture is m.capture}))"
    )
    assert info == {"fn": True, "same": True}


def test_import_introspect_is_lazy():
    info = _run(
        "import json, sys, introspect\n"
        "print(json.dumps({'loaded': sorted(k for k in sys.modules if k.startswith('introspect'))"
        ", 'torch': 'torch' in sys.modules}))"
    )
    assert info == {"loaded": ["introspect"], "torch": False}


def test_not_fitted_error_is_public_and_sklearns():
    import sklearn.exceptions

    from introspect._utils import NotFittedError

    assert introspect.NotFittedError is NotFittedError
    assert issubclass(introspect.NotFittedError, sklearn.exceptions.NotFittedError)
    assert issubclass(introspect.NotFittedError, RuntimeError)


def test_every_public_name_resolves():
    for name in introspect.__all__:
        assert getattr(introspect, name) is not None, name
    assert sorted(dir(introspect)) == sorted(introspect.__all__)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute"):
        introspect.not_a_thing  # noqa: B018
