"""The library paper's claims on a fig2/fig4-style result (sizes and agreement vs theta)."""

from __future__ import annotations

import numpy as np

from ._claims import all_of, need, r3


def sizes_grow_with_theta(data):
    res = {ly: bool(np.all(np.diff(data["sizes"][ly]) >= 0)) for ly in data["layers"]}
    return all_of(res), {f"{ly} sizes": data["sizes"][ly] for ly in data["layers"]}


def agreement_reliable(data, level: float = 0.8):
    """Top-1 agreement at the largest theta of every layer >= ``level``, and above the smallest."""
    res, nums = {}, {}
    for ly in data["layers"]:
        t1 = data["top1"][ly]
        res[ly] = t1[-1] >= level and t1[-1] > t1[0]
        nums[f"{ly} top-1 at the smallest / largest theta"] = r3([t1[0], t1[-1]])
    return all_of(res), nums


def top3_helps(data, share: float = 0.5):
    """Top-3 recovers at least ``share`` of top-1's disagreement (mean over theta), per layer."""
    rec = {}
    for ly in data["layers"]:
        t1, t3 = np.asarray(data["top1"][ly], float), np.asarray(data["top3"][ly], float)
        gap = 1.0 - t1
        rec[ly] = float(np.mean(np.where(gap > 1e-9, (t3 - t1) / np.maximum(gap, 1e-9), 1.0)))
    ok = all(v >= share for v in rec.values())
    return ok, {"share of top-1's disagreement that top-3 recovers": r3(rec)}


def later_layers_predict_better(data):
    """Mean top-1 agreement over the theta grid: the last layer above the first."""
    mean = [float(np.mean(data["top1"][ly])) for ly in data["layers"]]
    return mean[-1] > mean[0], {"mean top-1 agreement per layer": r3(mean)}


def common_theta_sizes_fall(data):
    """At every theta all layers share, the first layer's library is bigger than the last's."""
    first, last = data["layers"][0], data["layers"][-1]
    t_first = [float(t) for t in data["thetas"][first]]
    t_last = [float(t) for t in data["thetas"][last]]
    common = sorted(set(t_first) & set(t_last))
    need(bool(common), "the layers have no theta in common")
    pairs = {
        f"{t:g}": [data["sizes"][first][t_first.index(t)], data["sizes"][last][t_last.index(t)]]
        for t in common
    }
    ok = all(a > b for a, b in pairs.values())
    return ok, {f"{first} / {last} size at a common theta": pairs}
