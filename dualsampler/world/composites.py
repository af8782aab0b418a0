"""Two-region reference composites: the base prompt's texture outside a mask, the mask prompt's inside."""
from __future__ import annotations

import torch

from .textures import render_texture


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
