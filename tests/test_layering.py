"""The Jupyter layer uses only the public core, and its plot builders stay widget-free.

Every module of ``introspect_widgets`` is parsed with ``ast`` (nothing is imported):

- no import of ``introspect._*``, ``introspect.figures._*`` or of any private module or
  name ``introspect.<module>._<name>`` (``from introspect.data import _Subset`` too);
- nothing under ``introspect_widgets/plots/`` imports ipywidgets or anywidget, or the
  widget half of the package (``introspect_widgets.panels`` / ``.widgets``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "introspect_widgets"
MODULES = sorted(PACKAGE.rglob("*.py"))
WIDGET_LIBS = ("ipywidgets", "anywidget")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path):
    """(line, absolute module, imported names) of every import in the file.

    Relative imports are resolved against the module's package; ``importlib.import_module``
    calls with a constant name count as imports too.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    package = (
        _module_name(path) if path.name == "__init__.py" else _module_name(path).rsplit(".", 1)[0]
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield node.lineno, module, [a.name for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            yield node.lineno, node.args[0].value, []


def _private_core(module: str, names: list[str]) -> list[str]:
    """The private parts of ``introspect`` an import reaches (empty when it is public)."""
    parts = module.split(".")
    if parts[0] != "introspect":
        return []
    bad = [module] if any(p.startswith("_") for p in parts[1:]) else []
    return bad + [f"{module}.{n}" for n in names if n.startswith("_") and n != "__version__"]


def test_every_module_is_checked():
    names = {_module_name(p) for p in MODULES}
    assert {"introspect_widgets.panels.som", "introspect_widgets.plots.images"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_private_core_imports(path):
    found = [
        f"line {line}: {bad}"
        for line, module, names in _imports(path)
        for bad in _private_core(module, names)
    ]
    assert not found, (
        f"{_module_name(path)} imports private parts of introspect: {found}. Use the public "
        "API (introspect.Study and the public modules); move what is missing into a public "
        "function of the core."
    )


PLOTS = [p for p in MODULES if p.is_relative_to(PACKAGE / "plots")]


@pytest.mark.parametrize("path", PLOTS, ids=lambda p: _module_name(p))
def test_plot_builders_do_not_import_widgets(path):
    found = [
        f"line {line}: {module}"
        for line, module, _ in _imports(path)
        if module.split(".")[0] in WIDGET_LIBS
        or module.startswith(("introspect_widgets.panels", "introspect_widgets.widgets"))
    ]
    assert not found, (
        f"{_module_name(path)} imports widget code: {found}; plots/ holds pure bokeh builders "
        "(data -> layout), usable without a Jupyter front end."
    )


def test_the_checks_catch_what_they_should():
    assert _private_core("introspect.figures._library", ["explore"])
    assert _private_core("introspect._utils", ["resolve_device"])
    assert _private_core("introspect.data", ["_Subset"])
    assert _private_core("introspect.selfintro._maps", ["order_units"])
    assert not _private_core("introspect.selfintro", ["SelfIntrospector"])
    assert not _private_core("introspect", ["recipes", "Study"])
    assert not _private_core("introspect_widgets._base", ["x"])  # not the core
