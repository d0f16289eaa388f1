import numpy as np
import pytest
import torch

from introspect.data import load_dataset
from introspect.models import create_model
from introspect.training import classifier_loss, evaluate, fit_classifier


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits", "train", image_size=8), load_dataset(
        "digits", "val", image_size=8
    )


def test_mlp_with_mse_and_cyclic_lr_learns_digits(data):
    train, val = data
    torch.manual_seed(0)
    model = create_model("net1_mlp", depth=2, width=64, input_size=(1, 8, 8))
    seen = []
    hist = fit_classifier(
        model,
        train,
        val,
        epochs=20,
        loss="mse",
        clr=dict(base_lr=1e-3, max_lr=1e-2, step_size=34),
        patience=5,
        progress=False,
        callback=lambda e, m, h: seen.append((e, m.training)),
    )
    assert hist["val_acc"][hist["best_epoch"]] > 0.9
    assert not model.training and all(not training for _, training in seen)
    assert len(set(np.round(hist["lr"], 6))) > 1  # the learning rate cycles
    assert evaluate(model, val)["accuracy"] == pytest.approx(hist["val_acc"][hist["best_epoch"]])


def test_training_is_seeded(data):
    train, _ = data
    outs = []
    for _ in range(2):
        torch.manual_seed(1)
        model = create_model("net1_mlp", depth=1, width=16, input_size=(1, 8, 8))
        fit_classifier(model, train, epochs=2, seed=5, progress=False, noise_sigma_max=0.3)
        outs.append(model.out.weight.detach().clone())
    assert torch.equal(outs[0], outs[1])


def test_adversarial_training_makes_a_model_more_robust(data):
    from introspect.attacks import accuracy, pgd

    train, val = data
    xv, yv = val.tensors()
    robust_acc = []
    for adversarial in (None, dict(eps=0.15, nb_iter=5, eps_iter=0.05)):
        torch.manual_seed(0)
        model = create_model("net1_mlp", depth=2, width=64, input_size=(1, 8, 8))
        fit_classifier(model, train, epochs=8, lr=3e-3, adversarial=adversarial, progress=False)
        robust_acc.append(
            accuracy(model, pgd(model, xv, yv, eps=0.15, nb_iter=10, eps_iter=0.03), yv)
        )
    assert robust_acc[1] > robust_acc[0] + 0.15


def test_losses_and_bad_options():
    logits = torch.tensor([[10.0, -10.0]])
    assert classifier_loss(logits, torch.tensor([0]), "mse") < 1e-3
    with pytest.raises(ValueError, match="loss"):
        classifier_loss(logits, torch.tensor([0]), "hinge")
    with pytest.raises(ValueError, match="val"):
        fit_classifier(
            create_model("small_cnn"), (torch.rand(4, 1, 16, 16), torch.zeros(4)), patience=2
        )


def test_confusion_matrix_counts_true_by_predicted():
    from introspect.training import confusion_matrix

    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2])
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert confusion_matrix([0], [0], n_classes=3).shape == (3, 3)
    with pytest.raises(ValueError, match="labels has 2"):
        confusion_matrix([0, 1], [0])
    with pytest.raises(TypeError, match="integers"):
        confusion_matrix([0.0], [0])
