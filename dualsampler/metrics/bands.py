"""Boundary band and interiors of a binary mask, by max-pool dilation and erosion (square neighbourhoods)."""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor


def dilate(mask: Tensor, width: int) -> Tensor:
    """Dilate mask [B,1,H,W]: 1 where a pixel within Chebyshev distance `width` is 1 (separable max-pool)."""
    rows = F.max_pool2d(mask, kernel_size=(1, 2 * width + 1), stride=1, padding=(0, width))
    return F.max_pool2d(rows, kernel_size=(2 * width + 1, 1), stride=1, padding=(width, 0))


def erode(mask: Tensor, width: int) -> Tensor:
    """Binary erosion: 1 where every pixel within Chebyshev distance `width` is 1; the image border erodes nothing."""
    return 1 - dilate(1 - mask, width)


class Regions(NamedTuple):
    """Disjoint parts of the image around a mask boundary, each a binary Tensor[B,1,H,W]."""

    inner_ring: Tensor  # inside, within `width` of an outside pixel
    outer_ring: Tensor  # outside, within `width` of an inside pixel
    inside: Tensor  # inside interior: mask eroded by `width`
    outside: Tensor  # outside interior: complement of the mask dilated by `width`

    @property
    def band(self) -> Tensor:
        """The boundary band of width 2*`width`: inner ring + outer ring."""
        return self.inner_ring + self.outer_ring


def boundary_regions(mask: Tensor, width: int) -> Regions:
    """Split the image by a binary mask m [B,1,H,W]: band = dilate(m, w) - erode(m, w); interiors erode(m, w)
    and 1 - dilate(m, w).

    An empty or full mask has an empty band (the image border is not a boundary).
    """
    grown = dilate(mask, width)
    shrunk = erode(mask, width)
    return Regions(inner_ring=mask - shrunk, outer_ring=grown - mask, inside=shrunk, outside=1 - grown)


def masked_mean(values: Tensor, region: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image mean of values [B,C,H,W] over region [B,1,H,W] -> (mean [B,C], pixel count [B]); mean 0 where empty."""
    count = region.sum(dim=(1, 2, 3))
    total = (values * region).sum(dim=(2, 3))
    return total / count.clamp(min=1)[:, None], count
