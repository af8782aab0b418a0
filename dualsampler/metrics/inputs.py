"""Input checks shared by every metric: images [B,3,H,W] in [0,1], masks brought to image size."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dualsampler.masks import as_mask_batch, resize_mask


def check_images(images: Tensor, name: str = "images") -> Tensor:
    """Return `images` unchanged after checking it is a float Tensor[B,3,H,W] with values in [0, 1]."""
    if not isinstance(images, Tensor) or not images.is_floating_point():
        raise ValueError(f"{name} must be a float Tensor[B,3,H,W] with values in [0, 1], got {type(images).__name__}"
                         + ("" if not isinstance(images, Tensor) else f" of dtype {images.dtype}"))
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must have shape [B,3,H,W], got {list(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image, got batch size 0")
    low, high = torch.aminmax(images)
    if not (low >= 0 and high <= 1):  # also catches NaN
        raise ValueError(f"{name} values must lie in [0, 1], got range [{low.item():.4g}, {high.item():.4g}]")
    return images


def check_pair(images: Tensor, references: Tensor, name: str = "references") -> Tensor:
    """Return `references` after checking it is a valid image batch of exactly the shape of `images`."""
    check_images(references, name)
    if references.shape != images.shape:
        raise ValueError(f"{name} must have the shape of images {list(images.shape)}, got {list(references.shape)}")
    return references


def prepare_masks(masks: Tensor, images: Tensor) -> Tensor:
    """Masks [h,w], [B|1,h,w] or [B|1,1,h,w] in [0,1] -> binary float Tensor[B,1,H,W] (1 = inside, mask >= 0.5).

    A mask at an integer fraction of the image size (a latent-resolution mask, same factor on both
    axes) is resized bilinearly before thresholding; any other size mismatch is a ValueError.
    """
    batch, _, height, width = images.shape
    masks = as_mask_batch(masks, "masks", batch)
    h, w = masks.shape[-2:]
    factor = height // h if height % h == 0 else 0
    if not factor or width != w * factor:
        raise ValueError(f"masks size must be the image size {height}x{width} or an integer fraction of it "
                         f"(latent resolution, same factor on both axes), got {h}x{w}")
    masks = resize_mask(masks.to(device=images.device, dtype=images.dtype), height, width)
    return (masks >= 0.5).to(images.dtype).expand(batch, 1, height, width)


def check_prompts(prompts: str | Sequence[str], batch: int, name: str) -> list[str]:
    """One prompt per image: a single string is repeated; returns prompts with normalised whitespace."""
    if isinstance(prompts, str):
        prompts = [prompts] * batch
    prompts = list(prompts)
    if len(prompts) != batch or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"{name} must be a string or {batch} strings (one per image), got {len(prompts)} items")
    return [" ".join(p.split()) for p in prompts]


def check_width(width: int, name: str = "band_width") -> int:
    """Return `width` after checking it is an int >= 1."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {width!r}")
    return width
