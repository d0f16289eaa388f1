"""Vector codes of feature maps (Lee & Vijayan 2023).

A convolutional layer's output (B, C, H, W) is summarised per channel by four numbers:
its maximum, mean, standard deviation and centre of mass, giving a vector of 4 x C
numbers per input. Dense layers (B, D) pass through unchanged. A 3-D output is
ambiguous - (B, N, C) tokens of a transformer or (B, C, L) of a 1-D convolution - so
it needs ``channel_dim`` (capture's ``reducer="codes_tokens"`` is ``channel_dim=-1``).
"""

from __future__ import annotations

import math

import torch

__all__ = ["vector_codes", "code_names", "CODE_STATS"]

CODE_STATS = ("max", "mean", "std", "com")


def _positions(n: int, device, dtype) -> torch.Tensor:
    if n == 1:
        return torch.full((1,), 0.5, device=device, dtype=dtype)
    return torch.linspace(0.0, 1.0, n, device=device, dtype=dtype)


def _centre(w: torch.Tensor, pos: torch.Tensor, total: torch.Tensor | None = None) -> torch.Tensor:
    # w: (B, C, L) non-negative weights; pos: (L,); total: w.sum(-1) when the caller has it.
    # Centre of mass, 0.5 where all weights are 0.
    if total is None:
        total = w.sum(-1)
    com = (w @ pos) / total.clamp_min(torch.finfo(w.dtype).tiny)
    return torch.where(total > 0, com, torch.full_like(com, 0.5))


def vector_codes(
    fmap: torch.Tensor, com: str = "flat", channel_dim: int | None = None
) -> torch.Tensor:
    """Per-channel max, mean, std and centre of mass of a batch of feature maps.

    Parameters
    ----------
    fmap : Tensor of shape (B, C, H, W), (B, C, L), (B, N, C) or (B, D)
        Layer outputs. A (B, D) dense output is returned as it is.
    com : {"flat", "yx"}
        ``"flat"`` (default): the centre of mass of the flattened map over index
        positions scaled to [0, 1] (one number per channel). ``"yx"``: the row and column
        centres of mass (two numbers per channel). Weights are the activations clamped at
        0; an all-zero map has its centre at 0.5.
    channel_dim : int, optional
        The axis of the channels. Default: 1 for a 4-D map (B, C, H, W); a 3-D tensor
        has no default and is refused, because a transformer's tokens (B, N, C) would be
        read as N channels of C positions: pass ``channel_dim=-1`` for tokens (each of
        the C channels is then summarised over the N tokens, in token order) or
        ``channel_dim=1`` for a 1-D convolution's (B, C, L).

    Returns
    -------
    Tensor of shape (B, 4 * C) or (B, 5 * C) for ``com="yx"``
        Blocks ``[max | mean | std | com]`` (``[... | com_y | com_x]``), each of C
        channels in channel order. ``std`` is the population standard deviation.
    """
    if com not in ("flat", "yx"):
        raise ValueError(f"com must be 'flat' or 'yx'; got {com!r}.")
    if fmap.ndim == 2:
        return fmap
    if fmap.ndim == 3 and channel_dim is None:
        raise ValueError(
            f"vector codes of a 3-D output of shape {tuple(fmap.shape)} are ambiguous: "
            "(B, N, C) tokens of a transformer or (B, C, L) of a 1-D convolution. Pass "
            "channel_dim=-1 for tokens (reducer='codes_tokens' in capture) or channel_dim=1 "
            "for (B, C, L); or hook a layer with a (B, C, H, W) output."
        )
    if channel_dim is not None and fmap.ndim in (3, 4):
        cd = int(channel_dim)
        if not -fmap.ndim <= cd < fmap.ndim or cd % fmap.ndim == 0:
            raise ValueError(
                f"channel_dim={channel_dim} is not a channel axis of a {fmap.ndim}-D output "
                f"of shape {tuple(fmap.shape)} (axis 0 is the batch)."
            )
        fmap = fmap.movedim(cd, 1)
    if fmap.ndim == 3:
        fmap = fmap.unsqueeze(-1)
    if fmap.ndim != 4:
        raise ValueError(
            f"vector codes need (B, C, H, W) feature maps or (B, D) dense outputs; got shape {tuple(fmap.shape)}."
        )
    b, c, h, w = fmap.shape
    flat = fmap.reshape(b, c, h * w)
    # each statistic is one vectorised pass (torch.var_mean and torch.aminmax are several
    # times slower than these on the CPU); std is the two-pass population formula
    mx = flat.amax(-1)
    mean = flat.mean(-1)
    std = torch.linalg.vector_norm(flat - mean.unsqueeze(-1), dim=-1) / math.sqrt(h * w)
    if fmap.device.type == "cpu" and bool((flat.amin(-1) >= 0).all()):
        weights, total = flat, mean * (h * w)  # post-ReLU maps: no clamped copy, sum known
    else:
        weights, total = flat.clamp_min(0), None
    if com == "flat":
        parts = [mx, mean, std, _centre(weights, _positions(h * w, fmap.device, fmap.dtype), total)]
    else:
        wy = weights.reshape(b, c, h, w).sum(-1)
        wx = weights.reshape(b, c, h, w).sum(-2)
        parts = [
            mx,
            mean,
            std,
            _centre(wy, _positions(h, fmap.device, fmap.dtype)),
            _centre(wx, _positions(w, fmap.device, fmap.dtype)),
        ]
    return torch.cat(parts, dim=1)


def code_names(channels: int, com: str = "flat") -> list[str]:
    """Names of the code entries, e.g. ``["max[0]", ..., "com[C-1]"]``."""
    stats = CODE_STATS if com == "flat" else ("max", "mean", "std", "com_y", "com_x")
    return [f"{s}[{i}]" for s in stats for i in range(channels)]
