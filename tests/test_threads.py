"""The intra-op thread policy of the toolkit's own loops (introspect._threads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from introspect import _threads
from introspect.som import ToroidalSOM


@pytest.fixture
def two_threads(monkeypatch):
    """torch at 2 threads on a machine that looks quiet (2 free cores)."""
    monkeypatch.delenv("INTROSPECT_THREADS", raising=False)
    monkeypatch.setattr(_threads, "others_busy", lambda: 0.0)
    monkeypatch.setattr(_threads, "_cores", lambda: 2)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


SMALL, LARGE = 1e6, _threads.SMALL_OP_FLOPS * 10


def test_a_quiet_machine_keeps_torchs_threads(two_threads):
    assert _threads.threads_for(SMALL) is None and _threads.threads_for(LARGE) is None


@pytest.mark.parametrize(
    "busy, small, large",
    [(0.05, None, None), (0.3, 1, None), (1.0, 1, 1), (1.7, 1, 1)],
)
def test_threads_give_way_to_other_processes(two_threads, monkeypatch, busy, small, large):
    """Small operations give a thread up at a third of a core of other work, large ones
    at more than half a core."""
    monkeypatch.setattr(_threads, "others_busy", lambda: busy)
    assert _threads.threads_for(SMALL) == small
    assert _threads.threads_for(LARGE) == large
    assert _threads.threads_for(SMALL, device="cuda") is None  # not the CPU's work


def test_the_cpu_use_of_another_process_is_measured():
    import subprocess
    import sys
    import time

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        _threads._last_sample = None
        seen = []
        for _ in range(4):  # windows of 0.3 s while the busy loop runs
            time.sleep(0.3)
            seen.append(_threads.others_busy())
        seen = max(seen)
    finally:
        busy.kill()
        busy.wait()
    assert seen >= 0.6  # a whole core's worth (more when the machine is busier)


def test_environment_overrides_the_policy(two_threads, monkeypatch):
    monkeypatch.setenv("INTROSPECT_THREADS", "3")
    assert _threads.threads_for(1e12) == 3
    monkeypatch.setenv("INTROSPECT_THREADS", "torch")
    assert _threads.threads_for(1.0) is None
    monkeypatch.setenv("INTROSPECT_THREADS", "many")
    with pytest.raises(ValueError, match="INTROSPECT_THREADS='many'.*'auto', 'torch'"):
        _threads.threads_for(1.0)


def test_threads_are_restored_even_when_the_block_raises(two_threads):
    with pytest.raises(RuntimeError), _threads.intra_op_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("stop")
    assert torch.get_num_threads() == 2


def test_flops_per_op_of_a_known_model():
    # Linear 10 -> 20 then 20 -> 5: 2*10*20 + 2*20*5 = 600 FLOPs per input over 2 layers
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5)).train()
    assert _threads.model_flops_per_op(model, torch.zeros(7, 10)) == pytest.approx(300.0)
    assert model.training  # the count does not leave the model in eval mode


def test_a_small_model_loop_on_a_busy_machine_runs_on_one_thread_and_restores(
    two_threads, monkeypatch
):
    monkeypatch.setattr(_threads, "others_busy", lambda: 0.5)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    with _threads.for_model(model, torch.zeros(1, 10), batch_size=64):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    big = nn.Linear(4096, 4096)  # 2 * 4096^2 * 64 FLOPs per batch: above the threshold
    with _threads.for_model(big, torch.zeros(1, 4096), batch_size=64):
        assert torch.get_num_threads() == 2


@pytest.mark.parametrize("busy, inside", [(0.0, 2), (1.0, 1)])
def test_som_fit_steps_give_a_thread_up_only_beside_other_work(
    two_threads, monkeypatch, busy, inside
):
    monkeypatch.setattr(_threads, "others_busy", lambda: busy)
    seen = []
    X = np.random.default_rng(0).random((200, 64)).astype(np.float32)
    ToroidalSOM(5, 5, epochs=1, batch_size=10).fit(
        X, callback=lambda *a: seen.append(torch.get_num_threads()), callback_every=5
    )
    assert seen and set(seen) == {inside}
    assert torch.get_num_threads() == 2


def test_capture_and_training_use_the_policy(two_threads, monkeypatch):
    monkeypatch.setattr(_threads, "others_busy", lambda: 1.0)
    from introspect.capture import activations
    from introspect.training import fit_classifier

    seen = []
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.rand(40, 1, 4, 4)
    _threads.model_flops_per_op(model, x[:1])  # counted (and cached) before the probe exists
    model[1].register_forward_hook(lambda *a: seen.append(torch.get_num_threads()))
    y = torch.randint(0, 3, (40,))
    fit_classifier(model, (x, y), epochs=1, batch_size=8)
    activations(model.eval(), x, ["1"], batch_size=8)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("busy, inside", [(0.0, 2), (1.0, 1)])
def test_library_build_gives_a_thread_up_only_beside_other_work(
    two_threads, monkeypatch, busy, inside
):
    """Under load its 2-thread build ran 4.5x slower than 1 thread (the library benchmark)."""
    from introspect import library

    monkeypatch.setattr(_threads, "others_busy", lambda: busy)
    seen = []
    novel = library._novel_in_block

    def probe(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return novel(*args, **kwargs)

    monkeypatch.setattr(library, "_novel_in_block", probe)
    H = np.random.default_rng(0).random((600, 300)).astype(np.float32)
    net = library.LibraryNetwork(0.9, 3, block_size=128).fit(H, np.arange(600) % 3, 3)
    assert net.size_ > 1 and seen and set(seen) == {inside}
    assert torch.get_num_threads() == 2
