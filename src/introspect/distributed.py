"""Data-parallel capture and attacks over ``torch.distributed`` (launched with ``torchrun``).

The expensive stages (a capture's forward passes, PGD) are data-parallel: in a ``torchrun``
job every rank takes a disjoint, deterministic shard of the batches and the results are
merged into one store (capture) or gathered (attacks). Everything after them (SOM, library,
introspector, manifolds) runs on one process, from the store.

Sharding is by batch: batch ``b`` (rows ``b * batch_size`` .. ``(b + 1) * batch_size``)
belongs to rank ``b % world_size``. Every batch is computed exactly as a single process
computes it, so the union of the shards equals a single-process run bit for bit (on one
kind of device), and every chunk of the store has exactly one writer.

Public entry points:

- ``capture(..., distributed=True)``, ``pipeline.captured`` / ``pipeline.attacked`` and
  :class:`introspect.Study` (``Study(..., distributed=True)``) shard their work;
- :func:`sharding` turns sharding on for the pipeline stages called inside it (what
  ``introspect reproduce`` does under ``torchrun``);
- :func:`group` gives the rank, world size and the few collectives the stages need.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = ["Group", "group", "sharding", "sharding_enabled", "in_torchrun", "rank_device"]

_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_SHARDING = [False]
SHARDED: dict[str, int] = {}  # stage name -> how many calls of it this process sharded


def in_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (its rendezvous variables are set)."""
    return all(k in os.environ for k in _ENV)


@dataclass(frozen=True)
class Group:
    """The rank and world size of this process, with the collectives the stages use.

    ``Group(0, 1)`` is a single process: every collective is a no-op, so one code path
    serves both.

    Attributes
    ----------
    rank : int
    world : int
        Number of processes.
    """

    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(self, n_batches: int) -> range:
        """The batch numbers of this rank: ``rank, rank + world, ...`` below ``n_batches``."""
        return range(self.rank, int(n_batches), self.world)

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, obj=None, src: int = 0):
        """``obj`` of rank ``src``, on every rank (a picklable Python object)."""
        if not self.active:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def all_gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.active:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def sharding_enabled() -> bool:
    """Whether :func:`sharding` is in effect (the pipeline stages then shard by default)."""
    return _SHARDING[0]


@contextlib.contextmanager
def sharding(enabled: bool = True) -> Iterator[None]:
    """Inside this block, ``pipeline.captured`` / ``pipeline.attacked`` called with
    ``distributed=None`` (their default) shard over the process group."""
    old, _SHARDING[0] = _SHARDING[0], bool(enabled)
    try:
        yield
    finally:
        _SHARDING[0] = old


def _backend(device) -> str:
    return "nccl" if torch.device(str(device)).type == "cuda" else "gloo"


def _timeout():
    """How long a collective waits for the slowest rank: ``$INTROSPECT_DIST_TIMEOUT``
    seconds, 2 hours by default (ranks may wait for another rank's cached stage, e.g. a
    training run, before they meet again)."""
    from datetime import timedelta

    return timedelta(seconds=float(os.environ.get("INTROSPECT_DIST_TIMEOUT", 7200)))


def rank_device(device) -> torch.device:
    """``device`` for this rank: a bare ``"cuda"`` becomes ``cuda:<LOCAL_RANK>``."""
    dev = torch.device(str(device))
    if dev.type == "cuda" and dev.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return dev


def _end_group(timeout: float = 60.0) -> None:
    """End the group this module started, at exit, once every rank has got here.

    Destroying a gloo group while another rank still tears its own down aborted a rank
    now and then after all its work was done ("terminate called without an active
    exception", exit code -6). The ranks first meet at a barrier; one that died earlier
    (killed, crashed) never arrives, and after ``timeout`` seconds the group is ended
    anyway, so a survivor's exit is delayed, not hung.
    """
    from datetime import timedelta

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        dist.barrier(async_op=True).wait(timeout=timedelta(seconds=timeout))
    except Exception:  # a rank that is gone: end the group without it
        pass
    dist.destroy_process_group()


def group(distributed: bool | None = False, device="cpu", *, where: str = "capture") -> Group:
    """The :class:`Group` a stage runs in.

    Parameters
    ----------
    distributed : bool or None
        ``False``: this process alone. ``True``: the ``torch.distributed`` process group,
        initialised from ``torchrun``'s environment when it is not yet (``nccl`` for a
        CUDA device, ``gloo`` otherwise). ``None``: ``True`` inside :func:`sharding` in a
        ``torchrun`` job or an initialised group, else ``False``.
    device : str or torch.device
        Picks the backend when the group is initialised here.

    A stage that runs inside another cached stage's computation (``Workdir.memo``) is
    never sharded: the other ranks wait on that stage's lock and load its result, so
    they would never join the collective.
    """
    import torch.distributed as dist

    from .cache import computing

    if distributed is None:
        distributed = sharding_enabled() and (
            (dist.is_available() and dist.is_initialized()) or in_torchrun()
        )
    if not distributed or computing():
        return Group()
    if not dist.is_available():
        raise RuntimeError(f"{where}: distributed=True needs torch.distributed, missing here.")
    if not dist.is_initialized():
        if not in_torchrun():
            raise RuntimeError(
                f"{where}: distributed=True needs a torch.distributed process group, and this "
                "process has none and was not started by torchrun. Launch it with `torchrun "
                "--nproc_per_node N your_script.py` (or `torchrun --nproc_per_node N -m "
                "introspect ...`), call torch.distributed.init_process_group() first, or pass "
                "distributed=False."
            )
        dev = rank_device(device)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=_backend(dev), timeout=_timeout())
        # the group this module started is also ended here, at exit: a gloo group left to the
        # interpreter's teardown aborted a rank now and then ("terminate called without an
        # active exception") after all its work was done
        import atexit

        atexit.register(_end_group)
    grp = Group(dist.get_rank(), dist.get_world_size())
    if grp.active:
        SHARDED[where] = SHARDED.get(where, 0) + 1
    return grp
