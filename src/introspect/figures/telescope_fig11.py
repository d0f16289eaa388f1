"""Lee & Vijayan 2023, Fig. 11: torus distance between the top-10 BMUs of clean and
perturbed inputs, per layer: uniform noise vs PGD of the same size.

How the two lists of 10 BMUs are compared is the ``pairing`` parameter
(:func:`introspect.telescope.bmu_shift`). The paper's "10 pairs" (``"rank"``: j-th vs
j-th) counts a re-ordering of near-tied units as a shift, so even noise of a tenth of
1/255 shows one and noise looks as strong as PGD in CL1. The default ``"set"`` compares
the two sets of units (symmetrised mean nearest-unit torus distance): a re-ordering is 0.
Measured (mean shift; floor = noise in [0, 0.1/255]):

- quick profile (small_cnn@digits, 100 images, 10x10 SOMs), CL1 / CL4: floor rank
  0.157 / 0.019, set 0.001 / 0.000; eps 1/255 noise rank 0.947 / 0.089, set 0.042 /
  0.000 vs PGD rank 0.932 / 0.531, set 0.046 / 0.036.
- the pretrained CIFAR ResNet20 (akamaster weights, CIFAR-10 test JPEGs, 100 images,
  20x20 SOMs on 50 train images per class), CL1 / CL3 at eps 1/255: floor rank 0.089 /
  0.118, set 0.004 / 0.003; noise rank 0.676 / 0.577, set 0.037 / 0.042; PGD rank
  2.006 / 3.503, set 0.129 / 1.633 (PGD/noise 3.0 / 6.1 by rank, 3.5 / 39 by set). The
  per-input AUROC of PGD vs noise is higher for set at CL2, CL3 (0.85, 0.98 vs 0.84,
  0.96) and at every layer at eps 8/255; rank's is higher at CN1, CL1 at 1/255 (0.86 vs
  0.71 at CL1), where most set shifts are exact zeros.

The data carry the noise floor (``noise_floor``, the shift under uniform noise in
``[0, floor_eps]``, far below any eps), the mean shift under every pairing
(``mean_shift_by_pairing``, ``noise_floor_by_pairing``) and, per layer and pairing, the
AUROC of PGD against noise over inputs (``separation``; 0.5 = indistinguishable).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import pipeline, telescope
from ..capture import activations
from ..recipes import recipe_data
from ._base import Claim, Param
from ._claims import all_of, need, r3
from ._telescope import SOM_PAPER, SOM_PARAMS, box_stats, som_kwargs, som_run

ID = "telescope.fig11"
PAPER = "telescope"
TITLE = "Distance between clean and perturbed BMUs per layer: uniform noise vs PGD"
DESCRIPTION = (
    "Random noise in [0, eps] leaves the BMUs in place; PGD of the same L-inf size moves "
    "them little in CL1 and far in CL4 while it flips the predictions."
)

PARAMS = {
    "models": Param(["small_cnn@digits"], "model recipes (the paper: ResNet18, ResNet50)"),
    "n_images": Param(100, "validation images attacked (the paper: 500)"),
    "eps": Param(
        [1 / 255, 8 / 255],
        "L-inf radii; PGD and uniform noise in [0, eps] (the paper: 1/255)",
    ),
    "nb_iter": Param(50, "PGD iterations (advertorch LinfPGDAttack, CE loss, random init)"),
    "eps_iter_ratio": Param(0.02, "PGD step size as a fraction of eps (the paper: 2/100)"),
    "attack_batch_size": Param(100, "images per attack batch"),
    "pairing": Param(
        "set",
        "how the top-k clean and perturbed BMUs are compared: 'set' (symmetrised mean "
        "nearest-unit torus distance, blind to re-ordering), 'top1' (best BMU only) or "
        "'rank' (j-th vs j-th, the paper's '10 pairs'; counts re-ordered near-ties)",
    ),
    "floor_eps": Param(
        0.1 / 255,
        "noise floor: the shift under uniform noise in [0, floor_eps], far below any eps",
    ),
    **SOM_PARAMS,
}
PROFILES = {
    "quick": {},
    "paper": {
        "models": ["timm:resnet18", "timm:resnet50"],
        "n_images": 500,
        "eps": [1 / 255],
        **SOM_PAPER,
    },
}


def _shifts(clean_bmus, soms, model, x, layers, k, shape, pairing, device):
    """Per layer: the chosen pairing's shifts, and every pairing's shift per input."""
    codes, logits = activations(
        model, x, layers, reducer="codes", device=device, return_logits=True
    )
    chosen, per_input = {}, {}
    for la in layers:
        b = soms[la].bmus(codes[la], top_k=k)
        d = {
            p: telescope.bmu_shift(clean_bmus[la], b, shape, pairing=p)
            for p in telescope.BMU_PAIRINGS
        }
        chosen[la] = d[pairing]
        per_input[la] = {p: v.reshape(len(v), -1).mean(1) for p, v in d.items()}
    return chosen, per_input, np.asarray(logits)


def _means(per_input) -> dict:
    return {la: {p: float(v.mean()) for p, v in d.items()} for la, d in per_input.items()}


def _auroc(pos, neg) -> float:
    """P(a PGD input shifts more than a noise input), ties counted half (Mann-Whitney)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def compute(
    *, models, n_images, eps, nb_iter, eps_iter_ratio, attack_batch_size, pairing, floor_eps,
    **params,
) -> dict:  # fmt: skip
    if pairing not in telescope.BMU_PAIRINGS:
        raise ValueError(f"pairing must be one of {telescope.BMU_PAIRINGS}; got {pairing!r}.")
    device, seed, workdir = params["device"], int(params["seed"]), params["workdir"]
    layers = list(params["layers"])
    k = int(params["top_k"])
    wd = pipeline.as_workdir(workdir)
    shift, acc, mean_shift, by_pairing, floor, floor_by_pairing = {}, {}, {}, {}, {}, {}
    separation = {}
    n_used = {}
    for spec in models:
        run = som_run(spec, splits=("train",), **som_kwargs(params))
        model = run.model
        data = recipe_data(
            spec,
            params.get("val_split", "val"),
            data_root=params["data_root"],
            n_per_class=params["val_n_per_class"],
            seed=seed,
        )
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(data), size=min(int(n_images), len(data)), replace=False))
        x = torch.stack([data[int(i)][0] for i in idx])
        y = torch.as_tensor([int(data[int(i)][1]) for i in idx])
        n_used[spec] = len(idx)
        clean_codes, clean_logits = activations(
            model, x, layers, reducer="codes", device=device, return_logits=True
        )
        clean_bmus = {la: run.soms[la].bmus(clean_codes[la], top_k=k) for la in layers}
        acc[spec] = {"clean": float((np.asarray(clean_logits).argmax(1) == y.numpy()).mean())}
        shift[spec], mean_shift[spec], by_pairing[spec], separation[spec] = {}, {}, {}, {}
        common = dict(seed=seed, batch_size=int(attack_batch_size), device=device, workdir=wd)
        # the noise floor: what the measure reports for a change of the input far below
        # any eps (uniform noise in [0, floor_eps]); a shift at the floor is no shift
        x_floor = pipeline.attacked(model, x, y, "uniform_positive", float(floor_eps), **common)
        d, per, logits = _shifts(
            clean_bmus, run.soms, model, x_floor["x_adv"], layers, k, run.shape, pairing, device
        )
        floor_by_pairing[spec] = _means(per)
        floor[spec] = {la: float(d[la].mean()) for la in layers}
        acc[spec]["floor"] = float((logits.argmax(1) == y.numpy()).mean())
        for e in eps:
            pert = {
                "noise": pipeline.attacked(model, x, y, "uniform_positive", float(e), **common),
                "pgd": pipeline.attacked(
                    model, x, y, "pgd", float(e), nb_iter=int(nb_iter),
                    eps_iter=float(e) * float(eps_iter_ratio), rand_init=True, **common,
                ),
            }  # fmt: skip
            pert = {kind: out["x_adv"] for kind, out in pert.items()}
            ek = f"{e:.6g}"
            shift[spec][ek], mean_shift[spec][ek], by_pairing[spec][ek] = {}, {}, {}
            per = {}
            for kind in ("noise", "pgd"):
                d, per[kind], logits = _shifts(
                    clean_bmus, run.soms, model, pert[kind], layers, k, run.shape, pairing, device
                )
                by_pairing[spec][ek][kind] = _means(per[kind])
                acc[spec][f"{kind}@{ek}"] = float((logits.argmax(1) == y.numpy()).mean())
                shift[spec][ek][kind] = {la: box_stats(d[la]) for la in layers}
                mean_shift[spec][ek][kind] = {la: float(d[la].mean()) for la in layers}
            separation[spec][ek] = {
                la: {
                    p: _auroc(per["pgd"][la][p], per["noise"][la][p])
                    for p in telescope.BMU_PAIRINGS
                }
                for la in layers
            }
    return {
        "models": list(models),
        "layers": layers,
        "eps": [f"{e:.6g}" for e in eps],
        "eps_255": [round(float(e) * 255, 3) for e in eps],
        "som_size": int(params["som_size"]),
        "n_images": n_used,
        "pairing": pairing,
        "floor_eps": float(floor_eps),
        "shift": shift,
        "mean_shift": mean_shift,
        "mean_shift_by_pairing": by_pairing,
        "noise_floor": floor,
        "noise_floor_by_pairing": floor_by_pairing,
        "separation": separation,
        "accuracy": acc,
    }


_PAIRING_WORDS = {
    "rank": "j-th clean vs j-th perturbed BMU, mean over the k pairs",
    "top1": "best clean vs best perturbed BMU",
    "set": "symmetrised mean nearest-unit distance between the two k-unit sets",
}


def summarize(data: dict) -> str:
    pairing = data.get("pairing", "rank")
    lines = [
        f"torus distance between the top-k BMUs of clean and perturbed inputs, pairing "
        f"{pairing!r} ({_PAIRING_WORDS[pairing]}), mean over inputs, "
        f"SOM {data['som_size']}x{data['som_size']}"
    ]
    for spec in data["models"]:
        a = data["accuracy"][spec]
        lines.append(f"{spec}: {data['n_images'][spec]} images, clean accuracy {a['clean']:.3f}")
        if "noise_floor" in data:
            fl = data["noise_floor"][spec]
            lines.append(
                f"  noise floor (uniform noise in [0, {data['floor_eps'] * 255:g}/255]): "
                + "  ".join(f"{la} {fl[la]:.3f}" for la in data["layers"])
            )
        for ek, e255 in zip(data["eps"], data["eps_255"]):
            lines.append(
                f"  eps {e255:g}/255: accuracy noise {a[f'noise@{ek}']:.3f}, PGD {a[f'pgd@{ek}']:.3f}"
            )
            for kind in ("noise", "pgd"):
                ms = data["mean_shift"][spec][ek][kind]
                lines.append(
                    f"    {kind:<6}" + "  ".join(f"{la} {ms[la]:.3f}" for la in data["layers"])
                )
            if "separation" in data:
                sep = data["separation"][spec][ek]
                lines.append(
                    "    AUROC PGD vs noise "
                    + "  ".join(f"{la} {sep[la][pairing]:.2f}" for la in data["layers"])
                )
    return "\n".join(lines)


def _attacked_eps(data, spec, drop: float = 0.05):
    """The eps at which PGD lowers the accuracy by more than ``drop`` (the attack bites)."""
    acc = data["accuracy"][spec]
    return [e for e in data["eps"] if acc["clean"] - acc[f"pgd@{e}"] > drop]


def _pgd_moves_more_than_noise(data):
    res, nums = {}, {}
    for spec in data["models"]:
        eps = _attacked_eps(data, spec)
        need(eps, f"{spec}: PGD does not lower the accuracy at any eps {data['eps']}")
        for e in eps:
            m = data["mean_shift"][spec][e]
            res[f"{spec} {e}"] = all(m["pgd"][ly] > m["noise"][ly] for ly in data["layers"])
            nums[f"{spec} eps {float(e) * 255:.3g}/255 noise / PGD shift"] = {
                ly: r3([m["noise"][ly], m["pgd"][ly]]) for ly in data["layers"]
            }
        if "noise_floor" in data:
            nums[f"{spec} noise floor"] = r3(data["noise_floor"][spec])
    return all_of(res), nums


def _pgd_shift_grows_with_depth(data):
    res, nums = {}, {}
    first, last = data["layers"][0], data["layers"][-1]
    for spec in data["models"]:
        eps = _attacked_eps(data, spec)
        need(eps, f"{spec}: PGD does not lower the accuracy at any eps {data['eps']}")
        for e in eps:
            m = data["mean_shift"][spec][e]["pgd"]
            res[f"{spec} {e}"] = m[last] > m[first]
            nums[f"{spec} eps {float(e) * 255:.3g}/255 PGD shift {first} / {last}"] = r3(
                [m[first], m[last]]
            )
    return all_of(res), nums


CLAIMS = [
    Claim(
        "Random noise does not substantially change the functional codes, adversarial inputs "
        "do: the BMUs move more under PGD than under uniform noise of the same size, in every "
        "layer (at each eps where PGD lowers the accuracy)",
        "Lee & Vijayan 2023, Sec. 3.2 and Fig. 11",
        _pgd_moves_more_than_noise,
    ),
    Claim(
        "The BMU shift under PGD is very small in CL1 but noticeably bigger in CL4",
        "Lee & Vijayan 2023, Sec. 3.2 and Fig. 11",
        _pgd_shift_grows_with_depth,
    ),
]
