"""Published MNIST models with normally and adversarially trained weights.

Two architectures, each with a clean and a PGD-trained checkpoint, used to compare the
class activation manifolds of a random, a normal and a robust network (Rajesh thesis,
``manifolds.adversarial_training``). Both take images in [0, 1] without normalisation,
as they were trained, and their layer names match the checkpoints so the files load
as they are.

Registered names (``pretrained=True`` finds the file in ``$INTROSPECT_WEIGHTS`` or
``<data root>/weights``; ``pretrained=False`` gives a randomly initialised copy):

===========================================  ==========================================
``advertorch_lenet5_clntrained``             advertorch's LeNet5, clean training
``advertorch_lenet5_advtrained``             the same, L-inf PGD training (eps 0.3)
``kolter_madry_cnn``                         Kolter & Madry tutorial CNN, clean
``kolter_madry_cnn_robust``                  the same, PGD training
===========================================  ==========================================
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ._base import IntrospectableModel

__all__ = ["AdvertorchLeNet5", "KolterMadryCNN", "MNIST_ZOO", "register"]


class AdvertorchLeNet5(IntrospectableModel):
    """advertorch's MNIST LeNet5 (``advertorch.test_utils.LeNet5``).

    conv1 1->32 3x3 pad 1, ReLU, max-pool 2, conv2 32->64 3x3 pad 1, ReLU, max-pool 2,
    linear1 3136->200, ReLU, linear2 200->10; inputs in [0, 1], no normalisation.
    Aliases: ``CN1`` = ``maxpool1``, ``CN2`` = ``maxpool2``, ``FC1`` = ``relu3`` (the
    200-d penultimate representation), ``FC2`` = ``linear2`` (logits).
    """

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.relu1, self.maxpool1 = nn.ReLU(), nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.relu2, self.maxpool2 = nn.ReLU(), nn.MaxPool2d(2, 2)
        self.flatten = nn.Flatten()
        self.linear1 = nn.Linear(7 * 7 * 64, 200)
        self.relu3 = nn.ReLU()
        self.linear2 = nn.Linear(200, num_classes)
        self.layer_aliases = OrderedDict(CN1="maxpool1", CN2="maxpool2", FC1="relu3", FC2="linear2")
        self.input_size = (in_channels, 28, 28)
        self.num_classes, self.classifier_path = num_classes, "linear2"

    def forward(self, x):
        x = self.maxpool1(self.relu1(self.conv1(x)))
        x = self.maxpool2(self.relu2(self.conv2(x)))
        return self.linear2(self.relu3(self.linear1(self.flatten(x))))


class KolterMadryCNN(IntrospectableModel):
    """The CNN of Kolter & Madry's adversarial-robustness tutorial (``model_cnn``).

    A sequence whose module names are the checkpoint's indices: ``0`` conv 1->32,
    ``2`` conv 32->32 stride 2, ``4`` conv 32->64, ``6`` conv 64->64 stride 2 (3x3,
    padding 1, a ReLU after each at ``1, 3, 5, 7``), ``8`` flatten, ``9`` linear
    3136->100, ``10`` ReLU, ``11`` linear 100->10. Inputs in [0, 1], no normalisation.
    Aliases: ``CN1..CN4`` = ``1, 3, 5, 7``, ``FC1`` = ``10`` (the 100-d penultimate
    representation), ``FC2`` = ``11`` (logits).
    """

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        layers = [
            nn.Conv2d(in_channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1, stride=2),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1, stride=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(7 * 7 * 64, 100),
            nn.ReLU(),
            nn.Linear(100, num_classes),
        ]
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)
        self.n_layers = len(layers)
        self.layer_aliases = OrderedDict(CN1="1", CN2="3", CN3="5", CN4="7", FC1="10", FC2="11")
        self.input_size = (in_channels, 28, 28)
        self.num_classes, self.classifier_path = num_classes, "11"

    def forward(self, x):
        for i in range(self.n_layers):
            x = getattr(self, str(i))(x)
        return x


# name -> (factory, weight-file glob under <data root>/weights)
MNIST_ZOO = {
    "advertorch_lenet5_clntrained": (AdvertorchLeNet5, "advertorch_mnist_lenet5_clntrained.pt"),
    "advertorch_lenet5_advtrained": (AdvertorchLeNet5, "advertorch_mnist_lenet5_advtrained.pt"),
    "kolter_madry_cnn": (KolterMadryCNN, "kolter_madry_tutorial_model_cnn.pt"),
    "kolter_madry_cnn_robust": (KolterMadryCNN, "kolter_madry_tutorial_model_cnn_robust.pt"),
}


def register() -> None:
    """Register the models of :data:`MNIST_ZOO` with :func:`introspect.models.create_model`.

    Idempotent; ``introspect.models`` calls it on import.
    """
    from . import register_model

    for name, (factory, glob) in MNIST_ZOO.items():
        register_model(name, factory, glob)
