"""A job's evaluation as one object: configured once (conf/metrics/), started on a model, updated batch by batch
with each batch's item (a base prompt and 1..16 regions, each a mask and a prompt), computed once into aggregate
values and one row of values per image."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..validation import BOUNDS, check_bool, check_bounded, check_choice, check_int, check_text
from .background import BACKGROUND_KEYS, NO_INPUT, check_background, shrink
from .clip_score import load_clip
from .features import frozen
from .fid import frechet_distance, kernel_distance
from .inputs import check_images, prepare_masks
from .measure import JUDGE_PATCH, Measurement
from .optional import lpips_weights
from .per_image import SHARES, Batch, Regions, Tools
from .perceptual import PERCEPTUAL, lpips_metric, perceptual_metric
from .reference import METRIC_KEYS, MIN_GENERATED, ReferenceSet, reference_fid_kid

log = logging.getLogger(__name__)
REAL_SEED_OFFSET = 1_000_000  # seeds of the rendered real set of FID/KID, away from the sampled seeds
MAX_REGIONS = int(BOUNDS["regions"].high)  # regions of one item (validation.BOUNDS, as manifests and configs)
REAL_BATCH = 32  # reference composites of the real set read by the judge at once
NO_JUDGE = "the model has no judge (only the embedded world's textures can be judged)"
NO_REFERENCES = "the model renders no reference images (only the embedded world does)"


@dataclass
class Evaluator:
    """Seam metrics always; with `judge` (the world's texture judge, only for models that have one) region
    accuracy, with `references` the perceptual distances to the world's reference composites, with
    `real_images` > 0 FID/KID against that many rendered composites; with `clip` (a local CLIP folder)
    `region_clip/inside|outside`. A metric that cannot be computed is absent, its reason in `absent`.

    Over an item's regions: the seam metrics on the boundary of their union, `region_accuracy/outside` outside the
    union on the base prompt, `region_accuracy/inside` the mean over the regions of each one's accuracy on its own
    prompt, read where no other region covers it. Items with 2+ regions add, per region k (from 0),
    `region_accuracy/region<k>` and the seam metrics of its own mask, `seam/<metric>/region<k>`. Every
    `region_accuracy/<r>` comes with `region_color/<r>` and `region_pattern/<r>` (colour, pattern read right) and,
    in the rows only, `judge/<r>`: the judge's most frequent reading of the image's patches there.

    The judge reads images at the job's canvas (`start(canvas=...)`): larger (upscaled) images and their masks are
    brought down to it first. Items that start from an input image add `background/psnr|ssim|lpips` (background.py)
    over the pixels `update(keep=...)` marks as kept."""

    band_width: int = 4
    judge: bool = True
    references: bool = True
    real_images: int = 32
    clip: str | None = None
    perceptual: str = "auto"
    reference: str | None = None
    inception_weights: str | None = None
    reference_cache: str | None = None
    reference_min_generated: int = MIN_GENERATED

    def __post_init__(self) -> None:
        check_bounded(self.band_width, "band_width", "metrics.band_width")
        check_bounded(self.real_images, "real_images", "metrics.real_images")
        check_bool(self.judge, "metrics.judge")
        check_bool(self.references, "metrics.references")
        check_choice(self.perceptual, "metrics.perceptual", PERCEPTUAL)
        check_int(self.reference_min_generated, "metrics.reference_min_generated", 2)
        for key in ("reference", "inception_weights", "reference_cache"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, str) and value):
                raise ValueError(f"metrics.{key} must be a path or null, got {value!r}")
        if self.clip is not None and (not isinstance(self.clip, str) or not (Path(self.clip) / "config.json").is_file()):
            raise ValueError(f"metrics.clip must be a local CLIP folder (with its config.json) or null, got {self.clip!r}")

    def keys(self, regions: int = 1, inputs: bool = False) -> list[str]:
        """Every metric name an evaluation with these settings of items with up to `regions` regions may report
        (what an objective or a figure may name; a metric the model cannot compute is then absent, with its reason).
        Items with 2+ regions add per-region keys `<metric>/region<k>`, k from 0; `inputs` (the job's items start
        from input images) adds the background keys."""
        regions = check_int(regions, "regions", 1, MAX_REGIONS)
        check_bool(inputs, "inputs")
        keys = ["seam/gradient_ratio", "seam/color_jump"]
        if self.judge:
            keys += [f"region_{share}/{where}" for share in SHARES for where in ("inside", "outside")]
            if self.references:
                keys += self.perceptual_keys() + ["seam/perceptual"]
            if self.real_images:
                keys += ["fid/judge", "kid/judge", "kid/judge_std"]
        if self.clip is not None:
            keys += ["region_clip/inside", "region_clip/outside", "clip_score/image", "clip_score/inside"]
        if self.reference is not None:
            keys += list(METRIC_KEYS)
        if inputs:
            keys += list(BACKGROUND_KEYS)
        if regions > 1:
            keys += [key for k in range(regions) for key in region_keys(k, self.judge, self.clip is not None)]
        return keys

    def perceptual_keys(self) -> list[str]:
        """The perceptual distances `perceptual` may measure (auto: lpips/alex, else perceptual/judge)."""
        named = {"auto": ["lpips/alex", "perceptual/judge"], "judge": ["perceptual/judge"]}
        return named.get(self.perceptual, [self.perceptual])

    def reference_set(self, height: int, width: int) -> ReferenceSet:
        """The real-image set of `fid/inception` and `kid/inception` at a `height x width` canvas."""
        return ReferenceSet(self.reference, height, width, inception_weights=self.inception_weights,
                            cache_dir=self.reference_cache)

    def check(self, height: int, width: int, prompts: dict[str, str]) -> None:
        """Before any model loads: a canvas the judge can read, prompts (`{key: prompt}`, the key named in the
        error) in the world's vocabulary, and the reference set with its Inception weights."""
        if self.reference is not None:
            try:
                self.reference_set(height, width).check()
            except ImportError as error:
                raise ValueError(f"metrics.reference needs the vision extra: {error}") from None
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

    def start(self, model: Any, device: torch.device | str, canvas: tuple[int, int] | None = None) -> Evaluation:
        """An evaluation of images sampled on `model`, each batch with its own item's prompts and masks; the judge
        reads them at `canvas` (height, width: the job's canvas, which larger images are brought down to; None:
        the images' own size)."""
        return Evaluation(self, model, torch.device(device), check_canvas(canvas))


def check_canvas(canvas: object) -> tuple[int, int] | None:
    """None or (height, width), two integers >= 1."""
    if canvas is None:
        return None
    if not isinstance(canvas, Sequence) or isinstance(canvas, str) or len(canvas) != 2:
        raise ValueError(f"canvas must be None or (height, width), got {canvas!r}")
    return check_int(canvas[0], "canvas height", 1), check_int(canvas[1], "canvas width", 1)


def region_keys(k: int, judge: bool, clip: bool = False) -> list[str]:
    """The per-region keys of region `k` (items with 2+ regions): its judge shares with the judge, its seam
    metrics, its CLIP score with a CLIP folder."""
    shares = [f"region_{share}/region{k}" for share in SHARES] if judge else []
    return shares + [f"seam/gradient_ratio/region{k}", f"seam/color_jump/region{k}"] + (
        [f"clip_score/region{k}"] if clip else [])


def to_canvas(images: Tensor, regions: Sequence[tuple[Tensor, str]],
              canvas: tuple[int, int] | None) -> tuple[Tensor, list[tuple[Tensor, str]]]:
    """The images and their (mask [H,W] at the images' size, prompt) regions as the judge reads them: brought down
    to `canvas` (`shrink`; the masks by area, binarised at 0.5); unchanged at that size or without a canvas."""
    if canvas is None or tuple(images.shape[-2:]) == canvas:
        return images, list(regions)
    try:
        judged = shrink(images, canvas)
    except ValueError:
        raise ValueError(f"images must be at least the canvas {canvas[0]}x{canvas[1]} px, got "
                         f"{images.shape[-2]}x{images.shape[-1]}") from None
    masks = F.interpolate(torch.stack([mask.float() for mask, _ in regions])[:, None], size=canvas, mode="area")
    return judged, [((mask[0] >= 0.5).float(), prompt) for mask, (_, prompt) in zip(masks, regions)]


@dataclass
class Item:
    """One update's item at image size: its base prompt, its regions' masks (as given when the size matches, else
    resized and binarised), prompts, their union and each region's own part (not covered by the other regions)."""

    base: str
    masks: list[Tensor]
    prompts: list[str]
    union: Tensor
    own: list[Tensor]

    @property
    def regions(self) -> list[tuple[Tensor, str]]:
        """(mask [H, W], prompt) per region, as `reference_images` takes them."""
        return list(zip(self.masks, self.prompts))


def fit_item(images: Tensor, base_prompt: str, regions: Sequence[tuple[Tensor, str]]) -> Item:
    """The item of a batch of images [B,3,H,W]: masks [H,W] (or [1,H,W], [1,1,H,W]) at image size are kept as they
    are, others resized like `prepare_masks` (an integer fraction of the image size) and binarised."""
    check_text(base_prompt, "base_prompt")
    listed = isinstance(regions, Sequence) and not isinstance(regions, str)
    if not listed or not 1 <= len(regions) <= MAX_REGIONS:
        raise ValueError(f"regions must be a list of 1 to {MAX_REGIONS} (mask, prompt) pairs, got "
                         + (f"{len(regions)} pairs" if listed else type(regions).__name__))
    masks, binary, prompts = [], [], []
    for k, region in enumerate(regions):
        if not (isinstance(region, Sequence) and len(region) == 2 and isinstance(region[0], Tensor)):
            raise ValueError(f"regions[{k}] must be a (mask tensor, prompt) pair, got {type(region).__name__}")
        mask, prompt = region
        prompts.append(check_text(prompt, f"regions[{k}] prompt"))
        if mask.dim() not in (2, 3, 4) or mask.numel() != mask.shape[-2] * mask.shape[-1]:
            raise ValueError(f"regions[{k}] mask must be [H,W], [1,H,W] or [1,1,H,W], got {tuple(mask.shape)}")
        mask = mask.float().to(images.device).reshape(mask.shape[-2:])
        try:
            binary.append(prepare_masks(mask, images[:1])[0, 0])
        except ValueError as error:
            raise ValueError(f"regions[{k}] {error}") from None
        masks.append(mask if mask.shape == images.shape[-2:] else binary[-1])
    if len(masks) == 1:
        return Item(base_prompt, masks, prompts, masks[0], masks)
    stacked = torch.stack(binary)
    alone = (stacked.sum(dim=0) == 1).to(stacked.dtype)  # pixels covered by one region only
    return Item(base_prompt, masks, prompts, stacked.amax(dim=0), [mask * alone for mask in binary])


def lpips_reason() -> str | None:
    """Why `lpips/alex` cannot run here (the missing package or weights), None when it can."""
    try:
        lpips_weights("alex")
    except (ImportError, FileNotFoundError) as error:
        return str(error)
    return None


def regions_of(item: Item) -> Regions:
    """An item's regions as the per-image functions read them."""
    return Regions(item.masks, item.union, item.own)


@dataclass
class Evaluation:
    """Per-batch updates (`update(images, seeds, base_prompt, regions, item, inputs, keep)`), then
    `compute() -> (aggregates, per-image rows)`; `absent` then names every key of
    `settings.keys(regions seen, inputs=True)` not computed, with its reason. The metrics are the registry's
    families, run by one `Measurement` (measure.py) with what the model offers: its judge and reference images."""

    settings: Evaluator
    model: Any
    device: torch.device
    canvas: tuple[int, int] | None = None
    absent: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.settings
        self.items: dict[str | None, Item] = {}  # each item's latest update at the judge's canvas, in order
        self.inputs_seen = False
        self.regions_seen = 1
        self.recorded: dict[str, Any] = {}  # the models metrics were measured with (result.json `measured_with`)
        self.references: ReferenceSet | None = None  # fid/inception's real set, made at the first batch's canvas
        self.generated: list[Tensor] = []  # Inception features of every judged image, on the CPU
        world_judge = getattr(self.model, "judge", None)
        judge = frozen(world_judge).to(self.device) if s.judge and world_judge is not None else None
        self.reference_images = getattr(self.model, "reference_images", None) if judge is not None else None
        no_references = NO_JUDGE if judge is None else NO_REFERENCES
        self.measurement = Measurement(
            Tools(s.band_width, judge), {"prompts"} | ({"judge"} if judge is not None else set()),
            missing={"judge": NO_JUDGE, "references": no_references, "real_images": no_references, "input": NO_INPUT},
            order=s.keys(MAX_REGIONS, inputs=True))
        if self.reference_images is not None and s.references:
            self._add_references()
        if self.reference_images is not None and s.real_images:
            self.measurement.available.add("real_images")
            self.measurement.set_level = {"fid/judge": frechet_distance("judge", judge).to(self.device),
                                          "kid/judge": kernel_distance("judge", judge).to(self.device)}
        if s.clip is not None:
            self._add_clip(s.clip)
        for reader in [*self.measurement.tools.readers.values(), *self.measurement.tools.region_clip.values()]:
            reader.to(self.device)

    def _add_references(self) -> None:
        """The perceptual distance `settings.perceptual` chooses to the model's reference images; the other
        perceptual keys the settings name get the reason they are not measured."""
        s, measurement = self.settings, self.measurement
        measurement.available.add("references")
        key, metric = perceptual_metric(s.perceptual, measurement.tools.judge)
        measurement.tools.perceptual = (key, metric.to(self.device))
        if key.startswith("lpips/"):
            measurement.available.add("lpips")
        for other in s.perceptual_keys():
            if other != key:
                why = lpips_reason() if other.startswith("lpips/") else f"the weights of {key} are on disk"
                measurement.reasons[other] = f"metrics.perceptual={s.perceptual} measures {key} instead: {why}"

    def _add_clip(self, folder: str) -> None:
        """CLIP from the local `folder` (recorded in `recorded`) with its region readers."""
        from .clip_region import RegionCLIPScore

        tools = self.measurement.tools
        self.measurement.available.add("clip")
        tools.clip = load_clip(folder)
        tools.region_clip = {side: RegionCLIPScore(folder, side, self.settings.band_width)
                             for side in ("inside", "outside")}
        self.recorded["clip"] = tools.clip.record

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per image evaluated so far: its seed (and item), its values and the judge's readings."""
        return self.measurement.rows

    def _prepare_lpips(self) -> None:
        """On the first batch with inputs: LPIPS for `background/lpips` where it runs here, else its reason."""
        measurement = self.measurement
        if measurement.tools.lpips is not None or "lpips" in measurement.missing:
            return
        reason = lpips_reason()
        if reason is None:
            measurement.tools.lpips = lpips_metric("alex").to(self.device)
            measurement.available.add("lpips")
        else:
            measurement.missing["lpips"] = reason

    def update(self, images: Tensor, seeds: Sequence[int], base_prompt: str, regions: Sequence[tuple[Tensor, str]],
               item: str | None = None, inputs: Tensor | None = None, keep: Tensor | None = None) -> None:
        """Add a batch of images [B,3,H,W] in [0,1], one seed each, sampled for one item: `base_prompt` and
        `regions` (mask [H,W] at image size or an integer fraction of it, prompt), later regions on top; `item`
        names the item in the rows (None: no name). An item that starts from input images gives them, `inputs`
        [B,3,h,w] in [0,1] (at most the images' size), with `keep` [h,w] (1 where the input was to be kept).
        Every metric measured once per image."""
        images = check_images(images).to(self.device)
        seeds = list(seeds)
        if len(seeds) != images.shape[0]:
            raise ValueError(f"seeds must hold one seed per image ({images.shape[0]}), got {len(seeds)}")
        if item is not None:
            check_text(item, "item")
        fitted = fit_item(images, base_prompt, regions)
        judged, judge_regions = to_canvas(images, fitted.regions, self.canvas)
        judge_item = fitted if judged is images else fit_item(judged, base_prompt, judge_regions)
        if (inputs is None) != (keep is None):
            raise ValueError("inputs and keep must be given together (the input images and the mask of the pixels "
                             f"to keep), got inputs={'None' if inputs is None else 'a tensor'}, "
                             f"keep={'None' if keep is None else 'a tensor'}")
        background = None
        if inputs is not None:
            if not isinstance(inputs, Tensor) or not isinstance(keep, Tensor):
                raise ValueError("inputs and keep must be tensors")
            background = check_background(images, inputs.to(self.device), keep.to(self.device))
            self._prepare_lpips()
            self.inputs_seen = True
        self.items[item] = judge_item
        self.regions_seen = max(self.regions_seen, len(fitted.masks))
        references = None
        if "references" in self.measurement.available:
            references = self.reference_images(judge_item.base, judge_item.regions, seeds).to(self.device)
        count = images.shape[0]
        batch = Batch(images, [fitted.base] * count, [[prompt] * count for prompt in fitted.prompts],
                      regions_of(fitted), judged, regions_of(judge_item), references, background)
        meta: dict[str, Any] = {} if item is None else {"item": item}
        self.measurement.add(batch, [{"seed": seed, **meta} for seed in seeds])
        if self.settings.reference is not None:
            self._add_inception_features(judged)

    def _add_inception_features(self, judged: Tensor) -> None:
        """The Inception features of a batch as the judge reads it (at the canvas), kept on the CPU."""
        if self.references is None:
            self.references = self.settings.reference_set(*judged.shape[-2:])
            self.inception = self.references.extractor(self.device)
            self.recorded["reference"] = self.references.describe()
        with torch.no_grad():
            self.generated.append(self.inception(judged).cpu())

    def compute(self) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Aggregate values over every image of every item so far (region k's over the images of items that have
        it, the background's over the images that had inputs), and the per-image rows."""
        measurement = self.measurement
        if measurement.set_level and len(self.rows) >= 2:
            self._add_real_images()
        results, absent = measurement.compute(self.settings.keys(self.regions_seen, inputs=True),
                                              self.settings.band_width)
        if self.references is not None:
            values, missing = reference_fid_kid(torch.cat(self.generated), self.references.features(self.device),
                                                min_generated=self.settings.reference_min_generated)
            results = measurement.ordered({**results, **values})
            absent = {key: reason for key, reason in absent.items() if key not in values}
            absent.update(missing)
        self.absent.update(absent)
        for key, reason in self.absent.items():
            log.info("%s absent: %s", key, reason)
        return results, self.rows

    def _add_real_images(self) -> None:
        """The real set: `real_images` reference composites at the judge's canvas, image i of item i mod (items
        seen), seed REAL_SEED_OFFSET + i, read item by item."""
        items = list(self.items.values())
        for index, fitted in enumerate(items):
            seeds = [REAL_SEED_OFFSET + i for i in range(index, self.settings.real_images, len(items))]
            for start in range(0, len(seeds), REAL_BATCH):
                real = self.reference_images(fitted.base, fitted.regions, seeds[start:start + REAL_BATCH])
                self.measurement.add_real(real.to(self.device))
