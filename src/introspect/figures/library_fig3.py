"""Lee 2019, Fig. 3: confusion index matrices of the CNN's layers at theta 0.65 and 0.75."""

from __future__ import annotations

import warnings

import numpy as np

from ._base import Claim, Param
from ._claims import all_of, need, r3
from ._library import library_run

ID = "library.fig3"
PAPER = "library"
TITLE = "Confusion index matrices CI(d1, d2) of the libraries of CN1, CN2, FC1 (theta 0.65, 0.75)"
DESCRIPTION = (
    "Which digits each layer's library mistakes for which: CA(d1, d2) sums softmax(P)_d1 "
    "softmax(P)_d2 over test inputs of digit d1 the library gets right; CI = CA / CA(d1, d1)."
)

PARAMS = {
    "model": Param("mnist_cnn@digits", "model recipe (see introspect.recipes)"),
    "layers": Param(["CN1", "CN2", "FC1"], "layers shown (the paper leaves out FC2: CI ~ 0)"),
    "thetas": Param(
        [0.85, 0.9],
        "one row of matrices per theta, the same for every layer (paper: 0.65, 0.75; the "
        "blurry upsampled digits need higher thetas for more than a handful of nodes)",
    ),
    "top_k": Param(3, "most active library nodes summed into the scores (the CNN: 3)"),
    "n_train_per_class": Param(
        None, "training images per class that build the libraries (None: all)"
    ),
    "n_test_per_class": Param(None, "test images per class (None: all)"),
    "batch_size": Param(256, "capture batch size"),
}
PROFILES = {
    "quick": {},
    "paper": {"model": "mnist_cnn", "thetas": [0.65, 0.75], "device": "cuda"},
}


def compute(*, model, layers, thetas, top_k, **run_params) -> dict:
    """``run_params``: the sizes and places of :func:`library_run` (its keyword arguments)."""
    from ..library import confusion_index

    run = library_run(model=model, layers=layers, top_k=top_k, **run_params)
    labels = run.test_labels
    ci, n_correct, sizes = {}, {}, {}
    for t in thetas:
        key = f"{float(t):g}"
        ci[key], n_correct[key], sizes[key] = {}, {}, {}
        for layer in layers:
            net = run.library(layer, t)
            P = net.predict_scores(run.test_store.layer(layer))
            ci[key][layer] = confusion_index(P, labels, run.n_classes).tolist()
            n_correct[key][layer] = int((P.argmax(1) == labels).sum())
            sizes[key][layer] = int(net.size_)
    return {
        "model": model,
        "layers": list(layers),
        "thetas": [f"{float(t):g}" for t in thetas],
        "classes": list(getattr(run.test_data, "classes", range(run.n_classes))),
        "ci": ci,
        "n_correct": n_correct,
        "sizes": sizes,
        "n_test": int(run.test_store.n),
    }


def summarize(data: dict) -> str:
    lines = [f"{data['model']}: confusion indices on {data['n_test']} test inputs"]
    for t in data["thetas"]:
        for layer in data["layers"]:
            ci = np.asarray(data["ci"][t][layer], dtype=float)
            off = ci.copy()
            np.fill_diagonal(off, np.nan)
            if np.all(np.isnan(off)):
                lines.append(f"theta={t} {layer}: no class predicted correctly")
                continue
            d1, d2 = np.unravel_index(np.nanargmax(off), off.shape)
            lines.append(
                f"theta={t} {layer:<4} size={data['sizes'][t][layer]:<6} "
                f"correct={data['n_correct'][t][layer]:<6} mean off-diagonal CI="
                f"{np.nanmean(off):.4f}  largest CI({d1},{d2})={off[d1, d2]:.4f}"
            )
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                row_means = np.nanmean(off, axis=1)
            lines.append(
                "    mean CI per true class d1: "
                + " ".join(f"{v:.3f}" if np.isfinite(v) else "nan" for v in row_means)
            )
    return "\n".join(lines)


def _offdiag(ci) -> np.ndarray:
    m = np.asarray(ci, dtype=float)
    return m[~np.eye(len(m), dtype=bool)]


def _fc_alleviates(data):
    res, nums = {}, {}
    need("FC1" in data["layers"], "FC1 is not among the layers")
    conv = [ly for ly in data["layers"] if ly.startswith("CN")]
    need(bool(conv), "no CN layer among the layers")
    for t in data["thetas"]:
        mean = {ly: float(np.nanmean(_offdiag(data["ci"][t][ly]))) for ly in data["layers"]}
        res[t] = all(mean["FC1"] < mean[ly] for ly in conv)
        nums[f"theta {t} mean off-diagonal CI"] = r3(mean)
    return all_of(res), nums


def _four_nine_high(data):
    names = [str(c) for c in data["classes"]]
    need(
        len(names) == 10 and all(n.split()[0] == str(d) for d, n in enumerate(names)),
        f"the classes are not the digits 0-9 ({names[:3]}...)",
    )
    res, nums = {}, {}
    for t in data["thetas"]:
        for ly in data["layers"]:
            m = np.asarray(data["ci"][t][ly], dtype=float)
            v, q = m[4, 9], float(np.nanpercentile(_offdiag(m), 75))
            res[f"{t} {ly}"] = bool(v > q)
            nums[f"theta {t} {ly} CI(4,9) / 75th percentile"] = r3([v, q])
    return all_of(res), nums


CLAIMS = [
    Claim(
        "The confusions of the CN layers are alleviated in FC1, at both thresholds (mean "
        "off-diagonal CI of FC1 below CN1's and CN2's)",
        "Lee 2019, Sec. 2.2.1 and Fig. 3",
        _fc_alleviates,
    ),
    Claim(
        "CI(4, 9) is high in all layers, natural given the similarity of 4 and 9 (above the "
        "75th percentile of the layer's off-diagonal CIs)",
        "Lee 2019, Sec. 2.2.1 and Fig. 3",
        _four_nine_high,
    ),
]
