"""Data-set manifests (`data=manifest data.path=FILE`): a JSON Lines file of items, each a base prompt and its
regions (a mask and a prompt, optionally its own sampler settings), read and checked whole before any model loads.

One JSON object per non-blank line (JSONL has no comments):
    {"id": "a1", "prompt": "blue stripes", "regions": [{"mask": {"shape": "ellipse", "rx": 0.2}, "prompt": "red dots"},
     {"mask": "masks/a1.png", "prompt": "green waves", "sampler": "euler", "cfg": 5.0}], "image": "a1.png"}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable, ClassVar

from torch import Tensor

import dualsampler.data

from ..masks import check_side, load_mask, resize_mask
from ..models.lora import check_loras
from ..sampling.samplers import check_sampler
from ..sampling.schedules import check_scheduler
from ..validation import BOUNDS, check_bounded, check_text

WORLD_MANIFEST: Path = Path(dualsampler.data.__file__).parent / "world_regions" / "world_regions.jsonl"
MAX_ITEMS = 10_000  # non-blank lines: every item's masks are held in memory once read
MAX_REGIONS = int(BOUNDS["regions"].high)
MAX_ID_LENGTH = 128  # an id becomes a folder and file name
ASPECT_TOLERANCE = 0.01  # a mask image's aspect ratio may differ from the canvas's by this share (it is stretched)
SHAPES = ("ellipse", "rectangle", "half")  # conf/mask/<shape>.yaml gives each shape's target and defaults
ITEM_KEYS = ("id", "prompt", "regions", "image", "negative_prompt")
REGION_KEYS = ("mask", "prompt", "sampler", "scheduler", "cfg", "negative_prompt", "guidance", "loras")
REGION_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "sampler": check_sampler,
    "scheduler": check_scheduler,
    "cfg": lambda value: check_bounded(value, "cfg"),
    "negative_prompt": lambda value: check_text(value, "negative_prompt"),
    "guidance": lambda value: float(check_bounded(value, "guidance")),
}
_ID = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True, eq=False)
class ManifestRegion:
    """One region of an item: `mask` float `[H, W]` in [0, 1] at the canvas size (regions with the same mask in
    one manifest share the tensor: do not change it in place), its `prompt`, and `settings`: only the optional
    per-region sampler keys the line gave (sampler, scheduler, cfg, negative_prompt, guidance, loras: LoRA paths
    relative to the manifest's folder), checked."""

    mask: Tensor
    prompt: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class ManifestItem:
    """One line of a manifest: its 1-based `line`, `id` (a safe file name, unique), base `prompt`,
    `negative_prompt` (None when absent), `regions` and `image` (an existing readable image, or None)."""

    line: int
    id: str
    prompt: str
    negative_prompt: str | None
    regions: tuple[ManifestRegion, ...]
    image: Path | None


class _LineError(ValueError):
    """What is wrong with one line, `<key>: <what>`; `read_manifest` adds the file and the line."""


def _checked(key: str, check: Callable[[Any], Any], value: Any) -> Any:
    """`check(value)`, its ValueError prefixed with `key`."""
    try:
        return check(value)
    except ValueError as error:
        raise _LineError(f"{key}: {error}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs -> dict; a key given twice is refused (JSON would keep the last silently)."""
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise _LineError(f"{key}: the key appears {keys.count(key)} times in one object; give it once")
    return dict(pairs)


def _check_keys(values: dict[str, Any], allowed: tuple[str, ...], required: tuple[str, ...], where: str) -> None:
    """Unknown and missing keys of one JSON object (`where`: its key path, "" for the item)."""
    for key in values:
        if key not in allowed:
            raise _LineError(f"{where}{key}: unknown key; allowed: {', '.join(allowed)}")
    for key in required:
        if key not in values:
            raise _LineError(f"{where}{key}: missing; required: {', '.join(required)}")


def _check_id(value: Any, seen: dict[str, tuple[str, int]], line: int) -> str:
    """A non-empty name of [A-Za-z0-9._-] (not only dots), unique in the file ignoring case (ids become folder
    names, and some file systems ignore case)."""
    if not isinstance(value, str) or not _ID.fullmatch(value) or set(value) == {"."} or len(value) > MAX_ID_LENGTH:
        raise _LineError(f"id: must be a non-empty string of letters, digits, '.', '_' and '-' (not only dots, at "
                         f"most {MAX_ID_LENGTH} characters; it names the item's folder), got {value!r}")
    if value.casefold() in seen:
        first, first_line = seen[value.casefold()]
        same = "" if first == value else f" as {first!r} (ids name folders: case is ignored)"
        raise _LineError(f"id {value!r} repeats line {first_line}{same}")
    seen[value.casefold()] = (value, line)
    return value


def _file(value: Any, key: str, folder: Path) -> Path:
    """A path string relative to `folder` (the manifest's folder) or absolute, naming an existing file."""
    if not isinstance(value, str) or not value:
        raise _LineError(f"{key}: must be a non-empty path string (relative to {str(folder)!r}, or absolute), "
                         f"got {value!r}")
    path = folder / value
    if not path.is_file():
        raise _LineError(f"{key}: file {value!r} does not exist (a relative path starts at {str(folder)!r})")
    return path


def _check_image(value: Any, folder: Path) -> Path:
    """The item's input image: an existing file PIL can read whole."""
    from PIL import Image

    path = _file(value, "image", folder)
    try:
        with Image.open(path) as image:
            image.load()
    except Exception as error:  # PIL raises many kinds for a truncated or foreign file
        raise _LineError(f"image: file {value!r} is not a readable image (truncated or not an image?): "
                         f"{error}") from None
    return path


@cache
def _shape(shape: str) -> tuple[Callable[..., Tensor], dict[str, Any]]:
    """conf/mask/<shape>.yaml: its `_target_` function and its parameters' defaults (height/width aside)."""
    from hydra.utils import get_method
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(OmegaConf.load(str(files("dualsampler.conf") / "mask" / f"{shape}.yaml")))
    target = get_method(values.pop("_target_"))
    return target, {key: value for key, value in values.items() if key not in ("height", "width")}


def _shape_mask(value: dict[str, Any], key: str, height: int, width: int) -> Tensor:
    """A shape object `{"shape": name, **params}` -> `[1,1,H,W]`; params override conf/mask/<name>.yaml's."""
    params = dict(value)
    shape = params.pop("shape", None)
    if shape not in SHAPES:
        hint = " (a mask file is given as a path string)" if shape == "file" else ""
        raise _LineError(f"{key}.shape: must be one of {', '.join(SHAPES)}{hint}, got {shape!r}")
    target, defaults = _shape(shape)
    for name in params:
        if name not in defaults:
            raise _LineError(f"{key}.{name}: unknown parameter of shape {shape!r}; allowed: {', '.join(defaults)}")
    return _checked(key, lambda p: target(height=height, width=width, **p), {**defaults, **params})


def _file_mask(value: str, key: str, folder: Path, height: int, width: int) -> Tensor:
    """A mask image resized to the canvas; refused when its aspect ratio differs from the canvas's by > 1%."""
    mask = _checked(key, load_mask, _file(value, key, folder))
    mask_height, mask_width = mask.shape[-2:]
    if abs((mask_width / mask_height) / (width / height) - 1) > ASPECT_TOLERANCE:
        raise _LineError(f"{key}: file {value!r} is {mask_height}x{mask_width} px (height x width) and the canvas "
                         f"{height}x{width}: their aspect ratios differ by more than {ASPECT_TOLERANCE:.0%}, and "
                         f"stretching the mask would move its region; give a mask of the canvas's aspect ratio")
    return resize_mask(mask, height, width)


def region_mask(value: Any, folder: Path, height: int, width: int, name: str = "mask") -> Tensor:
    """A region's mask as float `[H, W]` at the canvas size, non-empty (max >= 0.5): an image path string (relative
    to `folder`, or absolute; of the canvas's aspect ratio) or a shape mapping `{"shape": ellipse | rectangle |
    half, ...}` whose parameters override conf/mask/<shape>.yaml's. ValueError starting with `name`."""
    height, width = check_side(height, "height"), check_side(width, "width")
    if isinstance(value, str):
        mask = _file_mask(value, name, Path(folder), height, width)
    elif isinstance(value, Mapping):
        mask = _shape_mask(dict(value), name, height, width)
    else:
        raise _LineError(f"{name}: must be an image path string (relative or absolute) or a shape mapping "
                         f'{{"shape": "{SHAPES[0]}" | "{SHAPES[1]}" | "{SHAPES[2]}", ...}}, got {value!r}')
    mask = mask[0, 0]
    if mask.max() < 0.5:
        raise _LineError(f"{name}: the mask is empty on the {height}x{width} canvas (its largest value is "
                         f"{float(mask.max()):.3g} < 0.5): a region must cover some pixels")
    return mask


def _mask(value: Any, key: str, folder: Path, height: int, width: int, masks: dict[str, Tensor]) -> Tensor:
    """`region_mask`, made once per manifest for equal masks (`masks`: keyed by the file path or the shape's JSON)."""
    cache_key = f"file:{value}" if isinstance(value, str) else f"shape:{json.dumps(value, sort_keys=True)}"
    if cache_key not in masks:
        masks[cache_key] = region_mask(value, folder, height, width, key)
    return masks[cache_key]


def relative_loras(value: Any, folder: Path) -> Any:
    """A region's `loras` list with each relative path (a string, or a mapping's `path`) taken from `folder`; other
    values are left for `check_loras` to refuse."""
    if not isinstance(value, list):
        return value

    def located(path: Any) -> Any:
        return str(folder / path) if isinstance(path, str) and path and not Path(path).is_absolute() else path

    return [located(entry) if isinstance(entry, str) else
            {**entry, "path": located(entry.get("path"))} if isinstance(entry, dict) else entry for entry in value]


def _region(value: Any, key: str, folder: Path, height: int, width: int, masks: dict[str, Tensor]) -> ManifestRegion:
    """One entry of an item's `regions` -> a checked region (its cheap keys first, then its mask)."""
    if not isinstance(value, dict):
        raise _LineError(f'{key}: must be an object {{"mask": ..., "prompt": ...}}, got {value!r}')
    _check_keys(value, REGION_KEYS, ("mask", "prompt"), f"{key}.")
    prompt = _checked(f"{key}.prompt", lambda p: check_text(p, "prompt"), value["prompt"])
    settings = {name: _checked(f"{key}.{name}", check, value[name])
                for name, check in REGION_SETTINGS.items() if name in value}
    if "loras" in value:
        settings["loras"] = _checked(key, lambda v: check_loras(relative_loras(v, folder), "loras"), value["loras"])
    return ManifestRegion(_mask(value["mask"], f"{key}.mask", folder, height, width, masks), prompt, settings)


def _item(values: Any, line: int, folder: Path, height: int, width: int, seen: dict[str, tuple[str, int]],
          masks: dict[str, Tensor]) -> ManifestItem:
    """One parsed line -> a checked item."""
    if not isinstance(values, dict):
        raise _LineError(f'must be one JSON object {{"id": ..., "prompt": ..., "regions": [...]}}, got '
                         f"{type(values).__name__}")
    _check_keys(values, ITEM_KEYS, ("id", "prompt", "regions"), "")
    item_id = _check_id(values["id"], seen, line)
    prompt = _checked("prompt", lambda p: check_text(p, "prompt"), values["prompt"])
    negative = values.get("negative_prompt")
    if "negative_prompt" in values:
        _checked("negative_prompt", lambda p: check_text(p, "negative_prompt"), negative)
    regions = values["regions"]
    if not isinstance(regions, list) or not 1 <= len(regions) <= MAX_REGIONS:
        raise _LineError(f"regions: must be a list of 1 to {MAX_REGIONS} region objects, got {regions!r}")
    image = _check_image(values["image"], folder) if "image" in values else None
    return ManifestItem(line, item_id, prompt, negative,
                        tuple(_region(r, f"regions[{i}]", folder, height, width, masks) for i, r in enumerate(regions)),
                        image)


def _parse(text: bytes) -> Any:
    """One line's JSON (UTF-8); comments and invalid JSON refused."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _LineError(f"not UTF-8 text: {error}") from None
    if decoded.lstrip().startswith(("#", "//")):
        raise _LineError("comments are not allowed: JSON Lines has none; every non-blank line must be one JSON object")
    try:
        return json.loads(decoded.strip(), object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        raise _LineError(f"not valid JSON: {error.msg} at column {error.colno}") from None


def _check_path(path: Any) -> str | Path:
    """A non-empty path string (or Path) naming an existing file."""
    if not isinstance(path, (str, Path)) or not str(path) or not Path(path).is_file():
        raise ValueError(f"data.path must name an existing JSON Lines manifest file, got {path!r}")
    return path


def read_manifest(path: str | Path, height: int, width: int) -> list[ManifestItem]:
    """Every item of the JSONL manifest at `path`, masks at the `height` x `width` canvas; every line is checked
    before this returns. ValueError `data.path <file> line <n>: <key>: <what>` at the first bad line, or naming
    `data.path` for a missing, empty or over-long file."""
    height, width = check_side(height, "height"), check_side(width, "width")
    path = Path(_check_path(path))
    folder = path.parent
    items: list[ManifestItem] = []
    seen: dict[str, tuple[str, int]] = {}
    masks: dict[str, Tensor] = {}
    with path.open("rb") as lines:
        for line, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            if len(items) == MAX_ITEMS:
                raise ValueError(f"data.path {path}: more than {MAX_ITEMS} items (non-blank lines); split the manifest")
            try:
                items.append(_item(_parse(text), line, folder, height, width, seen, masks))
            except _LineError as error:
                raise ValueError(f"data.path {path} line {line}: {error}") from None
    if not items:
        raise ValueError(f"data.path {path}: the file holds no items; a manifest has one JSON object per line")
    return items


@dataclass(frozen=True)
class Manifest:
    """conf/data/manifest.yaml: a job's items come from the manifest at `path` (checked when built)."""

    path: str
    # The job keys its items replace (runner/identity.py): each line gives its own prompts and regions.
    replaces: ClassVar[tuple[str, ...]] = ("mask", "regions", "base_sampler.prompt", "mask_sampler.prompt")

    def __post_init__(self) -> None:
        _check_path(self.path)

    def items(self, height: int, width: int) -> list[ManifestItem]:
        """`read_manifest(path, height, width)`."""
        return read_manifest(self.path, height, width)


@dataclass(frozen=True)
class NoData:
    """conf/data/none.yaml: no manifest; the job samples its own prompts and mask."""

    replaces: ClassVar[tuple[str, ...]] = ()

    def items(self, height: int, width: int) -> None:
        """None: the job's own prompts and mask."""
        return None
