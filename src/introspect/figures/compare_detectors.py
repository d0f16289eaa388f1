"""Which lens sees the attack: AUROC vs eps of every lens's detector and the baselines."""

from __future__ import annotations

import math

import numpy as np

from ._base import Claim, Param
from ._compare import PAPER_MODELS, QUICK_MODELS, detector_options, study_for

ID = "compare.detectors"
PAPER = "compare"
TITLE = "Adversarial detection by every lens and by pytorch-ood's baselines: AUROC vs eps"
DESCRIPTION = (
    "Study.detect on held-out inputs: the clean versions of the inputs an attack flips are "
    "the negatives, their adversarial versions the positives (noise controls: every "
    "clean-correct input and its noisy copy). Detectors are fitted on the train split; the "
    "attacks are non-adaptive. AUROC, AUPR and TPR at 5 % FPR per detector, attack and eps."
)

PARAMS = {
    "models": Param(
        QUICK_MODELS,
        "model recipe -> {layers, eps (list), theta, top_k, som_size, selfintro, n_per_class}",
        "dict",
    ),
    "attacks": Param(
        ["pgd", "fgsm", "cw", "uniform", "gaussian"],
        "attacks and noise controls (pgd, fgsm, ifgsm_targeted, cw, uniform, gaussian)",
        "list",
    ),
    "n_attack": Param(200, "held-out test images attacked (a seeded subset)"),
    "nb_iter": Param(40, "PGD / targeted I-FGSM steps (the library paper: 40)"),
    "eps_iter": Param(0.01, "PGD / targeted I-FGSM step size (the library paper: 0.01)"),
    "cw_steps": Param(10, "Carlini-Wagner Adam steps per binary-search round"),
    "cw_search_steps": Param(2, "Carlini-Wagner binary-search rounds"),
    "detectors": Param(None, "detector or lens names (None: all)", "list"),
}
PROFILES = {
    "quick": {},
    "paper": {
        "models": PAPER_MODELS,
        "attacks": ["pgd", "fgsm", "ifgsm_targeted", "cw", "uniform", "gaussian"],
        "n_attack": 500,
        "cw_steps": 100,
        "cw_search_steps": 5,
        "device": "cuda",
    },
}


def compute(
    *,
    models,
    attacks,
    n_attack,
    nb_iter,
    eps_iter,
    cw_steps,
    cw_search_steps,
    detectors,
    workdir,
    device,
    data_root,
    seed,
) -> dict:
    results = {}
    for spec, cfg in models.items():
        study = study_for(spec, cfg, workdir=workdir, device=device, data_root=data_root, seed=seed)
        table = study.detect(
            attacks, eps=list(cfg["eps"]), n=n_attack, detectors=detectors,
            options=detector_options(cfg, seed), nb_iter=nb_iter, eps_iter=eps_iter,
            cw_steps=cw_steps, cw_search_steps=cw_search_steps, seed=seed,
        )  # fmt: skip
        results[spec] = table_data(table)
    return {"models": list(models), "attacks": list(attacks), "results": results}


def table_data(table) -> dict:
    """A :class:`~introspect.detect.DetectionTable` as plain lists for the plot and JSON:
    ``metric[attack][detector]`` is a list over ``eps[attack]`` (one entry, eps None, for
    cw); ``n`` and ``success_rate`` are lists over the same eps."""
    metrics = ("auroc", "aupr", "tpr_at_5fpr")
    out = dict(detectors=table.detectors, lens={}, eps={}, n={}, success_rate={})
    out.update({k: {} for k in metrics})
    for a, e in table.settings:
        rows = [r for r in table.rows if r["attack"] == a and _same(r["eps"], e)]
        out["eps"].setdefault(a, []).append(e)
        out["n"].setdefault(a, []).append(int(rows[0]["n"]))
        out["success_rate"].setdefault(a, []).append(_num(rows[0]["success_rate"]))
        for r in rows:
            out["lens"][r["detector"]] = r["lens"]
            for k in metrics:
                out[k].setdefault(a, {}).setdefault(r["detector"], []).append(_num(r[k]))
    out["times"] = {
        "fit": dict(table.times["fit"]),
        "attack": {f"{a} {e}": v for (a, e), v in table.times["attack"].items()},
        "score": {f"{a} {e}": v for (a, e), v in table.times["score"].items()},
    }
    return out


def _same(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-12)


def _num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def summarize(data: dict) -> str:
    lines = []
    for spec in data["models"]:
        r = data["results"][spec]
        lines.append(f"{spec}: AUROC (perturbed = positive); n pairs / attack success rate")
        cols = [(a, i) for a in r["eps"] for i in range(len(r["eps"][a]))]
        head = [f"{a} {r['eps'][a][i]:.3g}" if r["eps"][a][i] is not None else a for a, i in cols]
        lines.append(f"  {'detector':<28}" + "".join(f"{h:>14}" for h in head))
        lines.append(
            f"  {'n / success':<28}"
            + "".join(f"{r['n'][a][i]:>8} / {r['success_rate'][a][i] or 0:.2f}" for a, i in cols)
        )
        for d in r["detectors"]:
            vals = [r["auroc"][a][d][i] for a, i in cols]
            lines.append(
                f"  {d:<28}" + "".join(f"{'-' if v is None else f'{v:.3f}':>14}" for v in vals)
            )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- claims
_CHANCE = 0.1  # |AUROC - 0.5| that still counts as chance on a few hundred pairs


def _noise_near_chance(data):
    worst, where = 0.0, None
    seen = False
    for spec in data["models"]:
        r = data["results"][spec]
        for a in ("uniform", "gaussian"):
            for d in r["auroc"].get(a, {}):
                if r["lens"][d] == "baseline":
                    continue
                for v in r["auroc"][a][d]:
                    if v is not None:
                        seen = True
                        if abs(v - 0.5) > worst:
                            worst, where = abs(v - 0.5), f"{spec} {d} {a}"
    if not seen:
        return None, {}
    return worst <= _CHANCE, {"largest |AUROC - 0.5|": worst, "at": where}


def _cpl_sees_pgd(data):
    vals = []
    for spec in data["models"]:
        v = data["results"][spec]["auroc"].get("pgd", {}).get("library.cpl")
        vals += [x for x in (v or []) if x is not None]
    if not vals:
        return None, {}
    return min(vals) > 0.5, {"smallest AUROC": min(vals), "largest AUROC": max(vals)}


def _best_lens_vs_baselines(data):
    out, beats = {}, []
    for spec in data["models"]:
        r = data["results"][spec]
        if "pgd" not in r["auroc"]:
            continue
        mean = {d: float(np.nanmean([x for x in v if x is not None] or [np.nan]))
                for d, v in r["auroc"]["pgd"].items()}  # fmt: skip
        lens = max((d for d in mean if r["lens"][d] != "baseline"), key=mean.get)
        base = max((d for d in mean if r["lens"][d] == "baseline"), key=mean.get)
        out[f"{spec} best lens"] = f"{lens} {mean[lens]:.3f}"
        out[f"{spec} best baseline"] = f"{base} {mean[base]:.3f}"
        beats.append(mean[lens] >= mean[base])
    if not beats:
        return None, {}
    return all(beats), out


CLAIMS = [
    Claim(
        "Every lens detector scores both noise controls near chance (|AUROC - 0.5| <= 0.1)",
        "issue 11 (controls)",
        _noise_near_chance,
    ),
    Claim(
        "PGD inputs are detected above chance by CPL at every eps",
        "Lee 2019, Fig. 5",
        _cpl_sees_pgd,
    ),
    Claim(
        "The best lens detector matches or beats the best baseline on PGD (mean AUROC over eps)",
        "issue 11 (comparison)",
        _best_lens_vs_baselines,
    ),
]
