"""Trustworthy results: the cache and the store never serve a wrong or unsafe artifact.

One test (or a few) per reproduced case of the trustworthy-results issue:
1 Ctrl-C in training, 2 planted pickle, 3 content-addressed keys, 4 input contracts,
5 disk full, 7 concurrent runs, 8 damaged files, 9 a user's folder as a store.
(6, HTML-safe class names, is in test_report_xss.py.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from introspect import pipeline
from introspect.cache import CacheWarning, Workdir
from introspect.capture import StoreMismatchError, capture
from introspect.data import ArrayDataset, load_dataset
from introspect.models import create_model
from introspect.store import ActivationStore, StoreDamagedError
from introspect.training import fit_classifier

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(image_size=16, channels=1)


def _model(seed=0):
    torch.manual_seed(seed)
    return create_model("small_cnn", **{"in_channels": 1}).eval()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "test", **SMALL)


def _python(code: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
        **kw,
    )


# ---------------------------------------------------------------- 1. Ctrl-C in training
def test_sigint_during_training_propagates_and_caches_nothing(tmp_path):
    """A real SIGINT to a process training through the cached pipeline: the process ends
    with KeyboardInterrupt and the workdir holds no trained model (before, the half-trained
    model was cached as finished and served on every rerun)."""
    work = tmp_path / "work"
    proc = _python(
        f"""
        import introspect.pipeline as p
        from introspect import training
        real = training.fit_classifier
        def fit(*a, **k):
            def cb(epoch, model, history):
                print("epoch", epoch, flush=True)
            return real(*a, callback=cb, **k)
        p.fit_classifier = fit
        p.trained_model("small_cnn", dataset="digits", image_size=16, channels=1,
                        model_kwargs={{"in_channels": 1}},
                        train=dict(epochs=10000, lr=1e-3), workdir={str(work)!r}, progress=False)
        print("finished", flush=True)
        """
    )
    try:
        line = proc.stdout.readline()  # blocks until the first epoch is done
        assert line.startswith("epoch"), line + proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err
    assert "finished" not in out
    assert not list(work.glob("train/*/result")), "an interrupted training was cached"


def test_interrupt_restores_best_weights_and_reraises():
    data = load_dataset("digits", "train", **SMALL)
    val = load_dataset("digits", "val", **SMALL)
    model = _model()
    seen = {}

    def cb(epoch, m, history):
        if history["best_epoch"] == epoch:
            seen["best"] = {k: v.clone() for k, v in m.state_dict().items()}
        if epoch == 3:
            for p in m.parameters():
                p.data.add_(1.0)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_classifier(
            model, data, val, epochs=10, lr=3e-3, patience=5, callback=cb, progress=False
        )
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, seen["best"][k])


def test_memo_commits_nothing_when_the_stage_fails(tmp_path):
    wd = Workdir(tmp_path)

    def boom():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        wd.memo("stage", {"a": 1}, boom)
    assert not (wd.path("stage", {"a": 1}) / "result").exists()
    assert not list(tmp_path.rglob("*.tmp"))
    assert wd.memo("stage", {"a": 1}, lambda: 7) == 7


# ---------------------------------------------------------------- 2. planted pickle
class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_planted_pickle_is_never_loaded(tmp_path):
    wd = Workdir(tmp_path / "work")
    params = {"model": "small_cnn", "x": 1}
    marker = tmp_path / "marker"
    torch.save({"result": _Payload(str(marker))}, wd.path("stage", params) / "result.pt")
    with pytest.warns(CacheWarning, match=r"result\.pt: ignored, not loaded"):
        out = wd.memo("stage", params, lambda: {"ok": np.arange(3)})
    assert not marker.exists()
    assert np.array_equal(out["ok"], np.arange(3))


def test_forged_safe_artifact_cannot_name_an_arbitrary_class(tmp_path):
    """A planted artifact in the new format with valid checksums that asks for os.system."""
    from introspect import _artifact

    wd = Workdir(tmp_path / "work")
    params = {"x": 2}
    target = wd.path("stage", params) / "result"
    _artifact.save({"v": 1}, target, inputs={})
    (target / "tree.json").write_text(json.dumps({"__object__": "posix:system", "state": {}}))
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["files"]["tree.json"] = {
        "bytes": (target / "tree.json").stat().st_size,
        "checksum": _artifact._checksum(target / "tree.json"),
    }
    manifest["inputs"] = __import__("introspect.cache").cache.stage_inputs(None, None)
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(CacheWarning, match="not allowed"):
        assert wd.memo("stage", params, lambda: 5) == 5


def test_artifacts_round_trip_models_and_estimators(tmp_path):
    from introspect.library import LibraryNetwork

    rng = np.random.default_rng(0)
    H = rng.random((60, 12)).astype(np.float32)
    net = LibraryNetwork(0.5, 3).fit(H, rng.integers(0, 3, 60), 3)
    model = _model()
    wd = Workdir(tmp_path)
    value = {"net": net, "model": model, "t": (1, float("nan")), 3: [np.int64(4)]}
    wd.memo("s", {}, lambda: value)
    back = Workdir(tmp_path).memo("s", {}, lambda: pytest.fail("recomputed"))
    assert np.array_equal(back["net"].predict(H), net.predict(H))
    x = torch.rand(4, 1, 16, 16)
    assert torch.equal(back["model"](x), model(x))
    assert np.isnan(back["t"][1]) and back[3] == [4]


# ---------------------------------------------------------------- 3. content-addressed keys
def test_overwritten_checkpoint_is_not_served_old_activations(tmp_path, digits):
    ckpt = tmp_path / "weights.pt"
    work = tmp_path / "work"
    outs = []
    for seed in (0, 1):
        torch.save(_model(seed).state_dict(), ckpt)  # same path, new content
        model = pipeline.trained_model(
            "small_cnn", model_kwargs={"in_channels": 1}, checkpoint=ckpt, workdir=work
        )
        data = pipeline.dataset("digits", "test", **SMALL)
        outs.append(pipeline.captured(model, data, ["CL1"], workdir=work, progress=False))
    assert not np.allclose(outs[0].layer("CL1"), outs[1].layer("CL1"))


def test_trained_model_retrains_when_its_checkpoint_changes(tmp_path):
    ckpt, work = tmp_path / "init.pt", tmp_path / "work"
    kw = dict(
        model_kwargs={"in_channels": 1}, dataset="digits", checkpoint=ckpt, workdir=work,
        train=dict(epochs=1, lr=1e-3), progress=False, **SMALL,
    )  # fmt: skip
    torch.save(_model(0).state_dict(), ckpt)
    a = pipeline.trained_model("small_cnn", **kw)
    torch.save(_model(1).state_dict(), ckpt)
    with pytest.warns(CacheWarning, match="checkpoint"):
        b = pipeline.trained_model("small_cnn", **kw)
    assert a.cache_key["weights"] != b.cache_key["weights"]


def _png(path: Path, value: int):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


def test_replaced_imagefolder_images_are_recaptured(tmp_path):
    root = tmp_path / "imgs"
    for c in range(2):
        for i in range(3):
            _png(root / f"c{c}" / f"{i}.png", 40 * c + 20 * i)
    work = tmp_path / "work"
    model = pipeline.trained_model("small_cnn", model_kwargs={"in_channels": 1}, workdir=work)

    def run():
        data = pipeline.dataset("imagefolder", "train", data_root=root, **SMALL)
        return np.array(
            pipeline.captured(model, data, ["CL1"], workdir=work, progress=False).layer("CL1")
        )

    before = run()
    time.sleep(0.01)
    _png(root / "c1" / "2.png", 250)  # same name, same size on disk, other pixels
    after = run()
    assert np.allclose(before[:5], after[:5]) and not np.allclose(before[5], after[5])


def test_edited_reducer_is_refused_on_an_existing_store(tmp_path, digits):
    model = _model()
    ns1, ns2 = {}, {}
    exec("import torch\ndef red(t):\n    return t.amax(dim=(2, 3))", ns1)
    exec("import torch\ndef red(t):\n    return t.mean(dim=(2, 3))", ns2)
    capture(model, digits, ["CL1"], reducer=ns1["red"], store=tmp_path / "s", progress=False)
    with pytest.raises(StoreMismatchError, match="reducer code"):
        capture(model, digits, ["CL1"], reducer=ns2["red"], store=tmp_path / "s", progress=False)


def test_resuming_a_store_with_another_model_is_refused(tmp_path, digits):
    x, y = digits.tensors()

    class Interrupting(ArrayDataset):
        def __getitem__(self, i):
            if i == 120:
                raise KeyboardInterrupt
            return super().__getitem__(i)

    with pytest.raises(KeyboardInterrupt):
        capture(_model(0), Interrupting(x, y, channels=1), ["CL1"], batch_size=50,
                store=tmp_path / "s", progress=False)  # fmt: skip
    assert ActivationStore.open(tmp_path / "s").done == 100
    with pytest.raises(StoreMismatchError, match="model weights"):
        capture(_model(1), ArrayDataset(x, y, channels=1), ["CL1"], batch_size=50,
                store=tmp_path / "s", progress=False)  # fmt: skip


def test_code_change_recomputes_a_memo_and_names_it(tmp_path, monkeypatch):
    import introspect.cache as cache

    wd = Workdir(tmp_path)
    assert wd.memo("s", {}, lambda: 1) == 1
    real = cache.code_fingerprint
    monkeypatch.setattr(cache, "code_fingerprint", lambda *m: "edited" + real(*m))
    with pytest.warns(CacheWarning, match=r"\(code changed\)"):
        assert wd.memo("s", {}, lambda: 2) == 2


# ---------------------------------------------------------------- 4. input contracts
@pytest.mark.parametrize(
    "images, labels, match",
    [
        (torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8), torch.zeros(4, dtype=torch.long), "floats in"),
        (torch.rand(4, 1, 16, 16) * 255, torch.zeros(4, dtype=torch.long), "divide by 255"),
        (torch.rand(4, 1, 16, 16), torch.tensor([0.0, 1.0, 1.0, 0.0]), "integers"),
        (torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 99, 0]), r"\[0, 10\)"),
    ],
)  # fmt: skip
def test_capture_and_training_refuse_out_of_contract_input(images, labels, match):
    model = _model()
    with pytest.raises((TypeError, ValueError), match=match):
        capture(model, (images, labels), ["CL1"], progress=False)
    with pytest.raises((TypeError, ValueError), match=match):
        fit_classifier(model, (images, labels), epochs=1, progress=False)


# ---------------------------------------------------------------- 5. disk full
def test_store_checks_free_space_before_preallocating(tmp_path, digits, monkeypatch):
    import introspect.store as store

    monkeypatch.setattr(store, "_free_bytes", lambda path: 10 << 20)
    with pytest.raises(OSError, match=r"not enough free disk space .* needs .* MiB and 10\.0 MiB"):
        capture(_model(), digits, ["CL1"], reducer="flatten", store=tmp_path / "s", progress=False)
    assert not list((tmp_path / "s").rglob("zarr.json"))  # no array was created


# ---------------------------------------------------------------- 7. concurrent runs
def test_two_processes_on_one_stage_compute_once(tmp_path):
    counter = tmp_path / "count.txt"
    code = f"""
        import time
        from introspect.cache import Workdir
        def fn():
            with open({str(counter)!r}, "a") as f:
                f.write("x")
            time.sleep(1.5)
            return {{"v": 41 + 1}}
        print(Workdir({str(tmp_path / "work")!r}).memo("stage", {{"p": 1}}, fn)["v"])
        """
    procs = [_python(code) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o[0].strip() for o in outs] == ["42", "42"]
    assert counter.read_text() == "x"


def test_two_processes_capture_into_one_store(tmp_path, digits):
    code = f"""
        import torch
        from introspect.capture import capture
        from introspect.data import load_dataset
        from introspect.models import create_model
        torch.manual_seed(0)
        m = create_model("small_cnn", in_channels=1).eval()
        d = load_dataset("digits", "test", image_size=16, channels=1)
        s = capture(m, d, ["CL1", "CL2"], batch_size=8, store={str(tmp_path / "s")!r}, progress=False)
        print(s.done)
        """
    procs = [_python(code) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    st = ActivationStore.open(tmp_path / "s")
    ref = capture(_model(0), digits, ["CL1", "CL2"], progress=False)
    assert st.complete and np.array_equal(st.layer("CL2"), ref.layer("CL2"))
    assert not list((tmp_path / "s").glob("*.tmp"))


# ---------------------------------------------------------------- 8. damaged files
def test_bit_flipped_cached_model_is_recomputed_not_served(tmp_path):
    kw = dict(
        model_kwargs={"in_channels": 1}, dataset="digits", workdir=tmp_path,
        train=dict(epochs=1, lr=3e-3), progress=False, **SMALL,
    )  # fmt: skip
    a = pipeline.trained_model("small_cnn", **kw)
    (arrays,) = tmp_path.glob("train/*/result/arrays.npz")
    raw = bytearray(arrays.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    arrays.write_bytes(bytes(raw))
    with pytest.warns(CacheWarning, match=r"arrays\.npz: checksum mismatch"):
        b = pipeline.trained_model("small_cnn", **kw)
    assert a.cache_key["weights"] == b.cache_key["weights"]  # retrained, deterministically


def test_truncated_store_file_is_named(tmp_path, digits):
    capture(_model(), digits, ["CL1"], store=tmp_path / "s", progress=False)
    f = tmp_path / "s" / "layer__CL1" / "c" / "1" / "0"  # the second chunk (batch) of CL1
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(StoreDamagedError, match=r"layer__CL1/c/1/0: \d+ bytes where"):
        ActivationStore.open(tmp_path / "s")
    st = ActivationStore.open(tmp_path / "s", verify=False)
    with pytest.raises(StoreDamagedError, match=r"layer__CL1/c/1/0: cannot be read"):
        st.layer("CL1")


def test_missing_store_chunk_is_named_not_read_as_zeros(tmp_path, digits):
    capture(_model(), digits, ["CL1"], store=tmp_path / "s", progress=False)
    (tmp_path / "s" / "labels" / "c" / "0").unlink()  # zarr would read a missing chunk as 0
    with pytest.raises(StoreDamagedError, match=r"labels/c/0: missing"):
        ActivationStore.open(tmp_path / "s")


def test_damaged_pipeline_capture_is_recaptured(tmp_path):
    model = pipeline.trained_model("small_cnn", model_kwargs={"in_channels": 1}, workdir=tmp_path)
    data = pipeline.dataset("digits", "test", **SMALL)
    a = np.array(
        pipeline.captured(model, data, ["CL1"], workdir=tmp_path, progress=False).layer("CL1")
    )
    (f,) = tmp_path.glob("capture/*/store/layer__CL1/c/0/0")
    raw = bytearray(f.read_bytes())
    raw[-5] ^= 0xFF
    f.write_bytes(bytes(raw))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        b = pipeline.captured(model, data, ["CL1"], workdir=tmp_path, progress=False).layer("CL1")
    assert any("checksum mismatch" in str(x.message) for x in w)
    assert np.array_equal(a, b)


# ---------------------------------------------------------------- 9. a user's own folder
def test_store_refuses_a_folder_that_is_not_a_store(tmp_path, digits):
    mine = tmp_path / "my-results"
    mine.mkdir()
    (mine / "labels.npy").write_bytes(b"my own labels")
    with pytest.raises(FileExistsError, match="not an activation store"):
        capture(_model(), digits, ["CL1"], store=mine, progress=False)
    assert (mine / "labels.npy").read_bytes() == b"my own labels"


def test_lazy_layer_reads_row_blocks_equal_to_the_whole(tmp_path, digits):
    st = capture(_model(), digits, ["CL1"], batch_size=50, store=tmp_path / "s", progress=False)
    whole = st.layer("CL1")
    lazy = ActivationStore.open(tmp_path / "s").layer("CL1", lazy=True)
    assert lazy.shape == whole.shape and len(lazy) == len(digits)
    assert np.array_equal(lazy[45:155], whole[45:155])  # across three chunks of 50 rows
    assert np.array_equal(lazy[340:], whole[340:]) and np.array_equal(np.asarray(lazy), whole)
    assert np.array_equal(lazy[[3, 1]], whole[[3, 1]])
