"""Do the lenses agree on which classes are fragile? Per class and layer, side by side."""

from __future__ import annotations

import numpy as np

from ._base import Claim, Param
from ._compare import PAPER_MODELS, QUICK_MODELS, detector_options, study_for

ID = "compare.lenses"
PAPER = "compare"
TITLE = (
    "Per class and layer: D_class, library agreement, CAM dimension, estimated error, PGD accuracy"
)
DESCRIPTION = (
    "Each lens's per-class measure on one study: the telescope's D_class (mean torus "
    "distance of a class's test BMUs to its centre), the library's top-1 agreement with "
    "the network, the CAM dimension (with the n it was computed from), the introspector's "
    "mean estimated error, and the class-wise PGD accuracy; Spearman correlations across "
    "classes between them, per layer."
)

MEASURES = ("d_class", "agreement", "cam_dim", "error", "pgd_acc")
FRAGILE_SIGN = {"d_class": 1, "agreement": -1, "cam_dim": 1, "error": 1, "pgd_acc": -1}
"""+1 where a larger value marks a more fragile class, -1 where a smaller one does."""

PARAMS = {
    "models": Param(
        QUICK_MODELS,
        "model recipe -> {layers, eps (the middle one is the PGD eps), theta, top_k, "
        "som_size, selfintro, n_per_class}",
        "dict",
    ),
    "n_attack": Param(200, "test images attacked for the class-wise PGD accuracy"),
    "nb_iter": Param(40, "PGD steps"),
    "eps_iter": Param(0.01, "PGD step size"),
    "dims_split": Param("train", "split whose images give the CAM dimension of each class"),
    "threshold": Param(0.95, "explained-variance threshold of the CAM dimension"),
}
PROFILES = {
    "quick": {},
    "paper": {"models": PAPER_MODELS, "n_attack": 500, "device": "cuda"},
}


def _per_class(values, labels, n_classes) -> list:
    values, labels = np.asarray(values, dtype=np.float64), np.asarray(labels)
    return [float(values[labels == c].mean()) if (labels == c).any() else None
            for c in range(n_classes)]  # fmt: skip


def _spearman(columns: dict) -> dict:
    from scipy.stats import spearmanr

    names = list(columns)
    k = len(names)
    rho, p = np.full((k, k), np.nan), np.full((k, k), np.nan)
    for i in range(k):
        for j in range(k):
            a = np.asarray(columns[names[i]], dtype=np.float64)
            b = np.asarray(columns[names[j]], dtype=np.float64)
            ok = np.isfinite(a) & np.isfinite(b)
            if ok.sum() >= 3 and np.ptp(a[ok]) > 0 and np.ptp(b[ok]) > 0:
                r = spearmanr(a[ok], b[ok])
                rho[i, j], p[i, j] = float(r.statistic), float(r.pvalue)
    nan = lambda m: [[None if np.isnan(v) else float(v) for v in row] for row in m]  # noqa: E731
    return dict(names=names, rho=nan(rho), p=nan(p))


def lens_measures(study, cfg: dict, *, n_attack, nb_iter, eps_iter, dims_split, threshold, seed):
    """Every lens's per-class measures of one study (see the module's description)."""
    from ..detect import SelfIntroErrorScorer
    from ..library import agreement
    from ..manifolds import class_manifold_dims, classwise_accuracy

    K = study.n_classes
    opts = detector_options(cfg, seed)
    layers = list(study.layers)
    test = study.capture("flatten", "test", layers=layers)
    y_test, preds = np.asarray(test.labels), np.asarray(test.preds)
    lib = study.library(opts["library"]["theta"], opts["library"]["top_k"], layers=layers)
    scores = lib.stack.predict_scores({k: test.layer(k) for k in layers})
    dims_store = study.capture("flatten", dims_split, layers=layers)
    per_layer = {}
    for layer in layers:
        tel = study.telescope(layer, opts["telescope"]["size"], seed=seed)
        P = np.asarray(scores[layer])
        agree = [agreement(P[y_test == c], preds[y_test == c], 1) if (y_test == c).any()
                 else None for c in range(K)]  # fmt: skip
        dims = class_manifold_dims(
            np.asarray(dims_store.layer(layer)), np.asarray(dims_store.labels),
            threshold=threshold, layer=layer, warn=False,
        )  # fmt: skip
        dim_of = dict(zip(np.asarray(dims.classes).tolist(), np.asarray(dims.dims).tolist()))
        n_of = dict(zip(np.asarray(dims.classes).tolist(), np.asarray(dims.n).tolist()))
        per_layer[layer] = dict(
            d_class=_per_class(tel.d_class["test"], tel.labels["test"], K),
            agreement=agree,
            cam_dim=[dim_of.get(c) for c in range(K)],
            cam_n=[n_of.get(c) for c in range(K)],
        )
    si = SelfIntroErrorScorer(**opts["selfintro"]).fit(study).introspector_
    log_e = si.analyze(study.images("test"))["log10_error_hat"]
    error = _per_class(10.0 ** np.asarray(log_e), study.labels("test"), K)
    eps = float(cfg["eps"][len(cfg["eps"]) // 2])
    run = study.attack("pgd", eps, n=n_attack, nb_iter=nb_iter, eps_iter=eps_iter, seed=seed)
    pgd_acc = classwise_accuracy(run.y, run.pred_adv, np.arange(K))[0]
    pgd_acc = [None if np.isnan(v) else float(v) for v in pgd_acc]
    spearman = {
        layer: _spearman({**{m: per_layer[layer][m] for m in ("d_class", "agreement", "cam_dim")},
                          "error": error, "pgd_acc": pgd_acc})
        for layer in layers
    }  # fmt: skip
    return dict(
        classes=list(study.classes), layers=layers, per_layer=per_layer, error=error,
        pgd_acc=pgd_acc, eps=eps, n_attack=len(run.y),
        n_test=np.bincount(y_test, minlength=K).tolist(), spearman=spearman,
    )  # fmt: skip


def compute(
    *, models, n_attack, nb_iter, eps_iter, dims_split, threshold, workdir, device, data_root, seed
) -> dict:
    results = {}
    for spec, cfg in models.items():
        study = study_for(spec, cfg, workdir=workdir, device=device, data_root=data_root, seed=seed)
        results[spec] = lens_measures(
            study, cfg, n_attack=n_attack, nb_iter=nb_iter, eps_iter=eps_iter,
            dims_split=dims_split, threshold=threshold, seed=seed,
        )  # fmt: skip
    return {"models": list(models), "measures": list(MEASURES), "results": results}


def _fmt(v, spec=".3f") -> str:
    return "-" if v is None else format(v, spec)


def summarize(data: dict) -> str:
    lines = []
    for spec in data["models"]:
        r = data["results"][spec]
        lines.append(
            f"{spec}: PGD eps {r['eps']:g} on {r['n_attack']} test images; mean estimated "
            "error and PGD accuracy per class"
        )
        lines.append("  class " + " ".join(f"{c:>7}" for c in r["classes"]))
        lines.append("  error " + " ".join(f"{_fmt(v, '.4f'):>7}" for v in r["error"]))
        lines.append("  PGD   " + " ".join(f"{_fmt(v, '.2f'):>7}" for v in r["pgd_acc"]))
        for layer in r["layers"]:
            m = r["per_layer"][layer]
            lines.append(f"  {layer}: D_class / agreement / CAM dim (n) per class")
            lines.append("    " + " ".join(f"{_fmt(v, '.2f'):>7}" for v in m["d_class"]))
            lines.append("    " + " ".join(f"{_fmt(v, '.2f'):>7}" for v in m["agreement"]))
            lines.append(
                "    " + " ".join(f"{d}({n})".rjust(7) for d, n in zip(m["cam_dim"], m["cam_n"]))
            )
            s = r["spearman"][layer]
            rho = s["rho"]
            pairs = [f"{s['names'][i]}~{s['names'][j]} {_fmt(rho[i][j], '+.2f')}"
                     for i in range(len(rho)) for j in range(i)]  # fmt: skip
            lines.append("    Spearman: " + ", ".join(pairs))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- claims
def _last_feature_layer(r) -> str:
    """The last layer before the logits (the study's last layer when only one)."""
    return r["layers"][-2] if len(r["layers"]) > 1 else r["layers"][-1]


def _rho(r, layer, a, b):
    s = r["spearman"][layer]
    return s["rho"][s["names"].index(a)][s["names"].index(b)]


def _negative(a: str):
    def check(data):
        out, verdicts = {}, []
        for spec in data["models"]:
            r = data["results"][spec]
            layer = _last_feature_layer(r)
            v = _rho(r, layer, a, "pgd_acc")
            out[f"{spec} {layer} rho"] = v
            if v is not None:
                verdicts.append(v < 0)
        if not verdicts:
            return (
                None,
                out,
                (
                    f"Spearman r of {a} vs class-wise PGD accuracy is undefined: one of them is "
                    "the same for every class here (e.g. PGD wins on every input at this eps)"
                ),
            )
        return all(verdicts), out

    return check


def _lenses_agree(data):
    out, verdicts = {}, []
    for spec in data["models"]:
        r = data["results"][spec]
        layer = _last_feature_layer(r)
        s = r["spearman"][layer]
        vals = []
        for i, a in enumerate(s["names"]):
            for j, b in enumerate(s["names"][:i]):
                v = s["rho"][i][j]
                if v is not None:
                    vals.append(FRAGILE_SIGN[a] * FRAGILE_SIGN[b] * v)
        if vals:
            out[f"{spec} {layer} mean oriented rho"] = float(np.mean(vals))
            verdicts.append(np.mean(vals) > 0)
    return (all(verdicts) if verdicts else None), out


CLAIMS = [
    Claim(
        "Classes of larger CAM dimension are less robust to PGD (Spearman rho < 0)",
        "Rajesh thesis, dimension vs robustness",
        _negative("cam_dim"),
    ),
    Claim(
        "Classes whose codes lie further from their SOM centre (larger D_class) are less robust",
        "Lee & Vijayan 2023, D_class vs PGD",
        _negative("d_class"),
    ),
    Claim(
        "The lenses agree on which classes are fragile (mean fragility-oriented Spearman rho > 0)",
        "issue 11",
        _lenses_agree,
    ),
]
