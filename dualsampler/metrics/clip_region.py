"""`region_clip/inside` and `region_clip/outside`: does a CLIP model read each region's own prompt there?

For any model (the judge only knows the embedded world's textures). CLIP comes from a local folder
(transformers `CLIPModel` + `CLIPProcessor`, `local_files_only`); nothing is downloaded.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from dualsampler.metrics.bands import dilate, erode
from dualsampler.metrics.inputs import (
    check_images,
    check_prompts,
    check_width,
    prepare_masks,
)
from dualsampler.metrics.region_accuracy import REGIONS, crop_patches, select_patches

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=2)
def load_clip(folder: str) -> tuple[nn.Module, object]:
    """(CLIPModel in eval mode without gradients, CLIPProcessor) from a local folder; one copy per folder."""
    from transformers import CLIPModel, CLIPProcessor

    path = Path(folder)
    if not (path / "config.json").is_file():
        raise ValueError(f"clip must be a local CLIP folder (config.json, weights, tokenizer, preprocessor_config.json); "
                         f"got {folder!r}")
    model = CLIPModel.from_pretrained(path, local_files_only=True).eval().requires_grad_(False)
    return model, CLIPProcessor.from_pretrained(path, local_files_only=True)


def _features(output) -> Tensor:
    """Projected features from `get_*_features` (a tensor, or an output whose `pooler_output` holds them)."""
    return output if isinstance(output, Tensor) else output.pooler_output


def _size(image_processor) -> tuple[int, int]:
    crop = getattr(image_processor, "crop_size", None) or getattr(image_processor, "size", {})
    if "height" in crop:
        return int(crop["height"]), int(crop["width"])
    return int(crop["shortest_edge"]), int(crop["shortest_edge"])


class RegionCLIPScore(Metric):
    """region_clip/<region>: mean over images of the share of the region's crops that CLIP places closer to the
    region's own prompt than to the other region's: `(1/N_b) sum_p [cos(I(p), T(own_b)) > cos(I(p), T(other_b))]`.

    Crops are `patch_size` squares (default: a quarter of the shorter image side, at least 32 px) on a grid of step
    `stride` (default half a crop) lying wholly in the region, at most `max_patches` per image, evenly spread: for
    `inside` the mask eroded by `band_width`, for `outside` the complement of the mask dilated by it. Each crop is
    resized to the processor's crop size and normalised with its mean and std. An image whose region holds no
    whole crop gives no value; `compute()` is NaN when no image could be read. `clip`: a local CLIP folder, or a
    `(model, processor)` pair. update(images, masks, own_prompts, other_prompts).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, clip: str | Path | tuple[nn.Module, object], region: str = "inside", band_width: int = 4,
                 patch_size: int | None = None, stride: int | None = None, max_patches: int = 16, **kwargs) -> None:
        super().__init__(**kwargs)
        if region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
        self.region = region
        self.band_width = check_width(band_width)
        self.patch_size = None if patch_size is None else check_width(patch_size, "patch_size")
        self.stride = None if stride is None else check_width(stride, "stride")
        self.max_patches = check_width(max_patches, "max_patches")
        model, self.processor = clip if isinstance(clip, tuple) else load_clip(str(clip))
        self.clip = model
        self.unreadable_reported = False
        image_processor = getattr(self.processor, "image_processor", self.processor)
        self.input_size = _size(image_processor)
        self.register_buffer("mean", torch.tensor(image_processor.image_mean).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(image_processor.image_std).reshape(1, 3, 1, 1), persistent=False)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    @torch.no_grad()
    def image_features(self, crops: Tensor) -> Tensor:
        """Unit CLIP embeddings of crops [N,3,p,p] in [0,1]."""
        pixels = F.interpolate(crops.float(), size=self.input_size, mode="bicubic", align_corners=False, antialias=True)
        pixels = (pixels.clamp(0, 1) - self.mean.to(pixels.device)) / self.std.to(pixels.device)
        dtype = next(self.clip.parameters()).dtype
        return F.normalize(_features(self.clip.get_image_features(pixel_values=pixels.to(dtype))).float(), dim=-1)

    @torch.no_grad()
    def text_features(self, prompts: Sequence[str]) -> Tensor:
        """Unit CLIP embeddings of prompts, tokenized by the processor's tokenizer."""
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        tokens = tokenizer(list(prompts), padding=True, return_tensors="pt")
        device = next(self.clip.parameters()).device
        tokens = {k: v.to(device) for k, v in tokens.items()}
        return F.normalize(_features(self.clip.get_text_features(**tokens)).float(), dim=-1)

    def read(self, images: Tensor, masks: Tensor, own_prompts: str | Sequence[str],
             other_prompts: str | Sequence[str]) -> Tensor:
        """Per image, the share of its region's crops closer to its own prompt than to the other region's ->
        float64 [B] on the CPU, NaN where the region holds no whole crop; `own_prompts`/`other_prompts`: this
        region's prompt and the other region's, per image."""
        check_images(images)
        own = check_prompts(own_prompts, images.shape[0], "own_prompts")
        other = check_prompts(other_prompts, images.shape[0], "other_prompts")
        patch = self.patch_size or max(32, min(images.shape[-2:]) // 4)
        if min(images.shape[-2:]) < patch:
            raise ValueError(f"images must be at least patch_size={patch} pixels on each side, "
                             f"got {images.shape[-2]}x{images.shape[-1]}")
        mask = prepare_masks(masks, images)
        region = erode(mask, self.band_width) if self.region == "inside" else 1 - dilate(mask, self.band_width)
        rows = select_patches(region, patch, self.stride or max(patch // 2, 1), self.max_patches)
        n = len(own)
        unreadable = n - len(rows[:, 0].unique())
        if unreadable and not self.unreadable_reported:
            log.info("region_clip/%s: %d of %d images have no whole %d px crop in the region (band %d px): "
                     "no value for them", self.region, unreadable, n, patch, self.band_width)
            self.unreadable_reported = True
        if not len(rows):
            return torch.full((n,), math.nan, dtype=torch.float64)
        image = rows[:, 0]
        crops = self.image_features(crop_patches(images, rows, patch))
        texts = self.text_features(own + other).to(crops.device)
        closer_to_own = (crops * texts[image]).sum(-1) > (crops * texts[n + image]).sum(-1)
        image = image.cpu()
        hits = torch.bincount(image, weights=closer_to_own.cpu().to(torch.float64), minlength=n)
        seen = torch.bincount(image, minlength=n)
        return torch.where(seen > 0, hits / seen.clamp(min=1), math.nan)

    def update(self, images: Tensor, masks: Tensor, own_prompts: str | Sequence[str],
               other_prompts: str | Sequence[str]) -> None:
        """Add the per-image shares of a batch (`read`)."""
        shares = self.read(images, masks, own_prompts, other_prompts).to(self.total.device)
        read = ~shares.isnan()
        self.total += shares[read].sum()
        self.count += read.sum()

    def compute(self) -> Tensor:
        """Mean share over images whose region was read; NaN when none was."""
        return torch.where(self.count > 0, self.total / self.count.clamp(min=1), math.nan).float()
