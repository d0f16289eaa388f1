"""What a figure module declares, and the :class:`Figure` view the registry gives of it."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import ModuleType

__all__ = [
    "Param",
    "Claim",
    "NotTestable",
    "VERDICTS",
    "Figure",
    "COMMON_PARAMS",
    "PROFILE_NAMES",
    "format_numbers",
]

PROFILE_NAMES = ("quick", "paper")


@dataclass(frozen=True)
class Param:
    """A figure parameter: its default (the ``quick`` profile's value) and what it means."""

    default: object
    help: str
    type: str | None = field(default=None)

    @property
    def type_name(self) -> str:
        if self.type:
            return self.type
        d = self.default
        if d is None:
            return "str"  # papermill parses only simple annotations
        return type(d).__name__


VERDICTS = ("reproduced", "not reproduced", "not testable")


class NotTestable(Exception):
    """Raised by a claim's check when this run's data cannot decide the claim.

    The message is the reason a reader sees ("one dataset only: the claim compares three").
    """


@dataclass(frozen=True)
class Claim:
    """A statement of the paper that a figure checks against the data it computed.

    A figure module lists its claims in ``CLAIMS``; :meth:`Figure.check_claims` evaluates
    them, :meth:`Figure.summarize` prints each verdict under the figure's summary, and
    ``introspect reproduce`` collects them in ``claims.json`` and the report's index.

    Attributes
    ----------
    text : str
        The claim, one sentence quoted or paraphrased from the paper.
    where : str
        Where it is made (``"Lee 2019, Fig. 5"``; ``"issue 11"`` for a project's own).
    check : callable
        ``check(data) -> (holds, numbers)`` or ``(holds, numbers, reason)``: ``data`` is
        what ``compute`` returned; ``holds`` is True, False, or None when these data cannot
        decide (``reason`` then says why; raising :class:`NotTestable` does the same);
        ``numbers`` is a dict of the values behind the verdict.
    """

    text: str
    where: str
    check: object

    def evaluate(self, data: dict) -> dict:
        """``{"claim", "where", "verdict", "holds", "reason", "numbers"}``.

        ``verdict`` is one of :data:`VERDICTS`. An error in the check is a verdict of "not
        testable" whose reason is the error: a broken check must not hide the figure.
        """
        reason = ""
        try:
            out = self.check(data)
            holds, numbers = out[0], out[1]
            if len(out) > 2:
                reason = str(out[2])
        except NotTestable as why:
            holds, numbers, reason = None, {}, str(why)
        except Exception as err:  # a broken check must not hide the figure
            holds, numbers = None, {}
            reason = f"the check failed: {type(err).__name__}: {err}"
        holds = None if holds is None else bool(holds)
        verdict = {True: "reproduced", False: "not reproduced", None: "not testable"}[holds]
        if holds is None and not reason:
            reason = "these data cannot decide it"
        return dict(
            claim=self.text,
            where=self.where,
            verdict=verdict,
            holds=holds,
            reason=reason,
            numbers=_plain(numbers),
        )


def _plain(obj):
    """Numbers as JSON-friendly Python values (numpy scalars and arrays converted)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _plain(obj.tolist())
    if isinstance(obj, float) and obj != obj:
        return None  # NaN is not JSON
    return obj


def format_numbers(numbers: dict) -> str:
    """``"k1 v1, k2 v2"``, floats to 3 significant digits (lists too)."""

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}"
        if isinstance(v, list):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {fmt(x)}" for k, x in v.items()) + "}"
        return str(v)

    return ", ".join(f"{k} {fmt(v)}" for k, v in numbers.items())


def _verdict(r: dict) -> str:
    word = r["verdict"] + (f": {r['reason']}" if r.get("reason") else "")
    nums = format_numbers(r["numbers"])
    return f"  [{word}] {r['claim']} ({r['where']}){' -> ' + nums if nums else ''}"


COMMON_PARAMS: dict[str, Param] = {
    "workdir": Param("introspect-work", "folder of cached stages (trained models, captures, SOMs)"),
    "device": Param("cpu", "torch device: cpu, cuda, cuda:1 or auto"),
    "data_root": Param(None, "where the datasets and weights live ($INTROSPECT_DATA by default)"),
    "seed": Param(0, "seed of every random choice"),
    "save_dir": Param("", "if set, save the plot (HTML) and its data (JSON) there"),
}
_NOT_COMPUTE = {"save_dir"}


class Figure:
    """A registered figure: its module's declarations plus profile and validation logic."""

    def __init__(self, module: ModuleType):
        for attr in ("ID", "PAPER", "TITLE", "PARAMS", "PROFILES", "compute", "summarize"):
            if not hasattr(module, attr):
                raise TypeError(f"figure module {module.__name__} does not define {attr}.")
        self.module = module
        self.id: str = module.ID
        self.paper: str = module.PAPER
        self.title: str = module.TITLE
        self.description: str = getattr(module, "DESCRIPTION", module.TITLE)
        self.params: dict[str, Param] = {**module.PARAMS, **COMMON_PARAMS}
        self.claims: list[Claim] = list(getattr(module, "CLAIMS", []))
        self.profiles: dict[str, dict] = module.PROFILES
        for prof, overrides in self.profiles.items():
            unknown = set(overrides) - set(self.params)
            if unknown:
                raise TypeError(
                    f"{self.id}: profile {prof!r} sets unknown parameters {sorted(unknown)}."
                )

    @property
    def name(self) -> str:
        """The part after the paper: ``fig03`` for ``telescope.fig03``."""
        return self.id.split(".", 1)[1]

    def defaults(self) -> dict:
        return {k: copy.deepcopy(p.default) for k, p in self.params.items()}

    def profile(self, name: str) -> dict:
        """All parameters of a profile (its overrides on top of the defaults)."""
        if name not in self.profiles:
            raise ValueError(f"{self.id} has profiles {sorted(self.profiles)}; got {name!r}.")
        return {**self.defaults(), **copy.deepcopy(self.profiles[name])}

    def compute(self, **params) -> dict:
        """Run the figure's computation; unknown parameter names are refused with the list."""
        unknown = set(params) - set(self.params)
        if unknown:
            raise TypeError(
                f"{self.id} has no parameter(s) {sorted(unknown)}; it takes {sorted(self.params)}."
            )
        full = {**self.defaults(), **params}
        for k in _NOT_COMPUTE:
            full.pop(k, None)
        return self.module.compute(**full)

    def check_claims(self, data: dict) -> list[dict]:
        """Every claim of the module's ``CLAIMS`` evaluated on ``data`` (see :class:`Claim`)."""
        return [c.evaluate(data) for c in self.claims]

    def summarize(self, data: dict) -> str:
        """The module's summary, then one verdict line per claim."""
        text = self.module.summarize(data)
        if not self.claims:
            return text
        lines = [_verdict(r) for r in self.check_claims(data)]
        return "\n".join([text, "Claims (the paper's, checked on this run):", *lines])

    def write_claims(self, data: dict, path) -> str:
        """Write the verdicts of :meth:`check_claims` as JSON to ``path``; returns the path."""
        import json
        from pathlib import Path

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"figure": self.id, "paper": self.paper, "claims": self.check_claims(data)}
        path.write_text(json.dumps(doc, indent=1, default=str))
        return str(path)

    def __repr__(self) -> str:
        return f"Figure({self.id!r}: {self.title})"
