"""One entry point: images, masks, prompts and optional references -> a flat dict of metric values."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from dualsampler.metrics.features import frozen
from dualsampler.metrics.fid import EXTRACTORS, frechet_distance, kernel_distance
from dualsampler.metrics.inputs import (
    check_images,
    check_judge_canvas,
    check_judge_prompts,
    check_pair,
    check_prompts,
    check_width,
    judge_vocabulary,
    prepare_masks,
)
from dualsampler.metrics.perceptual import PERCEPTUAL, perceptual_metric
from dualsampler.metrics.region_accuracy import RegionAccuracy
from dualsampler.validation import check_choice
from dualsampler.metrics.seam import SeamColorJump, SeamGradientRatio, SeamPerceptual

Chunk = dict[str, Tensor | list[str]]
Update = Callable[[Metric, Chunk], None]


def default_judge(device: torch.device) -> nn.Module:
    """The embedded world's trained judge (dualsampler.models.load_world)."""
    from dualsampler.models import load_world

    return load_world(device=device).judge


def compute_metrics(
    images: Tensor,
    masks: Tensor,
    base_prompts: str | Sequence[str] | None,
    mask_prompts: str | Sequence[str] | None,
    references: Tensor | None = None,
    judge: nn.Module | None = None,
    band_width: int = 4,
    real_images: Tensor | None = None,
    *,
    fid_features: str = "judge",
    perceptual: str = "auto",
    batch_size: int = 32,
) -> dict[str, float]:
    """All metrics whose inputs are given, as {key: value}; keys name the feature space where there is one.

    Always: `seam/gradient_ratio`, `seam/color_jump` (images, masks). With `references` (one per image,
    e.g. the reference composites): `perceptual/judge` or `lpips/<net>` (`perceptual`: 'auto' picks
    lpips/alex when torchvision and its weights are present, else 'judge') and `seam/perceptual`.
    With both prompt lists (each "<color> <pattern>" in the judge's vocabulary, else ValueError):
    `region_accuracy/inside`, `region_accuracy/outside` (absent when no image's
    region holds a whole judge patch; the metric logs why). With `real_images`
    (>= 2, and >= 2 images): `fid/<fid_features>`, `kid/<fid_features>` ('judge' or 'inception').
    Images [B,3,H,W] in [0,1]; masks [h,w], [B,h,w] or [B,1,h,w] at image or latent resolution.
    `judge` defaults to the embedded world's judge; everything runs on the images' device (the judge is moved there).
    Every argument is checked before any work: the judge's metrics need images of at least 32 px on each side.
    """
    check_images(images)
    full_masks = prepare_masks(masks, images)
    check_width(band_width)
    check_width(batch_size, "batch_size")
    if fid_features not in EXTRACTORS:
        raise ValueError(f"fid_features must be one of {EXTRACTORS}, got {fid_features!r}")
    check_choice(perceptual, "perceptual", PERCEPTUAL)
    batch = images.shape[0]
    if references is not None:
        references = check_pair(images, references).to(images.device)
    with_prompts = base_prompts is not None and mask_prompts is not None
    if with_prompts:
        base_prompts = check_prompts(base_prompts, batch, "base_prompts")
        mask_prompts = check_prompts(mask_prompts, batch, "mask_prompts")
        vocabulary = judge_vocabulary(judge)
        if vocabulary is not None:
            base_prompts = check_judge_prompts(base_prompts, "base_prompts", vocabulary)
            mask_prompts = check_judge_prompts(mask_prompts, "mask_prompts", vocabulary)
    if real_images is not None:
        check_images(real_images, "real_images")
        if min(batch, real_images.shape[0]) < 2:
            raise ValueError(f"fid/kid need at least 2 images and 2 real_images, "
                             f"got {batch} and {real_images.shape[0]}")

    shared = None
    if references is not None or with_prompts or (real_images is not None and fid_features == "judge"):
        check_judge_canvas(*images.shape[-2:])
        shared = frozen(judge if judge is not None else default_judge(images.device)).to(images.device)

    updates: dict[str, tuple[Metric, Update]] = {
        "seam/gradient_ratio": (SeamGradientRatio(band_width), lambda m, c: m.update(c["images"], c["masks"])),
        "seam/color_jump": (SeamColorJump(band_width), lambda m, c: m.update(c["images"], c["masks"])),
    }
    if references is not None:
        key, metric = perceptual_metric(perceptual, shared)
        updates[key] = (metric, lambda m, c: m.update(c["images"], c["references"]))
        updates["seam/perceptual"] = (SeamPerceptual(shared, band_width),
                                      lambda m, c: m.update(c["images"], c["masks"], c["references"]))
    if with_prompts:
        updates["region_accuracy/inside"] = (RegionAccuracy(shared, "inside", band_width),
                                             lambda m, c: m.update(c["images"], c["masks"], c["mask_prompts"]))
        updates["region_accuracy/outside"] = (RegionAccuracy(shared, "outside", band_width),
                                              lambda m, c: m.update(c["images"], c["masks"], c["base_prompts"]))
    if real_images is not None:
        distances = [frechet_distance(fid_features, shared), kernel_distance(fid_features, shared)]
        for metric in distances:
            metric.to(images.device)
        for start in range(0, real_images.shape[0], batch_size):
            real = real_images[start:start + batch_size].to(images.device)
            with shared.reuse() if shared is not None else nullcontext():
                for metric in distances:
                    metric.update(real, real=True)
        for key, metric in zip((f"fid/{fid_features}", f"kid/{fid_features}"), distances):
            updates[key] = (metric, lambda m, c: m.update(c["images"], real=False))

    inputs = {"images": images, "masks": full_masks, "references": references,
              "base_prompts": base_prompts, "mask_prompts": mask_prompts}
    for metric, _ in updates.values():
        metric.to(images.device)
    for start in range(0, batch, batch_size):
        chunk = {name: value[start:start + batch_size] for name, value in inputs.items() if value is not None}
        with shared.reuse() if shared is not None else nullcontext():
            for metric, update in updates.values():
                update(metric, chunk)
    results = {}
    for key, (metric, _) in updates.items():
        value = metric.compute()
        value = float(value[0] if isinstance(value, tuple) else value)
        if not math.isnan(value):  # NaN: region accuracy with no region large enough to read
            results[key] = value
    return results
