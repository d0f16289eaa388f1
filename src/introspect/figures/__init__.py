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
import pkgutil

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


BROKEN: dict[str, str] = {}
"""Figure modules that failed to import, with the error (a test requires this to be empty)."""


def _discover() -> dict[str, Figure]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "notebooks":
            continue
        try:
            module = importlib.import_module(f"{__name__}.{info.name}")
            if hasattr(module, "ID"):
                fig = Figure(module)
                found[fig.id] = fig
        except Exception as err:  # one broken module must not hide the others
            BROKEN[info.name] = f"{type(err).__name__}: {err}"
    order = {p: i for i, p in enumerate(PAPERS)}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[1].paper, 99), kv[0])))


FIGURES: dict[str, Figure] = _discover()


def get_figure(figure_id: str) -> Figure:
    """The registered figure ``figure_id`` (e.g. ``"telescope.fig03"``)."""
    if figure_id not in FIGURES:
        raise KeyError(f"unknown figure {figure_id!r}; registered: {', '.join(FIGURES)}.")
    return FIGURES[figure_id]


def list_figures(paper: str | None = None) -> list[str]:
    return [k for k, f in FIGURES.items() if paper is None or f.paper == paper]
