"""GridView: an anywidget showing a 2-D grid of units coloured by a value."""

from __future__ import annotations

import pathlib

import anywidget
import numpy as np
import traitlets

__all__ = ["GridView", "COLORMAPS"]

COLORMAPS = ("viridis", "magma", "greys", "blues", "coolwarm", "tab10")


def _grid(value, kind: str, name: str) -> list:
    """Array-like -> rectangular nested list; NaN -> None for numbers."""
    if value is None:
        return []
    if kind == "float":
        arr = np.asarray(value, dtype=float)
        if arr.size == 0:
            return []
        if arr.ndim != 2:
            raise traitlets.TraitError(
                f"GridView.{name} must be 2-D (rows, cols); got shape {arr.shape}."
            )
        return [[None if not np.isfinite(v) else float(v) for v in row] for row in arr]
    arr = np.asarray(value, dtype=object)
    if arr.size == 0:
        return []
    if arr.ndim != 2:
        raise traitlets.TraitError(
            f"GridView.{name} must be 2-D (rows, cols) of strings; got shape {arr.shape}."
        )
    return [["" if v is None else str(v) for v in row] for row in arr]


def _cells(value, name: str) -> list:
    """Array-like of (row, col) pairs -> list of [int, int]."""
    if value is None:
        return []
    arr = np.asarray(value, dtype=np.int64)
    if arr.size == 0:
        return []
    if arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise traitlets.TraitError(
            f"GridView.{name} must be a list of [row, col] pairs; got shape {arr.shape}."
        )
    return [[int(r), int(c)] for r, c in arr]


class _Grid(traitlets.TraitType):
    """A 2-D grid trait accepting numpy arrays or nested lists (NaN -> None)."""

    default_value: list = []
    info_text = "a 2-D array-like"

    def __init__(self, kind: str = "float", **kwargs):
        self.kind = kind
        super().__init__(default_value=[], **kwargs)

    def validate(self, obj, value):
        return _grid(value, self.kind, self.name)


class _Cells(traitlets.TraitType):
    default_value: list = []
    info_text = "a list of [row, col] pairs"

    def __init__(self, **kwargs):
        super().__init__(default_value=[], **kwargs)

    def validate(self, obj, value):
        return _cells(value, self.name)


class GridView(anywidget.AnyWidget):
    """A grid of units (SOM map, confusion matrix...) coloured by a value.

    Click a unit to select it (``selected`` is synced back from the browser; click it
    again to clear; with ``multiple=True`` shift/ctrl-click toggles units in and out).
    Hovering shows a tooltip with the unit, its value and its ``labels`` entry.

    Traits
    ------
    values : 2-D list of float or None, shape (rows, cols)
        Colour of each unit. Accepts numpy arrays; NaN becomes ``None`` (an empty unit,
        drawn grey).
    labels : 2-D list of str, shape (rows, cols), optional
        Tooltip text of each unit (e.g. "class 3: 41 images").
    text : 2-D list of str, shape (rows, cols), optional
        Short text drawn inside each unit (when ``cell_size`` >= 12).
    selected : list of [row, col]
        Selected units (set by clicks in the browser, or from Python).
    marks : list of [row, col]
        Units outlined in magenta (e.g. the BMUs of a trajectory).
    colormap : {"viridis", "magma", "greys", "blues", "coolwarm", "tab10"}
        ``tab10`` colours integer values as categories (e.g. majority class).
    vmin, vmax : float or None
        Colour range (``None``: the finite min / max of ``values``).
    cell_size : int
        Pixels per unit.
    multiple : bool
        Allow several selected units.
    title : str

    Examples
    --------
    >>> g = GridView.from_array(np.random.rand(10, 10), colormap="magma")
    >>> g.observe(lambda ch: print(ch["new"]), names="selected")  # doctest: +SKIP
    """

    _esm = pathlib.Path(__file__).parent.parent / "static" / "grid.js"

    values = _Grid("float").tag(sync=True)
    labels = _Grid("str").tag(sync=True)
    text = _Grid("str").tag(sync=True)
    selected = _Cells().tag(sync=True)
    marks = _Cells().tag(sync=True)
    colormap = traitlets.Enum(COLORMAPS, default_value="viridis").tag(sync=True)
    vmin = traitlets.Float(None, allow_none=True).tag(sync=True)
    vmax = traitlets.Float(None, allow_none=True).tag(sync=True)
    cell_size = traitlets.Int(16).tag(sync=True)
    multiple = traitlets.Bool(False).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)

    @classmethod
    def from_array(cls, values, labels=None, text=None, **kwargs) -> GridView:
        """A GridView of a (rows, cols) array with optional tooltip and cell text grids."""
        return cls(values=values, labels=labels, text=text, **kwargs)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of ``values``."""
        return (len(self.values), len(self.values[0]) if self.values else 0)

    def set_grid(self, values, labels=None, text=None, **traits) -> None:
        """Replace the grid (and optionally other traits) in one message.

        Selections and marks that fall outside the new shape are dropped.
        """
        values = _grid(values, "float", "values")
        rows = len(values)
        cols = len(values[0]) if rows else 0
        for name, grid in (("labels", labels), ("text", text)):
            g = _grid(grid, "str", name)
            if g and (len(g), len(g[0])) != (rows, cols):
                raise ValueError(
                    f"GridView.{name} has shape {(len(g), len(g[0]))}, values {(rows, cols)}."
                )
        with self.hold_sync():
            self.values = values
            self.labels = labels
            self.text = text
            self.selected = [rc for rc in self.selected if rc[0] < rows and rc[1] < cols]
            self.marks = [rc for rc in self.marks if rc[0] < rows and rc[1] < cols]
            for k, v in traits.items():
                setattr(self, k, v)

    @property
    def selected_values(self) -> list:
        """``values`` of the selected units, in selection order."""
        return [self.values[r][c] for r, c in self.selected]
