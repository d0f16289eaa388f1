"""What a figure module declares, and the :class:`Figure` view the registry gives of it."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import ModuleType

__all__ = ["Param", "Claim", "Figure", "COMMON_PARAMS", "PROFILE_NAMES"]

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


@dataclass(frozen=True)
class Claim:
    """A statement a figure checks against the data it computed.

    A figure module lists its claims in ``CLAIMS``; :meth:`Figure.check_claims` evaluates
    them and :meth:`Figure.summarize` prints each verdict under the figure's summary.

    Attributes
    ----------
    text : str
        The claim, as one sentence.
    where : str
        Where it is made (``"Lee 2019, Fig. 5"``; ``"issue 11"`` for a project's own).
    check : callable
        ``check(data) -> (holds, numbers)``: ``data`` is what ``compute`` returned;
        ``holds`` is True, False, or None when these data cannot decide (e.g. the run
        left the needed setting out); ``numbers`` is a dict of the values behind it.
    """

    text: str
    where: str
    check: object

    def evaluate(self, data: dict) -> dict:
        """``{"claim", "where", "holds", "numbers"}``; an error in the check is a verdict
        of None with the error under ``numbers["error"]``."""
        try:
            holds, numbers = self.check(data)
        except Exception as err:  # a broken check must not hide the figure
            holds, numbers = None, {"error": f"{type(err).__name__}: {err}"}
        holds = None if holds is None else bool(holds)
        return dict(claim=self.text, where=self.where, holds=holds, numbers=dict(numbers))


def _verdict(r: dict) -> str:
    word = {True: "holds", False: "does NOT hold", None: "undecided"}[r["holds"]]
    nums = ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in r["numbers"].items()
    )
    return f"  [{word}] {r['claim']} ({r['where']}){': ' + nums if nums else ''}"


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
        return "\n".join([text, "Claims:", *lines])

    def __repr__(self) -> str:
        return f"Figure({self.id!r}: {self.title})"
