import numpy as np
import pytest
import torch

from introspect import pipeline
from introspect.cache import Workdir, param_hash


def test_param_hash_is_stable_and_order_free():
    assert param_hash({"a": 1, "b": [1, 2]}) == param_hash({"b": [1, 2], "a": 1})
    assert param_hash({"a": 1.0}) == param_hash({"a": 1})
    assert param_hash({"a": 1}) != param_hash({"a": 2})


def test_memo_computes_once(tmp_path):
    wd = Workdir(tmp_path)
    calls = []

    def fn():
        calls.append(1)
        return {"x": np.arange(3), "t": torch.ones(2)}

    a = wd.memo("stage", {"k": 1}, fn)
    b = Workdir(tmp_path).memo("stage", {"k": 1}, fn)
    assert len(calls) == 1 and np.array_equal(a["x"], b["x"]) and torch.equal(a["t"], b["t"])
    wd.memo("stage", {"k": 2}, fn)
    assert len(calls) == 2
    assert (wd.path("stage", {"k": 1}) / "params.json").read_text().strip().startswith("{")


def test_trained_model_is_cached_and_captures_are_shared(tmp_path):
    kw = dict(
        dataset="digits",
        image_size=8,
        model_kwargs={"depth": 1, "width": 16, "input_size": (1, 8, 8)},
        train=dict(epochs=2),
        workdir=tmp_path,
        progress=False,
    )
    m1 = pipeline.trained_model("net1_mlp", **kw)
    m2 = pipeline.trained_model("net1_mlp", **kw)
    assert torch.equal(m1.out.weight, m2.out.weight) and m1.history_ is not None
    assert len(list((tmp_path / "train").iterdir())) == 1
    data = pipeline.dataset("digits", "test", image_size=8)
    s1 = pipeline.captured(m1, data, ["H1"], workdir=tmp_path, progress=False)
    s2 = pipeline.captured(m2, data, ["H1"], workdir=tmp_path, progress=False)
    assert s1.path == s2.path and np.array_equal(s1.layer("H1"), s2.layer("H1"))
    # any model and data: keyed by content, so an equal copy of the model shares the store
    import copy

    m3 = copy.deepcopy(m1)
    del m3.cache_key
    s3 = pipeline.captured(m3, data, ["H1"], workdir=tmp_path, progress=False)
    assert s3.path == s1.path
    with pytest.raises(ValueError, match="named reducer"):
        pipeline.captured(m1, data, ["H1"], reducer=lambda t: t, workdir=tmp_path)


def test_a_moved_alias_is_not_served_from_the_old_capture(tmp_path):
    """Captures are keyed by what an alias resolves to: when CN1 moved from ``pool1`` to
    ``conv1`` (issue 9), a store made under the old meaning must not be reopened."""
    from introspect.models import create_model

    torch.manual_seed(0)
    model = create_model("mnist_cnn")
    data = pipeline.dataset("digits", "test", image_size=28, n_per_class=2)
    new = pipeline.captured(model, data, ["CN1"], workdir=tmp_path, progress=False)
    assert new.dims["CN1"] == 11520  # conv1: 20 x 24 x 24, before ReLU and pooling
    model.layer_aliases["CN1"] = "pool1"  # the alias's meaning before issue 9
    old = pipeline.captured(model, data, ["CN1"], workdir=tmp_path, progress=False)
    assert old.path != new.path and old.dims["CN1"] == 2880
    # plain paths key as they always did, and do not collide with an alias onto them
    by_path = pipeline.captured(model, data, ["conv1"], workdir=tmp_path, progress=False)
    assert by_path.path not in (new.path, old.path) and by_path.dims["conv1"] == 11520


def test_validation_data_is_held_out_of_the_training_split(tmp_path):
    import numpy as np
    from PIL import Image

    tr, va = pipeline.train_val_split("digits")
    assert len(tr) == 1078 and len(va) == 359
    images = torch.rand(200, 1, 4, 4)
    labels = torch.arange(200) % 4
    root = tmp_path
    for i, (x, y) in enumerate(zip(images, labels)):
        d = root / "train" / f"c{int(y)}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((x[0].numpy() * 255).astype(np.uint8)).save(d / f"{i:03d}.png")
    fit, val = pipeline.train_val_split("imagefolder", data_root=root)
    assert len(fit) == 180 and len(val) == 20
    assert not set(fit.indices) & set(val.indices)
    assert np.all(np.bincount(val.targets) == 5)


def test_pretrained_weights_are_found_under_the_data_root(shared_data, tmp_path, monkeypatch):
    monkeypatch.delenv("INTROSPECT_WEIGHTS", raising=False)
    monkeypatch.setenv("INTROSPECT_DATA", str(tmp_path))  # nothing there
    model = pipeline.trained_model(
        "mnist_cnn", dataset="mnist", pretrained=True, data_root=shared_data, workdir=tmp_path
    )
    ref = torch.load(next((shared_data / "weights").glob("mnist_cnn_*.pt")), weights_only=True)
    assert torch.equal(model.fc2.weight, ref["fc2.weight"])
    with pytest.raises(FileNotFoundError, match="checkpoint="):
        pipeline.trained_model("mnist_cnn", dataset="mnist", pretrained=True, workdir=tmp_path)
