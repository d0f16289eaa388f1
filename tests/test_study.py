"""``Study``: a user's own model and data reach every lens through public names only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from introspect import Study, normalized
from introspect.library import LibraryStack
from introspect.models import resolve_layer
from introspect.selfintro import SelfIntrospector
from introspect.som import ToroidalSOM


def _imagefolder(root, n_per_class=10, size=24):
    """Two visibly different classes of small RGB PNGs: dark noise vs bright stripes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(n_per_class):
            img = rng.integers(0, 90, (size, size, 3))
            if c:
                img[:, ::3] = 230
            Image.fromarray(img.astype(np.uint8)).save(root / f"class{c}" / f"{i}.png")
    return root


def _tiny(n):
    """A two-class conv net on 8x8 images (a plain nn.Sequential: no aliases) and n inputs."""
    x, y = torch.rand(n, 1, 8, 8), torch.arange(n) % 2
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 2)
    )
    return model, x, y


@pytest.fixture(scope="module")
def user_study(tmp_path_factory):
    """The README's path: torchvision ResNet with its normalisation on an ImageFolder."""
    torchvision = pytest.importorskip("torchvision")
    from torchvision import transforms

    root = _imagefolder(tmp_path_factory.mktemp("imgs"))
    ds = torchvision.datasets.ImageFolder(root, transform=transforms.ToTensor())
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=2)
    model = normalized(net, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    work = tmp_path_factory.mktemp("work")
    return Study(model, train=ds, test=ds, layers=["layer1", "layer4"], workdir=work,
                 device="cpu", progress=False)  # fmt: skip


def test_normalized_keeps_the_users_layer_names():
    torchvision = pytest.importorskip("torchvision")
    model = normalized(torchvision.models.resnet18(num_classes=3), (0.5,) * 3, (0.25,) * 3)
    assert resolve_layer(model, "layer4") == "net.layer4"
    assert model.classifier_path == "net.fc" and model.num_classes == 3
    x = torch.rand(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), model.net((x - 0.5) / 0.25))
    with pytest.raises(TypeError, match="nn.Module"):
        normalized("resnet18", (0.5,), (0.5,))


def test_study_refuses_what_it_cannot_use(tmp_path):
    with pytest.raises(TypeError, match="from_recipe"):
        Study("small_cnn@digits", train=[], workdir=tmp_path)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match="declares no layers"):
        Study(model, train=(torch.rand(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ValueError, match="Available layers"):
        Study(model, train=(torch.rand(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)),
              layers=["layer9"])  # fmt: skip


def test_every_lens_on_a_users_resnet_and_imagefolder(user_study):
    s = user_study
    assert s.classes == ["class0", "class1"]
    stores = s.capture(reducer="codes")
    assert set(stores) == {"train", "test"}
    assert stores["train"].layer("layer4").shape == (20, 4 * 512)

    adv = s.attack("pgd", eps=8 / 255, n=8)
    assert adv.x_adv.shape == (8, 3, 24, 24) and len(adv.index) == 8
    assert float((adv.x_adv - adv.x).abs().max()) <= 8 / 255 + 1e-6
    noise = s.attack("uniform", eps=0.02, n=8)
    assert float((noise.x_adv - noise.x).abs().max()) <= 0.02 + 1e-6

    tel = s.telescope(layer="layer4", size=5, epochs=2)
    assert isinstance(tel.som, ToroidalSOM) and tel.bmus["test"].shape == (20, 10)
    assert tel.centres.shape == (2, 2) and tel.d_class["train"].shape == (20,)

    lib = s.library(theta=0.5, top_k=3)
    assert isinstance(lib.stack, LibraryStack) and set(lib.agreement) == {"layer1", "layer4"}
    assert lib.cpl.shape == (20,) and lib.confusion["layer1"].shape == (2, 2)

    man = s.manifolds(eps=[0.01], nb_iter=2)
    assert man.manifolds.n.tolist() == [10, 10]
    assert man.robustness.adv_acc.shape == (1, 2)


def test_study_stages_are_computed_once_per_workdir(user_study, tmp_path):
    """A second study on the same workdir (a new session) recomputes nothing."""
    s = user_study
    s.capture(reducer="codes")
    s.attack("pgd", eps=8 / 255, n=8)
    s.telescope(layer="layer4", size=5, epochs=2)
    calls = []
    handle = s.model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        again = Study(s.model, train=s.data("train"), test=s.data("test"),
                      layers=s.layers, workdir=s.workdir, device="cpu", progress=False)  # fmt: skip
        again.capture(reducer="codes")
        again.attack("pgd", eps=8 / 255, n=8)
        again.telescope(layer="layer4", size=5, epochs=2)
    finally:
        handle.remove()
    assert calls == []


def test_changed_weights_are_not_served_stale_results(tmp_path):
    model, x, y = _tiny(12)
    s = Study(model, train=(x, y), test=(x, y), layers=["1"], workdir=tmp_path, progress=False)
    a = np.array(s.capture("flatten", "test").layer("1"))
    with torch.no_grad():
        model[0].weight.mul_(2.0)
    b = np.array(s.capture("flatten", "test").layer("1"))
    assert not np.allclose(a, b)


def test_from_recipe_and_selfintro_on_digits(session_workdir):
    s = Study.from_recipe("small_cnn@digits", workdir=session_workdir, device="cpu", progress=False)
    assert s.layers == ["CL1", "CL2", "CL3", "CL4", "FC"] and s.n_classes == 10
    from introspect.selfintro import ErrorEstimator, InfoVAE

    si = s.selfintro(
        layers=["CL3", "CL4"], vae=InfoVAE(epochs=2, device="cpu"),
        estimator=ErrorEstimator(epochs=2, device="cpu"),
    )  # fmt: skip
    assert isinstance(si, SelfIntrospector) and si.model is s.model
    x, _ = s.data("test").tensors()
    out = si.analyze(x[:5])
    assert out["z"].shape == (5, 2)
    lib = s.library(theta=0.6)
    # a trained CNN's last conv layer predicts its own answers far above chance (0.1)
    assert lib.agreement["CL4"]["top1"] > 0.5


def test_progress_callbacks_and_a_cancelled_som_caches_nothing(tmp_path):
    from introspect.pipeline import StageCancelled

    model, x, y = _tiny(40)
    s = Study(model, train=(x, y), test=(x, y), layers=["1"], workdir=tmp_path, progress=False,
              batch_size=16)  # fmt: skip
    seen = []
    s.capture("codes", "train", callback=lambda done, total: seen.append((done, total)))
    assert seen == [(16, 40), (32, 40), (40, 40)]
    with pytest.raises(StageCancelled) as stopped:
        s.telescope(layer="1", size=4, epochs=3, batch_size=4, callback=lambda *a: True)
    from introspect import progress

    assert isinstance(stopped.value, progress.Cancelled)  # one family of stops
    assert not list((tmp_path / "som").glob("*/result"))
    steps = []
    tel = s.telescope(layer="1", size=4, epochs=1, batch_size=4,
                      callback=lambda step, total, info: steps.append(step))  # fmt: skip
    assert steps and tel.som.n_steps_ == 10
    assert s.images("test", [3, 1]).shape == (2, 1, 8, 8)


def test_selfintro_takes_any_dataset_of_pairs(tmp_path):
    from introspect.selfintro import ErrorEstimator, InfoVAE

    model, x, y = _tiny(40)
    s = Study(model.eval(), train=(x, y), test=(x, y), layers=["1", "3"], workdir=tmp_path,
              progress=False)  # fmt: skip
    si = s.selfintro(vae=InfoVAE(epochs=1), estimator=ErrorEstimator(epochs=1))
    assert si.codes_.shape == (40, 2)
