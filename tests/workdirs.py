"""Helpers for tests that look at what a workdir holds."""

from __future__ import annotations


def results_in(workdir) -> list[str]:
    """The stages that hold a stored result in ``workdir`` (what a later run would serve)."""
    return sorted(str(p.parent.relative_to(workdir)) for p in workdir.rglob("result*"))
