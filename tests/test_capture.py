import numpy as np
import pytest
import torch
from torch import nn

from introspect.capture import activations, capture
from introspect.codes import vector_codes
from introspect.data import ArrayDataset, load_dataset
from introspect.models import create_model
from introspect.store import ActivationStore


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "test", image_size=16)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("small_cnn")


def test_capture_matches_a_manual_forward(model, digits):
    st = capture(
        model,
        digits,
        ["CL2", "block4", "penultimate"],
        reducer="codes",
        batch_size=64,
        progress=False,
    )
    x, y = digits.tensors()
    with torch.no_grad():
        h = model.normalize(x)
        h = model.pool1(model.block1(h))
        cl2 = model.block2(h)
        logits = model(x)
    assert np.allclose(st.layer("CL2"), vector_codes(cl2).numpy(), atol=1e-5)
    assert st.layer("block4").shape == (len(digits), 4 * 64)
    pen = model.flatten(model.gap(model.block4(model.pool3(model.block3(model.pool2(cl2))))))
    assert np.allclose(st.layer("penultimate"), pen.detach().numpy(), atol=1e-5)
    assert np.array_equal(st.labels, y.numpy()) and np.array_equal(
        st.preds, logits.argmax(1).numpy()
    )
    assert np.allclose(st.logits, logits.numpy(), atol=1e-5)
    assert _hooks(model) == 0


def test_store_keeps_the_layers_in_the_order_asked(model, digits, tmp_path):
    order = ["penultimate", "CL1", "CL3"]  # not the forward order
    st = capture(model, digits, order, reducer="gap", progress=False, store=tmp_path / "s")
    assert st.layers == order
    assert ActivationStore.open(tmp_path / "s").layers == order


def test_on_disk_store_resumes_after_interrupt_with_identical_arrays(model, digits, tmp_path):
    full = capture(model, digits, ["CL1", "FC"], batch_size=50, progress=False)

    class Interrupting(ArrayDataset):
        def __getitem__(self, i):
            if i == 173:
                raise KeyboardInterrupt
            return super().__getitem__(i)

    x, y = digits.tensors()
    # channels=1 (a no-op conversion) sends the capture item by item, so the interrupt lands mid-run
    flaky = Interrupting(x, y, name="digits", channels=1)
    with pytest.raises(KeyboardInterrupt):
        capture(model, flaky, ["CL1", "FC"], batch_size=50, store=tmp_path / "s", progress=False)
    partial = ActivationStore.open(tmp_path / "s")
    assert partial.done == 150 and not partial.complete
    with pytest.raises(RuntimeError, match="incomplete"):
        partial.layer("CL1")
    assert _hooks(model) == 0
    resumed = capture(
        model,
        ArrayDataset(x, y, name="digits", channels=1),
        ["CL1", "FC"],
        batch_size=50,
        store=tmp_path / "s",
        progress=False,
    )
    assert resumed.complete
    assert np.array_equal(resumed.layer("CL1"), full.layer("CL1"))
    assert np.array_equal(resumed.layer("FC"), full.layer("FC"))
    reopened = ActivationStore.open(tmp_path / "s")
    assert np.array_equal(reopened.labels, full.labels) and reopened.meta["layers"] == ["CL1", "FC"]


def test_finished_store_reopens_without_recomputing(model, digits, tmp_path):
    capture(model, digits, ["CL3"], store=tmp_path / "s", progress=False)

    def boom(*a, **k):
        raise AssertionError("recomputed")

    handle = model.register_forward_pre_hook(boom)
    try:
        again = capture(model, digits, ["CL3"], store=tmp_path / "s", progress=False)
    finally:
        handle.remove()
    assert again.complete and again.layer("CL3").shape[0] == len(digits)
    with pytest.raises(ValueError, match="other parameters"):
        capture(model, digits, ["CL4"], store=tmp_path / "s", progress=False)


def test_hooks_are_removed_when_the_forward_fails(model, digits):
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    original = model.fc
    model.fc = Boom()
    try:
        with pytest.raises(RuntimeError, match="boom"):
            capture(model, digits, ["CL1", "CL2", "CL3"], progress=False)
        assert _hooks(model) == 0
    finally:
        model.fc = original


def test_errors_name_the_problem(model, digits):
    with pytest.raises(ValueError, match="Available layers"):
        capture(model, digits, ["CL9"], progress=False)
    model.train()
    try:
        with pytest.raises(RuntimeError, match="model.eval"):
            capture(model, digits, ["CL1"], progress=False)
    finally:
        model.eval()
    with pytest.raises(ValueError, match="empty"):
        capture(
            model, ArrayDataset(torch.zeros(0, 1, 16, 16), torch.zeros(0)), ["CL1"], progress=False
        )
    nan = ArrayDataset(torch.full((2, 1, 16, 16), float("nan")), torch.zeros(2))
    with pytest.raises(ValueError, match="NaN or inf"):
        capture(model, nan, ["CL1"], progress=False)
    assert _hooks(model) == 0


def test_activations_of_an_in_memory_batch(model, digits):
    x, _ = digits.tensors()
    acts, logits = activations(model, x[:10], ["CL1", "FC"], reducer="gap", return_logits=True)
    assert acts["CL1"].shape == (10, 8) and acts["FC"].shape == (10, 10)
    assert np.allclose(acts["FC"], logits, atol=1e-6)


@pytest.mark.parametrize("reducer", ["flatten", "codes", "gap", lambda t: t[:, 1:].flatten(1)])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_activation_is_refused_whatever_the_reducer(reducer, bad):
    """One NaN or inf in one feature map, from finite inputs, names the layer."""
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU()).eval()
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].bias.zero_()
        net[0].bias[0] = bad  # channel 0 only, every position
    x = torch.rand(2, 1, 5, 5)
    with pytest.raises(ValueError, match="NaN or inf.*'0'"):
        activations(net, x, ["0"], reducer=reducer)


# ------------------------------------------------------------- silent nonsense, warned
class _SharedReLU(nn.Module):
    """Two convolutions that share one ReLU module (as torchvision's ResNet blocks do)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = self.relu(self.conv2(self.relu(self.conv1(x))))
        return self.fc(h.mean((2, 3)))


def test_a_module_run_twice_per_forward_warns_naming_it_and_the_fix():
    import warnings

    from introspect.capture import ModuleReuseWarning

    model = _SharedReLU().eval()
    x = torch.rand(6, 1, 8, 8)
    with pytest.warns(ModuleReuseWarning, match=r"'relu' ran 2 times") as rec:
        acts = activations(model, x, ["relu", "conv2"], reducer="flatten", batch_size=2)
    assert len([w for w in rec if w.category is ModuleReuseWarning]) == 1  # once, not per batch
    assert "distinct module" in str(rec[0].message)
    # what was recorded is the last call: relu(conv2(...))
    with torch.no_grad():
        last = torch.relu(model.conv2(torch.relu(model.conv1(x)))).reshape(6, -1)
    np.testing.assert_allclose(acts["relu"], last.numpy(), atol=1e-6)
    # the normal path: modules that run once, over several batches (forward passes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModuleReuseWarning)
        activations(model, x, ["conv1", "conv2", "fc"], reducer="flatten", batch_size=2)
        capture(model, (x, torch.zeros(6, dtype=torch.long)), ["conv1", "conv2"], progress=False)
    assert _hooks(model) == 0


class _TinyViT(nn.Module):
    """Rows of an image as tokens (B, N=8, C=8) through one transformer encoder layer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        tokens = self.encoder(x[:, 0])  # (B, 8 rows, 8 columns)
        return self.head(tokens.mean(1))


def test_token_outputs_are_refused_by_codes_and_coded_by_codes_tokens():
    model = _TinyViT().eval()
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(ValueError, match="codes_tokens"):
        activations(model, x, ["encoder"], reducer="codes")
    got = activations(model, x, ["encoder"], reducer="codes_tokens")["encoder"]
    with torch.no_grad():
        tokens = model.encoder(x[:, 0])
    assert got.shape == (4, 4 * 8)
    np.testing.assert_allclose(got, vector_codes(tokens.transpose(1, 2), channel_dim=1), atol=1e-5)
    # the normal path: a conv map with reducer="codes" is unchanged
    cnn = _SharedReLU().eval()
    codes = activations(cnn, x, ["conv1"], reducer="codes")["conv1"]
    with torch.no_grad():
        np.testing.assert_allclose(codes, vector_codes(cnn.conv1(x)).numpy(), atol=1e-6)
