"""What a job samples: its items. An item is a base sampler, one or more regions (a mask and a sampler each) and
optionally an input image; every item is sampled for every seed of the job.

- The default job has one item: `base_sampler` outside `mask`, `mask_sampler` inside (the one-region shorthand).
- A `regions` list in the config replaces `mask` + `mask_sampler`'s prompt: each entry a mask, a prompt and
  optionally its own `sampler`, `scheduler`, `cfg`, `negative_prompt`, `loras` (its LoRA files, replacing
  `mask_sampler.loras`; the rest taken from `mask_sampler`).
- `input=image` gives one item per image, each with the job's prompts and regions.
- `data=manifest` gives one item per manifest line, with its own base prompt, regions and optional image.

Everything an item reads (mask files, images, LoRA files) is checked while the items are built, before any model
loads.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from torch import Tensor

from .manifest import REGION_SETTINGS, ManifestItem, region_mask
from .specs import SamplerSpec
from ..models.lora import LoraSpec, describe
from ..validation import BOUNDS

MAX_REGIONS = int(BOUNDS["regions"].high)
CONFIG_REGION_SETTINGS = (*REGION_SETTINGS, "loras")  # what a region may set of its sampler
REGION_KEYS = ("mask", "prompt", *CONFIG_REGION_SETTINGS)


@dataclass(frozen=True)
class JobRegion:
    """A region of an item: its mask `[H, W]` at the canvas size and the spec of its sampler."""

    mask: Tensor
    spec: SamplerSpec


@dataclass(frozen=True)
class JobItem:
    """One thing a job samples for every seed. `id` is None for the job's own single item (its images then go to
    `images/seed<n>.png`, else `images/<id>/seed<n>.png`); `image` is the input image it starts from (None: noise)."""

    id: str | None
    base: SamplerSpec
    regions: tuple[JobRegion, ...]
    image: Path | None = None

    def samplers(self) -> dict[str, SamplerSpec]:
        """The item's samplers keyed by where they come from (`base_sampler`, `mask_sampler` or `regions[k]`,
        after `item <id>: ` for a data set's item), for the checks that name the key."""
        where = "" if self.id is None else f"item {self.id}: "
        specs = {f"{where}base_sampler": self.base}
        for k, region in enumerate(self.regions):
            name = "mask_sampler" if len(self.regions) == 1 and self.id is None else f"regions[{k}]"
            specs[f"{where}{name}"] = region.spec
        return specs

    def prompts(self) -> dict[str, str]:
        """Every prompt of the item keyed by where it comes from (`...base_sampler.prompt`)."""
        return {f"{key}.{field}": getattr(spec, field) for key, spec in self.samplers().items()
                for field in ("prompt", "negative_prompt")}

    def loras(self) -> dict[str, tuple[LoraSpec, ...]]:
        """The LoRAs of each of the item's samplers that has some, keyed like `prompts` (`...base_sampler.loras`)."""
        return {f"{key}.loras": spec.loras for key, spec in self.samplers().items() if spec.loras}


def region_spec(template: SamplerSpec, prompt: str, settings: dict[str, Any], name: str) -> SamplerSpec:
    """`template` (the job's mask sampler) with a region's prompt and own settings; ValueError naming `name`."""
    try:
        return dataclasses.replace(template, prompt=prompt, **settings)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{name}: {error}") from None


def config_regions(entries: Any, template: SamplerSpec, height: int, width: int) -> tuple[JobRegion, ...]:
    """The `regions` list of a config: each `{mask, prompt}` plus optional sampler settings; a mask is a shape
    (`{shape: ellipse, cx: 0.3, ...}`, the defaults of conf/mask/<shape>.yaml) or an image file path."""
    if not isinstance(entries, (list, tuple)) or not 1 <= len(entries) <= MAX_REGIONS:
        raise ValueError(f"regions must be a list of 1 to {MAX_REGIONS} regions ({{mask, prompt}} each) or empty; "
                         f"got {entries!r}")
    regions = []
    for k, entry in enumerate(entries):
        name = f"regions[{k}]"
        if not isinstance(entry, dict) or "mask" not in entry or "prompt" not in entry:
            raise ValueError(f"{name} must be a mapping with mask and prompt; got {entry!r}")
        unknown = sorted(set(entry) - set(REGION_KEYS))
        if unknown:
            raise ValueError(f"{name}: unknown key {unknown[0]!r}; a region has {', '.join(REGION_KEYS)}")
        mask = region_mask(entry["mask"], Path.cwd(), height, width, f"{name}.mask")
        settings = {key: entry[key] for key in CONFIG_REGION_SETTINGS if key in entry}
        regions.append(JobRegion(mask, region_spec(template, entry["prompt"], settings, name)))
    return tuple(regions)


def manifest_item(item: ManifestItem, base: SamplerSpec, template: SamplerSpec) -> JobItem:
    """A manifest line as a job item: its prompts and regions on the job's samplers' settings."""
    where = f"item {item.id} (line {item.line})"
    negative = base.negative_prompt if item.negative_prompt is None else item.negative_prompt
    base = region_spec(base, item.prompt, {"negative_prompt": negative}, f"{where}: prompt")
    regions = tuple(JobRegion(r.mask, region_spec(template, r.prompt, dict(r.settings), f"{where}: regions[{k}]"))
                    for k, r in enumerate(item.regions))
    return JobItem(item.id, base, regions, item.image)


def job_items(base: SamplerSpec, template: SamplerSpec, mask: Tensor, regions: Any, manifest: list[ManifestItem] | None,
              images: Sequence[Any], height: int, width: int) -> list[JobItem]:
    """The items of a job: from the manifest when there is one (refused with `regions` or input images: its lines
    name their own), else the job's base sampler with its `regions` (or `mask` + `template`), once per input image
    (`images`: the input group's checked images, each with `id` and `path`) or once from noise."""
    if manifest is not None:
        if regions:
            raise ValueError("regions: data=manifest gives each item its own regions; leave regions empty")
        if images:
            raise ValueError("input: data=manifest gives each item its own input image (its `image` key); "
                             "use input=noise with a manifest")
        return [manifest_item(item, base, template) for item in manifest]
    own = config_regions(regions, template, height, width) if regions else (JobRegion(mask, template),)
    if not images:
        return [JobItem(None, base, own)]
    return [JobItem(image.id, base, own, Path(image.path)) for image in images]


def loras_record(items: Sequence[JobItem]) -> dict[str, list[dict[str, Any]]]:
    """What result.json records of a job's LoRAs: for each sampler with some (keyed as `JobItem.loras`), each
    file's path, scale and fingerprint; empty without LoRAs."""
    return {key: describe(specs) for item in items for key, specs in item.loras().items()}


def _lora_bytes(spec: SamplerSpec) -> bytes:
    """The LoRAs of a sampler as its fingerprint reads them (nothing without LoRAs: fingerprints stay as before)."""
    return "".join(f"|lora {d['path']} {d['scale']!r} {d['fingerprint']}" for d in describe(spec.loras)).encode()


def inputs_fingerprint(items: Sequence[JobItem]) -> str | None:
    """sha256 (16 hex digits) of what a job's items read beyond its config: their masks (from files or a manifest),
    input images and their samplers' LoRA files (path, scale, bytes), so a result is recomputed when they change;
    None for the job's own single item from noise without LoRAs (its config says everything)."""
    if len(items) == 1 and items[0].id is None and items[0].image is None and not items[0].loras():
        return None
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.id}|{item.base.prompt}|{item.base.negative_prompt}".encode())
        digest.update(_lora_bytes(item.base))
        for region in item.regions:
            digest.update(repr(region.spec).encode())
            digest.update(_lora_bytes(region.spec))
            digest.update(region.mask.detach().float().cpu().contiguous().numpy().tobytes())
        if item.image is not None:
            digest.update(Path(item.image).read_bytes())
    return digest.hexdigest()[:16]
