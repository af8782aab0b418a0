"""The boundary band and interiors that the seam metrics and region accuracy measure over."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dualsampler.masks import half_mask
from dualsampler.metrics.bands import INNER_RING, INSIDE, OUTER_RING, OUTSIDE, boundary_regions, dilate, erode


@pytest.mark.parametrize("width", [1, 2, 4, 7])
def test_dilation_and_erosion_are_max_pools_over_square_neighbourhoods(width):
    mask = (torch.rand(3, 1, 37, 53, generator=torch.Generator().manual_seed(width)) > 0.7).float()
    assert torch.equal(dilate(mask, width), F.max_pool2d(mask, 2 * width + 1, 1, width))
    assert torch.equal(erode(mask, width), -F.max_pool2d(-mask, 2 * width + 1, 1, width))


def test_regions_split_the_image_into_rings_of_the_band_width_and_interiors():
    regions = boundary_regions(half_mask(16, 32, "right"), width=3)  # boundary between columns 15 and 16
    assert torch.equal(regions.sum(dim=1), torch.ones(1, 16, 32))
    columns = {name: regions[0, channel, 0].nonzero()[:, 0].tolist()
               for name, channel in [("inner", INNER_RING), ("outer", OUTER_RING), ("in", INSIDE), ("out", OUTSIDE)]}
    assert columns == {"inner": [16, 17, 18], "outer": [13, 14, 15], "in": list(range(19, 32)), "out": list(range(13))}


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_a_mask_without_boundary_has_no_rings(fill):
    regions = boundary_regions(torch.full((1, 1, 8, 8), fill), width=2)
    assert regions[:, [INNER_RING, OUTER_RING]].sum() == 0
