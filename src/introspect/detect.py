"""Adversarial-input detectors from every lens, the field's baselines, and their benchmark.

Each detector is a small scorer: ``fit(study)`` learns what it needs from the study's
**training** split (through the study's cached lens stages, so nothing is fitted twice),
and ``score(x)`` gives one number per input image, **higher = more suspicious**. A scorer
sees an input alone: there is no clean twin at test time.

Lens detectors (``ŷ`` is the network's answer on ``x``):

========================== ===========================================================
``library.cpl``            ``-CPL(x) = -mean_{i<j} cos(P_i(x), P_j(x))``: the layers'
                           library scores disagree (Lee 2019, Eq. 5)
``library.agreement[l]``   ``-P_l(x)[ŷ] / ||P_l(x)||``: layer ``l``'s library gives
                           the network's answer little support
``selfintro.error``        ``log10 ê(z(x))``: the introspector's estimated error of the
                           input's code (Pardo et al. 2022)
``selfintro.reconstruction`` ``||h - dec(enc(h))||^2 / (2D)``: the InfoVAE reconstructs
                           the hidden state ``h`` badly
``telescope.dclass[l]``    ``mean_j d_T(b_j(x), c_ŷ)``: torus distance of the top-k BMUs
                           ``b_j`` of layer ``l``'s code to the predicted class's centre
                           (Lee & Vijayan 2023)
``telescope.dclass``       the mean over layers of the above, each divided by the map's
                           largest torus distance
``manifolds.residual``     ``||(I - B_ŷ^T B_ŷ)(f(x) - mu_ŷ)||``: the penultimate vector
                           outside the predicted class's principal subspace (the
                           components that reach the CAM threshold)
========================== ===========================================================

Baselines (pytorch-ood, on the same model, captures and inputs; its outlier scores are
already "higher = more suspicious"): ``msp`` (-max softmax), ``energy``
(-logsumexp of the logits), ``mahalanobis`` (penultimate, shared covariance),
``mahalanobis.multi`` (sum over the study's layers of the per-layer Mahalanobis scores
on channel means), ``knn`` (distance to the k-th nearest normalised training feature)
and ``vim`` (virtual logit of the residual outside the principal subspace of the
penultimate features, minus the energy).

:meth:`introspect.Study.detect` runs them all against attacks and noise controls and
returns a :class:`DetectionTable`.

.. note:: These are detectors against **non-adaptive** attacks: the attacks do not know
   the detector. An attacker who optimises against a detector's score as well (Carlini
   & Wagner 2017, "Adversarial examples are not easily detected"; Tramer et al. 2020)
   can usually evade it, so an AUROC here is an upper bound on what the detector buys
   against an informed adversary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from . import progress as _progress
from ._estimator import NotFittedError

__all__ = [
    "Scorer",
    "Probe",
    "CPLScorer",
    "LibraryAgreementScorer",
    "SelfIntroErrorScorer",
    "ReconstructionScorer",
    "TelescopeScorer",
    "TelescopeCombinedScorer",
    "ManifoldResidualScorer",
    "MSPScorer",
    "EnergyScorer",
    "MahalanobisScorer",
    "MultiMahalanobisScorer",
    "KNNScorer",
    "ViMScorer",
    "DetectionTable",
    "detection_metrics",
    "make_detectors",
    "ATTACK_KINDS",
    "CONTROLS",
    "LENSES",
]

ATTACK_KINDS = ("pgd", "fgsm", "ifgsm_targeted", "cw", "uniform", "gaussian")
"""What :meth:`Study.detect` can run: four attacks and two noise controls."""

CONTROLS = ("uniform", "gaussian")
"""Noise controls (not attacks): every clean-correct input is a pair, flipped or not."""

LENSES = ("library", "selfintro", "telescope", "manifolds", "baseline")


# ----------------------------------------------------------------------------- inputs
class Probe:
    """Images and what the study's model says about them, computed once and shared.

    Every scorer of one benchmark step reads the same probe, so the model runs once per
    reducer and set of layers, not once per detector.

    Parameters
    ----------
    study : Study
    x : Tensor of shape (n, C, H, W)
        Images in [0, 1].
    """

    def __init__(self, study, x: torch.Tensor):
        self.study = study
        self.x = x
        self._memo: dict = {}

    def __len__(self) -> int:
        return len(self.x)

    def memo(self, key, fn: Callable):
        """``fn()`` once per ``key`` for these images."""
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def acts(self, reducer: str, layers: Sequence[str]) -> dict:
        """Reduced activations, dict layer -> ndarray (n, D).

        The first call per reducer captures every layer of the study (and ``layers``) in
        one forward pass, so the scorers that read other layers find them there.
        """
        have = self._memo.setdefault(("acts", reducer), {})
        missing = [k for k in dict.fromkeys([*self.study.layers, *layers]) if k not in have]
        if any(k not in have for k in layers):
            acts, logits = self.study.activations(self.x, reducer=reducer, layers=missing)
            have.update(acts)
            self._memo.setdefault("logits", np.asarray(logits))
        return {k: have[k] for k in layers}

    @property
    def logits(self) -> np.ndarray:
        """The model's logits, shape (n, n_classes)."""
        if "logits" not in self._memo:
            from .attacks import predict

            self._memo["logits"] = predict(
                self.study.model, self.x, self.study.batch_size, self.study.device
            ).numpy()
        return self._memo["logits"]

    @property
    def pred(self) -> np.ndarray:
        """The network's answers ``ŷ``, shape (n,)."""
        return self.logits.argmax(1)


def _probe(study, x) -> Probe:
    if isinstance(x, Probe):
        return x
    if not torch.is_tensor(x) or x.ndim != 4:
        raise ValueError(
            "score(x): x must be a tensor of images of shape (n, C, H, W) in [0, 1] "
            f"(or a Probe); got {type(x).__name__}{getattr(x, 'shape', '')}."
        )
    return Probe(study, x)


def _train_store(study, reducer: str, layers):
    if "train" not in study.datasets:
        raise ValueError("detectors are fitted on the study's train split; this study has none.")
    return study.capture(reducer, "train", layers=list(layers))


# ----------------------------------------------------------------------------- scorers
class Scorer:
    """A detector: ``fit(study)`` on the training split, ``score(x) -> (n,)``, higher =
    more suspicious. Subclasses set ``lens`` and implement ``_fit`` and ``_score``."""

    lens: str = ""
    name: str = ""

    def fit(self, study) -> Scorer:
        """Learn what the score needs from ``study``'s training split; returns self."""
        self.study_ = study
        self._fit(study)
        return self

    def score(self, x) -> np.ndarray:
        """Suspicion of each input image.

        Parameters
        ----------
        x : Tensor of shape (n, C, H, W) in [0, 1], or a :class:`Probe`

        Returns
        -------
        ndarray of shape (n,), float64; higher = more suspicious.
        """
        if getattr(self, "study_", None) is None:
            raise NotFittedError(
                f"{type(self).__name__} ({self.name}) is not fitted: call .fit(study) first."
            )
        probe = _probe(self.study_, x)
        out = np.asarray(self._score(probe), dtype=np.float64).reshape(-1)
        if out.shape != (len(probe),):  # pragma: no cover - a scorer bug
            raise RuntimeError(f"{self.name} returned {out.shape} scores for {len(probe)} inputs.")
        return out

    def _fit(self, study) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, probe: Probe) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _library_scores(probe: Probe, stack, layers, key) -> dict:
    H = probe.acts("flatten", layers)
    return probe.memo(("library", key), lambda: stack.predict_scores(H))


class CPLScorer(Scorer):
    """``-CPL(x)``: minus the mean pairwise cosine similarity of the layers' library
    scores (:func:`introspect.library.cpl`); low CPL is suspicious (Lee 2019).

    Parameters
    ----------
    theta : float or dict layer -> float
    top_k : int
    layers : list of str, optional
        At least two (default: the study's layers).
    """

    lens = "library"

    def __init__(self, theta=0.9, top_k: int = 3, layers=None):
        self.theta, self.top_k, self.layers = theta, top_k, layers
        self.name = "library.cpl"

    def _fit(self, study):
        self.layers_ = list(self.layers or study.layers)
        if len(self.layers_) < 2:
            raise ValueError("library.cpl compares layers: give it at least two layers.")
        self.stack_ = study.library(self.theta, self.top_k, layers=self.layers_).stack

    def _score(self, probe):
        key = (str(self.theta), self.top_k, tuple(self.layers_))
        scores = _library_scores(probe, self.stack_, self.layers_, key)
        return -self.stack_.cpl(None, scores=scores)


class LibraryAgreementScorer(Scorer):
    """``-P_l(x)[ŷ] / ||P_l(x)||``: how little layer ``l``'s library network supports the
    network's answer ``ŷ`` (the per-input form of the library's agreement).

    Parameters
    ----------
    layer : str
    theta, top_k, layers
        As for :class:`CPLScorer` (the stack of ``layers`` is shared with it).
    """

    lens = "library"

    def __init__(self, layer: str, theta=0.9, top_k: int = 3, layers=None):
        self.layer, self.theta, self.top_k, self.layers = layer, theta, top_k, layers
        self.name = f"library.agreement[{layer}]"

    def _fit(self, study):
        self.layers_ = list(self.layers or study.layers)
        if self.layer not in self.layers_:
            self.layers_.append(self.layer)
        self.stack_ = study.library(self.theta, self.top_k, layers=self.layers_).stack

    def _score(self, probe):
        key = (str(self.theta), self.top_k, tuple(self.layers_))
        P = np.asarray(_library_scores(probe, self.stack_, self.layers_, key)[self.layer])
        norm = np.linalg.norm(P, axis=1)
        own = P[np.arange(len(P)), probe.pred]
        return -own / np.where(norm > 0, norm, 1.0)


class _SelfIntroBase(Scorer):
    lens = "selfintro"

    def __init__(self, layers=None, vae=None, estimator=None, seed: int = 0):
        self.layers, self.vae, self.estimator, self.seed = layers, vae, estimator, seed

    def _fit(self, study):
        from .selfintro import ErrorEstimator, InfoVAE

        dev = str(study.device)
        vae, est = self.vae, self.estimator
        if isinstance(vae, dict):
            vae = InfoVAE(device=dev, seed=self.seed, **vae)
        if isinstance(est, dict):
            est = ErrorEstimator(device=dev, seed=self.seed, **est)
        self.introspector_ = study.selfintro(self.layers, vae=vae, estimator=est, seed=self.seed)

    def _analyze(self, probe):
        key = ("selfintro", repr(self.layers), repr(self.vae), repr(self.estimator), self.seed)
        return probe.memo(key, lambda: self.introspector_.analyze(probe.x))


class SelfIntroErrorScorer(_SelfIntroBase):
    """``log10 ê(z(x))``: the self-introspector's estimated error of the input's InfoVAE
    code (Pardo et al. 2022); high = the map expects the network to be wrong.

    Parameters
    ----------
    layers : list of str, optional
        Hidden layers the InfoVAE reads (default: the study's layers).
    vae, estimator : dict or unfitted estimator, optional
        Keyword arguments of :class:`~introspect.selfintro.InfoVAE` /
        ``ErrorEstimator`` (or the objects); their defaults otherwise.
    seed : int
    """

    name = "selfintro.error"

    def _score(self, probe):
        return self._analyze(probe)["log10_error_hat"]


class ReconstructionScorer(_SelfIntroBase):
    """``||h - dec(enc(h))||^2 / (2D)``: the InfoVAE's reconstruction error of the input's
    concatenated hidden state ``h`` (dimension ``D``). Parameters as for
    :class:`SelfIntroErrorScorer` (one fitted introspector serves both)."""

    name = "selfintro.reconstruction"

    def _score(self, probe):
        H = self._analyze(probe)["hidden"]
        return self.introspector_.vae_.reconstruction_error(H)


class TelescopeScorer(Scorer):
    """``mean_j d_T(b_j(x), c_ŷ)``: torus distance of the input's top-k BMUs on layer
    ``layer``'s SOM to the centre of the predicted class (centres from the training split,
    :func:`introspect.telescope.distance_to_centres`).

    Parameters
    ----------
    layer : str
    size, epochs, top_k, seed, batch_size
        Of the SOM (:meth:`Study.telescope`, cached and shared with the telescope lens).
    """

    lens = "telescope"

    def __init__(self, layer: str, size=20, epochs=5, top_k=10, seed=0, batch_size=64):
        self.layer, self.size, self.epochs, self.top_k = layer, size, epochs, top_k
        self.seed, self.batch_size = seed, batch_size
        self.name = f"telescope.dclass[{layer}]"

    def _fit(self, study):
        self.result_ = study.telescope(
            self.layer, self.size, epochs=self.epochs, top_k=self.top_k, seed=self.seed,
            batch_size=self.batch_size,
        )  # fmt: skip

    def _score(self, probe):
        from .telescope import distance_to_centres

        r = self.result_
        codes = np.asarray(probe.acts("codes", (self.layer,))[self.layer], dtype=np.float32)
        bmus = r.som.bmus(codes, top_k=self.top_k)
        return distance_to_centres(
            bmus, probe.pred, r.centres, r.shape, classes=np.arange(len(r.centres))
        )


class TelescopeCombinedScorer(Scorer):
    """``mean_l d_l(x) / d_max(l)``: the per-layer :class:`TelescopeScorer` distances, each
    divided by its map's largest torus distance ``sqrt((m/2)^2 + (n/2)^2)``, averaged over
    ``layers``."""

    lens = "telescope"
    name = "telescope.dclass"

    def __init__(self, layers=None, size=20, epochs=5, top_k=10, seed=0, batch_size=64):
        self.layers, self.size, self.epochs, self.top_k = layers, size, epochs, top_k
        self.seed, self.batch_size = seed, batch_size

    def _fit(self, study):
        layers = list(self.layers or study.layers)
        kw = dict(size=self.size, epochs=self.epochs, top_k=self.top_k, seed=self.seed,
                  batch_size=self.batch_size)  # fmt: skip
        self.parts_ = [TelescopeScorer(k, **kw).fit(study) for k in layers]

    def _score(self, probe):
        out = []
        for part in self.parts_:
            m, n = part.result_.shape
            out.append(part.score(probe) / math.hypot(m / 2, n / 2))
        return np.mean(out, axis=0)


class ManifoldResidualScorer(Scorer):
    """``||(I - B_ŷ^T B_ŷ)(f(x) - mu_ŷ)||``: the part of the penultimate vector ``f(x)``
    outside the predicted class's principal subspace (mean ``mu``, orthonormal basis
    ``B`` of the components that reach ``threshold``, fitted on the training split's true
    classes; :func:`introspect.manifolds.class_subspaces`).

    Parameters
    ----------
    layer : str, default "penultimate"
    threshold : float, default 0.95
    """

    lens = "manifolds"
    name = "manifolds.residual"

    def __init__(self, layer: str = "penultimate", threshold: float = 0.95):
        self.layer, self.threshold = layer, threshold

    def _fit(self, study):
        from .manifolds import class_subspaces

        st = _train_store(study, "flatten", [self.layer])
        self.subspaces_ = class_subspaces(
            np.asarray(st.layer(self.layer)), np.asarray(st.labels), self.threshold,
            classes=np.arange(study.n_classes),
        )  # fmt: skip

    def _score(self, probe):
        from .manifolds import subspace_residual

        F = probe.acts("flatten", (self.layer,))[self.layer]
        return subspace_residual(F, probe.pred, self.subspaces_)


# ----------------------------------------------------------------------------- baselines
def _tensor(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32))  # a copy: captures are read-only


def _labels(store) -> torch.Tensor:
    return torch.from_numpy(np.array(store.labels, dtype=np.int64))


class _OODScorer(Scorer):
    lens = "baseline"


class MSPScorer(_OODScorer):
    """pytorch-ood ``MaxSoftmax``: ``-max_c softmax(logits)_c`` (Hendrycks & Gimpel 2017)."""

    name = "msp"

    def _fit(self, study):
        from pytorch_ood.detector import MaxSoftmax

        self.detector_ = MaxSoftmax(None)

    def _score(self, probe):
        return self.detector_.predict_logits(_tensor(probe.logits)).numpy()


class EnergyScorer(_OODScorer):
    """pytorch-ood ``EnergyBased``: ``-T logsumexp(logits / T)`` with T = 1 (Liu et al. 2020)."""

    name = "energy"

    def _fit(self, study):
        from pytorch_ood.detector import EnergyBased

        self.detector_ = EnergyBased(None)

    def _score(self, probe):
        return self.detector_.predict_logits(_tensor(probe.logits)).numpy()


class MahalanobisScorer(_OODScorer):
    """pytorch-ood ``Mahalanobis``: ``min_c (f - mu_c)^T S^-1 (f - mu_c)`` on penultimate
    features ``f``, class means and a shared covariance from the training split (Lee et
    al. 2018, without input preprocessing)."""

    name = "mahalanobis"

    def __init__(self, layer: str = "penultimate"):
        self.layer = layer

    def _fit(self, study):
        from pytorch_ood.detector import Mahalanobis

        st = _train_store(study, "flatten", [self.layer])
        self.detector_ = Mahalanobis(None).fit_features(_tensor(st.layer(self.layer)), _labels(st))

    def _score(self, probe):
        F = probe.acts("flatten", (self.layer,))[self.layer]
        return self.detector_.predict_features(_tensor(F)).numpy()


class MultiMahalanobisScorer(_OODScorer):
    """pytorch-ood ``MultiMahalanobis``: the sum over ``layers`` of the per-layer
    Mahalanobis scores, each on the layer's channel means (``gap`` reducer; dense layers
    as they are), fitted on the training split."""

    name = "mahalanobis.multi"

    def __init__(self, layers=None):
        self.layers = layers

    def _fit(self, study):
        from pytorch_ood.detector import MultiMahalanobis

        self.layers_ = list(self.layers or study.layers)
        st = _train_store(study, "gap", self.layers_)
        zs = [_tensor(st.layer(k)) for k in self.layers_]
        det = MultiMahalanobis([torch.nn.Identity() for _ in self.layers_])
        self.detector_ = det.fit_structured(zs, _labels(st))

    def _score(self, probe):
        A = probe.acts("gap", tuple(self.layers_))
        return self.detector_.predict_structured([_tensor(A[k]) for k in self.layers_]).numpy()


class KNNScorer(_OODScorer):
    """pytorch-ood ``KNN``: distance of the L2-normalised penultimate feature to its k-th
    nearest normalised training feature (Sun et al. 2022).

    Parameters
    ----------
    k : int, default 50
        Capped at the number of training inputs.
    """

    name = "knn"

    def __init__(self, k: int = 50, layer: str = "penultimate"):
        self.k, self.layer = k, layer

    def _fit(self, study):
        from pytorch_ood.detector import KNN

        st = _train_store(study, "flatten", [self.layer])
        Z = _tensor(st.layer(self.layer))
        k = max(1, min(int(self.k), len(Z)))
        self.detector_ = KNN(None, k=k).fit_features(Z, _labels(st))

    def _score(self, probe):
        F = probe.acts("flatten", (self.layer,))[self.layer]
        return self.detector_.predict_features(_tensor(F)).numpy()


class ViMScorer(_OODScorer):
    """pytorch-ood ``ViM``: ``alpha ||f_res|| - logsumexp(logits)`` with ``f_res`` the part of
    the penultimate feature (centred at ``-W^+ b``) outside its ``d`` leading principal
    axes on the training split (Wang et al. 2022).

    Parameters
    ----------
    d : int, optional
        Principal-subspace dimension (default: half the feature dimension).
    """

    name = "vim"

    def __init__(self, d: int | None = None):
        self.d = d

    def _fit(self, study):
        from pytorch_ood.detector import ViM

        path = getattr(study.model, "classifier_path", None)
        if not path:
            raise ValueError("vim needs the model's last linear layer: set model.classifier_path.")
        clf = study.model.get_submodule(path)
        st = _train_store(study, "flatten", ["penultimate"])
        Z = _tensor(st.layer("penultimate"))
        d = int(self.d) if self.d else max(1, Z.shape[1] // 2)
        self.detector_ = ViM(None, d=min(d, Z.shape[1] - 1), w=clf.weight.cpu(), b=clf.bias.cpu())
        self.detector_.fit_features(Z, _labels(st))

    def _score(self, probe):
        F = probe.acts("flatten", ("penultimate",))["penultimate"]
        return self.detector_.predict_features(_tensor(F)).numpy()


# ----------------------------------------------------------------------------- the set
def make_detectors(study, detectors=None, options: dict | None = None) -> dict[str, Scorer]:
    """The named, unfitted scorers for ``study``.

    Parameters
    ----------
    detectors : list of str, optional
        Detector names (``"library.cpl"``, ``"telescope.dclass[FC1]"``, ``"knn"``) or
        lens names (``"library"``, ``"baseline"``...) that stand for all of a lens's
        detectors. Default: every detector.
    options : dict lens -> dict, optional
        Settings per lens: ``library`` (``theta``, ``top_k``, ``layers``), ``telescope``
        (``layers``, ``size``, ``epochs``, ``top_k``, ``seed``,
        ``batch_size``), ``selfintro``
        (``layers``, ``vae``, ``estimator``, ``seed``), ``manifolds`` (``layer``,
        ``threshold``), ``baseline`` (``knn_k``, ``vim_d``, ``multi_layers``).

    Returns
    -------
    dict name -> Scorer
    """
    opts = {k: dict(v) for k, v in (options or {}).items()}
    unknown = set(opts) - set(LENSES)
    if unknown:
        raise ValueError(f"unknown detector options {sorted(unknown)}; lenses are {LENSES}.")
    lib, tel = opts.get("library", {}), opts.get("telescope", {})
    si, man, base = opts.get("selfintro", {}), opts.get("manifolds", {}), opts.get("baseline", {})
    lib_layers = list(lib.get("layers") or study.layers)
    lib_kw = dict(theta=lib.get("theta", 0.9), top_k=lib.get("top_k", 3), layers=lib_layers)
    tel_layers = list(tel.get("layers") or study.layers)
    tel_kw = {k: tel[k] for k in ("size", "epochs", "top_k", "seed", "batch_size") if k in tel}
    si_kw = {k: si[k] for k in ("layers", "vae", "estimator", "seed") if k in si}
    all_: dict[str, Scorer] = {}
    if len(lib_layers) > 1:
        all_["library.cpl"] = CPLScorer(**lib_kw)
    for k in lib_layers:
        s = LibraryAgreementScorer(k, **lib_kw)
        all_[s.name] = s
    all_["selfintro.error"] = SelfIntroErrorScorer(**si_kw)
    all_["selfintro.reconstruction"] = ReconstructionScorer(**si_kw)
    for k in tel_layers:
        s = TelescopeScorer(k, **tel_kw)
        all_[s.name] = s
    if len(tel_layers) > 1:
        all_["telescope.dclass"] = TelescopeCombinedScorer(tel_layers, **tel_kw)
    all_["manifolds.residual"] = ManifoldResidualScorer(**man)
    all_["msp"] = MSPScorer()
    all_["energy"] = EnergyScorer()
    all_["mahalanobis"] = MahalanobisScorer()
    all_["mahalanobis.multi"] = MultiMahalanobisScorer(base.get("multi_layers"))
    all_["knn"] = KNNScorer(base.get("knn_k", 50))
    all_["vim"] = ViMScorer(base.get("vim_d"))
    if detectors is None:
        return all_
    names = [detectors] if isinstance(detectors, str) else list(detectors)
    out = {}
    for name in names:
        chosen = {k: v for k, v in all_.items() if v.lens == name} if name in LENSES else {}
        if name in all_:
            chosen = {name: all_[name]}
        if not chosen:
            raise ValueError(
                f"unknown detector {name!r}; use one of {', '.join(all_)} or a lens "
                f"({', '.join(LENSES)})."
            )
        out.update(chosen)
    return out


# ----------------------------------------------------------------------------- metrics
def detection_metrics(clean, perturbed, fpr: float = 0.05) -> dict:
    """AUROC, AUPR and TPR at ``fpr`` of scores where the perturbed inputs are positive.

    Parameters
    ----------
    clean, perturbed : array-like of shape (n_neg,), (n_pos,)
        Scores (higher = more suspicious) of the negatives and the positives.
    fpr : float
        False-positive rate of the operating point (0.05: 5 %).

    Returns
    -------
    dict with ``auroc``, ``aupr`` (average precision, positives = perturbed) and
    ``tpr_at_fpr`` (the largest TPR whose FPR is at most ``fpr``); NaN when either side
    is empty.
    """
    from sklearn.metrics import auc, average_precision_score, roc_curve

    a = np.asarray(clean, dtype=np.float64).ravel()
    b = np.asarray(perturbed, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        return dict(auroc=math.nan, aupr=math.nan, tpr_at_fpr=math.nan)
    y = np.r_[np.zeros(a.size), np.ones(b.size)]
    s = np.r_[a, b]
    f, t, _ = roc_curve(y, s)
    return dict(
        auroc=float(auc(f, t)),  # what roc_auc_score computes, from the one curve
        aupr=float(average_precision_score(y, s)),
        tpr_at_fpr=float(t[f <= fpr + 1e-12].max()),
    )


@dataclass
class DetectionTable:
    """Detectors x attacks x eps: AUROC, AUPR, TPR at 5 % FPR, with n and success rate.

    Attributes
    ----------
    rows : list of dict
        One per (detector, attack, eps): ``detector``, ``lens``, ``attack``, ``eps``
        (None for ``cw``), ``auroc``, ``aupr``, ``tpr_at_5fpr``, ``n`` (pairs: each a
        negative clean input and its positive perturbed version), ``success_rate`` (of
        the attack on the clean-correct inputs), ``accuracy`` (on the perturbed inputs).
    scores : dict of (attack, eps) -> dict
        ``index`` (positions in the split of the pairs, (n,)), ``clean`` and ``perturbed``
        (detector -> ndarray (n,)), ``y``, ``pred``, ``pred_adv`` ((n,) each).
    times : dict
        Seconds: ``fit`` per detector, ``attack`` and ``score`` per (attack, eps).
    params : dict
        What defined the run (split, n, attack settings, detector options).
    """

    rows: list
    scores: dict
    times: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    @property
    def detectors(self) -> list[str]:
        return list(dict.fromkeys(r["detector"] for r in self.rows))

    @property
    def settings(self) -> list[tuple]:
        """The (attack, eps) pairs, in run order."""
        return list(self.scores)

    def get(self, detector: str, attack: str, eps=None, metric: str = "auroc") -> float:
        """One cell of the table."""
        for r in self.rows:
            if r["detector"] == detector and r["attack"] == attack and _same_eps(r["eps"], eps):
                return r[metric]
        raise KeyError(
            f"no row for {detector!r} on {attack!r} at eps={eps!r}; settings: {self.settings}."
        )

    def roc(self, detector: str, attack: str, eps=None) -> tuple[np.ndarray, np.ndarray]:
        """The ROC curve ``(fpr, tpr)`` of a detector on one setting (perturbed positive)."""
        from sklearn.metrics import roc_curve

        s = self.scores[_setting_key(self.scores, attack, eps)]
        a, b = s["clean"][detector], s["perturbed"][detector]
        if len(a) == 0:
            return np.array([0.0, 1.0]), np.array([0.0, 1.0])
        f, t, _ = roc_curve(np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a, b])
        return f, t

    def to_frame(self):
        """The rows as a pandas DataFrame (pandas is not a dependency: install it for this)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "DetectionTable.to_frame needs pandas (pip install pandas); .rows is the same "
                "table as a list of dicts."
            ) from None

        return pd.DataFrame(self.rows)

    def to_markdown(self, metric: str = "auroc") -> str:
        """A markdown table: detectors as rows, (attack, eps) as columns, ``metric`` cells,
        with n and the success rate of each setting in the header."""
        cols = self.settings
        head = ["detector"] + [_label(a, e) for a, e in cols]
        info = {(r["attack"], r["eps"]): r for r in self.rows}
        sub = ["n / success"] + [
            f"{info[c]['n']} / {info[c]['success_rate']:.2f}" if c in info else "" for c in cols
        ]
        lines = [
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
            "| " + " | ".join(sub) + " |",
        ]
        for d in self.detectors:
            cells = [d]
            for a, e in cols:
                try:
                    cells.append(f"{self.get(d, a, e, metric):.3f}")
                except KeyError:
                    cells.append("")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"DetectionTable({len(self.detectors)} detectors x {len(self.settings)} settings; "
            f"split {self.params.get('split')!r}, n={self.params.get('n')})"
        )


def _same_eps(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) < 1e-12


def _setting_key(scores: dict, attack: str, eps):
    for a, e in scores:
        if a == attack and _same_eps(e, eps):
            return (a, e)
    raise KeyError(f"no setting {attack!r} at eps={eps!r}; have {list(scores)}.")


def _label(attack: str, eps) -> str:
    return attack if eps is None else f"{attack} {eps:g}"


def check_settings(attacks, eps) -> list[tuple]:
    """The (attack, eps) pairs of a benchmark, checked: ``cw`` has no eps (None); every
    other attack runs at every ``eps`` in (0, 1]."""
    names = [attacks] if isinstance(attacks, str) else list(attacks)
    for a in names:
        if a not in ATTACK_KINDS:
            raise ValueError(f"unknown attack {a!r}; use one of {', '.join(ATTACK_KINDS)}.")
    eps_list = [eps] if isinstance(eps, (int, float)) else list(eps)
    for e in eps_list:
        if not isinstance(e, (int, float)) or not (0 < float(e) <= 1) or math.isnan(float(e)):
            raise ValueError(f"eps must be in (0, 1] pixel units (e.g. 8/255 or 0.1); got {e!r}.")
    if any(a != "cw" for a in names) and not eps_list:
        raise ValueError("give at least one eps for the attacks other than cw.")
    out = []
    for a in names:
        out += [(a, None)] if a == "cw" else [(a, float(e)) for e in eps_list]
    return out


def run_detection(
    study,
    attacks=("pgd", "fgsm", "cw", "uniform", "gaussian"),
    eps=(0.05, 0.1, 0.2),
    n: int | None = 500,
    *,
    detectors=None,
    split: str = "test",
    options: dict | None = None,
    nb_iter: int = 10,
    eps_iter: float | None = None,
    cw_steps: int = 50,
    cw_search_steps: int = 3,
    seed: int = 0,
    callback=None,
) -> DetectionTable:
    """The body of :meth:`introspect.Study.detect` (see there)."""
    from .pipeline import StageCancelled

    settings = check_settings(attacks, eps)
    if n is not None and (int(n) != n or n < 2):
        raise ValueError(f"n must be an integer >= 2 (or None for the whole split); got {n!r}.")
    if split == "train":
        raise ValueError("detectors are fitted on the train split: evaluate on a held-out one.")
    study.data(split)
    scorers = make_detectors(study, detectors, options)
    total = len(scorers) + 2 * len(settings)
    step = [0]
    bar = None
    if callback is None and getattr(study, "progress", False):
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="detect", leave=False)

    def tick(info: str) -> None:
        step[0] += 1
        _progress.report("detect", step[0], total)
        if bar is not None:
            bar.set_postfix_str(info, refresh=False)
            bar.update(1)
        if callback is not None and callback(step[0], total, info):
            raise StageCancelled(f"detect was cancelled at: {info}; cached stages are kept.")

    times = {"fit": {}, "attack": {}, "score": {}}
    for name, sc in scorers.items():
        t0 = time.perf_counter()
        sc.fit(study)
        times["fit"][name] = time.perf_counter() - t0
        tick(f"fitted {name}")
    rows, scores = [], {}
    clean_cache: dict = {}
    for kind, e in settings:
        t0 = time.perf_counter()
        run_eps = e / math.sqrt(3) if kind == "gaussian" else e
        common = dict(n=n, split=split, seed=seed)
        if kind == "cw":
            res = study.attack("cw", None, nb_iter=cw_steps, cw_search_steps=cw_search_steps,
                               **common)  # fmt: skip
        elif kind in ("pgd", "ifgsm_targeted"):
            res = study.attack(kind, run_eps, nb_iter=nb_iter, eps_iter=eps_iter, **common)
        else:
            res = study.attack(kind, run_eps, **common)
        times["attack"][(kind, e)] = time.perf_counter() - t0
        tick(f"attacked: {_label(kind, e)}")
        right = res.pred == res.y
        keep = right if kind in CONTROLS else res.success
        t0 = time.perf_counter()
        key = tuple(res.index.tolist())
        if key not in clean_cache:  # one probe of the clean inputs for every setting
            probe = Probe(study, res.x)
            clean_cache[key] = {k: sc.score(probe) for k, sc in scorers.items()}
        clean_all = clean_cache[key]
        probe = Probe(study, res.x_adv[torch.as_tensor(np.flatnonzero(keep))])
        pert = {k: sc.score(probe) for k, sc in scorers.items()}
        clean = {k: v[keep] for k, v in clean_all.items()}
        times["score"][(kind, e)] = time.perf_counter() - t0
        tick(f"scored: {_label(kind, e)}")
        scores[(kind, e)] = dict(
            index=res.index[keep], clean=clean, perturbed=pert, y=res.y[keep],
            pred=res.pred[keep], pred_adv=res.pred_adv[keep],
            l2=(res.x_adv - res.x).flatten(1).norm(dim=1).numpy()[keep],
        )  # fmt: skip
        for name, sc in scorers.items():
            m = detection_metrics(clean[name], pert[name])
            rows.append(dict(
                detector=name, lens=sc.lens, attack=kind, eps=e, auroc=m["auroc"],
                aupr=m["aupr"], tpr_at_5fpr=m["tpr_at_fpr"], n=int(keep.sum()),
                success_rate=res.success_rate, accuracy=res.accuracy,
                clean_accuracy=res.clean_accuracy,
            ))  # fmt: skip
    if bar is not None:
        bar.close()
    params = dict(split=split, n=n, attacks=list(dict.fromkeys(a for a, _ in settings)),
                  eps=[float(x) for x in np.atleast_1d(eps)], nb_iter=nb_iter,
                  eps_iter=eps_iter, cw_steps=cw_steps, cw_search_steps=cw_search_steps,
                  seed=seed, options=options or {})  # fmt: skip
    return DetectionTable(rows, scores, times, params)
