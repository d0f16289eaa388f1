import numpy as np
import pytest
import torch

from introspect.data import ArrayDataset, balanced_indices, load_dataset, subset_per_class


def test_digits_splits_are_fixed_disjoint_and_stratified():
    parts = {s: load_dataset("digits", s) for s in ("train", "val", "test")}
    sizes = {s: len(d) for s, d in parts.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["train"] == 1078 and sizes["val"] == 359 and sizes["test"] == 360
    # images are real 8x8 digits in [0, 1] and no image is in two splits
    x_tr, _ = parts["train"].tensors()
    x_te, _ = parts["test"].tensors()
    assert x_tr.shape[1:] == (1, 8, 8) and 0 <= x_tr.min() and x_tr.max() <= 1
    flat_tr = {tuple(r) for r in x_tr.flatten(1).numpy().round(4)}
    overlap = sum(tuple(r) in flat_tr for r in x_te.flatten(1).numpy().round(4))
    assert overlap <= 2  # the digits set holds a few exact duplicate images
    counts = np.bincount(parts["test"].targets, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    again = load_dataset("digits", "train")
    assert torch.equal(again.tensors()[0], x_tr)


def test_resize_and_channels():
    ds = load_dataset("digits", "test", image_size=28, channels=3)
    x, y = ds[0]
    assert x.shape == (3, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert y == int(ds.targets[0])


def test_n_per_class_is_balanced_and_seeded():
    ds = load_dataset("digits", "train", n_per_class=20, seed=3)
    assert len(ds) == 200 and np.all(np.bincount(ds.targets) == 20)
    again = load_dataset("digits", "train", n_per_class=20, seed=3)
    other = load_dataset("digits", "train", n_per_class=20, seed=4)
    assert np.array_equal(ds.indices, again.indices) and not np.array_equal(
        ds.indices, other.indices
    )
    with pytest.raises(ValueError, match="class .* has only"):
        balanced_indices([0, 0, 1], 2)


def test_missing_dataset_names_path_and_download_flag(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("mnist", "test", root=tmp_path)
    assert str(tmp_path) in str(err.value) and "download=True" in str(err.value)
    with pytest.raises(ValueError, match="available"):
        load_dataset("nope")
    with pytest.raises(FileNotFoundError, match="ImageNet"):
        load_dataset("imagenet", "val", root=tmp_path)


def test_array_dataset_checks_shapes():
    with pytest.raises(ValueError, match="differ in length"):
        ArrayDataset(torch.rand(3, 1, 4, 4), torch.zeros(2))
    ds = ArrayDataset(torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2]))
    sub = subset_per_class(ds, 1)
    assert len(sub) == 3 and sorted(sub.targets) == [0, 1, 2]


@pytest.mark.realdata
def test_real_loaders(shared_data):
    mnist = load_dataset("mnist", "test", root=shared_data)
    assert len(mnist) == 10000 and mnist[0][0].shape == (1, 28, 28) and mnist[0][1] == 7
    cifar = load_dataset("imagefolder", "test", root=shared_data / "cifar10-jpeg", n_per_class=5)
    assert len(cifar) == 50 and cifar.classes[0] == "airplane" and cifar[0][0].shape == (3, 32, 32)
    inet = load_dataset("imagefolder", root=shared_data / "imagenet-sample", image_size=224)
    assert inet[0][0].shape == (3, 224, 224)
    from PIL import Image

    from introspect.models import eval_transform

    # the photos through torchvision ResNet50's eval transform: 256 on the shorter side,
    # the central 224 x 224, in [0, 1]; the crop is the centre of the resized photo
    tf = eval_transform("resnet50.tv_in1k")
    crop = load_dataset("imagefolder", root=shared_data / "imagenet-sample", transform=tf)
    x = crop[0][0]
    assert x.shape == (3, 224, 224) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    with Image.open(crop.samples[0][0]) as img:
        w, h = img.size
        s = 256 / min(w, h)
        big = img.convert("RGB").resize((round(w * s), round(h * s)), Image.BILINEAR)
    W, H = big.size
    left, top = round((W - 224) / 2), round((H - 224) / 2)
    ref = np.asarray(big.crop((left, top, left + 224, top + 224)), np.float32) / 255
    assert np.abs(x.permute(1, 2, 0).numpy() - ref).mean() < 0.02
