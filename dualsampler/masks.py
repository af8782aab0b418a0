"""Masks: validation, resize, grow (SPEC §7), feather, and the shapes experiments use. 1 = inside the mask."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .validation import MAX_SIDE, check_bounded, check_fraction, check_real


def check_side(value: object, name: str) -> int:
    """A mask or canvas side in pixels within `BOUNDS['side']` (a float holding an integer is accepted) -> int."""
    return int(check_bounded(value, "side", name))


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
    if mask.numel() == 0:
        raise ValueError(f"{name} must have every size >= 1, got shape {tuple(mask.shape)}")
    if batch is not None and mask.shape[0] not in (1, batch):
        raise ValueError(f"{name} batch must be 1 or {batch} (the latent's batch), got {mask.shape[0]}")
    mask = mask.float() if not mask.is_floating_point() else mask
    if not torch.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
        raise ValueError(f"{name} values must lie in [0, 1]")
    return mask


def resize_mask(mask: Tensor, height: int, width: int) -> Tensor:
    """Bilinear resize to `(height, width)` (not transposed, unlike upstream's (W, H) call) -> `[B,1,H,W]`."""
    height, width = check_side(height, "height"), check_side(width, "width")
    m = as_mask_batch(mask)
    if m.shape[-2:] == (height, width):
        return m
    return F.interpolate(m, size=(height, width), mode="bilinear")


def grow_mask(mask: Tensor, height: int, width: int, grow_by: int) -> Tensor:
    """SPEC §7: resize to (H, W); if `grow_by > 0`: round, convolve with a `grow_by` box of ones (padding
    `ceil((grow_by-1)/2)`), clamp to [0,1], crop to (H, W); round. The result is binary `[B,1,H,W]`."""
    grow_by = int(check_bounded(grow_by, "overlap_factor", "grow_by (overlap_factor)"))
    height, width = check_side(height, "height"), check_side(width, "width")
    m = resize_mask(mask, height, width)
    if grow_by > 0:
        kernel = torch.ones(1, 1, grow_by, grow_by, dtype=m.dtype, device=m.device)
        m = F.conv2d(m.round(), kernel, padding=math.ceil((grow_by - 1) / 2)).clamp(0, 1)
    return m[..., :height, :width].round()


def feather_mask(mask: Tensor, radius: float) -> Tensor:
    """Gaussian blur with std `radius / 2` (reflect padding): soft edges, values stay in [0, 1]; 0 = unchanged."""
    radius = check_bounded(radius, "feather", "radius (feather)")
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


def _check_size(height: int, width: int) -> tuple[int, int]:
    return check_side(height, "height"), check_side(width, "width")


def _grid(height: int, width: int) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates as fractions of the size, each `[H, W]`."""
    ys = (torch.arange(height) + 0.5) / height
    xs = (torch.arange(width) + 0.5) / width
    return torch.meshgrid(ys, xs, indexing="ij")


def rectangle_mask(height: int, width: int, top: float, left: float, bottom: float, right: float) -> Tensor:
    """1 inside the box `[top, bottom) x [left, right)` given in fractions of the size -> `[1,1,H,W]`."""
    height, width = _check_size(height, width)
    top, left = check_fraction(top, "top"), check_fraction(left, "left")
    bottom, right = check_fraction(bottom, "bottom"), check_fraction(right, "right")
    if not (top < bottom and left < right):
        raise ValueError(f"box fractions need top < bottom and left < right (an empty box is no mask), "
                         f"got top={top} left={left} bottom={bottom} right={right}")
    y, x = _grid(height, width)
    return ((y >= top) & (y < bottom) & (x >= left) & (x < right)).float()[None, None]


def ellipse_mask(height: int, width: int, cy: float = 0.5, cx: float = 0.5, ry: float = 0.25, rx: float = 0.25) -> Tensor:
    """1 inside the ellipse with centre `(cy, cx)` and radii `(ry, rx)`, fractions of the size -> `[1,1,H,W]`."""
    height, width = _check_size(height, width)
    cy, cx = check_real(cy, "cy", -1.0, 2.0), check_real(cx, "cx", -1.0, 2.0)
    ry, rx = check_real(ry, "ry", 0.0, 4.0, low_open=True), check_real(rx, "rx", 0.0, 4.0, low_open=True)
    y, x = _grid(height, width)
    return ((((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2) <= 1).float()[None, None]


def half_mask(height: int, width: int, side: str = "right") -> Tensor:
    """1 on one half of the canvas: `side` in left|right|top|bottom -> `[1,1,H,W]`."""
    height, width = _check_size(height, width)
    boxes = {"left": (0, 0, 1, 0.5), "right": (0, 0.5, 1, 1), "top": (0, 0, 0.5, 1), "bottom": (0.5, 0, 1, 1)}
    if side not in boxes:
        raise ValueError(f"side must be one of {', '.join(boxes)}, got {side!r}")
    return rectangle_mask(height, width, *boxes[side])


def _channel_scale(image) -> float:
    """The largest value an image mode's channel can hold: 65535 for 16-bit greyscale (PIL's `I;16*` and the
    `I` mode its PNG plugin opens them in), 1 for float images, 255 for 8-bit modes."""
    if image.mode.startswith("I;16") or image.mode == "I":
        return 65535.0
    if image.mode == "F":
        return 1.0
    return 255.0


def load_mask(path: str | Path, height: int | None = None, width: int | None = None) -> Tensor:
    """A mask from an image file: its alpha channel if it has one, else its luminance, divided by the largest
    value of its bit depth (255, or 65535 for 16-bit greyscale), then resized to `(height, width)` when given.

    Raises ValueError naming `path` when the file is missing, unreadable or truncated, and naming height/width
    when they are not integers in [1, MAX_SIDE].
    """
    from PIL import Image, UnidentifiedImageError

    height = None if height is None else check_side(height, "height")
    width = None if width is None else check_side(width, "width")
    if not isinstance(path, (str, Path)):
        raise ValueError(f"path must be an existing image file, got {path!r}")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be an existing image file, got {str(path)!r}")
    unreadable = (OSError, SyntaxError, ValueError, UnidentifiedImageError)
    try:
        image = Image.open(path)  # reads the header only
    except Image.DecompressionBombError as error:
        raise ValueError(f"path {str(path)!r}: the image's sides must be <= {MAX_SIDE} px ({error})") from None
    except unreadable as error:
        raise ValueError(f"path {str(path)!r} is not a readable image file (truncated or not an image?): {error}") from None
    with image:
        check_side(image.height, f"the height of {path.name}")  # from the header, before decoding
        check_side(image.width, f"the width of {path.name}")
        try:
            image.load()
            if "A" in image.getbands():
                array, scale = np.asarray(image.getchannel("A"), dtype=np.float32), 255.0
            elif image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                array, scale = np.asarray(image, dtype=np.float32), _channel_scale(image)
            else:
                array, scale = np.asarray(image.convert("L"), dtype=np.float32), 255.0
        except unreadable as error:
            raise ValueError(f"path {str(path)!r} is not a readable image file (truncated or not an image?): "
                             f"{error}") from None
    if not np.isfinite(array).all():
        raise ValueError(f"path {str(path)!r} holds NaN or infinite values; a mask's values must lie in [0, 1]")
    mask = torch.from_numpy(np.clip(array / scale, 0.0, 1.0))[None, None]
    if height is not None or width is not None:
        mask = resize_mask(mask, height or mask.shape[-2], width or mask.shape[-1])
    return mask
