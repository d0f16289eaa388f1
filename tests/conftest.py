"""Shared fixtures. Real data lives in ../shared/data beside the repository when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(
    os.environ.get(
        "INTROSPECT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
    )
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real MNIST, CIFAR-10 JPEGs, checkpoints); skips when absent."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"real data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def session_workdir(tmp_path_factory):
    """One workdir for the whole session: a recipe's model trains once, whoever asks first.

    Tests that count what a workdir holds, or that damage it, keep their own.
    """
    return tmp_path_factory.mktemp("session-work")


@pytest.fixture(scope="session")
def digits_small_cnn(tmp_path_factory):
    """A small CNN trained on digits (16x16) through the cached pipeline, plus its workdir."""
    from introspect import pipeline

    work = tmp_path_factory.mktemp("work")
    model = pipeline.trained_model(
        "small_cnn",
        dataset="digits",
        image_size=16,
        channels=1,
        train=dict(epochs=6, lr=3e-3, batch_size=64),
        workdir=work,
        progress=False,
    )
    return model, work


@pytest.fixture(autouse=True)
def _torch_threads():
    # Small tensors: thread start-up costs more than it saves, and CI has 2 cores.
    n = torch.get_num_threads()
    torch.set_num_threads(min(n, 2))
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def digits_study(session_workdir):
    """``Study.from_recipe("small_cnn@digits")`` on 20 images per class of each split.

    The model trains once per session (about half a minute on 2 CPU cores), in the
    session workdir that every panel test of the session shares.
    """
    from introspect import Study

    return Study.from_recipe(
        "small_cnn@digits", workdir=session_workdir, device="cpu", n_per_class=20, progress=False
    )


@pytest.fixture
def torch_threads():
    """``torch_threads(n)`` sets torch's intra-op threads for the test; restored after."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)
