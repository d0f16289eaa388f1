"""The telescope paper's claims that two figures share (Fig. 5 / S1, Fig. 6 / S2)."""

from __future__ import annotations

from ._base import Claim
from ._claims import all_of, r3


def cluster_tighter_deeper(data):
    layers, res, nums = data["layers"], {}, {}
    for c in data["classes"]:
        d = [data["bmus"][ly][str(c)]["train"]["d_class"] for ly in layers]
        res[c] = d[-1] < d[0]
        nums[f"class {c} D_class per layer"] = r3(d)
    return all_of(res), nums


def val_lands_on_train_units(data, share: float = 0.8):
    """Share of the SOM-val BMUs that fall on units the same class's SOM-tr BMUs use."""
    res, nums = {}, {}
    for ly in data["layers"]:
        hits = total = 0
        for c in data["classes"]:
            b = data["bmus"][ly][str(c)]
            seen = set(b["train"]["units"])
            hits += sum(k for u, k in zip(b["val"]["units"], b["val"]["counts"]) if u in seen)
            total += sum(b["val"]["counts"])
        frac = hits / total if total else float("nan")
        res[ly] = frac >= share
        nums[f"{ly} SOM-val BMUs on SOM-tr units"] = r3(frac)
    return all_of(res), nums


def some_units_preferred(data):
    """The busiest unit takes >= 3x the share a uniform spread gives each unit."""
    m, n = data["shape"]
    uniform = 1.0 / (m * n)
    res, nums = {}, {}
    for spec in data["models"]:
        for layer in data["layers"]:
            s = data["stats"][spec][layer]
            res[f"{spec} {layer}"] = s["top_unit_share"] >= 3 * uniform
            nums[f"{spec} {layer} top-unit share / uniform"] = r3(s["top_unit_share"] / uniform)
            nums[f"{spec} {layer} effective units of {m * n}"] = r3(s["effective_units"])
    return all_of(res), nums


def class_bmu_claims(figure: str) -> list[Claim]:
    """Fig. 6's claims, for Fig. 6 (ResNet18) or Supplementary Fig. 2 (ResNet50)."""
    return [
        Claim(
            "BMUs of same-class inputs cluster together, and more tightly in deep layers "
            "(per class shown: D_class of CL4 below CL1)",
            f"Lee & Vijayan 2023, Sec. 3.1 and {figure}",
            cluster_tighter_deeper,
        ),
        Claim(
            "SOM-val, not used to train the SOMs, elicits a similar set of units as SOM-tr "
            "(at least 80 % of its BMUs fall on units of the same class's SOM-tr BMUs)",
            f"Lee & Vijayan 2023, Sec. 3.1 and {figure}",
            val_lands_on_train_units,
        ),
    ]


DENSITY_CLAIMS = [
    Claim(
        "Some SOM units are chosen as BMUs far more often than others: a finite set of "
        "functional codes (the busiest unit takes at least 3x a uniform share)",
        "Lee & Vijayan 2023, Sec. 3.1, Fig. 5 and Supplementary Fig. 1",
        some_units_preferred,
    ),
]
