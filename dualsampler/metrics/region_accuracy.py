"""`region_accuracy/inside` and `region_accuracy/outside`: does the judge read the right prompt in each region?"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from dualsampler.metrics.bands import dilate, erode
from dualsampler.metrics.features import frozen
from dualsampler.metrics.inputs import check_images, check_prompts, check_width, prepare_masks

log = logging.getLogger(__name__)
REGIONS = ("inside", "outside")


def grid_positions(size: int, patch_size: int, stride: int) -> Tensor:
    """Top-left offsets of patches every `stride` pixels, plus one flush with the far edge."""
    positions = list(range(0, size - patch_size + 1, stride))
    if positions[-1] != size - patch_size:
        positions.append(size - patch_size)
    return torch.tensor(positions)


def patch_coverage(region: Tensor, patch_size: int, stride: int) -> tuple[Tensor, Tensor, Tensor]:
    """Fraction of each grid patch inside `region` [B,1,H,W] (integral image) -> (coverage [B,ny,nx], ys, xs)."""
    ys = grid_positions(region.shape[-2], patch_size, stride).to(region.device)
    xs = grid_positions(region.shape[-1], patch_size, stride).to(region.device)
    table = F.pad(region[:, 0].to(torch.int32).cumsum(-1).cumsum(-2), (1, 0, 1, 0))  # exact pixel counts
    top, bottom = table[:, ys], table[:, ys + patch_size]
    area = bottom[:, :, xs + patch_size] - bottom[:, :, xs] - top[:, :, xs + patch_size] + top[:, :, xs]
    return area / patch_size**2, ys, xs


def select_patches(region: Tensor, patch_size: int, stride: int, max_patches: int) -> Tensor:
    """Rows (image, top, left) of up to `max_patches` patches per image lying wholly in `region`, evenly spread.

    An image whose region holds no whole patch gets none: a patch straddling the seam would read the other region.
    """
    coverage, ys, xs = patch_coverage(region, patch_size, stride)
    coverage = coverage.flatten(1)
    whole = coverage == 1
    found = whole.sum(dim=1, keepdim=True)
    picks = torch.minimum(found, torch.tensor(max_patches, device=found.device))
    steps = torch.arange(max_patches, device=found.device)[None]
    wanted = torch.where(steps < picks, (steps * (found - 1) / (picks - 1).clamp(min=1)).round(), -1)
    rank = whole.cumsum(dim=1) - 1
    chosen = whole & (rank[:, :, None] == wanted[:, None, :]).any(dim=2)
    image, position = chosen.nonzero(as_tuple=True)
    return torch.stack([image, ys[position // len(xs)], xs[position % len(xs)]], dim=1)


def crop_patches(images: Tensor, rows: Tensor, patch_size: int) -> Tensor:
    """Patches [N,3,p,p] at rows (image, top, left) of images [B,3,H,W]."""
    offsets = torch.arange(patch_size, device=images.device)
    ys = rows[:, 1, None] + offsets
    xs = rows[:, 2, None] + offsets
    patches = images.permute(0, 2, 3, 1)[rows[:, 0, None, None], ys[:, :, None], xs[:, None, :]]
    return patches.permute(0, 3, 1, 2)


class RegionAccuracy(Metric):
    """region_accuracy/<region>: A = mean over images of (1/N_b) sum_{patches p} [judge.predict_prompts(p) == prompt_b].

    Patches are `patch_size` squares on a grid of step `stride` lying wholly in the region (at most
    `max_patches` per image, evenly spread): for `inside` the mask eroded by `band_width`, read
    against the mask prompt; for `outside` the complement of the mask dilated by `band_width`, read
    against the base prompt. An image whose region holds no whole patch (too small, or empty) gives no
    value: it is left out of the mean, and the reason is logged once per metric. `compute()` is NaN when no
    image could be read, for callers to leave the key out of their results. update(images, masks, prompts).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, judge: nn.Module, region: str = "inside", band_width: int = 4, patch_size: int = 32,
                 stride: int = 16, max_patches: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        if region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
        self.region = region
        self.band_width = check_width(band_width)
        self.patch_size = check_width(patch_size, "patch_size")
        self.stride = check_width(stride, "stride")
        self.max_patches = check_width(max_patches, "max_patches")
        self.unreadable_reported = False
        self.judge = frozen(judge)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, images: Tensor, masks: Tensor, prompts: str | Sequence[str]) -> None:
        """Add the per-image accuracies of a batch; `prompts` is the region's prompt per image."""
        check_images(images)
        prompts = check_prompts(prompts, images.shape[0], "prompts")
        if min(images.shape[-2:]) < self.patch_size:
            raise ValueError(f"images must be at least patch_size={self.patch_size} pixels on each side, "
                             f"got {images.shape[-2]}x{images.shape[-1]}")
        mask = prepare_masks(masks, images)
        region = erode(mask, self.band_width) if self.region == "inside" else 1 - dilate(mask, self.band_width)
        rows = select_patches(region, self.patch_size, self.stride, self.max_patches)
        unreadable = images.shape[0] - len(rows[:, 0].unique())
        if unreadable and not self.unreadable_reported:
            log.info("region_accuracy/%s: %d of %d images have no whole %d px patch in the region (band %d px): "
                     "no value for them", self.region, unreadable, images.shape[0], self.patch_size, self.band_width)
            self.unreadable_reported = True
        if not len(rows):
            return
        patches = crop_patches(images, rows, self.patch_size)
        read = [prompt for chunk in patches.split(512) for prompt in self.judge.predict_prompts(chunk)]
        image = rows[:, 0].to(self.total.device)
        correct = torch.tensor([r == prompts[i] for r, i in zip(read, image.tolist())], dtype=torch.float64,
                               device=self.total.device)
        hits = torch.bincount(image, weights=correct, minlength=images.shape[0])
        seen = torch.bincount(image, minlength=images.shape[0])
        self.total += (hits / seen.clamp(min=1)).sum()
        self.count += (seen > 0).sum()

    def compute(self) -> Tensor:
        """Mean accuracy over images whose region was read; NaN when none was."""
        return torch.where(self.count > 0, self.total / self.count.clamp(min=1), math.nan).float()
