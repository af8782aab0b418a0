"""Two-region reference composites: the base prompt's texture outside a mask, the mask prompt's inside."""
from __future__ import annotations

import math

import torch

from .textures import render_texture

MASK_SHAPES = ("half_plane", "rectangle", "ellipse")


def render_composite(base_prompt: str, mask_prompt: str, mask: torch.Tensor, seed: int) -> torch.Tensor:
    """Hard-edged composite -> Tensor[3, H, W]: where(mask > 0.5, texture(mask_prompt), texture(base_prompt)).

    `mask` is [H, W] or [1, 1, H, W]; the base texture uses `seed`, the mask texture `seed + 1`.
    """
    if mask.dim() == 4 and mask.shape[:2] == (1, 1):
        mask = mask[0, 0]
    if mask.dim() != 2:
        raise ValueError(f"mask must be [H, W] or [1, 1, H, W], got shape {tuple(mask.shape)}")
    height, width = mask.shape
    base = render_texture(base_prompt, height, width, seed)
    inside = render_texture(mask_prompt, height, width, seed + 1)
    return torch.where(mask.to(base.device) > 0.5, inside, base)


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
