"""The papers' models, written so their published checkpoints load as they are."""

from __future__ import annotations

from collections import OrderedDict

import torch.nn.functional as F
from torch import nn

from ._base import IntrospectableModel, Normalize

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class MnistCNN(IntrospectableModel):
    """The PyTorch MNIST example CNN of 2019 (the library-network paper's CNN).

    conv1 1->20 5x5, ReLU, max-pool 2, conv2 20->50 5x5, ReLU, max-pool 2, fc1 800->500,
    ReLU, fc2 500->10; inputs (x - 0.1307) / 0.3081.

    Aliases are where the paper's authors hooked (their code, ``giscard88/hypothesis-building``,
    registers forward hooks on the modules ``conv1``, ``conv2``, ``fc1``, ``fc2``, whose
    ReLUs and pools are functional): the *pre-activation, pre-pool* outputs.

    ======  ==========  ======================  =========================================
    alias   path        values per input        post-activation point (its own path)
    ======  ==========  ======================  =========================================
    CN1     ``conv1``   20 x 24 x 24 = 11,520   ``relu1`` (same size), ``pool1`` (2,880)
    CN2     ``conv2``   50 x 8 x 8 = 3,200      ``relu2`` (same size), ``pool2`` (800)
    FC1     ``fc1``     500                     ``relu3`` (500)
    FC2     ``fc2``     10 (the logits)         --
    ======  ==========  ======================  =========================================

    Until issue 9 the aliases pointed at ``pool1``, ``pool2``, ``relu3``; name those paths
    to get the post-ReLU (and pooled) patterns.
    """

    def __init__(self, num_classes=10, in_channels=1, mean=MNIST_MEAN, std=MNIST_STD):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(in_channels, 20, 5, 1)
        self.relu1, self.pool1 = nn.ReLU(), nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(20, 50, 5, 1)
        self.relu2, self.pool2 = nn.ReLU(), nn.MaxPool2d(2, 2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(4 * 4 * 50, 500)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(500, num_classes)
        self.layer_aliases = OrderedDict(CN1="conv1", CN2="conv2", FC1="fc1", FC2="fc2")
        self.input_size, self.num_classes, self.classifier_path = (
            (in_channels, 28, 28),
            num_classes,
            "fc2",
        )

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(self.normalize(x))))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))


def _init_weights(model: nn.Module, init: str) -> None:
    """``"torch"``: PyTorch's default initialisation, left as it is. ``"glorot"``: TensorFlow
    1.x's default for ``tf.layers.dense`` / ``conv2d`` (Pardo et al. used TF 1.14): Glorot
    (Xavier) uniform weights, zero biases, on every dense and convolutional layer."""
    if init == "torch":
        return
    if init != "glorot":
        raise ValueError(f"init must be 'torch' or 'glorot' (TensorFlow's default); got {init!r}.")
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class Net1MLP(IntrospectableModel):
    """Pardo et al.'s Net1: ``depth`` dense ELU layers of ``width`` units, sigmoid outputs.

    Parameters
    ----------
    depth, width : int
        12 and 200 in the paper.
    dropout : float
        Drop probability (torch convention). The paper quotes TensorFlow's keep
        probability p, so pass ``1 - p``.
    init : {"torch", "glorot"}
        ``"glorot"`` is TensorFlow's default (Glorot uniform, zero biases), the paper's.
        With PyTorch's default (smaller weights: U(+-1/sqrt(fan_in))) the 12 x 200 ELU
        net on MNIST with the paper's learning rates in [0, 1e-5] is still at chance after
        its first 3,000-iteration cycle (11 % validation accuracy after 8 epochs of 422
        iterations); with ``"glorot"`` it is at 68 %, and at 91 % after three cycles.
    Aliases ``H1..H<depth>`` are the ELU outputs ``act0..``.
    """

    output = "sigmoid"

    def __init__(
        self,
        depth=12,
        width=200,
        num_classes=10,
        input_size=(1, 28, 28),
        dropout=0.0,
        mean=(0.0,),
        std=(1.0,),
        init="torch",
    ):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.flatten = nn.Flatten()
        n_in = 1
        for s in input_size:
            n_in *= s
        self.layer_aliases = OrderedDict()
        for i in range(depth):
            self.add_module(f"fc{i}", nn.Linear(n_in if i == 0 else width, width))
            self.add_module(f"act{i}", nn.ELU())
            self.add_module(f"drop{i}", nn.Dropout(dropout))
            self.layer_aliases[f"H{i + 1}"] = f"act{i}"
        self.out = nn.Linear(width, num_classes)
        self.depth = depth
        self.input_size, self.num_classes, self.classifier_path = (
            tuple(input_size),
            num_classes,
            "out",
        )
        _init_weights(self, init)

    def forward(self, x):
        x = self.flatten(self.normalize(x))
        for i in range(self.depth):
            x = getattr(self, f"drop{i}")(getattr(self, f"act{i}")(getattr(self, f"fc{i}")(x)))
        return self.out(x)


class Net2AllConv(IntrospectableModel):
    """Pardo et al.'s Net2: an all-convolutional CIFAR-10 net with a dense ELU head.

    Convolutions (3x3, ELU, padding 1): ``c1`` x2 then stride 2, ``c2`` x2 then stride 2,
    one more ``c2``; global average; dense ELU layers ``dense``; sigmoid outputs. Only the
    dense layers are introspected: aliases ``D1..Dn`` are their ELU outputs. ``init`` as
    for :class:`Net1MLP` (``"glorot"``: TensorFlow's default, the paper's).
    """

    output = "sigmoid"

    def __init__(
        self,
        num_classes=10,
        input_size=(3, 32, 32),
        channels=(96, 192),
        dense=(512, 512, 512),
        dropout=0.0,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        init="torch",
    ):
        super().__init__()
        c_in = input_size[0]
        c1, c2 = channels
        self.normalize = Normalize(mean[:c_in], std[:c_in])
        spec = [
            (c_in, c1, 1),
            (c1, c1, 1),
            (c1, c1, 2),
            (c1, c2, 1),
            (c2, c2, 1),
            (c2, c2, 2),
            (c2, c2, 1),
        ]
        layers = []
        for a, b, s in spec:
            layers += [nn.Conv2d(a, b, 3, s, 1), nn.ELU()]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.layer_aliases = OrderedDict()
        n = c2
        self.n_dense = len(dense)
        for i, w in enumerate(dense):
            self.add_module(f"fc{i}", nn.Linear(n, w))
            self.add_module(f"act{i}", nn.ELU())
            self.add_module(f"drop{i}", nn.Dropout(dropout))
            self.layer_aliases[f"D{i + 1}"] = f"act{i}"
            n = w
        self.out = nn.Linear(n, num_classes)
        self.input_size, self.num_classes, self.classifier_path = (
            tuple(input_size),
            num_classes,
            "out",
        )
        _init_weights(self, init)

    def forward(self, x):
        x = self.flatten(self.pool(self.features(self.normalize(x))))
        for i in range(self.n_dense):
            x = getattr(self, f"drop{i}")(getattr(self, f"act{i}")(getattr(self, f"fc{i}")(x)))
        return self.out(x)


class _PadShortcut(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad the channels (no parameters)."""

    def __init__(self, planes):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = (
            _PadShortcut(planes) if stride != 1 or in_planes != planes else nn.Identity()
        )
        self.relu = nn.ReLU()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(IntrospectableModel):
    """He et al.'s CIFAR ResNet (option A) in the layout of the akamaster checkpoints.

    Stem conv 3->16 + BN + ReLU, stages ``layer1..3`` of widths 16/32/64 with n
    BasicBlocks each, global average pool, ``linear`` 64->10. Inputs are normalised with
    ImageNet's mean/std, as the checkpoints were trained.

    Aliases are where the library paper's authors hooked their ResNet44
    (``giscard88/hypothesis-building`` hooks ``conv1``, ``layer1..3`` and ``linear``):
    ``CN1`` = ``conv1``, the raw stem convolution *before* batch norm and ReLU
    (16 x 32 x 32 values; Table 1's CN1 thetas 0.18-0.34 only fit there: after BN + ReLU
    the least similar pair of 300 CIFAR-10 training images still has a cosine similarity
    of 0.46, so each of those thetas builds a 1-node library, while at ``conv1`` they
    build 34-133 nodes from the same images); ``CL1..CL3`` = ``layer1..3`` (block outputs after
    batch norm, the shortcut and ReLU); ``FC`` = ``linear`` (the logits). The stem's
    post-BN-ReLU output, which ``CN1`` named until issue 9, is the path ``relu``
    (``bn1`` is post-BN, pre-ReLU).
    """

    def __init__(self, n_blocks=7, num_classes=10, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        planes_in = 16
        for i, (planes, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
            blocks = []
            for j in range(n_blocks):
                blocks.append(BasicBlock(planes_in, planes, stride if j == 0 else 1))
                planes_in = planes
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(64, num_classes)
        self.layer_aliases = OrderedDict(
            CN1="conv1", CL1="layer1", CL2="layer2", CL3="layer3", FC="linear"
        )
        self.input_size, self.num_classes, self.classifier_path = (3, 32, 32), num_classes, "linear"
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(self.flatten(self.pool(x)))


class SmallCNN(IntrospectableModel):
    """A four-block CNN that trains in seconds on CPU (the ``quick`` profile's model).

    Blocks ``block1..block4`` are conv 3x3 + BN + ReLU of ``widths`` channels, with a 2x2
    max-pool between consecutive blocks; global average pool; ``fc``. Aliases
    ``CL1..CL4`` are the block outputs (feature maps at each block's resolution).
    """

    def __init__(
        self,
        in_channels=1,
        num_classes=10,
        widths=(8, 16, 32, 64),
        image_size=16,
        mean=None,
        std=None,
    ):
        super().__init__()
        mean = mean if mean is not None else (0.5,) * in_channels
        std = std if std is not None else (0.5,) * in_channels
        self.normalize = Normalize(mean, std)
        c = in_channels
        self.layer_aliases = OrderedDict()
        for i, w in enumerate(widths):
            self.add_module(
                f"block{i + 1}",
                nn.Sequential(nn.Conv2d(c, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()),
            )
            if i < len(widths) - 1:
                self.add_module(f"pool{i + 1}", nn.MaxPool2d(2))
            self.layer_aliases[f"CL{i + 1}"] = f"block{i + 1}"
            c = w
        self.n_blocks = len(widths)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, num_classes)
        self.layer_aliases["FC"] = "fc"
        self.input_size = (in_channels, image_size, image_size)
        self.num_classes, self.classifier_path = num_classes, "fc"

    def forward(self, x):
        x = self.normalize(x)
        for i in range(self.n_blocks):
            x = getattr(self, f"block{i + 1}")(x)
            if i < self.n_blocks - 1:
                x = getattr(self, f"pool{i + 1}")(x)
        return self.fc(self.flatten(self.gap(x)))
