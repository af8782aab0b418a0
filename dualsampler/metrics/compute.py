"""One entry point: images, masks, prompts and optional references -> a flat dict of metric values, measured by the
registry's families through the same `Measurement` as the runner's Evaluation (measure.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

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
from dualsampler.metrics.measure import Measurement
from dualsampler.metrics.optional import lpips_available
from dualsampler.metrics.per_image import SHARES, Batch, Regions, Tools
from dualsampler.metrics.perceptual import PERCEPTUAL, perceptual_metric
from dualsampler.validation import check_choice

NO_JUDGE_GIVEN = ("no judge was given (judge=None): pass one, e.g. the embedded world's "
                  "(dualsampler.models.load_world().judge)")


class Evaluated(NamedTuple):
    """What `evaluate_images` measured: `values` {key: float} as `compute_metrics` returns them, one row per image
    (`image`: its index, its values and the judge's readings `judge/<region>`), and `absent` {key: reason} for
    every key the inputs asked for that has no value."""

    values: dict[str, float]
    rows: list[dict[str, Any]]
    absent: dict[str, str]


def perceptual_choice(perceptual: str) -> str:
    """The perceptual distance `perceptual` measures: 'auto' is lpips/alex where it runs here, else 'judge'."""
    if perceptual != "auto":
        return perceptual
    return "lpips/alex" if lpips_available("alex") else "judge"


def evaluate_images(
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
) -> Evaluated:
    """`compute_metrics`' measurement with its per-image rows and the keys asked for but absent, with the reason
    (e.g. every judge metric when `judge` is None). Arguments as `compute_metrics`."""
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
        vocabulary = judge_vocabulary(judge) if judge is not None else None
        if vocabulary is not None:
            base_prompts = check_judge_prompts(base_prompts, "base_prompts", vocabulary)
            mask_prompts = check_judge_prompts(mask_prompts, "mask_prompts", vocabulary)
    if real_images is not None:
        check_images(real_images, "real_images")
        if min(batch, real_images.shape[0]) < 2:
            raise ValueError(f"fid/kid need at least 2 images and 2 real_images, "
                             f"got {batch} and {real_images.shape[0]}")
    choice = perceptual_choice(perceptual) if references is not None else None
    judge_read = with_prompts or choice == "judge" or (real_images is not None and fid_features == "judge")
    if judge is not None and judge_read:
        check_judge_canvas(*images.shape[-2:])

    measurement, named = _measurement(judge, images.device, band_width, with_prompts, choice,
                                      None if real_images is None else fid_features)
    for start in range(0, batch, batch_size):
        end = min(start + batch_size, batch)
        regions = Regions([full_masks[start:end]], full_masks[start:end], [full_masks[start:end]])
        chunk = Batch(images[start:end], base_prompts[start:end] if with_prompts else [],
                      [mask_prompts[start:end] if with_prompts else []], regions, images[start:end], regions,
                      None if references is None else references[start:end])
        measurement.add(chunk, [{"image": index} for index in range(start, end)])
    if real_images is not None:
        for start in range(0, real_images.shape[0], batch_size):
            measurement.add_real(real_images[start:start + batch_size].to(images.device))
    values, absent = measurement.compute(named, band_width)
    return Evaluated(values, measurement.rows, absent)


def _measurement(judge: nn.Module | None, device: Any, band_width: int, with_prompts: bool, choice: str | None,
                 fid_features: str | None) -> tuple[Measurement, list[str]]:
    """The Measurement of `evaluate_images` and the keys its inputs ask for: the seam metrics, with prompts the
    judge's shares, with references (`choice`: the perceptual distance) the perceptual ones, with real images
    (`fid_features`) FID/KID."""
    shared = None if judge is None else frozen(judge).to(device)
    tools = Tools(band_width, shared)
    for reader in tools.readers.values():
        reader.to(device)
    available = {"judge"} if shared is not None else set()
    named = ["seam/gradient_ratio", "seam/color_jump"]
    if with_prompts:
        available.add("prompts")
        named += [f"region_{share}/{where}" for share in SHARES for where in ("inside", "outside")]
    if choice is not None:
        available.add("references")
        key = "perceptual/judge" if choice == "judge" else choice
        named += [key, "seam/perceptual"]
        if choice.startswith("lpips/") or shared is not None:
            metric = perceptual_metric(choice, shared)[1].to(device)
            tools.perceptual = (key, metric)
            if choice.startswith("lpips/"):
                available.add("lpips")
    set_level: dict[str, Metric] = {}
    if fid_features is not None:
        named += [f"fid/{fid_features}", f"kid/{fid_features}", f"kid/{fid_features}_std"]
        if fid_features == "inception" or shared is not None:
            available.add("reference_set" if fid_features == "inception" else "real_images")
            set_level = {f"fid/{fid_features}": frechet_distance(fid_features, shared).to(device),
                         f"kid/{fid_features}": kernel_distance(fid_features, shared).to(device)}
    return Measurement(tools, available, missing={"judge": NO_JUDGE_GIVEN}, set_level=set_level, order=named), named


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
    """All metrics whose inputs are given, as {key: value} (keys and meaning: dualsampler/metrics/registry.py).

    Always: `seam/gradient_ratio`, `seam/color_jump` (images, masks). With `judge` (e.g. the embedded world's
    judge) and both prompt lists (each "<color> <pattern>" in the judge's vocabulary, else ValueError):
    `region_accuracy|region_color|region_pattern/inside|outside` (absent when no image's region holds a whole judge
    patch). With `references` (one per image, e.g. the reference composites): `perceptual/judge` (needs `judge`) or
    `lpips/<net>` (`perceptual`: 'auto' picks lpips/alex when torchvision and its weights are present, else
    'judge') and `seam/perceptual` (needs `judge`). With `real_images` (>= 2, and >= 2 images):
    `fid/<fid_features>`, `kid/<fid_features>`, `kid/<fid_features>_std` ('judge' needs `judge`; 'inception' the
    vision extra). Without a judge its metrics are absent: `evaluate_images` gives the reasons and per-image rows.
    Images [B,3,H,W] in [0,1]; masks [h,w], [B,h,w] or [B,1,h,w] at image or latent resolution. Everything runs on
    the images' device (the judge is moved there). Every argument is checked before any work: the judge's metrics
    need images of at least 32 px on each side.
    """
    return evaluate_images(images, masks, base_prompts, mask_prompts, references, judge, band_width, real_images,
                           fid_features=fid_features, perceptual=perceptual, batch_size=batch_size).values
