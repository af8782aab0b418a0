"""One latent -> latent upscale through pixel space: decode, enlarge (model and/or scale method), encode."""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter

from torch import Tensor

from dualsampler.upscale.hooks import UpscaleHook
from dualsampler.validation import MAX_SIDE, check_real
from dualsampler.upscale.scale_methods import check_scale_method, resize_images
from dualsampler.upscale.upscale_models import UpscaleModel, upscale_with_model
from dualsampler.upscale.vae_codec import check_tile_size, vae_decode, vae_encode, vae_factor


def target_pixel_size(height: float, width: float, factor: int) -> tuple[int, int]:
    """`(floor(height), floor(width))` rounded down to multiples of the VAE factor (at least one latent cell).

    Upstream resizes to `floor` and its encoder crops the remainder (`centre_crop`); here the image is resized to
    the multiple directly, so nothing is cropped and the latent shape is the same.
    """
    height = check_real(height, "target height", 1.0, MAX_SIDE)
    width = check_real(width, "target width", 1.0, MAX_SIDE)
    return max(int(height) // factor, 1) * factor, max(int(width) // factor, 1) * factor


def centre_crop(images: Tensor, factor: int) -> Tensor:
    """`images[..., y0:y0 + H', x0:x0 + W']` with `H' = H - H % factor` and `y0 = (H % factor) // 2` (and likewise
    for the width): the crop ComfyUI's VAE encoder takes of an image whose sides are not multiples of `factor`."""
    height, width = images.shape[-2:]
    y0, x0 = (height % factor) // 2, (width % factor) // 2
    return images[..., y0 : y0 + height - height % factor, x0 : x0 + width - width % factor]


@dataclass
class PixelUpscaler:
    """Latents `[B, C, h, w]` -> latents of an image of `(height, width)` pixels, with per-stage timings."""

    vae: object
    scale_method: str
    upscale_model: UpscaleModel | None = None
    tile_size: int | None = None
    upstream_compat: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_scale_method(self.scale_method)
        if self.tile_size is not None:
            check_tile_size(self.tile_size, self.factor)

    @property
    def factor(self) -> int:
        return vae_factor(self.vae)

    def decode(self, latent: Tensor) -> Tensor:
        return vae_decode(self.vae, latent, self.tile_size)

    def encode(self, images: Tensor) -> Tensor:
        return vae_encode(self.vae, images, self.tile_size)

    def enlarge(self, images: Tensor, height: int, width: int, reach_width: float | None = None) -> Tensor:
        """The upscale model while the width is below `reach_width` (default `width`), then `scale_method` to
        exactly `(height, width)` (as ComfyUI resizes when `upstream_compat`, see `resize_images`)."""
        if self.upscale_model is None:
            return resize_images(images, height, width, self.scale_method, self.upstream_compat)
        return upscale_with_model(self.upscale_model, images, height, width, self.scale_method, reach_width,
                                  self.upstream_compat)

    def __call__(
        self, latent: Tensor, height: float, width: float, hook: UpscaleHook, noise_mask: Tensor | None = None
    ) -> Tensor:
        """decode -> hook.post_decode -> enlarge -> hook.post_upscale -> encode -> hook.post_encode.

        The image is enlarged to `target_pixel_size`; with `upstream_compat` as upstream does it: to
        `(floor(height), floor(width))`, the upscale model applied while the width is below `width`, and the
        hooked image then centre-cropped to multiples of the VAE factor (`centre_crop`) before encoding."""
        target_h, target_w = target_pixel_size(height, width, self.factor)
        clock = perf_counter()
        images = hook.post_decode(self.decode(latent))
        self.timings["decode"], clock = perf_counter() - clock, perf_counter()
        if self.upstream_compat:
            images = hook.post_upscale(self.enlarge(images, int(height), int(width), width))
            images = centre_crop(images, self.factor)
        else:
            images = hook.post_upscale(self.enlarge(images, target_h, target_w))
        self.timings["upscale"], clock = perf_counter() - clock, perf_counter()
        upscaled = hook.post_encode(self.encode(images), noise_mask)
        self.timings["encode"] = perf_counter() - clock
        return upscaled
