"""`region_accuracy/inside` and `region_accuracy/outside`: does the judge read the right prompt in each region?
Colour and pattern are scored apart too (`region_color`, `region_pattern`), and every patch's reading is kept."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from dualsampler.metrics.bands import dilate, erode
from dualsampler.metrics.features import frozen
from dualsampler.metrics.inputs import check_images, check_prompts, check_width, judge_vocabulary, prepare_masks
from dualsampler.world.prompts import split_prompt

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


@dataclass
class RegionReading:
    """One batch's reading of a region, per image: the share of its patches read right (colour and pattern), right
    in colour, right in pattern (float64 [B], NaN where no patch was read), and every patch's reading."""

    accuracy: Tensor
    color: Tensor
    pattern: Tensor
    readings: list[list[str]]


def prompt_parts(prompt: str, vocabulary: tuple[list[str], list[str]] | None) -> tuple[str | None, str | None]:
    """(colour, pattern) of a prompt in the judge's vocabulary (the world's when unknown); a part the prompt does
    not name in it is None (it never matches a reading)."""
    colors, patterns = vocabulary or judge_vocabulary(None)
    try:
        color, pattern = split_prompt(prompt, colors, patterns, allow_partial=True)
    except ValueError:
        return None, None
    return color or None, pattern or None


def same(read: str | None, wanted: str | None) -> bool:
    """A part read right: named in both and equal."""
    return read is not None and read == wanted


def most_frequent(readings: Sequence[str]) -> str | None:
    """The reading given most often (on a tie the first seen of them); None when there is none."""
    return Counter(readings).most_common(1)[0][0] if readings else None


def per_image_share(hits: list[bool], image: Tensor, batch: int, seen: Tensor) -> Tensor:
    """Per image, the share of its patches (`image` [N] names each patch's image) that hit; NaN for unread images."""
    counts = torch.bincount(image, weights=torch.tensor(hits, dtype=torch.float64, device=image.device),
                            minlength=batch)
    return torch.where(seen > 0, counts / seen.clamp(min=1), math.nan)


class RegionAccuracy(Metric):
    """region_accuracy/<region>: A = mean over images of (1/N_b) sum_{patches p} [judge.predict_prompts(p) == prompt_b].

    Patches are `patch_size` squares on a grid of step `stride` lying wholly in the region (at most
    `max_patches` per image, evenly spread): for `inside` the mask eroded by `band_width`, read
    against the mask prompt; for `outside` the complement of the mask dilated by `band_width`, read
    against the base prompt. An image whose region holds no whole patch (too small, or empty) gives no
    value: it is left out of the mean, and the reason is logged once per metric. `compute()` is NaN when no
    image could be read, for callers to leave the key out of their results. update(images, masks, prompts).
    The colour and pattern shares are accumulated too (`shares()`); `read` gives one batch's per-image values.
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
        self.vocabulary = judge_vocabulary(judge)
        for name in ("total", "color_total", "pattern_total", "count"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def read(self, images: Tensor, masks: Tensor, prompts: str | Sequence[str]) -> RegionReading:
        """The per-image shares and patch readings of a batch; `prompts` is the region's prompt per image."""
        check_images(images)
        prompts = check_prompts(prompts, images.shape[0], "prompts")
        if min(images.shape[-2:]) < self.patch_size:
            raise ValueError(f"images must be at least patch_size={self.patch_size} pixels on each side, "
                             f"got {images.shape[-2]}x{images.shape[-1]}")
        mask = prepare_masks(masks, images)
        region = erode(mask, self.band_width) if self.region == "inside" else 1 - dilate(mask, self.band_width)
        rows = select_patches(region, self.patch_size, self.stride, self.max_patches)
        batch = images.shape[0]
        unreadable = batch - len(rows[:, 0].unique())
        if unreadable and not self.unreadable_reported:
            log.info("region_accuracy/%s: %d of %d images have no whole %d px patch in the region (band %d px): "
                     "no value for them", self.region, unreadable, batch, self.patch_size, self.band_width)
            self.unreadable_reported = True
        patches = crop_patches(images, rows, self.patch_size)
        read = [prompt for chunk in patches.split(512) if len(chunk) for prompt in self.judge.predict_prompts(chunk)]
        image = rows[:, 0]
        seen = torch.bincount(image, minlength=batch).to(torch.float64)
        wanted = [prompt_parts(prompt, self.vocabulary) for prompt in prompts]
        parts = [prompt_parts(reading, self.vocabulary) for reading in read]
        targets = [wanted[i] for i in image.tolist()]
        readings: list[list[str]] = [[] for _ in range(batch)]
        for i, reading in zip(image.tolist(), read):
            readings[i].append(reading)
        right = [reading == prompts[i] for reading, i in zip(read, image.tolist())]
        return RegionReading(
            accuracy=per_image_share(right, image, batch, seen),
            color=per_image_share([same(got[0], want[0]) for got, want in zip(parts, targets)], image, batch, seen),
            pattern=per_image_share([same(got[1], want[1]) for got, want in zip(parts, targets)], image, batch, seen),
            readings=readings)

    def update(self, images: Tensor, masks: Tensor, prompts: str | Sequence[str]) -> None:
        """Add the per-image accuracies (and colour and pattern shares) of a batch."""
        reading = self.read(images, masks, prompts)
        read = ~reading.accuracy.isnan()
        device = self.total.device
        self.total += reading.accuracy[read].sum().to(device)
        self.color_total += reading.color[read].sum().to(device)
        self.pattern_total += reading.pattern[read].sum().to(device)
        self.count += read.sum().to(device)

    def compute(self) -> Tensor:
        """Mean accuracy over images whose region was read; NaN when none was."""
        return torch.where(self.count > 0, self.total / self.count.clamp(min=1), math.nan).float()

    def shares(self) -> dict[str, float]:
        """{"accuracy", "color", "pattern"}: each mean over the images read; NaN when none was."""
        count = float(self.count)
        totals = {"accuracy": self.total, "color": self.color_total, "pattern": self.pattern_total}
        return {name: float(total) / count if count else math.nan for name, total in totals.items()}
