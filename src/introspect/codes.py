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


_BLOCK_BYTES = 2 << 20
"""Bytes of feature map the CPU reduces per block (see :func:`_codes_blockwise`)."""


def _centre(num: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    # num: position-weighted sums of non-negative weights, total: their sums.
    # Centre of mass, 0.5 where all weights are 0.
    com = num / total.clamp_min(torch.finfo(num.dtype).tiny)
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
    flat = fmap.reshape(b, c, h * w)  # a view where fmap's strides allow it, as before
    try:
        flat = flat.view(b * c, h * w)  # rows that can be cut into blocks
    except RuntimeError:  # channels not next to each other (tokens, channels-last): one block
        pass
    return _codes_blockwise(flat, b, c, h, w, com)


def _codes_blockwise(flat, b, c, h, w, com):
    """The codes of ``flat``: the (B * C, H * W) rows of the maps, block of rows by block
    (or a (B, C, H * W) view of them, as one block).

    On the CPU each block is ~2 MB, so every statistic after the first read of a block
    finds it in the cache, and the centred copy that the standard deviation needs is one
    block-sized buffer used again and again: a whole-map temporary of a large map (a
    ResNet's 56 x 56 maps: 49 MB for 64 images) is fresh memory every call, and its page
    faults cost more than all the statistics together. Blocks are multiples of 16 rows
    because a BLAS matrix-vector product treats rows in groups (MKL: 4) and a remainder
    differently: the codes are then bit for bit those of one whole-map pass. On an
    accelerator the map is one block.
    """
    rows_total, n, lead = flat.shape[0], flat.shape[-1], flat.shape[:-1]
    cpu = flat.device.type == "cpu"
    rows = rows_total
    if cpu and flat.ndim == 2:
        rows = max(16, _BLOCK_BYTES // max(1, n * flat.element_size()) // 16 * 16)
    rows = min(rows, rows_total)
    n_stats = 4 if com == "flat" else 5
    out = flat.new_empty(n_stats, *lead)  # [max, mean, std, com] (com_y, com_x) per row
    mx, mean, std = out[0], out[1], out[2]
    buf = torch.empty_like(flat[:rows])  # the layout of the map's rows, as before
    low = flat.new_empty(flat[:rows].shape[:-1])  # the rows' minima
    if com == "flat":
        pos = _positions(n, flat.device, flat.dtype)
        num = flat.new_empty(lead)  # position-weighted sums of the clamped weights
        total = None  # their sums, made when a block has negative activations
    else:
        wy, wx = flat.new_empty(*lead, h), flat.new_empty(*lead, w)
    done = []  # blocks before the first one with negative activations
    for s in range(0, rows_total, rows):
        e = min(s + rows, rows_total)
        x, tmp = flat[s:e], buf[: e - s]
        torch.amax(x, -1, out=mx[s:e])
        torch.mean(x, -1, out=mean[s:e])
        torch.sub(x, mean[s:e].unsqueeze(-1), out=tmp)
        torch.linalg.vector_norm(tmp, dim=-1, out=std[s:e])
        # post-ReLU maps need no clamped copy (the CPU can tell without a device sync; the
        # rows' minima, then theirs: x.min() over the block is several times slower)
        nonneg = cpu and torch.amin(x, -1, out=low[: e - s]).min().item() >= 0
        weights = x if nonneg else torch.clamp_min(x, 0, out=tmp)
        if com == "flat":
            torch.matmul(weights, pos, out=num[s:e])
            if weights is x and total is None:
                done.append((s, e))
                continue
            if total is None:  # the first block with negative values: the sums of all
                total = flat.new_empty(lead)
                for s0, e0 in done:
                    torch.sum(flat[s0:e0], -1, out=total[s0:e0])
            torch.sum(weights, -1, out=total[s:e])
        else:
            w3 = weights.reshape(*weights.shape[:-1], h, w)
            torch.sum(w3, -1, out=wy[s:e])
            torch.sum(w3, -2, out=wx[s:e])
    std /= math.sqrt(n)  # population standard deviation (two-pass: centred, then norm)
    if com == "flat":
        # a map without negative values: the weights' sums are the means times n
        out[3] = _centre(num, mean * n if total is None else total)
    else:
        out[3] = _centre(wy @ _positions(h, flat.device, flat.dtype), wy.sum(-1))
        out[4] = _centre(wx @ _positions(w, flat.device, flat.dtype), wx.sum(-1))
    return out.reshape(n_stats, b, c).transpose(0, 1).reshape(b, n_stats * c)


def code_names(channels: int, com: str = "flat") -> list[str]:
    """Names of the code entries, e.g. ``["max[0]", ..., "com[C-1]"]``."""
    stats = CODE_STATS if com == "flat" else ("max", "mean", "std", "com_y", "com_x")
    return [f"{s}[{i}]" for s in stats for i in range(channels)]
