"""Input checks shared by every metric: images [B,3,H,W] in [0,1], masks brought to image size."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..validation import check_bounded


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
    Checks like dualsampler.masks.as_mask_batch, in one pass over the values (metrics call it per batch).
    """
    if not isinstance(masks, Tensor):
        raise ValueError(f"masks must be a torch.Tensor, got {type(masks).__name__}")
    batch, _, height, width = images.shape
    if masks.dim() not in (2, 3, 4) or (masks.dim() == 4 and masks.shape[1] != 1):
        raise ValueError(f"masks must have shape [H,W], [B,H,W] or [B,1,H,W], got {tuple(masks.shape)}")
    masks = masks.reshape(-1 if masks.dim() > 2 else 1, 1, *masks.shape[-2:])
    if masks.shape[0] not in (1, batch):
        raise ValueError(f"masks batch must be 1 or {batch} (the images' batch), got {masks.shape[0]}")
    low, high = torch.aminmax(masks.float())
    if not (low >= 0 and high <= 1):  # also catches NaN
        raise ValueError(f"masks values must lie in [0, 1], got range [{low.item():.4g}, {high.item():.4g}]")
    h, w = masks.shape[-2:]
    factor = height // h if height % h == 0 else 0
    if not factor or width != w * factor:
        raise ValueError(f"masks size must be the image size {height}x{width} or an integer fraction of it "
                         f"(latent resolution, same factor on both axes), got {h}x{w}")
    masks = masks.to(device=images.device, dtype=images.dtype)
    if factor > 1:
        masks = F.interpolate(masks, size=(height, width), mode="bilinear")
    return (masks >= 0.5).to(images.dtype).expand(batch, 1, height, width)


def check_prompts(prompts: str | Sequence[str], batch: int, name: str) -> list[str]:
    """One prompt per image: a single string is repeated; returns prompts with normalised whitespace."""
    if isinstance(prompts, str):
        prompts = [prompts] * batch
    prompts = list(prompts)
    if len(prompts) != batch or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"{name} must be a string or {batch} strings (one per image), got {len(prompts)} items")
    return [" ".join(p.split()) for p in prompts]


JUDGE_MIN_SIDE = 32  # pixels: the judge's smallest input (models/judge.py) and the side of its region patches


def check_judge_canvas(height: int, width: int) -> None:
    """Raise ValueError unless a `height x width` image is large enough for the judge's metrics."""
    if min(height, width) < JUDGE_MIN_SIDE:
        raise ValueError(f"images must be at least {JUDGE_MIN_SIDE} px on each side for the judge's metrics "
                         f"(region accuracy, perceptual, fid/judge), got {height}x{width}; compute the seam metrics "
                         f"alone (no prompts, references or real_images) on smaller images")


def judge_vocabulary(judge: object | None) -> tuple[list[str], list[str]] | None:
    """(colors, patterns) the judge can read: its config's, the world's for the default judge (None), else None."""
    if judge is None:
        from dualsampler.world.prompts import COLORS, PATTERNS

        return list(COLORS), list(PATTERNS)
    config = getattr(getattr(judge, "judge", judge), "config", None)
    colors, patterns = getattr(config, "colors", None), getattr(config, "patterns", None)
    return (list(colors), list(patterns)) if colors and patterns else None


def check_judge_prompts(prompts: list[str], name: str, vocabulary: tuple[list[str], list[str]]) -> list[str]:
    """Each prompt as the judge writes it ("<color> <pattern>", lower case); ValueError naming `name` and the
    vocabulary for an unknown or missing word (such a prompt would always score 0)."""
    from dualsampler.world.prompts import split_prompt

    colors, patterns = vocabulary
    out = []
    for prompt in prompts:
        try:
            color, pattern = split_prompt(prompt, colors, patterns)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
        out.append(f"{color} {pattern}")
    return out


def check_width(width: int, name: str = "band_width") -> int:
    """`width` as an int within `BOUNDS['band_width']` (a wider band would pad the masks by as much)."""
    return int(check_bounded(width, "band_width", name))
