"""Pixel-space resizing of image batches `[B, C, H, W]` in `[0, 1]` by a named scale method."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dualsampler.masks import check_side
from dualsampler.validation import check_choice

SCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
LANCZOS_A = 3


def check_scale_method(method: str) -> None:
    """Raise ValueError unless `method` is one of SCALE_METHODS."""
    check_choice(method, "scale_method", SCALE_METHODS)


def _lanczos_kernel(x: torch.Tensor, a: int = LANCZOS_A) -> torch.Tensor:
    """L(x) = sinc(x) * sinc(x / a) for |x| < a, else 0."""
    return torch.where(x.abs() < a, torch.sinc(x) * torch.sinc(x / a), torch.zeros_like(x))


def lanczos_matrix(size_in: int, size_out: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Resampling matrix `[size_out, size_in]` of a Lanczos-3 filter, widened by in/out when shrinking (PIL's rule).

    Row `o` holds `L((j + 0.5 - c) / s) / sum_j L(...)` with `c = (o + 0.5) * in/out`, `s = max(in/out, 1)`.
    """
    scale = size_in / size_out
    stretch = max(scale, 1.0)
    centers = (torch.arange(size_out, dtype=dtype) + 0.5) * scale
    taps = torch.arange(size_in, dtype=dtype) + 0.5
    weights = _lanczos_kernel((taps[None, :] - centers[:, None]) / stretch)
    return weights / weights.sum(dim=1, keepdim=True)


def _lanczos(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    rows = lanczos_matrix(images.shape[-2], height).to(images)
    cols = lanczos_matrix(images.shape[-1], width).to(images)
    return torch.einsum("oh,bchw,pw->bcop", rows, images, cols)


def lanczos_8bit(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """ComfyUI's lanczos: each channel quantised to `uint8(clip(255 x, 0, 255))` (truncated, not rounded), resized
    by Pillow's 8-bit Lanczos filter (its fixed-point weights, result rounded to 8 bits), then divided by 255."""
    from PIL import Image

    codes = np.clip(images.detach().cpu().float().numpy() * 255.0, 0, 255).astype(np.uint8)
    planes = [[np.asarray(Image.fromarray(plane).resize((width, height), Image.Resampling.LANCZOS)) for plane in image]
              for image in codes]
    return torch.from_numpy(np.asarray(planes, dtype=np.float32) / 255.0).to(images)


def resize_images(
    images: torch.Tensor, height: int, width: int, method: str, upstream_compat: bool = False
) -> torch.Tensor:
    """Resize `images[B, C, H, W]` to `[B, C, height, width]` with `method` (see SCALE_METHODS).

    `bilinear`/`bicubic` use half-pixel centres (align_corners=False) without antialiasing, `area` averages
    the covered source pixels, `lanczos` is the separable Lanczos-3 filter in the images' float precision (equal to
    Pillow's resize of a float image); `bicubic` and `lanczos` overshoot, so their result is clamped to [0, 1].
    `upstream_compat=True` resizes as ComfyUI does: `lanczos` through 8-bit images (`lanczos_8bit`, 1-3e-2 from the
    float filter) and `bicubic` without the clamp.
    """
    check_scale_method(method)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be [B, C, H, W]; got shape {shape}")
    if not torch.isfinite(images).all():
        raise ValueError("images contains NaN or infinite values")
    height, width = check_side(height, "height"), check_side(width, "width")
    if (height, width) == tuple(images.shape[-2:]):
        return images
    if method == "lanczos":
        return lanczos_8bit(images, height, width) if upstream_compat else _lanczos(images, height, width).clamp(0, 1)
    if method == "bicubic":
        out = F.interpolate(images, size=(height, width), mode="bicubic", align_corners=False)
        return out if upstream_compat else out.clamp(0.0, 1.0)
    if method == "bilinear":
        return F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False)
    return F.interpolate(images, size=(height, width), mode=method)

