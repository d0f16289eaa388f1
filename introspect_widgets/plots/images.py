"""Small PNG images as data URIs, for bokeh tooltips and panel HTML (one copy for all).

Images are arrays in [0, 1] of shape ``(C, H, W)`` (C = 1 or 3, or more: the first
three channels are shown) or ``(H, W)``. Pixels are enlarged by nearest-neighbour
scaling, so small digits stay sharp.
"""

from __future__ import annotations

import base64
import io

import numpy as np

__all__ = ["to_uint8", "thumbnail_uri", "thumbnail_tag", "strip_uri"]


def to_uint8(image) -> np.ndarray:
    """``(C, H, W)`` or ``(H, W)`` in [0, 1] -> ``(H, W)`` or ``(H, W, 3)`` uint8."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.transpose(a[:3], (1, 2, 0))
    elif a.ndim != 2:
        raise ValueError(f"an image is (C, H, W) or (H, W); got shape {a.shape}.")
    return (np.clip(np.nan_to_num(a), 0, 1) * 255).astype(np.uint8)


def _png_uri(pixels: np.ndarray, size: tuple[int, int] | None) -> str:
    from PIL import Image

    img = Image.fromarray(pixels)
    if size is not None and tuple(size) != img.size:
        img = img.resize(tuple(size), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def thumbnail_uri(image, size: int | None = None, scale: int | None = None) -> str:
    """One image as a PNG data URI.

    Parameters
    ----------
    image : array-like of shape (C, H, W) or (H, W), in [0, 1]
    size : int, optional
        Resize to ``size x size`` pixels.
    scale : int, optional
        Enlarge ``scale`` times (ignored when ``size`` is given). Default: 1.
    """
    px = to_uint8(image)
    h, w = px.shape[:2]
    if size is not None:
        out = (int(size), int(size))
    else:
        s = max(int(scale or 1), 1)
        out = (w * s, h * s)
    return _png_uri(px, out)


def thumbnail_tag(image, target: int = 48) -> str:
    """An ``<img>`` tag of one image, enlarged by a whole factor to about ``target`` pixels."""
    px = to_uint8(image)
    scale = max(1, int(target) // max(px.shape[:2]))
    uri = thumbnail_uri(image, scale=scale)
    return f'<img src="{uri}" style="margin:1px;image-rendering:pixelated">'


def strip_uri(images, scale: int = 1) -> str:
    """A row of images ``(K, C, H, W)`` side by side as one PNG data URI ("" when K = 0)."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.size == 0 or len(arr) == 0:
        return ""
    row = np.concatenate([to_uint8(a) for a in arr], axis=1)
    h, w = row.shape[:2]
    return _png_uri(row, (w * max(int(scale), 1), h * max(int(scale), 1)))
