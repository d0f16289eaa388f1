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


def test_an_interrupted_run_resumes_to_the_weights_and_history_of_an_uninterrupted_one(
    data, tmp_path
):
    train, val = data
    kw = dict(
        epochs=5, batch_size=64, lr=3e-3, loss="mse", patience=10, noise_sigma_max=0.3,
        clr=dict(base_lr=1e-4, max_lr=3e-3, step_size=20, max_lr_decay=0.9), progress=False,
    )  # fmt: skip

    def net():
        torch.manual_seed(0)
        return create_model("net1_mlp", depth=2, width=32, dropout=0.2, input_size=(1, 8, 8))

    whole = net()
    want = fit_classifier(whole, train, val, **kw)

    def stop_after_2(epoch, model, history):
        if epoch == 2:
            raise KeyboardInterrupt

    ck = tmp_path / "resume.pt"
    with pytest.raises(KeyboardInterrupt):
        fit_classifier(net(), train, val, resume=ck, callback=stop_after_2, **kw)
    epochs_seen = []
    resumed = net()
    got = fit_classifier(
        resumed, train, val, resume=ck, callback=lambda e, m, h: epochs_seen.append(e), **kw
    )
    # epochs 0 and 1 were checkpointed; epoch 2 was interrupted in its callback: run again
    assert epochs_seen == [2, 3, 4]
    assert got == want
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # a finished checkpoint returns at once, with the same model and history
    again = net()
    assert fit_classifier(again, train, val, resume=ck, callback=stop_after_2, **kw) == want
    torch.testing.assert_close(again(val.tensors()[0]), whole(val.tensors()[0]))
    with pytest.raises(ValueError, match="another training run"):
        fit_classifier(net(), train, val, resume=ck, **{**kw, "batch_size": 32})


def test_trained_model_resumes_an_interrupted_training_with_its_snapshots(tmp_path, monkeypatch):
    from introspect import pipeline

    spec = dict(
        dataset="digits", image_size=8, channels=1, snapshot_every=1,
        model_kwargs={"depth": 2, "width": 16, "input_size": (1, 8, 8), "dropout": 0.1},
        train=dict(epochs=4, batch_size=64, lr=3e-3, loss="mse"), progress=False,
    )  # fmt: skip
    whole = pipeline.trained_model("net1_mlp", workdir=tmp_path / "a", **spec)
    real_fit = pipeline.fit_classifier

    def interrupted_fit(*args, callback, **kwargs):
        def cb(epoch, model, history):
            callback(epoch, model, history)
            if epoch == 1:
                raise KeyboardInterrupt

        return real_fit(*args, callback=cb, **kwargs)

    monkeypatch.setattr(pipeline, "fit_classifier", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        pipeline.trained_model("net1_mlp", workdir=tmp_path / "b", **spec)
    assert len(list((tmp_path / "b" / "train").glob("*/resume.pt"))) == 1
    monkeypatch.setattr(pipeline, "fit_classifier", real_fit)
    resumed = pipeline.trained_model("net1_mlp", workdir=tmp_path / "b", **spec)
    assert resumed.history_ == whole.history_
    assert [s["epoch"] for s in resumed.snapshots_] == [-1, 0, 1, 2, 3]
    for a, b in zip(whole.snapshots_, resumed.snapshots_, strict=True):
        for k in a["state_dict"]:
            torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=0)
    # the result is complete: the resume files are gone
    assert not list((tmp_path / "b" / "train").glob("*/resume.pt"))
    assert not list((tmp_path / "b" / "train").glob("*/snapshots"))


def test_cli_train_trains_a_recipe_once_into_the_workdir(tmp_path, monkeypatch, capsys):
    from introspect import pipeline
    from introspect.cli import main

    argv = ["train", "--recipe", "net1_mlp@digits", "--workdir", str(tmp_path)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "epochs trained" in first and "test accuracy" in first

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(pipeline, "fit_classifier", no_training)
    assert main(argv) == 0  # the second run finds the trained model
    assert capsys.readouterr().out.splitlines()[-1] == first.splitlines()[-1]
    with pytest.raises(SystemExit, match="nothing to train"):
        main(["train", "--recipe", "mnist_cnn", "--workdir", str(tmp_path)])
