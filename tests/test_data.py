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


def _cifar_tree(root, per_class=2):
    """A CIFAR-10-shaped ImageFolder: class k's images are filled with k / 10."""
    from PIL import Image

    from introspect.data import CIFAR10_CLASSES

    for split in ("train", "test"):
        for k, c in enumerate(CIFAR10_CLASSES):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                img = np.full((32, 32, 3), round(255 * k / 10), np.uint8)
                Image.fromarray(img).save(root / split / c / f"{i:04d}.png")


def test_cifar10_reads_an_imagefolder_copy_when_the_pickles_are_absent(tmp_path):
    _cifar_tree(tmp_path / "cifar10-jpeg")
    for root in (tmp_path, tmp_path / "cifar10-jpeg"):  # the data root, or the copy itself
        ds = load_dataset("cifar10", "train", root=root)
        assert len(ds) == 20 and ds.classes[0] == "airplane" and ds.classes[9] == "truck"
        x, y = ds[len(ds) - 1]  # labels follow the class folders: truck = 9
        assert y == 9 and x.shape == (3, 32, 32) and float(x.mean()) == pytest.approx(0.9, 0.01)
    assert len(load_dataset("cifar10", "val", root=tmp_path, n_per_class=1)) == 10
    # a folder of other classes is not mistaken for CIFAR-10; the error names what it found
    (tmp_path / "cifar10-jpeg" / "test" / "truck").rename(tmp_path / "cifar10-jpeg" / "test" / "x")
    with pytest.raises(ValueError, match="cifar10-jpeg.*one folder per CIFAR-10 class.*found.* x"):
        load_dataset("cifar10", "test", root=tmp_path)


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


@pytest.mark.realdata
def test_cifar10_reads_the_jpeg_image_folder_when_the_pickles_are_absent(shared_data, tmp_path):
    """``cifar10`` at a root with ``cifar10-jpeg/`` and no ``cifar-10-batches-py/`` is that
    ImageFolder, in CIFAR-10's labels: the k-th image of class c in the original test split
    is image 1000 c + k here (checked against lossless PNGs of test[0..19])."""
    from PIL import Image

    test = load_dataset("cifar10", "test", root=shared_data)
    assert len(test) == 10000 and test.name.startswith("cifar10")
    assert test.classes[:3] == ["airplane", "automobile", "bird"] and test.classes[9] == "truck"
    assert np.bincount(test.targets).tolist() == [1000] * 10
    assert len(load_dataset("cifar10", "train", root=shared_data)) == 50000
    x, y = test.tensors()
    seen = np.zeros(10, int)
    for f in sorted((shared_data / "foolbox-samples").glob("cifar10_*.png")):
        label = int(f.stem.split("_")[2])
        png = torch.from_numpy(np.asarray(Image.open(f).convert("RGB"), np.float32) / 255)
        dist = (x - png.permute(2, 0, 1)).abs().mean((1, 2, 3))  # JPEG q75 vs lossless
        nearest = int(dist.argmin())
        assert nearest == 1000 * label + seen[label] and y[nearest] == label
        assert dist[nearest] < 0.05 < dist.sort().values[1]
        seen[label] += 1
    assert seen.sum() == 20
    # a folder that is not CIFAR-10's classes is refused, naming what it found
    (tmp_path / "cifar10-jpeg" / "test" / "cats").mkdir(parents=True)
    with pytest.raises(ValueError, match="one folder per CIFAR-10 class.*found cats"):
        load_dataset("cifar10", "test", root=tmp_path)
