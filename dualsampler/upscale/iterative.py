"""Iterative upscaling (SPEC §8): a latent (or image) enlarged by `upscale_factor` over `steps` iterations."""

from __future__ import annotations

from torch import Tensor

from dualsampler.masks import as_mask_batch
from dualsampler.sampling.sample import check_latent
from dualsampler.upscale.step_plan import check_final_size, upscale_plan
from dualsampler.upscale.two_samplers_upscaler import TwoSamplersForMaskUpscaler


def check_upscale_latent(latent: Tensor, upscaler: TwoSamplersForMaskUpscaler) -> None:
    """A finite float latent `[B, C, h, w]` with the channels of the upscaler's VAE."""
    check_latent(latent)
    channels = getattr(getattr(upscaler.vae, "config", None), "latent_channels", None)
    if isinstance(channels, int) and latent.shape[1] != channels:
        raise ValueError(f"latent has {latent.shape[1]} channels but the upscaler's VAE takes {channels}")


def checked_plan(
    upscale_factor: float, steps: int, step_mode: str, upscaler: TwoSamplersForMaskUpscaler
) -> list[tuple[tuple[int, int], float]]:
    """`upscale_plan(...)`, after checking that `upscaler` is one and its hooked samplers can run every iteration."""
    if not isinstance(upscaler, TwoSamplersForMaskUpscaler):
        raise ValueError(f"upscaler must be a TwoSamplersForMaskUpscaler, got {type(upscaler).__name__}")
    plan = upscale_plan(upscale_factor, steps, step_mode)
    upscaler.check_iterations([step_info for step_info, _ in plan])
    return plan


def iterative_upscale(
    latent: Tensor,
    upscale_factor: float,
    steps: int,
    upscaler: TwoSamplersForMaskUpscaler,
    step_mode: str = "simple",
    noise_mask: Tensor | None = None,
) -> Tensor:
    """Run `upscaler.upscale_shape(step_info, latent, W * s, H * s)` for each `(step_info, s)` of `upscale_plan`,
    `W x H` the input's pixel size; `noise_mask` is handed to the post-encode hooks of every iteration."""
    plan = checked_plan(upscale_factor, steps, step_mode, upscaler)
    check_upscale_latent(latent, upscaler)
    if noise_mask is not None:
        as_mask_batch(noise_mask, "noise_mask")
    f = upscaler.vae_factor
    height, width = latent.shape[-2] * f, latent.shape[-1] * f
    check_final_size(height, width, upscale_factor)
    for step_info, scale in plan:
        latent = upscaler.upscale_shape(step_info, latent, width * scale, height * scale, noise_mask)
    return latent


def iterative_upscale_image(
    images: Tensor,
    upscale_factor: float,
    steps: int,
    upscaler: TwoSamplersForMaskUpscaler,
    step_mode: str = "simple",
) -> Tensor:
    """Images `[B, 3, H, W]` in [0, 1] -> encode -> `iterative_upscale` -> decode, with the upscaler's VAE
    (tiled when it uses a tiled VAE; upstream's image variant never tiles these two passes)."""
    checked_plan(upscale_factor, steps, step_mode, upscaler)
    check_final_size(images.shape[-2], images.shape[-1], upscale_factor)
    latent = upscaler.encode(images)
    return upscaler.decode(iterative_upscale(latent, upscale_factor, steps, upscaler, step_mode))
