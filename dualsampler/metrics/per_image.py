"""Per-image metric functions: each takes a `Batch` (images with their prompts, region masks, references and
input images) and the `Tools` it is read with (judge, CLIP, LPIPS), and returns `{key: values}` for the keys of
its family, values a float64 Tensor[B] on the CPU (NaN where an image gave no value) or, for readings, a list of
B strings (None where nothing was read). The registry (registry.py) names each family's function; the
Evaluator and `compute_metrics` run them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torchmetrics import Metric

from .background import masked_lpips, masked_psnr, masked_ssim
from .clip_score import LocalCLIP, clip_scores, full_prompt, region_clip_scores
from .features import FrozenJudge
from .perceptual import judge_distances, lpips_distances
from .region_accuracy import RegionAccuracy, RegionReading, most_frequent
from .seam import color_jumps, gradient_ratios, perceptual_band_distances

Values = dict[str, "Tensor | list[str | None]"]
SHARES = ("accuracy", "color", "pattern")  # region_<share>/<region>: read right in full, in colour, in pattern


@dataclass
class Regions:
    """A batch's regions at one size: each region's mask (any form `prepare_masks` takes), their union and each
    region's own part (the pixels no other region covers; the mask itself for one region)."""

    masks: list[Tensor]
    union: Tensor
    own: list[Tensor]


@dataclass
class Batch:
    """One batch of images [B,3,H,W] in [0,1] with, per image, its base prompt and each region's prompt
    (`prompts[k][i]`: region k of image i); `regions` at the images' size; `judged` the images at the judge's
    canvas with `judged_regions` (the same objects when no canvas applies); `references` the reference composites
    at the judge's canvas; `background` (images at the inputs' size, inputs, keep [B,1,h,w]) for images that
    start from an input image. `memo` holds what several families read (the judge's readings)."""

    images: Tensor
    base: list[str]
    prompts: list[list[str]]
    regions: Regions
    judged: Tensor
    judged_regions: Regions
    references: Tensor | None = None
    background: tuple[Tensor, Tensor, Tensor] | None = None
    memo: dict[str, object] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """The number of images."""
        return self.images.shape[0]


@dataclass
class Tools:
    """What the metrics read with: `band_width` (px each side of a seam), the frozen `judge` (region readers made
    from it), `perceptual` the (key, metric) of the perceptual distance to the references, a `clip` model with
    its region readers, and the LPIPS metric of `background/lpips`. None: not available."""

    band_width: int = 4
    judge: FrozenJudge | None = None
    perceptual: tuple[str, Metric] | None = None
    clip: LocalCLIP | None = None
    region_clip: dict[str, Metric] = field(default_factory=dict)
    lpips: Metric | None = None
    readers: dict[str, RegionAccuracy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.judge is not None:
            self.readers = {side: RegionAccuracy(self.judge, side, self.band_width) for side in ("inside", "outside")}


PerImage = Callable[[Batch, Tools], Values]


def as_values(values: Tensor) -> Tensor:
    """Per-image values as float64 on the CPU."""
    return values.detach().to("cpu", torch.float64)


def mean_over_regions(values: list[Tensor]) -> Tensor:
    """Per image, the mean over the regions read (NaN left out) of per-region values [B] each; NaN when none."""
    return torch.stack(values).nanmean(dim=0)


def per_region(values: list[Tensor], pattern: str) -> Values:
    """Region k's values as `pattern.format(k=k)`, for items with 2+ regions (none for one region)."""
    return {pattern.format(k=k): value for k, value in enumerate(values)} if len(values) > 1 else {}


def seam_gradient(batch: Batch, tools: Tools) -> Values:
    """`seam/gradient_ratio` on the union's boundary."""
    return {"seam/gradient_ratio": as_values(gradient_ratios(batch.images, batch.regions.union, tools.band_width))}


def seam_gradient_regions(batch: Batch, tools: Tools) -> Values:
    """`seam/gradient_ratio/region<k>` on region k's own mask."""
    return per_region([as_values(gradient_ratios(batch.images, mask, tools.band_width))
                       for mask in batch.regions.masks], "seam/gradient_ratio/region{k}")


def seam_jump(batch: Batch, tools: Tools) -> Values:
    """`seam/color_jump` on the union's boundary."""
    return {"seam/color_jump": as_values(color_jumps(batch.images, batch.regions.union, tools.band_width))}


def seam_jump_regions(batch: Batch, tools: Tools) -> Values:
    """`seam/color_jump/region<k>` on region k's own mask."""
    return per_region([as_values(color_jumps(batch.images, mask, tools.band_width))
                       for mask in batch.regions.masks], "seam/color_jump/region{k}")


def seam_perceptual(batch: Batch, tools: Tools) -> Values:
    """`seam/perceptual`: the judge's distance to the references on the union's seam band, at the judge's canvas."""
    values = perceptual_band_distances(tools.judge, batch.judged, batch.judged_regions.union, batch.references,
                                       tools.band_width)
    return {"seam/perceptual": as_values(values)}


def readings(batch: Batch, tools: Tools) -> tuple[list[RegionReading], RegionReading]:
    """The judge's readings of the batch at its canvas (computed once per batch): each region's own part on its
    prompt, and the outside of the union on the base prompt."""
    if "readings" not in batch.memo:
        own = batch.judged_regions
        inside = [tools.readers["inside"].read(batch.judged, part, prompts)
                  for part, prompts in zip(own.own, batch.prompts)]
        batch.memo["readings"] = inside, tools.readers["outside"].read(batch.judged, own.union, batch.base)
    return batch.memo["readings"]


def region_shares(share: str) -> PerImage:
    """The per-image function of `region_<share>/<region>` (share in SHARES)."""

    def values(batch: Batch, tools: Tools) -> Values:
        inside, outside = readings(batch, tools)
        regions = [as_values(getattr(reading, share)) for reading in inside]
        return {f"region_{share}/inside": mean_over_regions(regions),
                f"region_{share}/outside": as_values(getattr(outside, share)),
                **per_region(regions, f"region_{share}/region{{k}}")}

    values.__name__ = f"region_{share}"
    values.__doc__ = f"`region_{share}/<region>` from the judge's readings."
    return values


def judge_readings(batch: Batch, tools: Tools) -> Values:
    """`judge/<region>`: per image the judge's most frequent reading inside (over every region's own part),
    outside and, for 2+ regions, in each region; None where no patch was read."""
    inside, outside = readings(batch, tools)
    named = {"judge/inside": [[r for reading in inside for r in reading.readings[i]] for i in range(batch.size)],
             "judge/outside": outside.readings}
    if len(inside) > 1:
        named.update({f"judge/region{k}": reading.readings for k, reading in enumerate(inside)})
    return {key: [most_frequent(read) for read in per_image] for key, per_image in named.items()}


def perceptual_judge(batch: Batch, tools: Tools) -> Values:
    """`perceptual/judge` to the references at the judge's canvas, when it is the chosen perceptual distance."""
    key, _ = tools.perceptual
    if key != "perceptual/judge":
        return {}
    return {key: as_values(judge_distances(tools.judge, batch.judged, batch.references))}


def perceptual_lpips(batch: Batch, tools: Tools) -> Values:
    """`lpips/<net>` to the references at the judge's canvas, when it is the chosen perceptual distance."""
    key, metric = tools.perceptual
    if not key.startswith("lpips/"):
        return {}
    return {key: as_values(lpips_distances(metric.to(batch.judged.device), batch.judged, batch.references))}


def region_clip(batch: Batch, tools: Tools) -> Values:
    """`region_clip/inside`: per image the mean over its regions of the share of region k's crops (its own part)
    CLIP places closer to its prompt than to the base prompt; `region_clip/outside`: the mean over its regions of
    the share of the crops outside all regions closer to the base prompt than to region k's prompt."""
    regions = batch.regions
    inside = [tools.region_clip["inside"].read(batch.images, own, prompts, batch.base)
              for own, prompts in zip(regions.own, batch.prompts)]
    outside = [tools.region_clip["outside"].read(batch.images, regions.union, batch.base, prompts)
               for prompts in batch.prompts]
    return {"region_clip/inside": mean_over_regions(inside), "region_clip/outside": mean_over_regions(outside)}


def clip_score(batch: Batch, tools: Tools) -> Values:
    """`clip_score/image` against the full prompt, `clip_score/region<k>` (2+ regions) on region k's crop,
    `clip_score/inside` their mean over the regions."""
    prompts = [full_prompt(base, [region[i] for region in batch.prompts]) for i, base in enumerate(batch.base)]
    regions = [as_values(region_clip_scores(batch.images, mask, region, tools.clip))
               for mask, region in zip(batch.regions.masks, batch.prompts)]
    return {"clip_score/image": as_values(clip_scores(batch.images, prompts, tools.clip)),
            "clip_score/inside": mean_over_regions(regions), **per_region(regions, "clip_score/region{k}")}


def background_psnr(batch: Batch, tools: Tools) -> Values:
    """`background/psnr` over the kept pixels."""
    return {"background/psnr": as_values(masked_psnr(*batch.background))}


def background_ssim(batch: Batch, tools: Tools) -> Values:
    """`background/ssim` over the kept pixels."""
    return {"background/ssim": as_values(masked_ssim(*batch.background))}


def background_lpips(batch: Batch, tools: Tools) -> Values:
    """`background/lpips` of the kept composite."""
    return {"background/lpips": as_values(masked_lpips(tools.lpips, *batch.background))}
