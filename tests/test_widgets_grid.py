"""GridView anywidget: trait conversion and validation, selection sync, the ES module."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import traitlets

import introspect_widgets
from introspect_widgets.widgets import COLORMAPS, GridView

GRID_JS = Path(introspect_widgets.__file__).parent / "static" / "grid.js"


def test_numpy_values_become_json_lists_with_nan_as_empty():
    g = GridView.from_array(np.array([[0.5, np.nan, 2], [np.inf, -1, 3]], dtype=np.float32))
    assert g.values == [[0.5, None, 2.0], [None, -1.0, 3.0]]
    assert g.shape == (2, 3)
    json.dumps(g.get_state()["values"])  # strict JSON: no NaN literals reach the browser
    assert "NaN" not in json.dumps(g.get_state()["values"], allow_nan=True)


def test_labels_and_text_are_string_grids():
    g = GridView(values=np.eye(2), labels=[["a", None], [3, "d"]], text=np.array([[1, 2], [3, 4]]))
    assert g.labels == [["a", ""], ["3", "d"]]
    assert g.text == [["1", "2"], ["3", "4"]]


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((2, 2, 2))])
def test_values_must_be_2d(bad):
    with pytest.raises(traitlets.TraitError, match="must be 2-D"):
        GridView(values=bad)


def test_colormap_is_checked():
    assert set(COLORMAPS) >= {"viridis", "tab10", "coolwarm"}
    with pytest.raises(traitlets.TraitError):
        GridView(colormap="jet")


def test_selection_from_the_browser_reaches_python_observers():
    g = GridView(values=np.arange(12.0).reshape(3, 4))
    seen = []
    g.observe(lambda ch: seen.append(ch["new"]), names="selected")
    # what the comm delivers when the user clicks unit (2, 1) in the browser
    g.set_state({"selected": [[2, 1]]})
    assert g.selected == [[2, 1]] and seen == [[[2, 1]]]
    assert g.selected_values == [9.0]
    g.selected = (0, 3)  # a single pair is accepted from Python
    assert g.selected == [[0, 3]]
    with pytest.raises(traitlets.TraitError, match="row, col"):
        g.selected = [[1, 2, 3]]


def test_set_grid_replaces_values_and_drops_out_of_range_cells():
    g = GridView(values=np.zeros((5, 5)), selected=[[4, 4], [1, 1]], marks=[[3, 0]])
    g.set_grid(np.ones((2, 3)), labels=[["a"] * 3] * 2, colormap="magma", vmin=0.0)
    assert g.shape == (2, 3) and g.selected == [[1, 1]] and g.marks == []
    assert g.colormap == "magma" and g.vmin == 0.0
    with pytest.raises(ValueError, match="labels has shape"):
        g.set_grid(np.ones((2, 3)), labels=[["a"] * 2] * 2)


def test_es_module_is_shipped_without_build_step():
    src = GRID_JS.read_text()
    assert "export default" in src and "render" in src
    state = GridView().get_state()
    assert "export default" in state["_esm"]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_es_module_colours_and_syntax_in_node(tmp_path):
    mod = tmp_path / "grid.mjs"
    mod.write_text(GRID_JS.read_text())
    script = (
        f"import {{ colorOf }} from '{mod.as_uri()}';\n"
        "console.log(JSON.stringify([colorOf('viridis', 0, 0), colorOf('viridis', 1, 0),"
        " colorOf('coolwarm', 0.5, 0), colorOf('tab10', 0, 12), colorOf('viridis', NaN, 0)]));"
    )
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [
        "rgb(68,1,84)",
        "rgb(253,231,37)",
        "rgb(221,221,221)",
        "#2ca02c",
        "rgb(33,145,140)",
    ]
