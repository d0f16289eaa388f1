"""Progress of long work, and a clean way to cancel it, for any caller.

The toolkit's long loops (training, capture, SOM fits, library builds, attacks, the
self-introspection fits, detection) report ``(stage, done, total)`` here. Nothing is
shown or stopped unless a caller watches: a panel, a dashboard, a script with its own
progress line. The watcher is a callable ``sink(stage, done, total)``; to stop the work
it raises :class:`Cancelled`, which unwinds the loop that reported. Every cached stage
stores its result only after it finished, and the resumable ones (captures, training
checkpoints) keep what they keep as a resume state that is not served as complete, so a
cancelled run never leaves a partial result that looks complete::

    from introspect import progress

    def sink(stage, done, total):
        print(f"{stage}: {done}/{total}")

    with progress.watch(sink):
        study.library(["fc1"], thetas=[0.9])

The watcher belongs to the thread (and ``contextvars`` context) that set it: a panel's
worker thread watches its own work and nobody else's. This module has no Jupyter
imports; :class:`Tracker` is a ready-made sink with a cancel flag, stage timing and a
time-left estimate that the panels display.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterable, Iterator

__all__ = ["Cancelled", "Tracker", "bar", "report", "watch", "watching"]

Sink = Callable[[str, int, "int | None"], None]

_SINK: contextvars.ContextVar[Sink | None] = contextvars.ContextVar(
    "introspect_progress_sink", default=None
)


class Cancelled(KeyboardInterrupt):
    """Long work was stopped on request (a panel's Cancel, a watcher's decision).

    A ``KeyboardInterrupt``, so the code that already treats Ctrl-C as "stop now and
    store nothing" (training restores its best weights and propagates; cached stages
    store nothing) treats a Cancel the same way, and no ``except Exception`` fallback
    swallows it.
    """


@contextlib.contextmanager
def watch(sink: Sink | None):
    """Send the progress of the work run inside the block to ``sink`` (this thread only)."""
    token = _SINK.set(sink)
    try:
        yield sink
    finally:
        _SINK.reset(token)


def watching() -> bool:
    """Whether someone watches the work of this thread."""
    return _SINK.get() is not None


def report(stage: str, done: int, total: int | None = None) -> None:
    """Tell the watcher (if any) that ``stage`` is at ``done`` of ``total``.

    Raises :class:`Cancelled` when the watcher asks to stop; call it where stopping is
    clean (between batches, epochs, steps).
    """
    sink = _SINK.get()
    if sink is not None:
        sink(str(stage), int(done), None if total is None else int(total))


class bar:
    """A tqdm bar that also reports to the watcher: a drop-in for ``tqdm(...)``.

    ``bar(iterable, desc=..., total=..., initial=..., disable=...)`` iterates like
    tqdm and reports after each item; ``update(k)`` reports the new count. ``disable``
    hides the tqdm bar only: the watcher still hears. The stage reported is ``desc``.
    """

    def __init__(self, iterable: Iterable | None = None, *, desc: str = "", total=None,
                 initial: int = 0, disable: bool = False, **kwargs):  # fmt: skip
        from tqdm.auto import tqdm

        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self._tqdm = tqdm(
            iterable, desc=desc, total=total, initial=initial, disable=disable, **kwargs
        )
        self.stage = desc
        self.total = total
        self.n = int(initial)
        report(self.stage, self.n, self.total)

    def __iter__(self) -> Iterator:
        for item in self._tqdm:
            yield item
            self.n += 1
            report(self.stage, self.n, self.total)

    def update(self, k: int = 1) -> None:
        self._tqdm.update(k)
        self.n += int(k)
        report(self.stage, self.n, self.total)

    def set_postfix(self, *args, **kwargs) -> None:
        self._tqdm.set_postfix(*args, **kwargs)

    def set_postfix_str(self, *args, **kwargs) -> None:
        self._tqdm.set_postfix_str(*args, **kwargs)

    def set_description(self, desc: str) -> None:
        self.stage = desc
        self._tqdm.set_description(desc)

    def close(self) -> None:
        self._tqdm.close()

    def __enter__(self) -> bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Tracker:
    """A sink with a cancel flag, per-stage timing and a time-left estimate.

    ``tracker(stage, done, total)`` records the state and raises :class:`Cancelled`
    once :meth:`cancel` was called (from any thread). ``on_change(tracker)`` is called
    after each report, at most ``max_rate`` times a second (and always at a stage's
    first and last step), so a display attached to it is not flooded.
    """

    def __init__(self, on_change: Callable[[Tracker], None] | None = None,
                 max_rate: float = 5.0):  # fmt: skip
        self.on_change = on_change
        self.min_interval = 1.0 / max_rate if max_rate else 0.0
        self._cancel = threading.Event()
        self.stage = ""
        self.done = 0
        self.total: int | None = None
        self.stages: list[str] = []
        self._t_stage = time.perf_counter()
        self._d_stage = 0
        self._last = 0.0
        self.t0 = time.perf_counter()

    # control -----------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the watched work to stop at its next report."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # sink ----------------------------------------------------------------------
    def __call__(self, stage: str, done: int, total: int | None = None) -> None:
        now = time.perf_counter()
        new_stage = stage != self.stage or done < self.done
        if new_stage:
            self.stages.append(stage)
            self._t_stage, self._d_stage = now, done
        self.stage, self.done, self.total = stage, done, total
        if self._cancel.is_set():
            raise Cancelled(
                f"cancelled at {stage} {done}/{'?' if total is None else total}; "
                "nothing half-done was stored"
            )
        last = total is not None and done >= total
        if self.on_change is not None and (
            new_stage or last or now - self._last >= self.min_interval
        ):
            self._last = now
            self.on_change(self)

    # readouts --------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        """Seconds since the tracker was made."""
        return time.perf_counter() - self.t0

    @property
    def time_left(self) -> float | None:
        """Seconds left in the current stage at its rate so far (None before a rate)."""
        if self.total is None:
            return None
        dt = time.perf_counter() - self._t_stage
        steps = self.done - self._d_stage
        if steps <= 0 or dt <= 0:
            return None
        return max(self.total - self.done, 0) * dt / steps

    def describe(self) -> str:
        """``"capture 120/360, 4 s left"``: the stage, k/n and time left."""
        if not self.stage:
            return "starting"
        k = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        left = self.time_left
        return f"{self.stage} {k}" + ("" if left is None else f", {_duration(left)} left")


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"
