import pytest
import torch

from introspect.models import available_layers, create_model, list_models, resolve_layer

REGISTERED = list_models()


@pytest.mark.parametrize("name", REGISTERED)
def test_every_registered_model_runs_and_declares_layers(name):
    torch.manual_seed(0)
    model = create_model(name)
    assert not model.training
    x = torch.rand(2, *model.input_size)
    logits = model(x)
    assert logits.shape == (2, model.num_classes)
    assert model.layer_aliases, "every model declares the paper's layers"
    for alias, path in model.layer_aliases.items():
        assert resolve_layer(model, alias) == path
    clf = model.get_submodule(model.classifier_path)
    assert isinstance(clf, torch.nn.Linear)


def test_unknown_layer_lists_available():
    model = create_model("mnist_cnn")
    with pytest.raises(ValueError) as err:
        resolve_layer(model, "conv9")
    msg = str(err.value)
    assert "conv9" in msg and "CN1" in msg and "fc1" in msg
    assert available_layers(model)[:4] == ["CN1", "CN2", "FC1", "FC2"]


def test_library_paper_aliases_are_the_authors_hook_points():
    """Lee 2019's code hooks the modules conv1, conv2, fc1, fc2 of the MNIST CNN (ReLU
    and pooling are functional there) and conv1, layer1..3, linear of the ResNet44: the
    aliases give those tensors, pre-activation; the post-ReLU points keep their paths."""
    from introspect.capture import activations

    torch.manual_seed(0)
    cnn = create_model("mnist_cnn")
    x = torch.rand(4, 1, 28, 28)
    acts = activations(cnn, x, ["CN1", "CN2", "FC1", "FC2", "pool1", "relu3"])
    dims = {k: v.shape[1] for k, v in acts.items()}
    assert dims == dict(CN1=11520, CN2=3200, FC1=500, FC2=10, pool1=2880, relu3=500)
    with torch.no_grad():
        conv1 = cnn.conv1(cnn.normalize(x)).flatten(1)
        fc1 = cnn.fc1(cnn.flatten(cnn.pool2(cnn.relu2(cnn.conv2(cnn.pool1(cnn.relu1(
            cnn.conv1(cnn.normalize(x)))))))))  # fmt: skip
    torch.testing.assert_close(torch.as_tensor(acts["CN1"]), conv1)
    torch.testing.assert_close(torch.as_tensor(acts["FC1"]), fc1)
    assert acts["CN1"].min() < 0 and acts["FC1"].min() < 0  # before the ReLU
    torch.testing.assert_close(torch.as_tensor(acts["relu3"]), fc1.clamp(min=0))

    res = create_model("cifar_resnet20")
    assert dict(res.layer_aliases) == dict(
        CN1="conv1", CL1="layer1", CL2="layer2", CL3="layer3", FC="linear"
    )
    x = torch.rand(2, 3, 32, 32)
    acts = activations(res, x, ["CN1", "relu"])
    with torch.no_grad():
        raw = res.conv1(res.normalize(x))
    torch.testing.assert_close(torch.as_tensor(acts["CN1"]), raw.flatten(1))  # before BN
    torch.testing.assert_close(torch.as_tensor(acts["relu"]), res.relu(res.bn1(raw)).flatten(1))


def test_input_std_is_the_models_own_normalisation():
    from introspect.models import input_std

    assert input_std(create_model("mnist_cnn")) == (0.3081,)
    assert input_std(create_model("cifar_resnet20")) == (0.229, 0.224, 0.225)
    assert input_std(create_model("kolter_madry_cnn")) == (1.0,)  # takes [0, 1] as it is


def test_unknown_model_and_bad_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="registered"):
        create_model("resnet9000")
    torch.save(
        {"module.conv1.weight": torch.zeros(1), "extra.bias": torch.zeros(1)}, tmp_path / "bad.pt"
    )
    with pytest.raises(ValueError) as err:
        create_model("mnist_cnn", checkpoint=tmp_path / "bad.pt")
    assert "missing keys" in str(err.value) and "extra.bias" in str(err.value)


def test_normalisation_lives_inside_the_model():
    model = create_model("cifar_resnet20")
    assert torch.allclose(model.normalize.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert "normalize.mean" not in model.state_dict()


def test_timm_layers_follow_feature_info():
    model = create_model("timm:resnet18", num_classes=10)
    assert list(model.layer_aliases.values())[:4] == [f"body.layer{i}" for i in range(1, 5)]
    assert model.classifier_path == "body.fc"
    vgg = create_model("timm:vgg11")
    assert all(
        not isinstance(vgg.get_submodule(p), torch.nn.MaxPool2d) for p in vgg.layer_aliases.values()
    )
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 10)


@pytest.mark.realdata
def test_mnist_cnn_checkpoint_reaches_99_percent(shared_data):
    from introspect.data import load_dataset
    from introspect.training import evaluate

    model = create_model(
        "mnist_cnn", checkpoint=next((shared_data / "weights").glob("mnist_cnn_*.pt"))
    )
    acc = evaluate(model, load_dataset("mnist", "test", root=shared_data), batch_size=1000)[
        "accuracy"
    ]
    assert acc == pytest.approx(0.9905, abs=0.002)


@pytest.mark.realdata
def test_cifar_resnet44_checkpoint_on_jpeg_test_set(shared_data):
    from introspect.data import load_dataset
    from introspect.training import evaluate

    ckpt = next((shared_data / "weights").glob("cifar10_resnet44-*.th"))
    model = create_model("cifar_resnet44", checkpoint=ckpt)
    data = load_dataset("imagefolder", "test", root=shared_data / "cifar10-jpeg")
    acc = evaluate(model, data, batch_size=500)["accuracy"]
    assert acc == pytest.approx(0.827, abs=0.01)  # 93.1 % on the lossless originals


def test_offline_weight_downloads_fail_with_the_fix(monkeypatch, tmp_path):
    """No network and no local file: a clear error that names where to put the weights,
    not a raw URLError (issue 15); no partial file is left in the hub cache."""
    import urllib.error

    import torch.hub

    import introspect.models as models

    def offline(url, dst, *a, **k):
        open(dst, "wb").write(b"partial")
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("INTROSPECT_WEIGHTS", str(tmp_path / "none"))
    monkeypatch.setenv("INTROSPECT_DATA", str(tmp_path / "nodata"))
    with pytest.raises(
        FileNotFoundError, match=r"download .* failed \(URLError.*INTROSPECT_WEIGHTS"
    ):
        models._find_weights("cifar_resnet20", "nothing-*.th", "https://example.invalid/r20.th")
    assert not list((tmp_path / "hub").rglob("*.th"))

    import timm

    def no_hub(name, pretrained=False, **kw):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(name, pretrained=False, **kw)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", no_hub)
    with pytest.raises(FileNotFoundError, match="Offline.*pretrained=False"):
        create_model("timm:resnet18", pretrained=True)


def test_a_module_where_a_recipe_name_is_expected_says_what_to_do():
    from introspect.recipes import recipe

    with pytest.raises(TypeError, match=r"got Linear.*introspect.Study\(model="):
        recipe(torch.nn.Linear(2, 2))


def test_recipes_say_what_they_miss_on_this_machine(tmp_path, monkeypatch):
    """Menus mark recipes whose data or weights are absent (issue 15); nothing is fetched."""
    monkeypatch.setenv("INTROSPECT_DATA", str(tmp_path / "nodata"))
    monkeypatch.delenv("INTROSPECT_WEIGHTS", raising=False)
    from introspect.recipes import recipe_missing
    from introspect_widgets.panels import CapturePanel

    assert recipe_missing("small_cnn@digits", tmp_path) is None  # embedded data
    why = recipe_missing("mnist_cnn", tmp_path)
    assert "mnist under" in why and "mnist_cnn_pytorch_examples_net_*.pt" in why
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "mnist_cnn_pytorch_examples_net_c3477c07.pt").write_bytes(b"")
    assert recipe_missing("mnist_cnn", tmp_path) is None
    labels = [lab for lab, _ in CapturePanel(data_root=str(tmp_path / "none")).model_select.options]
    assert any("mnist_cnn  (recipe" in lab and "[unavailable: needs mnist" in lab for lab in labels)
    assert any(lab.startswith("small_cnn@digits") and "unavailable" not in lab for lab in labels)
