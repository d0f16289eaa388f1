"""The published MNIST models of introspect.models.mnist_zoo."""

from pathlib import Path

import numpy as np
import pytest
import torch

from introspect.models import available_layers, create_model, resolve_layer
from introspect.models.mnist_zoo import MNIST_ZOO, register

register()

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.parametrize("name", sorted(MNIST_ZOO))
def test_random_copy_shapes_aliases_and_classifier(name):
    torch.manual_seed(0)
    model = create_model(name)
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    assert model.input_size == (1, 28, 28) and model.num_classes == 10
    clf = model.get_submodule(model.classifier_path)
    assert isinstance(clf, torch.nn.Linear) and clf.out_features == 10
    assert resolve_layer(model, "FC2") == model.classifier_path
    assert resolve_layer(model, "FC1") in available_layers(model)
    # the checkpoint's key names are the model's
    factory, _ = MNIST_ZOO[name]
    assert set(factory().state_dict()) == set(model.state_dict())


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(MNIST_ZOO))
def test_pretrained_weights_classify_mnist(name, monkeypatch):
    if not (DATA / "weights").is_dir():
        pytest.skip("../shared/data is absent")
    from torchvision.datasets import MNIST

    monkeypatch.setenv("INTROSPECT_WEIGHTS", str(DATA / "weights"))
    model = create_model(name, pretrained=True)
    ds = MNIST(str(DATA), train=False, download=False)
    x = ds.data[-500:].float().div(255).unsqueeze(1)
    y = ds.targets[-500:].numpy()
    with torch.no_grad():
        acc = np.mean(model(x).argmax(1).numpy() == y)
    assert acc > 0.97  # published: 98.6 to 99.2 % on the full test set
