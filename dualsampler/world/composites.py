"""Reference composites: the base prompt's texture, each region's prompt's texture pasted inside its mask."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .textures import render_texture

MASK_SHAPES = ("half_plane", "rectangle", "ellipse")


def render_regions(base_prompt: str, regions: Sequence[tuple[torch.Tensor, str]], seed: int) -> torch.Tensor:
    """Hard-edged composite of N regions -> Tensor[3, H, W]: texture(base_prompt), then region k's texture pasted
    where its mask > 0.5, later regions on top.

    `regions`: (mask [H, W] or [1, 1, H, W], prompt) pairs, all masks the same size; the base texture uses `seed`,
    region k's texture `seed + 1 + k`.
    """
    masks = _region_masks(regions)
    height, width = masks[0].shape
    out = render_texture(base_prompt, height, width, seed)
    for k, (mask, (_, prompt)) in enumerate(zip(masks, regions)):
        out = torch.where(mask.to(out.device) > 0.5, render_texture(prompt, height, width, seed + 1 + k), out)
    return out


def render_composite(base_prompt: str, mask_prompt: str, mask: torch.Tensor, seed: int) -> torch.Tensor:
    """Hard-edged composite -> Tensor[3, H, W]: where(mask > 0.5, texture(mask_prompt), texture(base_prompt)).

    `mask` is [H, W] or [1, 1, H, W]; the base texture uses `seed`, the mask texture `seed + 1` (the one-region
    `render_regions`).
    """
    return render_regions(base_prompt, [(_plain_mask(mask, "mask"), mask_prompt)], seed)


def _region_masks(regions: Sequence[tuple[torch.Tensor, str]]) -> list[torch.Tensor]:
    """The masks of `regions` as [H, W], after checking it is a non-empty list of (mask, prompt) pairs of one size."""
    if not isinstance(regions, Sequence) or isinstance(regions, str) or not regions:
        raise ValueError(f"regions must be a non-empty list of (mask, prompt) pairs, got {type(regions).__name__}"
                         + (" of length 0" if isinstance(regions, Sequence) else ""))
    masks = []
    for k, region in enumerate(regions):
        if not (isinstance(region, Sequence) and len(region) == 2 and isinstance(region[0], torch.Tensor)
                and isinstance(region[1], str)):
            raise ValueError(f"regions[{k}] must be a (mask tensor, prompt string) pair, got {type(region).__name__}")
        masks.append(_plain_mask(region[0], f"regions[{k}] mask"))
        if masks[k].shape != masks[0].shape:
            raise ValueError(f"regions[{k}] mask must have the size of regions[0]'s mask, "
                             f"{tuple(masks[0].shape)}, got {tuple(masks[k].shape)}")
    return masks


def _plain_mask(mask: torch.Tensor, name: str) -> torch.Tensor:
    """`mask` [H, W] or [1, 1, H, W] as [H, W]; any other shape is a ValueError naming `name`."""
    if mask.dim() == 4 and mask.shape[:2] == (1, 1):
        mask = mask[0, 0]
    if mask.dim() != 2:
        raise ValueError(f"{name} must be [H, W] or [1, 1, H, W], got shape {tuple(mask.shape)}")
    return mask


def random_region_mask(height: int, width: int, seed: int) -> torch.Tensor:
    """Seeded hard {0, 1} mask [H, W] covering 20-80% of the canvas: a half-plane, rectangle or ellipse.

    Half-plane: n . (p - c) > 0 with a uniform angle; rectangle and ellipse: random centre and extents.
    Redrawn (deterministically) until the covered fraction lies in [0.2, 0.8], so both regions are visible.
    """
    if height < 4 or width < 4:
        raise ValueError(f"height and width must be >= 4, got {height}x{width}")
    gen = torch.Generator().manual_seed(seed)
    y = (torch.arange(height, dtype=torch.float32) + 0.5)[:, None] / height
    x = (torch.arange(width, dtype=torch.float32) + 0.5)[None, :] / width
    while True:
        u = torch.rand(6, generator=gen).tolist()
        shape = MASK_SHAPES[int(u[0] * len(MASK_SHAPES))]
        cy, cx = 0.3 + 0.4 * u[1], 0.3 + 0.4 * u[2]
        if shape == "half_plane":
            angle = 2 * math.pi * u[3]
            mask = (math.cos(angle) * (x - cx) + math.sin(angle) * (y - cy)) > 0
        elif shape == "rectangle":
            hy, hx = 0.2 + 0.3 * u[3], 0.2 + 0.3 * u[4]
            mask = ((y - cy).abs() < hy) & ((x - cx).abs() < hx)
        else:
            ry, rx = 0.2 + 0.3 * u[3], 0.2 + 0.3 * u[4]
            mask = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1
        fraction = mask.float().mean().item()
        if 0.2 <= fraction <= 0.8:
            return mask.float()
