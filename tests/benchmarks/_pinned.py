"""Thread settings the benchmarks compare: the process defaults and one pinned thread."""

from __future__ import annotations

from contextlib import contextmanager

import torch

THREADS = {"default": None, "1 thread": 1}


@contextmanager
def pinned(n: int | None):
    """torch and BLAS limited to ``n`` threads inside the block (None: the process defaults)."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(old)
