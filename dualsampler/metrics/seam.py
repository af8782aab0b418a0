"""Seam metrics over the band of width `band_width` on each side of the mask boundary (see bands.py).

Each is a torchmetrics Metric: it accumulates per-image values over batches (and seeds), runs on
the device of its inputs, and reports their mean. An image whose mask has no boundary (empty or
full mask) has no seam and is skipped; with no seam at all the metric reports its no-seam value
(1 for the gradient ratio, 0 for the others). Lower is better for all three.
Images [B,3,H,W] in [0,1]; masks [h,w], [B,h,w] or [B,1,h,w], at image or latent resolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from dualsampler.metrics.bands import INNER_RING, INSIDE, OUTER_RING, OUTSIDE, boundary_regions, region_sums
from dualsampler.metrics.features import frozen
from dualsampler.metrics.inputs import check_images, check_pair, check_width, prepare_masks
from dualsampler.metrics.perceptual import layer_mean

EPS = 1 / 255  # one 8-bit grey level: keeps ratios finite on flat images


class _SeamMetric(Metric):
    """Mean of a per-image seam value over the images that have a mask boundary."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    no_seam_value = 0.0

    def __init__(self, band_width: int = 4, **kwargs) -> None:
        super().__init__(**kwargs)
        self.band_width = check_width(band_width)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def _accumulate_values(self, values: Tensor) -> None:
        """Add per-image values [B] (NaN where an image has no seam)."""
        defined = ~values.isnan()
        self.total += values[defined].double().sum().to(self.total.device)
        self.count += defined.sum().to(self.count.device)

    def compute(self) -> Tensor:
        """Mean per-image value over images with a seam, or the no-seam value when there were none."""
        mean = self.total / self.count.clamp(min=1)
        return torch.where(self.count > 0, mean, torch.full_like(mean, self.no_seam_value)).float()


def interior_mean(values: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
    """Mean of per-interior values [B,2] over the interiors with pixels (counts [B,2]) -> (mean [B], how many [B])."""
    present = (counts > 0).to(values)
    number = present.sum(dim=1)
    return (values * present).sum(dim=1) / number.clamp(min=1), number


def gradient_magnitude(images: Tensor) -> Tensor:
    """|grad x| = sqrt(sum_c (d_x x_c)^2 + (d_y x_c)^2), central differences, replicated border -> [B,1,H,W]."""
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    dx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    dy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    return (dx.square() + dy.square()).sum(dim=1, keepdim=True).sqrt()


class SeamGradientRatio(_SeamMetric):
    """seam/gradient_ratio: G = (mean_band |grad x| + eps) / (mean_k [mean_{interior k} |grad x|] + eps).

    band = pixels within `band_width` of the boundary on either side; the interiors k are the inside
    and the outside beyond the band (those that are not empty); eps = 1/255. A seamless texture
    gives G ~ 1; a visible seam adds gradient energy in the band and raises G. update(images, masks).
    """

    no_seam_value = 1.0

    def update(self, images: Tensor, masks: Tensor) -> None:
        """Add the per-image ratios of a batch."""
        self._accumulate_values(gradient_ratios(images, masks, self.band_width))


class SeamColorJump(_SeamMetric):
    """seam/color_jump: J = |mu(inner ring) - mu(outer ring)|_2 / (sqrt(mean_k tr Cov_{interior k}(x)) + eps).

    mu = mean RGB colour over the `band_width` pixels just inside / just outside the boundary; the
    spread is the RMS colour deviation within the interiors (inside and outside beyond the band,
    those not empty); eps = 1/255. Seamless: J ~ 0; a colour or brightness step raises J.
    update(images, masks).
    """

    def update(self, images: Tensor, masks: Tensor) -> None:
        """Add the per-image jumps of a batch."""
        self._accumulate_values(color_jumps(images, masks, self.band_width))


class SeamPerceptual(_SeamMetric):
    """seam/perceptual: P = sum_l [sum_{h,w} b_l d_l / sum_{h,w} b_l], the judge's perceptual distance on the band.

    d_l = sum_c (f_l(x)/|f_l(x)| - f_l(r)/|f_l(r)|)^2 on judge.feature_maps layer l between the image x
    and the reference r (e.g. the reference composite of the two prompts), and b_l the band resized
    to layer l by area: the distance between the boundary patches (the band's receptive fields) of
    image and reference. 0 when the band matches the reference. update(images, masks, references).
    """

    def __init__(self, judge: nn.Module, band_width: int = 4, **kwargs) -> None:
        super().__init__(band_width=band_width, **kwargs)
        self.judge = frozen(judge)

    def update(self, images: Tensor, masks: Tensor, references: Tensor) -> None:
        """Add the per-image band distances of a batch."""
        self._accumulate_values(perceptual_band_distances(self.judge, images, masks, references, self.band_width))


def seam_regions(images: Tensor, masks: Tensor, band_width: int) -> Tensor:
    """The boundary regions [B,4,H,W] (bands.py) of `masks` brought to the checked `images`' size."""
    return boundary_regions(prepare_masks(masks, check_images(images)), check_width(band_width))


def gradient_ratios(images: Tensor, masks: Tensor, band_width: int = 4) -> Tensor:
    """Per image, `seam/gradient_ratio` G (SeamGradientRatio) -> float32 [B]; NaN where the mask has no seam."""
    regions = seam_regions(images, masks, band_width)
    sums, counts = region_sums(gradient_magnitude(images), regions)
    sums = sums[:, 0]
    band_count = counts[:, INNER_RING] + counts[:, OUTER_RING]
    band = (sums[:, INNER_RING] + sums[:, OUTER_RING]) / band_count.clamp(min=1)
    interiors = [INSIDE, OUTSIDE]
    interior, number = interior_mean(sums[:, interiors] / counts[:, interiors].clamp(min=1), counts[:, interiors])
    return torch.where((band_count > 0) & (number > 0), (band + EPS) / (interior + EPS), math.nan)


def color_jumps(images: Tensor, masks: Tensor, band_width: int = 4) -> Tensor:
    """Per image, `seam/color_jump` J (SeamColorJump) -> float32 [B]; NaN where the mask has no seam."""
    regions = seam_regions(images, masks, band_width)
    sums, counts = region_sums(torch.cat([images, images.square()], dim=1), regions)
    means = sums / counts.clamp(min=1)[:, None]  # [B, 6, 4]: colour, then squared colour, per region
    colour, square = means[:, :3], means[:, 3:]
    interiors = [INSIDE, OUTSIDE]
    variance = (square[..., interiors] - colour[..., interiors].square()).clamp(min=0).sum(dim=1)
    variance, number = interior_mean(variance, counts[:, interiors])
    jump = (colour[..., INNER_RING] - colour[..., OUTER_RING]).norm(dim=1) / (variance.sqrt() + EPS)
    return torch.where((counts[:, INNER_RING] > 0) & (counts[:, OUTER_RING] > 0) & (number > 0), jump, math.nan)


def perceptual_band_distances(judge: nn.Module, images: Tensor, masks: Tensor, references: Tensor,
                              band_width: int = 4) -> Tensor:
    """Per image, `seam/perceptual` P (SeamPerceptual) of images and their references -> float32 [B]; NaN where
    the mask has no seam."""
    check_pair(check_images(images), references)
    band = seam_regions(images, masks, band_width)[:, [INNER_RING, OUTER_RING]].sum(dim=1, keepdim=True)
    values = layer_mean(frozen(judge).distance_maps(images, references), band)
    return torch.where(band.sum(dim=(1, 2, 3)) > 0, values, math.nan)
