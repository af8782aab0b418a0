"""Boundary band and interiors of a binary mask, by dilation and erosion over square neighbourhoods."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

INNER_RING, OUTER_RING, INSIDE, OUTSIDE = range(4)  # channels of boundary_regions(...)


def dilate(mask: Tensor, width: int) -> Tensor:
    """Dilate mask [B,1,H,W]: 1 where a pixel within Chebyshev distance `width` is 1 (separable box sums)."""
    window = 2 * width + 1
    rows = F.pad(mask, (width + 1, width)).cumsum(-1)
    rows = rows[..., window:] - rows[..., :-window]
    both = F.pad(rows, (0, 0, width + 1, width)).cumsum(-2)
    return ((both[..., window:, :] - both[..., :-window, :]) > 0.5).to(mask.dtype)


def erode(mask: Tensor, width: int) -> Tensor:
    """Erode mask [B,1,H,W]: 1 where every pixel within Chebyshev distance `width` is 1; the border erodes nothing."""
    return 1 - dilate(1 - mask, width)


def boundary_regions(mask: Tensor, width: int) -> Tensor:
    """Binary mask m [B,1,H,W] -> disjoint regions [B,4,H,W], channels INNER_RING, OUTER_RING, INSIDE, OUTSIDE:

    m - erode(m, w) (inside, within w of the boundary), dilate(m, w) - m (outside, within w),
    erode(m, w) (inside interior), 1 - dilate(m, w) (outside interior). The band of width 2w around
    the boundary is the two rings. An empty or full mask has empty rings (the image border is no boundary).
    """
    grown, shrunk = dilate(mask, width), erode(mask, width)
    return torch.cat([mask - shrunk, grown - mask, shrunk, 1 - grown], dim=1)


def region_sums(values: Tensor, regions: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image sums of values [B,C,H,W] over each region [B,K,H,W] -> (sums [B,C,K], pixel counts [B,K])."""
    flat = regions.flatten(2)
    return torch.bmm(values.flatten(2), flat.transpose(1, 2)), flat.sum(-1)
