"""Shared, cached stages of the self-introspection figures (Pardo et al. 2022).

- :func:`introspector`: the fitted :class:`~introspect.selfintro.SelfIntrospector` of a
  model recipe (InfoVAE + error estimator on the training split), cached in the workdir
  (``Workdir.memo("selfintro-fit", ...)``) so fig2..fig7 share one map per model.
- :func:`mapped`: codes, estimated errors and answers of a split, cached likewise.
- :func:`training_record`: hidden states of fixed inputs at every epoch of a fresh
  training run of the recipe, plus one InfoVAE over the whole record (fig2a).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import pipeline
from ..data import subset_per_class
from ..fingerprint import dataset_fingerprint
from ..models import create_model
from ..recipes import load_recipe, recipe, recipe_data
from ..selfintro import ErrorEstimator, InfoVAE, SelfIntrospector, TrainingRecorder
from ..training import fit_classifier

__all__ = [
    "SI_PARAMS",
    "si_kwargs",
    "introspector",
    "mapped",
    "error_surface",
    "auroc_misclassified",
    "training_record",
    "class_names",
    "spec_name",
]

# Hyperparameters of the self-introspective parts shared by every figure; the paper
# profile overrides them (see each figure's PROFILES).
# Bump when the fitting code changes what a cached map would be.
_VERSION = 2

SI_PARAMS = ("vae_epochs", "vae_lr", "estimator_epochs", "estimator_lr", "fit_per_class")


def si_kwargs(params: dict) -> dict:
    return {k: params[k] for k in SI_PARAMS if k in params}


def _vae(epochs, lr, device, seed) -> InfoVAE:
    # Table 2: 3 x 200 ELU, 2-D linear bottleneck; minibatches of 128.
    return InfoVAE(
        latent_dim=2, hidden=(200, 200, 200), epochs=epochs, batch_size=128, lr=lr,
        device=device, seed=seed,
    )  # fmt: skip


def _estimator(epochs, lr, device, seed) -> ErrorEstimator:
    # Table 2: 3 x 200 ELU on z, one linear output; minibatches of 32.
    return ErrorEstimator(
        hidden=(200, 200, 200), epochs=epochs, batch_size=32, lr=lr, device=device, seed=seed
    )


def introspector(
    spec,
    *,
    workdir,
    device="cpu",
    data_root=None,
    seed=0,
    vae_epochs=100,
    vae_lr=1e-3,
    estimator_epochs=60,
    estimator_lr=1e-3,
    fit_per_class=None,
    layers=None,
) -> SelfIntrospector:
    """The recipe's model with its self-introspective map fitted on the training split.

    Returns a :class:`SelfIntrospector` whose ``model`` is the (cached) trained classifier.
    """
    model = load_recipe(spec, workdir=workdir, device=device, data_root=data_root, seed=seed)
    data = recipe_data(spec, "train", data_root=data_root, n_per_class=fit_per_class, seed=seed)
    key = dict(
        model=model.cache_key,
        data=data.cache_key,
        layers=layers,
        vae=dict(epochs=vae_epochs, lr=vae_lr),
        estimator=dict(epochs=estimator_epochs, lr=estimator_lr),
        seed=seed,
        version=_VERSION,
    )

    def fit():
        si = SelfIntrospector(
            model,
            layers,
            vae=_vae(vae_epochs, vae_lr, device, seed),
            estimator=_estimator(estimator_epochs, estimator_lr, device, seed),
            device=device,
            seed=seed,
        ).fit(data)
        si.model = None  # the classifier is cached on its own
        return si

    si = pipeline.as_workdir(workdir).memo("selfintro-fit", key, fit)
    si.model = model
    si.device = device
    si.vae_.device = device
    si.estimator_.device = device
    si.vae_.module_.to(device)
    si.estimator_.module_.to(device)
    si.cache_key = key
    return si


def mapped(si: SelfIntrospector, spec, split, *, workdir, data_root=None, seed=0, n_per_class=None):
    """Codes, estimated errors and answers of a split (cached).

    Returns
    -------
    dict with ``z`` (N, 2), ``log10_error_hat`` (N,), ``labels``, ``pred`` (N,),
    ``error`` (N,) the true ``e``, and ``accuracy``.
    """
    from ..selfintro import classifier_error

    data = recipe_data(spec, split, data_root=data_root, n_per_class=n_per_class, seed=seed)
    key = dict(si=si.cache_key, data=data.cache_key)

    def run():
        x, y = data.tensors()
        out = si.analyze(x)
        kind = si._output_kind()
        return {
            "z": out["z"].astype(np.float32),
            "log10_error_hat": out["log10_error_hat"].astype(np.float32),
            "labels": y.numpy(),
            "pred": out["pred"],
            "error": classifier_error(out["logits"], y.numpy(), kind).astype(np.float32),
            "accuracy": float((out["pred"] == y.numpy()).mean()),
        }

    return pipeline.as_workdir(workdir).memo("selfintro-map", key, run)


def error_surface(si: SelfIntrospector, extent: float = 4.0, resolution: int = 81) -> dict:
    """``log10 e_hat`` on a grid over ``[-extent, extent]^2`` (image[i, j] at y_i, x_j)."""
    g = np.linspace(-extent, extent, resolution)
    zz = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)  # x varies fastest
    img = si.estimator_.predict_log10(zz).reshape(resolution, resolution)
    return {"grid": g, "log10_error_hat": img.astype(np.float32), "extent": extent}


def auroc_misclassified(log10_error_hat, labels, pred) -> float:
    """AUROC of ``e_hat`` for telling misclassified (positive) from correct inputs."""
    from sklearn.metrics import roc_auc_score

    wrong = np.asarray(labels) != np.asarray(pred)
    if wrong.all() or not wrong.any():
        return float("nan")
    return float(roc_auc_score(wrong, np.asarray(log10_error_hat)))


def spec_name(spec) -> str:
    """A printable name of a recipe (its registry name, or ``name``/``model@dataset`` of a dict)."""
    if isinstance(spec, str):
        return spec
    r = recipe(spec)
    return str(r.get("name") or f"{r['model']}@{r.get('dataset', 'digits')}")


def class_names(spec, data_root=None) -> list[str]:
    r = recipe(spec)
    if r.get("dataset", "digits") in ("digits", "mnist"):
        return [str(i) for i in range(10)]
    return list(recipe_data(spec, "test", data_root=data_root, n_per_class=1).classes)


def training_record(
    spec,
    *,
    n_per_class,
    every,
    workdir,
    device="cpu",
    data_root=None,
    seed=0,
    vae_epochs=100,
    vae_lr=1e-3,
    **_,
) -> dict:
    """Hidden states of fixed validation inputs through the training of the model (fig2a).

    The fixed inputs are ``n_per_class`` per class of the validation data that the
    recipe's training holds out of the training split (:func:`~introspect.pipeline.
    train_val_split`): never trained on, never the test set; a fresh training run watches
    the same validation data for early stopping.

    When the recipe keeps weight snapshots (``snapshot_every`` dividing ``every``), the
    record replays the snapshots of the one cached training run, so the trajectory is
    that of the analysed model and nothing is trained twice. Otherwise the recipe's
    model is trained again from the same initialisation with a
    :class:`~introspect.selfintro.TrainingRecorder`. Records: before training, then every
    ``every`` epochs (``None``: at every snapshot the recipe keeps); one InfoVAE is
    fitted on all records together.

    Returns
    -------
    dict with ``z`` (n_records, N, 2), ``epochs`` (n_records,), ``labels`` (N,),
    ``preds`` (n_records, N), ``val_acc`` per epoch.
    """
    r = recipe(spec)
    if r.get("train") is None:
        raise ValueError(f"recipe {spec!r} is not trained here, so it has no training record")
    tr, va = _train_val(r, data_root)
    fixed = subset_per_class(va, n_per_class, seed) if n_per_class is not None else va
    fixed.cache_key = dict(
        held_out_of=r.get("dataset", "digits"), n_per_class=n_per_class, seed=seed,
        fingerprint=dataset_fingerprint(fixed),
    )  # fmt: skip
    snap = r.get("snapshot_every")
    if every is None:
        if snap is None:
            raise ValueError(
                f"recipe {spec_name(spec)!r} keeps no weight snapshots (snapshot_every), so "
                "record_every=None has no cadence to follow: pass record_every=<epochs>."
            )
        every = int(snap)
    replay = snap is not None and int(every) % int(snap) == 0
    key = dict(
        recipe=r,
        fixed=fixed.cache_key,
        every=every,
        seed=seed,
        vae=(vae_epochs, vae_lr),
        replay=replay,
        version=_VERSION,
    )

    def run():
        x, y = fixed.tensors()
        if replay:
            trained = load_recipe(
                spec, workdir=workdir, device=device, data_root=data_root, seed=seed
            )
            layers = list(trained.layer_aliases)
            rec = TrainingRecorder(x, layers, labels=y.numpy(), every=every, device=device)
            model = create_model(r["model"], **dict(r.get("model_kwargs") or {})).to(device)
            for s in trained.snapshots_:
                if s["epoch"] < 0 or s["epoch"] % int(every) == 0:
                    model.load_state_dict(s["state_dict"])
                    rec.record(s["epoch"], model.eval())
            hist = trained.history_
        else:
            torch.manual_seed(seed)
            model = create_model(r["model"], **dict(r.get("model_kwargs") or {}))
            layers = list(model.layer_aliases)
            rec = TrainingRecorder(x, layers, labels=y.numpy(), every=every, device=device)
            model.eval()
            rec.record(-1, model.to(device))
            hist = fit_classifier(
                model, tr, va, device=device, seed=seed, progress=False, callback=rec, **r["train"]
            )
        H = rec.stacked()  # (T, N, D)
        T, N, D = H.shape
        vae = _vae(vae_epochs, vae_lr, device, seed).fit(H.reshape(T * N, D))
        z = vae.encode(H.reshape(T * N, D)).reshape(T, N, 2)
        return {
            "z": z.astype(np.float32),
            "epochs": np.asarray(rec.epochs_),
            "labels": y.numpy(),
            "preds": np.stack(rec.preds_),
            "val_acc": list(hist["val_acc"]),
            "layers": layers,
            "n_units": int(D),
        }

    return pipeline.as_workdir(workdir).memo("selfintro-record", key, run)


def _train_val(r: dict, data_root):
    """The recipe's training data and its validation data, held out of the training split
    as :func:`~introspect.pipeline.trained_model` holds it out (torchvision's MNIST and
    CIFAR-10 have no validation split: their ``"val"`` is the test set)."""
    return pipeline.train_val_split(
        r.get("dataset", "digits"), data_root, r.get("image_size"), r.get("channels")
    )
