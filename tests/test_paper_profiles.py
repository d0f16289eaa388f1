"""Every ImageNet paper profile, built without running it and without downloading weights.

For each figure's ``paper`` profile that names a timm model on ImageNet: the model builds
(``pretrained=False``: timm's ``pretrained_cfg`` still describes the named weights), the
weights are the ones the paper used, the profile's layers exist in the model, the data
transform is the weights' own (shorter side resized, centre crop 224, the weights'
interpolation; mean and std in the model), and the parameters match PAPERS.md.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from introspect import recipes
from introspect.capture import resolve_target
from introspect.figures import get_figure, list_figures
from introspect.models import create_model, eval_transform


def _imagenet_specs():
    """(figure id, model spec, layers) of every ImageNet model in a paper profile."""
    out = []
    for fid in list_figures():
        params = get_figure(fid).profile("paper")
        models = params.get("models", [params["model"]] if "model" in params else [])
        for spec in models:
            if recipes.recipe(spec).get("dataset") != "imagenet":
                continue
            cfg = models[spec] if isinstance(models, dict) else {}
            layers = cfg.get("layers") or params.get("layers") or ["penultimate"]
            layers = [*layers, *cfg.get("selfintro", {}).get("layers", [])]
            out.append((fid, spec, tuple(layers)))
    return out


SPECS = _imagenet_specs()


@functools.cache
def _model(spec):
    return create_model(recipes.recipe(spec)["model"], pretrained=False)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing downloads at test time
    monkeypatch.setattr(
        torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried to download")
    )


def test_the_paper_profiles_name_imagenet_models():
    figs = {fid for fid, _, _ in SPECS}
    assert {"manifolds.dims", "manifolds.robustness", "manifolds.models"} <= figs
    assert {"telescope.fig03", "telescope.fig11"} <= figs


@pytest.mark.parametrize(("fid", "spec", "layers"), SPECS, ids=[f"{f}-{s}" for f, s, _ in SPECS])
def test_imagenet_profile_builds_with_the_weights_own_transform(fid, spec, layers):
    r = recipes.recipe(spec)
    assert r["model"].startswith("timm:") and r["pretrained"] is True
    model = _model(spec)
    cfg = model.body.pretrained_cfg
    for layer in layers:
        path, _ = resolve_target(model, layer)
        assert path in dict(model.named_modules()), (fid, spec, layer)
    # mean and std are the weights' own, inside the model
    np.testing.assert_allclose(model.normalize.mean.flatten(), cfg["mean"])
    np.testing.assert_allclose(model.normalize.std.flatten(), cfg["std"])
    # the transform: shorter side to 224 / crop_pct, centre crop 224, no squash, no normalise
    tf = recipes.recipe_transform(spec)
    steps = tf.transform.transforms
    names = [type(t).__name__ for t in steps]
    assert names[:2] == ["Resize", "CenterCrop"], names
    resize, crop = steps[0], steps[1]
    assert isinstance(resize.size, int) or len(resize.size) == 1  # shorter side only
    side = resize.size if isinstance(resize.size, int) else resize.size[0]
    assert side == int(np.floor(224 / cfg["crop_pct"]))
    assert resize.interpolation.value == cfg["interpolation"]
    assert resize.antialias
    assert tuple(crop.size) == (224, 224)
    assert "Normalize" not in names
    assert repr(tf) == repr(model.eval_transform())


def test_manifolds_use_torchvision_resnet50_and_its_transform():
    for fid in ("manifolds.dims", "manifolds.robustness"):
        assert get_figure(fid).profile("paper")["models"] == ["timm:resnet50.tv_in1k"]
    model = _model("timm:resnet50.tv_in1k")
    assert model.weights == "resnet50.tv_in1k"
    # a bare name is timm's default weights, a different recipe and transform
    assert _model("timm:resnet50").weights == "resnet50.a1_in1k"
    tv, a1 = eval_transform("resnet50.tv_in1k"), eval_transform("timm:resnet50")
    assert tv.transform.transforms[0].size == 256  # 224 / 0.875
    assert tv.config["interpolation"] == "bilinear"
    assert a1.transform.transforms[0].size == 235  # 224 / 0.95
    assert a1.config["interpolation"] == "bicubic"
    models = get_figure("manifolds.models").profile("paper")["models"]
    assert len(models) == 4 and all(m.endswith(".tv_in1k") for m in models)
    with pytest.raises(ValueError, match="no pretrained weights"):
        eval_transform("resnet50.nope_in1k")


def test_imagenet_images_are_centre_cropped_not_squashed(tmp_path):
    from PIL import Image
    from timm.data import ImageNetInfo

    # a 400 x 200 photo: red outer quarters, green centre; a squash to 224 x 224 keeps the
    # red at the left and right edges, a resize of the shorter side + centre crop does not
    wnid = ImageNetInfo().index_to_label_name(0)
    folder = tmp_path / "imagenet" / "val" / wnid
    folder.mkdir(parents=True)
    img = np.zeros((200, 400, 3), np.uint8)
    img[:, :, 1] = 255
    img[:, :100] = img[:, 300:] = (255, 0, 0)
    Image.fromarray(img).save(folder / "a.png")
    ds = recipes.recipe_data("timm:resnet50.tv_in1k", "val", data_root=tmp_path)
    x, y = ds[0]
    assert y == 0 and x.shape == (3, 224, 224) and x.dtype == torch.float32
    # resize to 512 x 256 (red: 128 px each side), crop the central 224: all green
    assert float(x[0].max()) < 0.02 and float(x[1].min()) > 0.98
    assert "EvalTransform" in ds.cache_key["transform"]
    # the old path squashes: the red shows at the edges
    from introspect.data import load_dataset

    with pytest.warns(UserWarning, match="squashed.*eval_transform"):
        squashed = load_dataset("imagenet", "val", root=tmp_path, image_size=224)[0][0]
    assert float(squashed[0, :, 0].min()) > 0.9


def test_telescope_paper_parameters_match_papers_md():
    for fid in list_figures("telescope"):
        p = get_figure(fid).profile("paper")
        if "som_size" not in p:
            continue
        assert p["som_size"] == 20 and p["sigma"] == 10 and p["alpha"] == 0.1, fid
        assert p["som_epochs"] == 5 and p["som_batch_size"] == 10, fid
        assert p["som_batch_sizes"] == {"timm:densenet121": 50}, fid
        assert p["n_per_class"] == 50 and p["val_n_per_class"] == 50 and p["top_k"] == 10, fid
        assert p["layers"] == ["CL1", "CL2", "CL3", "CL4"], fid
    p = get_figure("telescope.fig11").profile("paper")
    assert p["models"] == ["timm:resnet18", "timm:resnet50"]
    assert p["n_images"] == 500 and p["eps"] == [1 / 255] and p["nb_iter"] == 50
    assert p["eps_iter_ratio"] == pytest.approx(2 / 100)
    four = ["timm:resnet18", "timm:resnet50", "timm:densenet121", "timm:vgg19"]
    assert get_figure("telescope.fig03").profile("paper")["models"] == four


def test_manifolds_paper_parameters_match_papers_md():
    for fid in ("manifolds.dims", "manifolds.robustness", "manifolds.models"):
        p = get_figure(fid).profile("paper")
        assert p["threshold"] == 0.95 and p["n_classes"] == 100, fid
