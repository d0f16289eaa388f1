"""The manifold thesis's claims, shared by the manifolds figures (see :class:`._base.Claim`)."""

from __future__ import annotations

import numpy as np

from ._claims import all_of, need, r3


def low_dimensional(results: dict, specs, share: float = 0.25):
    """Mean CAM dimension <= ``share`` of the feature count, with most classes not capped by n."""
    res, nums = {}, {}
    for spec in specs:
        m = results[spec]["manifolds"] if "manifolds" in results[spec] else results[spec]
        dims = np.asarray(m["dims"], dtype=float)
        capped = float(np.mean(m["capped"]))
        need(capped < 0.5, f"{spec}: {capped:.0%} of the classes are capped by n (m - 1)")
        D = int(m["n_features"]) if "n_features" in m else int(results[spec]["n_features"])
        res[spec] = dims.mean() <= share * D
        nums[f"{spec} mean CAM dimension of D"] = f"{dims.mean():.1f} of {D}"
    return all_of(res), nums


def dims_vary(m: dict) -> tuple[float, float]:
    d = np.asarray(m["dims"], dtype=float)
    return float(d.min()), float(d.max())


def negative_class_correlation(data: dict, rho: float = -0.5, alpha: float = 0.05):
    """Spearman r between class CAM dimension and class-wise PGD accuracy <= ``rho`` (p < alpha)
    at some eps where the attack neither fails nor wins everywhere."""
    res, nums = {}, {}
    for spec in data["models"]:
        r = data["results"][spec]
        lo, hi = dims_vary(r["manifolds"])
        need(hi - lo >= 2, f"{spec}: every class has CAM dimension {lo:.0f}-{hi:.0f}: nothing to "
             "correlate (the thesis's ResNet50 classes span tens of dimensions)")  # fmt: skip
        best = None
        for i, eps in enumerate(r["robustness"]["eps"]):
            acc = np.asarray(r["robustness"]["adv_acc"][i], dtype=float)
            c = (
                r["correlation"][f"{eps:g}"]
                if f"{eps:g}" in r["correlation"]
                else r["correlation"][str(eps)]
            )
            nums[f"{spec} eps {eps:g} Spearman r (p)"] = (
                f"{c['spearman_r']:+.2f} ({c['spearman_p']:.2g})"
            )
            if 0.05 < acc.mean() < 0.95:
                ok = c["spearman_r"] <= rho and c["spearman_p"] < alpha
                best = ok if best is None else (best or ok)
        need(
            best is not None,
            f"{spec}: at every eps the attack fails or wins on (almost) all inputs",
        )
        res[spec] = best
    return all_of(res), nums


def across_models_negative(data: dict):
    """Across the models: Spearman r of mean CAM dimension vs PGD accuracy < 0 at every eps."""
    a = data["across"]
    need(len(data["models"]) >= 3, "fewer than 3 models: no correlation across models")
    rs = {k: v["spearman_r"] for k, v in a["correlation"].items()}
    ok = all(v is not None and v == v and v < 0 for v in rs.values())
    return ok, {"mean CAM dimension": r3(a["mean_dim"]), "Spearman r per eps": r3(rs)}
