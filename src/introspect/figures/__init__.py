"""The figures of the four papers: one module per figure, found by the registry.

Each module declares ``ID``, ``PAPER``, ``TITLE``, ``DESCRIPTION``, ``PARAMS`` (defaults
= the ``quick`` profile), ``PROFILES`` and defines ``compute(**params) -> dict`` and
``summarize(data) -> str`` and ``CLAIMS``, a list of :class:`Claim` (a sentence of the
paper, where it is made, and a predicate over the computed data) whose verdicts
("reproduced", "not reproduced", "not testable" with the reason) :meth:`Figure.summarize`
prints and ``introspect reproduce`` collects.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Mapping

from ._base import (
    COMMON_PARAMS,
    PROFILE_NAMES,
    VERDICTS,
    Claim,
    Figure,
    NotTestable,
    Param,
    format_numbers,
)

__all__ = [
    "FIGURES",
    "Figure",
    "Param",
    "Claim",
    "NotTestable",
    "VERDICTS",
    "format_numbers",
    "COMMON_PARAMS",
    "PROFILE_NAMES",
    "get_figure",
    "list_figures",
]

PAPERS = ("telescope", "library", "selfintro", "manifolds", "compare")
"""Registry order; ``compare`` holds the cross-lens figures (issue 11) and comes last, so
in a report it reuses the models, captures and attacks of the papers' figures."""


class _Registry(Mapping):
    """A mapping filled by importing every figure module, at its first use.

    A figure notebook asks for one figure (:func:`get_figure`), which imports that
    module only. Measured in a fresh interpreter (3 runs each, 2026-12-04): one figure
    3.4-4.3 s, all 29 3.8-4.3 s; most of either is importing torch and scikit-learn, so the
    saving per notebook is a few tenths of a second.
    """

    def __init__(self, fill):
        self._data: dict | None = None
        self._fill = fill

    def _ensure(self) -> dict:
        if self._data is None:
            self._data = {}
            self._fill()
        return self._data

    def __getitem__(self, key):
        return self._ensure()[key]

    def __iter__(self):
        return iter(self._ensure())

    def __len__(self) -> int:
        return len(self._ensure())

    def __repr__(self) -> str:
        return repr(self._ensure())


def _discover() -> None:
    found, broken = {}, {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "notebooks":
            continue
        try:
            module = importlib.import_module(f"{__name__}.{info.name}")
            if hasattr(module, "ID"):
                fig = _figure_of(module)
                found[fig.id] = fig
        except Exception as err:  # one broken module must not hide the others
            broken[info.name] = f"{type(err).__name__}: {err}"
    order = {p: i for i, p in enumerate(PAPERS)}
    FIGURES._data.update(sorted(found.items(), key=lambda kv: (order.get(kv[1].paper, 99), kv[0])))
    BROKEN._data = broken


BROKEN: Mapping[str, str] = _Registry(lambda: FIGURES._ensure())
"""Figure modules that failed to import, with the error (a test requires this to be empty)."""

FIGURES: Mapping[str, Figure] = _Registry(_discover)
"""Every registered figure by id, in registry order (imports every module at first use)."""

_ONE: dict[str, Figure] = {}  # one Figure per imported module, whoever imported it


def _figure_of(module) -> Figure:
    if module.ID not in _ONE:
        _ONE[module.ID] = Figure(module)
    return _ONE[module.ID]


def get_figure(figure_id: str) -> Figure:
    """The registered figure ``figure_id`` (e.g. ``"telescope.fig03"``).

    Imports that figure's module only (``telescope.fig03`` lives in ``telescope_fig03``);
    an unknown id, or a module that fails to import, goes through the whole registry,
    whose error names every registered figure.
    """
    if isinstance(figure_id, str) and figure_id not in _ONE:
        name = figure_id.replace(".", "_")
        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            try:
                module = importlib.import_module(f"{__name__}.{name}")
            except Exception:  # the registry records it in BROKEN and says what exists
                module = None
            if getattr(module, "ID", None) == figure_id:
                _figure_of(module)
    if figure_id in _ONE:
        return _ONE[figure_id]
    if figure_id not in FIGURES:
        raise KeyError(f"unknown figure {figure_id!r}; registered: {', '.join(FIGURES)}.")
    return FIGURES[figure_id]


def list_figures(paper: str | None = None) -> list[str]:
    return [k for k, f in FIGURES.items() if paper is None or f.paper == paper]
