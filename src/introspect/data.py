"""Datasets: the embedded default (scikit-learn's digits) and real loaders.

Every dataset yields ``(image, label)`` with the image a float tensor of shape
``(C, H, W)`` in ``[0, 1]``; normalisation belongs to the model, never to the data,
so that attacks work in pixel space.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ._utils import default_data_root

__all__ = [
    "ArrayDataset",
    "ImageDataset",
    "DATASETS",
    "load_dataset",
    "subset_per_class",
    "balanced_indices",
]

DATASETS = ("digits", "mnist", "cifar10", "cifar100", "svhn", "imagefolder", "imagenet")
_DIGITS_SPLITS = {"train": 0, "val": 1, "test": 2}


class ImageDataset(Dataset):
    """Base class: a dataset of images in ``[0, 1]`` with ``classes`` and ``targets``.

    Subclasses implement ``__len__`` and ``_load(i) -> (Tensor (C, H, W), int)``; this
    class applies the optional resize and channel conversion so every loader behaves
    the same.
    """

    classes: list[str]
    targets: np.ndarray
    image_size: int | None = None
    channels: int | None = None
    transform = None  # file-backed loaders: PIL image -> (C, H, W) in [0, 1]
    name: str = "dataset"

    def _load(self, i: int) -> tuple[torch.Tensor, int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self._load(int(i))
        return _convert(x, self.image_size, self.channels), int(y)

    def tensors(self, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """All images and labels stacked: ``X`` of shape (N, C, H, W), ``y`` of shape (N,)."""
        xs, ys = [], []
        for start in range(0, len(self), batch_size):
            items = [self[i] for i in range(start, min(start + batch_size, len(self)))]
            xs.append(torch.stack([x for x, _ in items]))
            ys.append(torch.tensor([y for _, y in items], dtype=torch.long))
        if not xs:
            raise ValueError(f"{self.name} is empty: there are no images to stack.")
        return torch.cat(xs), torch.cat(ys)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, n={len(self)}, classes={len(self.classes)})"
        )


class ArrayDataset(ImageDataset):
    """Images already in memory.

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W)
        Values in ``[0, 1]``.
    labels : Tensor of shape (N,)
    classes : list of str, optional
        Class names; defaults to ``"0" .. str(max label)``.
    """

    def __init__(self, images, labels, classes=None, name="arrays", image_size=None, channels=None):
        images = torch.as_tensor(images, dtype=torch.float32)
        labels = torch.as_tensor(labels, dtype=torch.long)
        if images.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W); got {tuple(images.shape)}.")
        if len(images) != len(labels):
            raise ValueError(
                f"images and labels differ in length: {len(images)} images, {len(labels)} labels."
            )
        self.images, self.labels = images, labels
        self.targets = labels.numpy().astype(np.int64)
        n_cls = int(labels.max()) + 1 if len(labels) else 0
        self.classes = list(classes) if classes is not None else [str(i) for i in range(n_cls)]
        self.name, self.image_size, self.channels = name, image_size, channels

    def __len__(self) -> int:
        return len(self.images)

    def _load(self, i):
        return self.images[i], int(self.labels[i])

    def tensors(self, batch_size: int = 512):
        if self.image_size is None and self.channels is None:
            return self.images, self.labels
        return super().tensors(batch_size)


class _Subset(ImageDataset):
    def __init__(self, base: ImageDataset, indices):
        self.base, self.indices = base, np.asarray(indices, dtype=np.int64)
        self.classes, self.targets = base.classes, base.targets[self.indices]
        self.name = base.name

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.base[int(self.indices[i])]


class _TorchvisionAdapter(ImageDataset):
    """Wraps a torchvision dataset that returns PIL images."""

    def __init__(self, ds, name, classes, targets, image_size=None, channels=None, transform=None):
        self.ds, self.name, self.classes = ds, name, list(classes)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.image_size, self.channels, self.transform = image_size, channels, transform

    def __len__(self):
        return len(self.ds)

    def _load(self, i):
        img, y = self.ds[i]
        return (self.transform or _pil_to_tensor)(img), y


def _pil_to_tensor(img) -> torch.Tensor:
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def _convert(x: torch.Tensor, image_size, channels) -> torch.Tensor:
    """Resize / convert one image (C, H, W) or a batch (N, C, H, W)."""
    if x.ndim == 3:
        return _convert(x[None], image_size, channels)[0]
    if channels is not None and x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1).clone()
        elif channels == 1 and x.shape[1] == 3:
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            x = (x * w).sum(1, keepdim=True)
        else:
            raise ValueError(f"cannot convert {x.shape[1]} channels to {channels}.")
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if tuple(x.shape[2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    return x


def balanced_indices(targets, n_per_class: int, seed: int = 0) -> np.ndarray:
    """Indices of a seeded class-balanced subset, ``n_per_class`` per class, in data order.

    Raises when a class has fewer than ``n_per_class`` examples (it names the class).
    """
    targets = np.asarray(targets)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        if len(idx) < n_per_class:
            raise ValueError(
                f"class {c} has only {len(idx)} examples; n_per_class={n_per_class} is too many."
            )
        picked.append(rng.choice(idx, size=n_per_class, replace=False))
    return np.sort(np.concatenate(picked))


def subset_per_class(dataset: ImageDataset, n_per_class: int, seed: int = 0) -> ImageDataset:
    """A seeded, class-balanced subset of ``dataset`` (same classes and image format)."""
    return _Subset(dataset, balanced_indices(dataset.targets, n_per_class, seed))


def _digits(split: str) -> ArrayDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in _DIGITS_SPLITS:
        raise ValueError(f"digits has splits {sorted(_DIGITS_SPLITS)}; got split={split!r}.")
    d = load_digits()
    idx = np.arange(len(d.target))
    # Fixed stratified 60/20/20 split: the same on every machine and every run.
    tr, rest = train_test_split(idx, test_size=0.4, stratify=d.target, random_state=0)
    va, te = train_test_split(rest, test_size=0.5, stratify=d.target[rest], random_state=0)
    part = np.sort((tr, va, te)[_DIGITS_SPLITS[split]])
    images = torch.from_numpy(d.images[part].astype(np.float32) / 16.0)[:, None]
    labels = torch.from_numpy(d.target[part].astype(np.int64))
    return ArrayDataset(images, labels, classes=[str(i) for i in range(10)], name="digits")


def _missing(name: str, path: Path, hint: str = "") -> FileNotFoundError:
    return FileNotFoundError(
        f"{name} was not found under {path}. Pass download=True to fetch it, or root=... "
        f"(or set $INTROSPECT_DATA) to point at an existing copy.{hint}"
    )


def _torchvision(name: str, split: str, root: Path, download: bool):
    import torchvision.datasets as tvd

    train = split == "train"
    if split not in ("train", "val", "test"):
        raise ValueError(
            f"{name} has splits 'train' and 'test' ('val' means 'test'); got {split!r}."
        )
    try:
        if name == "mnist":
            ds = tvd.MNIST(root, train=train, download=download)
            return ds, ds.classes, ds.targets
        if name == "cifar10":
            ds = tvd.CIFAR10(root, train=train, download=download)
            return ds, ds.classes, ds.targets
        if name == "cifar100":
            ds = tvd.CIFAR100(root, train=train, download=download)
            return ds, ds.classes, ds.targets
        if name == "svhn":
            ds = tvd.SVHN(root, split="train" if train else "test", download=download)
            return ds, [str(i) for i in range(10)], ds.labels
    except RuntimeError as err:  # torchvision says "Dataset not found or corrupted"
        hint = (
            " An ImageFolder copy also works: <root>/cifar10-jpeg/{train,test}/<class>/*.jpg "
            "with the ten CIFAR-10 class folders."
            if name == "cifar10"
            else ""
        )
        raise _missing(name, root, hint) from err
    raise AssertionError(name)


CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
# folders, under the data root, that may hold CIFAR-10 as an ImageFolder tree
_CIFAR10_FOLDERS = ("cifar10-jpeg", "cifar10")


def _cifar10_jpeg(split: str, root: Path, download: bool) -> Path | None:
    """The ImageFolder copy of CIFAR-10 to read instead of torchvision's pickles, if any.

    torchvision's files (``<root>/cifar-10-batches-py``) win when present, and so does
    ``download=True``; otherwise an ImageFolder tree of the ten classes is used.
    """
    if download or (root / "cifar-10-batches-py").is_dir():
        return None
    if split not in ("train", "val", "test"):
        raise ValueError(
            f"cifar10 has splits 'train' and 'test' ('val' means 'test'); got {split!r}."
        )
    return _cifar10_folder(split, root)


def _cifar10_folder(split: str, root: Path) -> Path | None:
    """``<root>/<cifar10-jpeg|cifar10|.>/<split>`` when it is an ImageFolder of the 10
    CIFAR-10 classes (alphabetical order = CIFAR-10's label order), else ``None``."""
    sub = "train" if split == "train" else "test"
    for base in (*(root / name for name in _CIFAR10_FOLDERS), root):
        folder = base / sub
        if folder.is_dir():
            classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
            if tuple(classes) == CIFAR10_CLASSES:
                return folder
            if base.name == _CIFAR10_FOLDERS[0]:  # the JPEG copy by name, but not CIFAR-10
                raise ValueError(
                    f"{folder} should hold one folder per CIFAR-10 class "
                    f"({', '.join(CIFAR10_CLASSES)}); found {', '.join(classes) or 'none'}. "
                    "Fix the folder or pass root=... where torchvision's cifar-10-batches-py lives."
                )
    return None


class _Folder(ImageDataset):
    def __init__(self, samples, classes, name, image_size=None, channels=None, transform=None):
        self.samples, self.classes, self.name = samples, list(classes), name
        self.targets = np.asarray([y for _, y in samples], dtype=np.int64)
        self.image_size, self.channels, self.transform = image_size, channels, transform

    def __len__(self):
        return len(self.samples)

    def _load(self, i):
        from PIL import Image

        path, y = self.samples[i]
        with Image.open(path) as img:
            return (self.transform or _pil_to_tensor)(img.convert("RGB")), y


_IMG_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff"}


def _scan_folder(root: Path, class_to_idx=None):
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise _missing("an ImageFolder tree (root/<class>/<image>)", root)
    mapping = class_to_idx or {c: i for i, c in enumerate(classes)}
    samples = []
    for c in classes:
        if c not in mapping:
            continue
        for f in sorted((root / c).iterdir()):
            if f.suffix.lower() in _IMG_EXT:
                samples.append((f, mapping[c]))
    return samples, classes


def _imagenet(split: str, root: Path):
    base = root / "imagenet" if (root / "imagenet").is_dir() else root
    folder = base / ("train" if split == "train" else "val")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"ImageNet {split} images were not found in {folder}. ImageNet cannot be downloaded "
            "automatically: place ILSVRC2012 as <root>/imagenet/{train,val}/<wnid>/*.JPEG and pass "
            "root=... (or set $INTROSPECT_DATA)."
        )
    index = _imagenet_index(base)
    wnid_to_idx = {wnid: int(i) for i, (wnid, _) in index.items()}
    samples, _ = _scan_folder(folder, wnid_to_idx)
    classes = [index[str(i)][1] for i in range(1000)]
    return samples, classes


def _imagenet_index(base: Path) -> dict:
    for cand in (base / "imagenet_class_index.json", base.parent / "imagenet_class_index.json"):
        if cand.is_file():
            return json.loads(cand.read_text())
    try:  # timm ships the 1000-class synsets
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return {
            str(i): (info.index_to_label_name(i), info.index_to_description(i)) for i in range(1000)
        }
    except Exception as err:  # pragma: no cover - depends on timm version
        raise FileNotFoundError(
            f"imagenet_class_index.json was not found in {base}; put the standard 1000-class index there."
        ) from err


def load_dataset(
    name: str,
    split: str = "train",
    root: str | Path | None = None,
    download: bool = False,
    n_per_class: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    seed: int = 0,
    transform=None,
) -> ImageDataset:
    """Load a dataset of images in ``[0, 1]``.

    Parameters
    ----------
    name : {"digits", "mnist", "cifar10", "cifar100", "svhn", "imagefolder", "imagenet"}
        ``digits`` is scikit-learn's 8x8 digits (1,797 real images, shipped with
        scikit-learn), split 60/20/20 into ``train``/``val``/``test`` by a fixed
        stratified split. The torchvision sets have ``train`` and ``test`` (``val`` is
        their test split). ``cifar10`` also reads an ImageFolder copy when torchvision's
        pickles are absent: ``root/cifar10-jpeg/{train,test}/<class>/*`` (or
        ``root/cifar10/...``, or ``root/{train,test}/<class>/*``) with the ten CIFAR-10
        class folders, whose alphabetical order is CIFAR-10's label order; pickles in
        ``root/cifar-10-batches-py`` are preferred. ``imagefolder`` reads ``root/<split>/<class>/*`` when that
        folder exists, else ``root/<class>/*``. ``imagenet`` reads ILSVRC2012
        ``{train,val}/<wnid>/*`` folders with the standard 1000-class index.
    split : str
    root : path, optional
        Where the data lives; defaults to ``$INTROSPECT_DATA`` then ``~/.cache/introspect``.
    download : bool
        Let torchvision download MNIST / CIFAR / SVHN into ``root``.
    n_per_class : int, optional
        A seeded, class-balanced subset (the telescope paper uses 50 per class).
    image_size : int or (int, int), optional
        Resize (bilinear) to this size, e.g. 28 to feed 8x8 digits to an MNIST model.
        This squashes the image to the size, whatever its aspect ratio: for photographs
        (ImageNet) pass ``transform`` instead.
    channels : int, optional
        Convert to 1 (luminance) or 3 (replicated grey) channels.
    seed : int
        Seed of the class-balanced subset.
    transform : callable, optional
        For the file-backed sets (torchvision's, ``imagefolder``, ``imagenet``): turns
        each PIL image into a float tensor (C, H, W) in [0, 1], in place of the plain
        conversion. For ImageNet use the weights' own evaluation transform
        (``introspect.models.eval_transform("resnet50.tv_in1k")``: resize of the
        shorter side, centre crop, the weights' interpolation); ``image_size`` still
        applies after it when given.

    Returns
    -------
    ImageDataset
        Items ``(x, y)``: ``x`` float tensor (C, H, W) in [0, 1], ``y`` int; with
        ``classes`` and ``targets``.
    """
    name = name.lower()
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}.")
    root_path = Path(root).expanduser() if root is not None else default_data_root()
    if name == "digits":
        if transform is not None:
            raise ValueError("digits is in memory, not PIL images: transform does not apply.")
        base = _digits(split)
        # Convert the whole (small) array once instead of image by image.
        images = _convert(base.images, image_size, channels)
        ds: ImageDataset = ArrayDataset(images, base.labels, base.classes, name="digits")
    elif name == "cifar10" and (folder := _cifar10_jpeg(split, root_path, download)):
        samples, classes = _scan_folder(folder)
        ds = _Folder(samples, classes, f"cifar10:imagefolder:{folder}", image_size, channels)
    elif name in ("mnist", "cifar10", "cifar100", "svhn"):
        tv, classes, targets = _torchvision(name, split, root_path, download)
        ds = _TorchvisionAdapter(tv, name, classes, targets, image_size, channels, transform)
    elif name == "imagefolder":
        folder = root_path / split if (root_path / split).is_dir() else root_path
        if not folder.is_dir():
            raise _missing("imagefolder", folder, " (imagefolder cannot be downloaded.)")
        samples, classes = _scan_folder(folder)
        ds = _Folder(samples, classes, f"imagefolder:{folder}", image_size, channels, transform)
    else:
        if image_size is not None and transform is None:
            import warnings

            warnings.warn(
                f"ImageNet photos of every aspect ratio are squashed to image_size={image_size} "
                "(bilinear, no crop), which is not how pretrained weights were evaluated; pass "
                "transform=introspect.models.eval_transform('<timm model name>') instead "
                "(shorter side resized, centre crop), as the timm recipes do.",
                UserWarning,
                stacklevel=2,
            )
        samples, classes = _imagenet(split, root_path)
        ds = _Folder(samples, classes, "imagenet", image_size, channels, transform)
    if len(ds) == 0:
        raise ValueError(f"{name} {split} in {root_path} holds no images.")
    if n_per_class is not None:
        ds = subset_per_class(ds, n_per_class, seed)
    return ds
