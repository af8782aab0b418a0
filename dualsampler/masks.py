"""Masks: validation, resize, grow (SPEC §7), feather, and the shapes experiments use. 1 = inside the mask."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def as_mask_batch(mask: Tensor, name: str = "mask", batch: int | None = None) -> Tensor:
    """`[H,W]`, `[B,H,W]` or `[B,1,H,W]` -> float `[B,1,H,W]`; B must be 1 or `batch`; values in [0, 1]."""
    if not isinstance(mask, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if mask.ndim == 2:
        mask = mask[None, None]
    elif mask.ndim == 3:
        mask = mask[:, None]
    elif mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"{name} must have shape [H,W], [B,H,W] or [B,1,H,W], got {tuple(mask.shape)}")
    if batch is not None and mask.shape[0] not in (1, batch):
        raise ValueError(f"{name} batch must be 1 or {batch} (the latent's batch), got {mask.shape[0]}")
    mask = mask.float() if not mask.is_floating_point() else mask
    if not torch.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
        raise ValueError(f"{name} values must lie in [0, 1]")
    return mask


def resize_mask(mask: Tensor, height: int, width: int) -> Tensor:
    """Bilinear resize to `(height, width)` (not transposed, unlike upstream's (W, H) call) -> `[B,1,H,W]`."""
    m = as_mask_batch(mask)
    if m.shape[-2:] == (height, width):
        return m
    return F.interpolate(m, size=(height, width), mode="bilinear")


def grow_mask(mask: Tensor, height: int, width: int, grow_by: int) -> Tensor:
    """SPEC §7: resize to (H, W); if `grow_by > 0`: round, convolve with a `grow_by` box of ones (padding
    `ceil((grow_by-1)/2)`), clamp to [0,1], crop to (H, W); round. The result is binary `[B,1,H,W]`."""
    if isinstance(grow_by, bool) or not isinstance(grow_by, (int, float)) or grow_by < 0 or grow_by != int(grow_by):
        raise ValueError(f"grow_by (overlap_factor) must be an integer >= 0, got {grow_by!r}")
    grow_by = int(grow_by)
    m = resize_mask(mask, height, width)
    if grow_by > 0:
        kernel = torch.ones(1, 1, grow_by, grow_by, dtype=m.dtype, device=m.device)
        m = F.conv2d(m.round(), kernel, padding=math.ceil((grow_by - 1) / 2)).clamp(0, 1)
    return m[..., :height, :width].round()


def feather_mask(mask: Tensor, radius: float) -> Tensor:
    """Gaussian blur with std `radius / 2` (reflect padding): soft edges, values stay in [0, 1]; 0 = unchanged."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    m = as_mask_batch(mask)
    if radius == 0:
        return m
    half = max(1, math.ceil(radius))
    offsets = torch.arange(-half, half + 1, dtype=m.dtype, device=m.device)
    kernel = torch.exp(-0.5 * (offsets / (radius / 2)) ** 2)
    kernel = kernel / kernel.sum()
    pad_h, pad_w = min(half, m.shape[-2] - 1), min(half, m.shape[-1] - 1)
    out = m
    if pad_w > 0:
        k = kernel[half - pad_w : half + pad_w + 1]
        out = F.conv2d(F.pad(out, (pad_w, pad_w, 0, 0), mode="reflect"), (k / k.sum()).reshape(1, 1, 1, -1))
    if pad_h > 0:
        k = kernel[half - pad_h : half + pad_h + 1]
        out = F.conv2d(F.pad(out, (0, 0, pad_h, pad_h), mode="reflect"), (k / k.sum()).reshape(1, 1, -1, 1))
    return out.clamp(0, 1)


def _check_size(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height}x{width}")


def _grid(height: int, width: int) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates as fractions of the size, each `[H, W]`."""
    ys = (torch.arange(height) + 0.5) / height
    xs = (torch.arange(width) + 0.5) / width
    return torch.meshgrid(ys, xs, indexing="ij")


def rectangle_mask(height: int, width: int, top: float, left: float, bottom: float, right: float) -> Tensor:
    """1 inside the box `[top, bottom) x [left, right)` given in fractions of the size -> `[1,1,H,W]`."""
    _check_size(height, width)
    if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
        raise ValueError(f"box fractions need 0 <= top < bottom <= 1 and 0 <= left < right <= 1, "
                         f"got top={top} left={left} bottom={bottom} right={right}")
    y, x = _grid(height, width)
    return ((y >= top) & (y < bottom) & (x >= left) & (x < right)).float()[None, None]


def ellipse_mask(height: int, width: int, cy: float = 0.5, cx: float = 0.5, ry: float = 0.25, rx: float = 0.25) -> Tensor:
    """1 inside the ellipse with centre `(cy, cx)` and radii `(ry, rx)`, fractions of the size -> `[1,1,H,W]`."""
    _check_size(height, width)
    if ry <= 0 or rx <= 0:
        raise ValueError(f"radii ry and rx must be > 0, got ry={ry} rx={rx}")
    y, x = _grid(height, width)
    return ((((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2) <= 1).float()[None, None]


def half_mask(height: int, width: int, side: str = "right") -> Tensor:
    """1 on one half of the canvas: `side` in left|right|top|bottom -> `[1,1,H,W]`."""
    boxes = {"left": (0, 0, 1, 0.5), "right": (0, 0.5, 1, 1), "top": (0, 0, 0.5, 1), "bottom": (0.5, 0, 1, 1)}
    if side not in boxes:
        raise ValueError(f"side must be one of {', '.join(boxes)}, got {side!r}")
    return rectangle_mask(height, width, *boxes[side])


def load_mask(path: str | Path, height: int | None = None, width: int | None = None) -> Tensor:
    """A mask from an image file: its alpha channel if it has one, else its luminance, scaled to [0, 1]."""
    from PIL import Image

    image = Image.open(path)
    channel = image.getchannel("A") if "A" in image.getbands() else image.convert("L")
    mask = torch.from_numpy(np.asarray(channel, dtype=np.float32) / 255.0)[None, None]
    if height is not None or width is not None:
        mask = resize_mask(mask, height or mask.shape[-2], width or mask.shape[-1])
    return mask
