"""A job's evaluation as one object: configured once (conf/metrics/), started on a model, a mask and the two
prompts, updated batch by batch, computed once into aggregate values and one row of values per image."""

from __future__ import annotations

import logging
import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from ..validation import check_bool, check_bounded, check_choice
from .features import frozen
from .fid import frechet_distance, kernel_distance
from .inputs import prepare_masks
from .perceptual import PERCEPTUAL, perceptual_metric
from .region_accuracy import RegionAccuracy
from .seam import SeamColorJump, SeamGradientRatio, SeamPerceptual

log = logging.getLogger(__name__)
REAL_SEED_OFFSET = 1_000_000  # seeds of the rendered real set of FID/KID, away from the sampled seeds
JUDGE_PATCH = 32  # pixels: the judge reads 32 px patches, so a canvas under it cannot be judged




@dataclass
class Evaluator:
    """Seam metrics always; with `judge` (the world's texture judge, only for models that have one) region
    accuracy, with `references` the perceptual distances to the world's reference composites, with
    `real_images` > 0 FID/KID against that many rendered composites; with `clip` (a local CLIP folder)
    `region_clip/inside|outside`. A metric that cannot be computed is absent, its reason in `absent`."""

    band_width: int = 4
    judge: bool = True
    references: bool = True
    real_images: int = 32
    clip: str | None = None
    perceptual: str = "auto"

    def __post_init__(self) -> None:
        check_bounded(self.band_width, "band_width", "metrics.band_width")
        check_bounded(self.real_images, "real_images", "metrics.real_images")
        check_bool(self.judge, "metrics.judge")
        check_bool(self.references, "metrics.references")
        check_choice(self.perceptual, "metrics.perceptual", PERCEPTUAL)
        if self.clip is not None and (not isinstance(self.clip, str) or not (Path(self.clip) / "config.json").is_file()):
            raise ValueError(f"metrics.clip must be a local CLIP folder (with its config.json) or null, got {self.clip!r}")

    def keys(self) -> list[str]:
        """Every metric name an evaluation with these settings may report (what an objective or a figure may name;
        a metric the model cannot compute is then absent, with its reason)."""
        keys = ["seam/gradient_ratio", "seam/color_jump"]
        if self.judge:
            keys += ["region_accuracy/inside", "region_accuracy/outside"]
            if self.references:
                named = {"auto": ["lpips/alex", "perceptual/judge"], "judge": ["perceptual/judge"]}
                keys += named.get(self.perceptual, [self.perceptual]) + ["seam/perceptual"]
            if self.real_images:
                keys += ["fid/judge", "kid/judge"]
        if self.clip is not None:
            keys += ["region_clip/inside", "region_clip/outside"]
        return keys

    def check(self, height: int, width: int, prompts: dict[str, str]) -> None:
        """Before any model loads: a canvas the judge can read and prompts (`{key: prompt}`, the key named in the
        error) in the world's vocabulary."""
        if self.judge:
            if min(height, width) < JUDGE_PATCH:
                raise ValueError(f"height and width must be >= {JUDGE_PATCH} px for the judge's metrics "
                                 f"(metrics.judge=true), got {height}x{width}; use metrics=seams for smaller canvases")
            from ..world.prompts import parse_prompt

            for key, prompt in prompts.items():
                try:
                    parse_prompt(prompt)
                except ValueError as error:
                    raise ValueError(f"{key}: {error} (the judge's metrics read the world's prompts; use "
                                     f"metrics=seams for other prompts)") from None

    def start(self, model: Any, mask: Tensor, prompts: tuple[str, str], device: torch.device | str) -> Evaluation:
        """An evaluation of images sampled on `model` with `mask` (image size), base and mask prompts."""
        return Evaluation(self, model, mask, prompts, torch.device(device))


@dataclass
class Evaluation:
    """Per-batch updates (`update(images, seeds)`), then `compute() -> (aggregate, per-image rows)`."""

    settings: Evaluator
    model: Any
    mask: Tensor
    prompts: tuple[str, str]
    device: torch.device
    absent: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.settings
        self.rows: list[dict[str, Any]] = []
        self.per_image: dict[str, tuple[Metric, Callable[..., Any]]] = {}
        self.aggregate_only: dict[str, Metric] = {}
        self.mask = self.mask.float().to(self.device)
        world_judge = getattr(self.model, "judge", None)
        if s.judge and world_judge is None:
            self.absent["region_accuracy"] = "the model has no judge (only the embedded world's textures can be judged)"
        self.judge = frozen(world_judge).to(self.device) if s.judge and world_judge is not None else None
        self.reference_images = getattr(self.model, "reference_images", None) if self.judge is not None else None
        self.per_image["seam/gradient_ratio"] = (SeamGradientRatio(s.band_width), lambda m, b: m(b["images"], b["masks"]))
        self.per_image["seam/color_jump"] = (SeamColorJump(s.band_width), lambda m, b: m(b["images"], b["masks"]))
        if self.judge is not None:
            base, inside = self.prompts
            self.per_image["region_accuracy/inside"] = (
                RegionAccuracy(self.judge, "inside", s.band_width), lambda m, b: m(b["images"], b["masks"], [inside]))
            self.per_image["region_accuracy/outside"] = (
                RegionAccuracy(self.judge, "outside", s.band_width), lambda m, b: m(b["images"], b["masks"], [base]))
            if s.references and self.reference_images is not None:
                key, metric = perceptual_metric(s.perceptual, self.judge)
                self.per_image[key] = (metric, lambda m, b: m(b["images"], b["references"]))
                self.per_image["seam/perceptual"] = (
                    SeamPerceptual(self.judge, s.band_width), lambda m, b: m(b["images"], b["masks"], b["references"]))
            if s.real_images and self.reference_images is not None:
                self.aggregate_only = {"fid/judge": frechet_distance("judge", self.judge),
                                       "kid/judge": kernel_distance("judge", self.judge)}
        if s.clip is not None:
            from .clip_region import RegionCLIPScore

            base, inside = self.prompts
            for region, own, other in (("inside", inside, base), ("outside", base, inside)):
                metric = RegionCLIPScore(s.clip, region, s.band_width)
                self.per_image[f"region_clip/{region}"] = (
                    metric, lambda m, b, own=own, other=other: m(b["images"], b["masks"], [own], [other]))
        for metric, _ in self.per_image.values():
            metric.to(self.device)
        for metric in self.aggregate_only.values():
            metric.to(self.device)

    def update(self, images: Tensor, seeds: Sequence[int]) -> None:
        """Add a batch of images [B,3,H,W] in [0,1], one seed each: every metric updated once per image."""
        images = images.to(self.device)
        if self.mask.shape[-2:] != images.shape[-2:]:  # upscaled images: the mask follows them, once
            self.mask = prepare_masks(self.mask.reshape(1, 1, *self.mask.shape[-2:]), images[:1])[0, 0]
        masks = self.mask.reshape(1, 1, *self.mask.shape[-2:])
        references = None
        if "seam/perceptual" in self.per_image:
            references = self.reference_images(*self.prompts, self.mask, list(seeds)).to(self.device)
        for k, seed in enumerate(seeds):
            one = {"images": images[k:k + 1], "masks": masks,
                   "references": None if references is None else references[k:k + 1]}
            row: dict[str, Any] = {"seed": seed}
            with self.judge.reuse() if self.judge is not None else nullcontext():
                for key, (metric, update) in self.per_image.items():
                    value = float(update(metric, one))
                    if not math.isnan(value):  # NaN: this image's region was too small to read
                        row[key] = value
            self.rows.append(row)
        if self.aggregate_only:
            with self.judge.reuse():
                for metric in self.aggregate_only.values():
                    metric.update(images, real=False)

    def compute(self) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Aggregate values over every image so far, and the per-image rows."""
        results = {}
        for key, (metric, _) in self.per_image.items():
            value = float(metric.compute())
            if math.isnan(value):
                self.absent[key] = "no image had a region large enough to read"
            else:
                results[key] = value
        if self.aggregate_only:
            if len(self.rows) < 2:
                self.absent["fid/judge"] = self.absent["kid/judge"] = "FID/KID need at least 2 images"
            else:
                self._add_real_images()
                for key, metric in self.aggregate_only.items():
                    value = metric.compute()
                    results[key] = float(value[0] if isinstance(value, tuple) else value)
        for key, reason in self.absent.items():
            log.info("%s absent: %s", key, reason)
        return results, self.rows

    def _add_real_images(self) -> None:
        seeds = [REAL_SEED_OFFSET + i for i in range(self.settings.real_images)]
        for start in range(0, len(seeds), 32):
            real = self.reference_images(*self.prompts, self.mask, seeds[start:start + 32]).to(self.device)
            with self.judge.reuse():
                for metric in self.aggregate_only.values():
                    metric.update(real, real=True)
