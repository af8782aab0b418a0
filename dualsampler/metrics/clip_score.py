"""`clip_score/image`, `clip_score/inside`, `clip_score/region<k>`: how well CLIP reads the prompt in the image.

torchmetrics' CLIPScore per image, `100 * max(cos(E_image, E_text), 0)`, from a local CLIP folder (transformers
`CLIPModel` + `CLIPProcessor`, `local_files_only`; nothing is downloaded):
- `clip_score/image`: the whole image against the item's full prompt (`full_prompt`: the base prompt and the
  region prompts joined with ", ", as one caption names everything the picture holds; CLIP reads 77 tokens, so
  the last regions of a long list are cut);
- `clip_score/region<k>`: the crop of region k's mask bounding box (`region_crops`) against region k's prompt;
- `clip_score/inside`: the mean over the item's regions of `clip_score/region<k>`.

Images go to CLIP exactly as torchmetrics sends them: as 8-bit pixels through the folder's own processor (resize of
the shorter side, centre crop, normalisation). Unlike torchmetrics (which floors the *mean* of the cosines at 0 and
cannot load a local folder), the floor applies per image, as in the CLIPScore paper, and the mean is over images.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from ..models.fingerprint import files_fingerprint, folder_files
from ..validation import MAX_SIDE, check_int
from .inputs import check_images, check_prompts, prepare_masks

SCALE = 100.0  # torchmetrics' and the paper's weight on the cosine
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")  # transformers < 5 and >= 5 save one


@dataclass(frozen=True)
class LocalCLIP:
    """A CLIP model (eval mode, no gradients) with its processor, and what result.json records of it."""

    model: nn.Module
    processor: Any
    record: dict[str, str]


def check_clip_folder(folder: str | Path, name: str = "metrics.clip") -> Path:
    """`folder` as a Path after checking it holds a saved CLIP (config.json and a processor config); ValueError
    naming `name` otherwise. Loads nothing."""
    path = Path(folder) if isinstance(folder, (str, Path)) else None
    present = {file.name for file in path.iterdir()} if path is not None and path.is_dir() else set()
    missing = [] if "config.json" in present else ["config.json"]
    if not present & set(PROCESSOR_FILES):
        missing.append(" or ".join(PROCESSOR_FILES))
    if missing:
        raise ValueError(f"{name} must be a local CLIP folder (CLIPModel.save_pretrained + CLIPProcessor"
                         f".save_pretrained: config.json, weights, tokenizer, preprocessor_config.json); got "
                         f"{folder!r}, which lacks {', '.join(missing)}")
    return path


def clip_record(folder: str | Path) -> dict[str, str]:
    """What result.json records of a CLIP folder: `{"name": its folder name, "fingerprint": sha256 of its files}`."""
    path = check_clip_folder(folder)
    return {"name": path.resolve().name, "fingerprint": files_fingerprint(folder_files(path))}


@functools.lru_cache(maxsize=2)
def _load(folder: str) -> LocalCLIP:
    from transformers import CLIPModel, CLIPProcessor

    path = Path(folder)
    try:
        model = CLIPModel.from_pretrained(path, local_files_only=True).eval().requires_grad_(False)
        processor = CLIPProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"metrics.clip: {folder!r} does not load as a CLIP model and processor: {error}") from None
    return LocalCLIP(model, processor, clip_record(path))


def load_clip(folder: str | Path) -> LocalCLIP:
    """The CLIP of a local folder, offline, one copy per folder per process; ValueError naming `metrics.clip` for
    a folder that is not one (checked before anything loads)."""
    return _load(str(check_clip_folder(folder).resolve()))


def full_prompt(base_prompt: str, region_prompts: Sequence[str]) -> str:
    """The caption of the whole image: the base prompt, then each region's prompt, joined with ", " (empty ones
    left out)."""
    return ", ".join(p.strip() for p in (base_prompt, *region_prompts) if p.strip())


def score_from_features(image_features: Tensor, text_features: Tensor) -> Tensor:
    """Row-wise `100 * max(cos(image, text), 0)` of embeddings [B, D] -> float32 [B]."""
    cos = F.cosine_similarity(image_features.float(), text_features.float(), dim=-1)
    return (SCALE * cos).clamp(min=0)


def _input_side(processor: Any) -> int:
    """The side the processor resizes an image's shorter edge to (CLIP: 224)."""
    image_processor = getattr(processor, "image_processor", processor)
    size = dict(image_processor.size)
    return int(size.get("shortest_edge") or size["height"])


def mask_boxes(masks: Tensor) -> Tensor:
    """Bounding boxes (top, left, bottom, right; exclusive ends) of binary masks [B,1,H,W]; -1 rows where empty."""
    rows, cols = masks[:, 0].any(dim=2), masks[:, 0].any(dim=1)
    boxes = torch.full((masks.shape[0], 4), -1, dtype=torch.long)
    for b in range(masks.shape[0]):
        ys, xs = rows[b].nonzero().flatten(), cols[b].nonzero().flatten()
        if len(ys):
            boxes[b] = torch.stack([ys[0], xs[0], ys[-1] + 1, xs[-1] + 1]).cpu()
    return boxes


def region_crops(images: Tensor, masks: Tensor, size: int, fill: Sequence[float] = (0.5, 0.5, 0.5)) -> Tensor:
    """Per image, the bounding box of its mask (>= 0.5), padded evenly to a square with `fill` (an RGB colour in
    [0, 1]; the extra pixel of an odd difference goes after), resized to `size` px (bicubic, antialiased like
    the processor's PIL resize; a box already `size` px is kept as it is) -> [B,3,size,size]. An image whose mask is
    empty gives a crop of `fill` alone (`mask_boxes` tells which). images [B,3,H,W] in [0,1], masks as
    `prepare_masks` takes them."""
    check_images(images)
    size = check_int(size, "size", 1, MAX_SIDE)
    if len(fill) != 3 or not all(0 <= float(v) <= 1 for v in fill):
        raise ValueError(f"fill must be an RGB colour of 3 values in [0, 1], got {fill!r}")
    boxes = mask_boxes(prepare_masks(masks, images))
    colour = torch.tensor([float(v) for v in fill], dtype=images.dtype, device=images.device).reshape(3, 1, 1)
    crops = []
    for image, (top, left, bottom, right) in zip(images, boxes.tolist()):
        if top < 0:
            crops.append(colour.expand(3, size, size))
            continue
        height, width = bottom - top, right - left
        side = max(height, width)
        square = colour.expand(3, side, side).clone()
        y, x = (side - height) // 2, (side - width) // 2
        square[:, y:y + height, x:x + width] = image[:, top:bottom, left:right]
        if side != size:
            square = F.interpolate(square[None], size=(size, size), mode="bicubic", align_corners=False,
                                   antialias=True)[0].clamp(0, 1)
        crops.append(square)
    return torch.stack(crops)


@torch.no_grad()
def image_features(images: Tensor, clip: LocalCLIP) -> Tensor:
    """CLIP embeddings [B, D] of images [B,3,H,W] in [0,1], sent as torchmetrics sends them: 8-bit pixels
    through the folder's processor."""
    pixels = [image for image in (images.detach() * 255).round().to(torch.uint8).cpu()]
    image_processor = getattr(clip.processor, "image_processor", clip.processor)
    values = image_processor(images=pixels, return_tensors="pt")["pixel_values"]
    parameter = next(clip.model.parameters())
    output = clip.model.get_image_features(pixel_values=values.to(parameter.device, parameter.dtype))
    return (output if isinstance(output, Tensor) else output.pooler_output).float()


@torch.no_grad()
def text_features(prompts: Sequence[str], clip: LocalCLIP) -> Tensor:
    """CLIP embeddings [B, D] of prompts, tokenized by the processor's tokenizer and cut at the model's length."""
    tokenizer = getattr(clip.processor, "tokenizer", clip.processor)
    length = clip.model.config.text_config.max_position_embeddings
    tokens = tokenizer(list(prompts), padding=True, truncation=True, max_length=length, return_tensors="pt")
    device = next(clip.model.parameters()).device
    output = clip.model.get_text_features(**{k: v.to(device) for k, v in tokens.items()})
    return (output if isinstance(output, Tensor) else output.pooler_output).float()


def clip_scores(images: Tensor, prompts: str | Sequence[str], clip: LocalCLIP) -> Tensor:
    """Per image, `100 * max(cos, 0)` of the image and its prompt (one string for all) -> float32 [B] on CPU."""
    check_images(images)
    prompts = check_prompts(prompts, images.shape[0], "prompts")
    return score_from_features(image_features(images, clip), text_features(prompts, clip)).cpu()


def region_clip_scores(images: Tensor, masks: Tensor, prompts: str | Sequence[str], clip: LocalCLIP) -> Tensor:
    """Per image, the CLIP score of the crop of its mask's bounding box (`region_crops` at the processor's input
    side, padded with the processor's mean colour) against the region's prompt -> float32 [B] on CPU; NaN where
    the mask is empty."""
    check_images(images)
    prompts = check_prompts(prompts, images.shape[0], "prompts")
    image_processor = getattr(clip.processor, "image_processor", clip.processor)
    crops = region_crops(images, masks, _input_side(clip.processor), image_processor.image_mean)
    scores = clip_scores(crops, prompts, clip)
    empty = mask_boxes(prepare_masks(masks, images))[:, 0] < 0
    return torch.where(empty, math.nan, scores)


def item_scores(images: Tensor, base_prompt: str, regions: Sequence[tuple[Tensor, str]],
                clip: LocalCLIP) -> dict[str, Tensor]:
    """An item's per-image scores [B]: `clip_score/image` against `full_prompt`, `clip_score/region<k>` per
    (mask, prompt) region, `clip_score/inside` their mean over the regions whose mask is not empty (NaN if none)."""
    if not regions:
        raise ValueError("regions must hold at least one (mask, prompt) pair")
    scores = {"clip_score/image": clip_scores(images, full_prompt(base_prompt, [p for _, p in regions]), clip)}
    per_region = [region_clip_scores(images, mask, prompt, clip) for mask, prompt in regions]
    scores.update({f"clip_score/region{k}": values for k, values in enumerate(per_region)})
    scores["clip_score/inside"] = torch.stack(per_region).nanmean(dim=0)
    return scores


class CLIPScore(Metric):
    """Mean over images of the per-image CLIP score: `update(images, prompts)` scores whole images,
    `update(images, prompts, masks)` the crops of the masks' bounding boxes (images with an empty mask are left
    out). `compute()` is NaN when no image was scored. `clip`: a local CLIP folder or a `LocalCLIP`."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, clip: str | Path | LocalCLIP, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clip = clip if isinstance(clip, LocalCLIP) else load_clip(clip)
        self.model = self.clip.model  # a submodule: `metric.to(device)` moves the model
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, images: Tensor, prompts: str | Sequence[str], masks: Tensor | None = None) -> None:
        """Add a batch's per-image scores."""
        scores = clip_scores(images, prompts, self.clip) if masks is None else (
            region_clip_scores(images, masks, prompts, self.clip))
        scores = scores.to(self.total.device, torch.float64)
        read = ~scores.isnan()
        self.total += scores[read].sum()
        self.count += read.sum()

    def compute(self) -> Tensor:
        """Mean per-image score over the images scored; NaN when none was."""
        return torch.where(self.count > 0, self.total / self.count.clamp(min=1), math.nan).float()

