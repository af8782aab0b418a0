"""A job's starting images, the `input` config group: noise (zeros latents, the default) or the user's image files,
checked before any model loads and fitted to the canvas (cover, then centre-crop)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from ..masks import check_side
from ..validation import MAX_SIDE

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
SIXTEEN_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # PIL's modes for a 16-bit greyscale PNG


@dataclass(frozen=True)
class InputImage:
    """One starting image: `id` is its file stem (unique within a job), `path` its file."""

    id: str
    path: Path


@dataclass(frozen=True)
class NoiseInput:
    """Start every image from zeros latents and the sampler's noise (today's behaviour): no input images."""

    upscaled_as_given: ClassVar[bool] = False

    def check(self, height: int, width: int) -> list[InputImage]:
        """No images; `height` and `width` checked as sides in [1, MAX_SIDE]."""
        check_side(height, "height")
        check_side(width, "width")
        return []


@dataclass(frozen=True)
class ImageInput:
    """Start from the image files `path` names: one image file, or a folder of them (.png .jpg .jpeg .webp, any
    case, sorted by name, not recursive; other files ignored). With an upscaler the images are upscaled as they
    are (`upscaled_as_given`: no region-sampler run, runner/identity.py)."""

    path: str
    upscaled_as_given: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"input.path must be a non-empty string (an image file or a folder of images), "
                             f"got {self.path!r}")

    def check(self, height: int, width: int) -> list[InputImage]:
        """The images `path` names, each decoded once to prove it readable with sides in [1, MAX_SIDE]; ValueError
        starting `input.path` and naming the file for a missing path, an empty folder, an unsupported or unreadable
        file, or two files with one id. Reads no model."""
        check_side(height, "height")
        check_side(width, "width")
        images = _image_files(Path(self.path))
        for image in images:
            _decode(image.path, "input.path")
        return images


def _image_files(path: Path) -> list[InputImage]:
    """The image files `path` names (a file, or a folder's files with a suffix in SUFFIXES sorted by name), with
    unique ids; decodes nothing. ValueError naming input.path and the path otherwise."""
    name = "input.path"
    allowed = " ".join(SUFFIXES)
    if path.is_file():
        if path.suffix.lower() not in SUFFIXES:
            raise ValueError(f"{name} must be an image file ({allowed}) or a folder of them, got {str(path)!r}")
        return [InputImage(path.stem, path)]
    if not path.is_dir():
        raise ValueError(f"{name} must be an existing image file or folder of images, got {str(path)!r}")
    try:
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file()),
                       key=lambda p: p.name)
    except OSError as error:
        raise ValueError(f"{name} folder {str(path)!r} cannot be listed: {error}") from None
    if not files:
        raise ValueError(f"{name} folder {str(path)!r} holds no image files ({allowed})")
    first: dict[str, Path] = {}
    for file in files:
        if file.stem in first:
            raise ValueError(f"{name} folder {str(path)!r} holds two images with the id {file.stem!r}: "
                             f"{first[file.stem].name} and {file.name} (an image's id is its file stem)")
        first[file.stem] = file
    return [InputImage(file.stem, file) for file in files]


def _decode(path: Path, name: str):
    """`path` as a PIL image, fully decoded with its EXIF orientation applied; ValueError naming `name` and the
    file when it is unreadable or truncated, or its sides are not in [1, MAX_SIDE] (checked from the header)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    unreadable = (OSError, SyntaxError, ValueError, UnidentifiedImageError)
    try:
        image = Image.open(path)  # reads the header only
    except Image.DecompressionBombError as error:
        raise ValueError(f"{name}: {str(path)!r} is too large, an image's sides must be <= {MAX_SIDE} px "
                         f"({error})") from None
    except unreadable as error:
        raise ValueError(f"{name}: {str(path)!r} is not a readable image file (truncated or not an image?): "
                         f"{error}") from None
    with image:
        check_side(image.height, f"{name}: the height of {str(path)!r}")
        check_side(image.width, f"{name}: the width of {str(path)!r}")
        try:
            image.load()
            return ImageOps.exif_transpose(image)
        except unreadable as error:
            raise ValueError(f"{name}: {str(path)!r} is not a readable image file (truncated or not an image?): "
                             f"{error}") from None


def fit_box(h: int, w: int, height: int, width: int) -> tuple[int, int, int, int]:
    """How an `h x w` image covers a `height x width` canvas -> `(resized_h, resized_w, top, left)`.

    scale = max(height / h, width / w); the side that sets the scale becomes exactly the canvas side, the other
    `round(side * scale)` (half up, so >= the canvas side); the crop starts at `top = (resized_h - height) // 2`,
    `left = (resized_w - width) // 2`: an odd leftover pixel comes off the bottom / right.
    """
    h, w = check_side(h, "h"), check_side(w, "w")
    height, width = check_side(height, "height"), check_side(width, "width")
    if height * w >= width * h:  # height / h >= width / w: the height sets the scale
        resized_h, resized_w = height, (2 * w * height + h) // (2 * h)
    else:
        resized_h, resized_w = (2 * h * width + w) // (2 * w), width
    return resized_h, resized_w, (resized_h - height) // 2, (resized_w - width) // 2


def _rgb_array(image) -> np.ndarray:
    """A decoded PIL image -> float32 `[H, W, 3]` in [0, 1]: alpha dropped (not composited), greyscale repeated on
    three channels, 16-bit greyscale divided by 65535."""
    if image.mode in SIXTEEN_BIT_GREY:
        grey = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(grey, 0.0, 1.0)[..., None], 3, axis=2)
    if image.mode in ("P", "PA"):  # a palette's transparency is resolved through RGBA, then dropped
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _fit(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """`[h, w, 3]` -> `[height, width, 3]`: bicubic resize (PIL's, antialiased) to `fit_box`'s size, then the crop."""
    from PIL import Image

    resized_h, resized_w, top, left = fit_box(array.shape[0], array.shape[1], height, width)
    if (resized_h, resized_w) != array.shape[:2]:
        channels = [np.asarray(Image.fromarray(np.ascontiguousarray(array[..., c])).resize(
            (resized_w, resized_h), Image.Resampling.BICUBIC)) for c in range(3)]
        array = np.clip(np.stack(channels, axis=2), 0.0, 1.0)
    return array[top : top + height, left : left + width]


def load_image(path: Path | str, height: int, width: int) -> Tensor:
    """The image file `path` -> float32 `Tensor[3, height, width]` in [0, 1]: EXIF orientation applied, alpha
    ignored, greyscale on three channels, 16-bit scaled by 65535, then resized to cover the canvas and
    centre-cropped (`fit_box`). ValueError naming `path` for an unreadable file."""
    height, width = check_side(height, "height"), check_side(width, "width")
    array = _fit(_rgb_array(_decode(Path(path), "path")), height, width)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()


def load_images(images: list[InputImage], height: int, width: int) -> Tensor:
    """`check`'s images, each through `load_image` -> float32 `Tensor[N, 3, height, width]` in [0, 1]."""
    if not images:
        raise ValueError("images must hold at least one InputImage (NoiseInput.check returns none: use zeros latents)")
    return torch.stack([load_image(image.path, height, width) for image in images])
