"""Capture and attacks sharded over torch.distributed: 2 CPU processes (gloo) under torchrun.

Every sharded result is compared exactly with the same computation in one process: the
store's arrays and the bytes of every chunk file, the attacked images. Each rank and the
single-process reference run with one thread, as the ranks do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from introspect.capture import capture
from introspect.data import ArrayDataset, load_dataset
from introspect.models import create_model
from introspect.store import ActivationStore

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["CL1", "CL2", "penultimate"]

# what every rank runs: a capture of digits (flatten and codes) and a sharded PGD, or, with
# FAIL_AT=<dataset index>, a capture whose rank 1 dies (os._exit) on reaching that input
WORKER = """
import json, os, sys
import torch
torch.set_num_threads(1)
from introspect import Study, pipeline
from introspect.capture import capture
from introspect.data import ArrayDataset, load_dataset
from introspect.models import create_model

out = sys.argv[1]
rank = int(os.environ["RANK"])
torch.manual_seed(int(os.environ.get("MODEL_SEED", "0")))
model = create_model("small_cnn", in_channels=1).eval()
x, y = load_dataset("digits", "test", image_size=16, channels=1).tensors()
fail_at = int(os.environ.get("FAIL_AT", "-1"))
forwards = []
model.register_forward_pre_hook(lambda *a: forwards.append(1))

class Dying(ArrayDataset):
    def __getitem__(self, i):
        if rank == 1 and i == fail_at:
            os._exit(3)  # as a kill -9 would: no cleanup, no exception handler
        return super().__getitem__(i)

data = Dying(x, y, name="digits", channels=1)  # channels=1: read item by item
for reducer in os.environ.get("REDUCERS", "flatten,codes").split(","):
    capture(model, data, LAYERS, reducer=reducer, batch_size=32,
            store=os.path.join(out, reducer), progress=False, distributed=True)
with open(os.path.join(out, f"forwards-{rank}.json"), "w") as f:
    json.dump(len(forwards), f)
if os.environ.get("ATTACK"):
    adv = pipeline.attacked(model, x[:40], y[:40], "pgd", 0.1, nb_iter=3, batch_size=8,
                            seed=5, workdir=os.path.join(out, "work"), distributed=True)
    study = Study(model, train=data, test=data, layers=["CL2"], workdir=os.path.join(out, "work"),
                  device="cpu", batch_size=16, progress=False, distributed=True)
    res = study.attack("fgsm", eps=0.05, n=50, seed=1)
    st = study.capture("codes", "test")
    if rank == 0:
        torch.save({"pgd": adv["x_adv"], "pred_adv": torch.as_tensor(adv["pred_adv"]),
                    "fgsm": res.x_adv, "index": torch.as_tensor(res.index),
                    "codes": torch.as_tensor(st.layer("CL2"))}, os.path.join(out, "attack.pt"))
""".replace("LAYERS", repr(LAYERS))


def _torchrun(args: list[str], env: dict | None = None, timeout: int = 240):
    """``python -m torch.distributed.run --standalone --nproc_per_node 2 <args>``."""
    # one thread per rank, fixed (the thread policy's FLOP probe would add a forward pass)
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "INTROSPECT_THREADS": "1", **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), full_env.get("PYTHONPATH", "")]
    )
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return subprocess.run(
        cmd + args, env=full_env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


@pytest.fixture
def one_thread(torch_threads):
    """The reference runs with one thread, as each rank does."""
    torch_threads(1)


def _model():
    torch.manual_seed(0)
    return create_model("small_cnn", in_channels=1).eval()


def _data():
    x, y = load_dataset("digits", "test", image_size=16, channels=1).tensors()
    return ArrayDataset(x, y, name="digits", channels=1), x, y


def _files(path: Path) -> dict[str, bytes]:
    """Every data file of a store (arrays' metadata and chunks), by relative path."""
    return {
        p.relative_to(path).as_posix(): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        and p.name != "manifest.json"
    }  # fmt: skip


def _assert_same_store(sharded: Path, ref: ActivationStore):
    st = ActivationStore.open(sharded)  # verifies every checksum
    assert st.complete and st.n == ref.n == 360 and st.layers == ref.layers
    for name in LAYERS:
        assert np.array_equal(st.layer(name), ref.layer(name)), name
    assert np.array_equal(st.labels, ref.labels) and np.array_equal(st.preds, ref.preds)
    assert np.array_equal(st.logits, ref.logits)
    files = _files(sharded)
    assert len(files) > 12 * 6  # 12 chunks of each of the 6 arrays, plus metadata
    assert files == _files(ref.path)  # byte for byte
    assert st.checksums == ref.checksums
    assert not (sharded / ".progress").exists()
    import zarr  # any zarr v3 reader sees the same arrays

    group = zarr.open_group(sharded, mode="r")
    assert np.array_equal(group["layer__CL2"][:], ref.layer("CL2"))
    assert np.array_equal(group["labels"][:], ref.labels)


def _check(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_sharded_capture_and_attacks_equal_one_process(tmp_path, one_thread):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    _check(_torchrun([str(script), str(tmp_path / "dist")], env={"ATTACK": "1"}))
    data, x, y = _data()
    forwards = [json.loads((tmp_path / "dist" / f"forwards-{r}.json").read_text()) for r in (0, 1)]
    # 6 of the 12 batches of 32 per capture (flatten, codes) each; rank 0 also probes 1 input
    assert forwards == [14, 12]
    for reducer in ("flatten", "codes"):
        ref = capture(_model(), data, LAYERS, reducer=reducer, batch_size=32,
                      store=tmp_path / "ref" / reducer, progress=False)  # fmt: skip
        _assert_same_store(tmp_path / "dist" / reducer, ref)

    # attacks: the gathered shards equal one process's attack with the same seeds
    from introspect import Study, pipeline

    got = torch.load(tmp_path / "dist" / "attack.pt")
    adv = pipeline.attacked(_model(), x[:40], y[:40], "pgd", 0.1, nb_iter=3, batch_size=8,
                            seed=5, workdir=tmp_path / "w1", distributed=False)  # fmt: skip
    assert torch.equal(got["pgd"], adv["x_adv"])
    assert (got["pgd"] - x[:40]).abs().amax() > 0.05  # the attack moved the images
    assert np.array_equal(got["pred_adv"].numpy(), adv["pred_adv"])
    study = Study(_model(), train=data, test=data, layers=["CL2"], workdir=tmp_path / "w1",
                  device="cpu", batch_size=16, progress=False, distributed=False)  # fmt: skip
    res = study.attack("fgsm", eps=0.05, n=50, seed=1)
    assert np.array_equal(got["index"].numpy(), res.index)
    assert torch.equal(got["fgsm"], res.x_adv)
    assert np.array_equal(got["codes"].numpy(), study.capture("codes", "test").layer("CL2"))
    # a second torchrun job finds the rank-0 caches: nothing is recomputed
    _check(_torchrun([str(script), str(tmp_path / "dist")], env={"REDUCERS": "flatten"}))
    assert json.loads((tmp_path / "dist" / "forwards-1.json").read_text()) == 0


def test_killed_rank_resumes_its_own_shard(tmp_path, one_thread):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    # rank 1 owns batches 1, 3, 5, ...: it dies on the 4th input of batch 5
    env = {"FAIL_AT": str(5 * 32 + 3), "REDUCERS": "flatten"}
    proc = _torchrun([str(script), str(tmp_path / "dist")], env=env)
    assert proc.returncode != 0
    store = tmp_path / "dist" / "flatten"
    partial = ActivationStore.open(store)
    marks = {int(p.name) for p in (store / ".progress").iterdir()}
    assert not partial.complete and partial.done == 32 * len(marks)
    assert {1, 3} <= marks and 5 not in marks  # rank 1's batches before it died are kept
    with pytest.raises(RuntimeError, match="incomplete"):
        partial.layer("CL1")
    _check(_torchrun([str(script), str(tmp_path / "dist")], env={"REDUCERS": "flatten"}))
    redone = [json.loads((tmp_path / "dist" / f"forwards-{r}.json").read_text()) for r in (0, 1)]
    assert sum(redone) == 12 - len(marks)  # only the missing batches were computed
    data, _, _ = _data()
    ref = capture(_model(), data, LAYERS, reducer="flatten", batch_size=32,
                  store=tmp_path / "ref", progress=False)  # fmt: skip
    _assert_same_store(store, ref)
    # another model on that store: rank 0 refuses it, and every rank stops saying why
    other = _torchrun([str(script), str(tmp_path / "dist")],
                      env={"REDUCERS": "flatten", "MODEL_SEED": "1"})  # fmt: skip
    assert other.returncode != 0
    assert "StoreMismatchError" in other.stderr and "model weights" in other.stderr
    assert "rank 0 could not open the store" in other.stderr
    _assert_same_store(store, ref)  # untouched


def test_readme_torchrun_command_gives_the_single_process_store(tmp_path, one_thread):
    """The README's command: ``torchrun --nproc_per_node 2 -m introspect capture ...``."""
    readme = (ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("torchrun --nproc_per_node 2"))
    args = line.split()[3:]  # after "torchrun --nproc_per_node 2"
    assert args[:3] == ["-m", "introspect", "capture"], line
    args[args.index("--workdir") + 1] = str(tmp_path / "work")  # the shared workdir
    proc = _torchrun(args)
    _check(proc)
    from introspect import Study

    study = Study.from_recipe("small_cnn@digits", workdir=tmp_path / "work", device="cpu",
                              progress=False)  # the model the job trained (cached)  # fmt: skip
    (store,) = [p.parent for p in (tmp_path / "work" / "capture").glob("*/store/manifest.json")]
    sharded = ActivationStore.open(store)
    assert str(store) in proc.stdout
    ref = capture(study.model, study.data("test"), sharded.layers, reducer="codes",
                  batch_size=sharded.batch_size, store=tmp_path / "ref", progress=False)  # fmt: skip
    for name in sharded.layers:
        assert np.array_equal(sharded.layer(name), ref.layer(name)), name
    assert np.array_equal(sharded.logits, ref.logits)
    assert _files(store) == _files(ref.path)


def test_distributed_without_a_process_group_or_torchrun_is_refused(tmp_path, monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    data, _, _ = _data()
    with pytest.raises(RuntimeError, match="torchrun"):
        capture(_model(), data, ["CL1"], store=tmp_path / "s", distributed=True, progress=False)
    with pytest.raises(ValueError, match="in-memory"):
        capture(_model(), data, ["CL1"], distributed=True, progress=False)
    assert not (tmp_path / "s" / "manifest.json").exists()


def test_sharding_context_outside_torchrun_stays_single_process(tmp_path, monkeypatch):
    from introspect.distributed import group, sharding

    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    with sharding():
        assert group(None).world == 1  # no process group and no torchrun: not sharded
    assert group(False).world == 1


def test_shards_are_disjoint_strided_batches_covering_all():
    from introspect.distributed import Group

    shards = [list(Group(r, 3).shard(10)) for r in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert list(Group().shard(4)) == [0, 1, 2, 3]


@pytest.mark.slow
def test_reproduce_under_torchrun_shards_the_capture_and_reports_from_the_cache(tmp_path):
    """``introspect reproduce --launcher torchrun --nproc 2``: the figure's capture is
    sharded over 2 ranks, then the notebook on rank 0 is served from the workdir."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    out = tmp_path / "rep"
    proc = subprocess.run(
        [sys.executable, "-m", "introspect", "reproduce", "--launcher", "torchrun", "--nproc",
         "2", "--figures", "manifolds.dims", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=400, cwd=ROOT,
    )  # fmt: skip
    _check(proc)
    assert "stages of manifolds.dims: ok" in proc.stdout and "sharded: 1 capture" in proc.stdout
    assert "(1 ok, 0 failed)" in proc.stdout
    (store,) = [p.parent for p in (out / "work" / "capture").glob("*/store/manifest.json")]
    sharded = ActivationStore.open(store)
    from introspect import Study
    from introspect.figures._manifolds import _data

    study = Study.from_recipe("small_cnn@digits", workdir=out / "work", device="cpu",
                              progress=False)  # the figure's model (cached)  # fmt: skip
    data, _ = _data("small_cnn@digits", "train", 100, None, None, 0)  # the figure's data
    ref = capture(study.model, data, sharded.layers, reducer="flatten",
                  batch_size=sharded.batch_size, store=tmp_path / "ref", progress=False)  # fmt: skip
    assert _files(store) == _files(ref.path)


def test_launcher_options_are_dropped_from_the_command_torchrun_reruns():
    from introspect.cli import _strip_launcher

    argv = ["reproduce", "--launcher", "torchrun", "--nproc=2", "--figures", "telescope"]
    assert _strip_launcher(argv) == ["reproduce", "--figures", "telescope"]
    assert _strip_launcher(["reproduce", "--nproc", "4", "--launcher=torchrun"]) == ["reproduce"]
