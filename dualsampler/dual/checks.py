"""Checks the region samplers run once at their public entry: latent, samplers, masks against the latent,
overlap, seed/steps/denoise. Each error names the parameter and its allowed values."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from ..masks import MAX_GROW, as_mask_batch
from ..sampling.ksampler import KSampler, check_denoise
from ..sampling.noise import Seed, check_seed
from ..sampling.sample import check_latent
from ..sampling.schedules import check_steps


def check_region_mask(mask: Tensor, latent: Tensor, name: str = "mask") -> Tensor:
    """A mask at the latent's resolution or at an integer multiple of it (image resolution) -> `[B,1,h,w]`."""
    m = as_mask_batch(mask, name, batch=latent.shape[0])
    (mh, mw), (lh, lw) = m.shape[-2:], latent.shape[-2:]
    if mh % lh or mw % lw or mh // lh != mw // lw:
        raise ValueError(
            f"{name} of size {mh}x{mw} does not match the latent's {lh}x{lw}: give it at the latent's size "
            f"or at an integer multiple of it (the image's size)"
        )
    return m


def check_overlap(overlap_factor: Any, name: str = "overlap_factor") -> int:
    """An integer in [0, MAX_GROW] (a float holding an integer is accepted) -> int."""
    if (isinstance(overlap_factor, bool) or not isinstance(overlap_factor, (int, float))
            or (isinstance(overlap_factor, float) and not math.isfinite(overlap_factor))
            or not 0 <= overlap_factor <= MAX_GROW or overlap_factor != int(overlap_factor)):
        raise ValueError(f"{name} must be an integer >= 0 and <= {MAX_GROW}, got {overlap_factor!r}")
    return int(overlap_factor)


def check_sampler_object(sampler: Any, name: str) -> KSampler:
    """A `KSampler` (a denoiser with its sampler and schedule)."""
    if not isinstance(sampler, KSampler):
        raise ValueError(f"{name} must be a dualsampler.sampling.KSampler, got {type(sampler).__name__}")
    return sampler


def check_latent_channels(latent: Tensor, sampler: KSampler, name: str) -> None:
    """The latent's channel count against the UNet behind the sampler's denoiser, when it has one."""
    unet = getattr(sampler.denoiser, "unet", None)
    expected = getattr(getattr(unet, "config", None), "in_channels", None)
    if isinstance(expected, int) and latent.shape[1] != expected:
        raise ValueError(f"latent has {latent.shape[1]} channels but {name}'s model expects {expected}")


def check_settings(latent: Tensor, seed: Seed, steps: int, denoise: float, prefix: str = "") -> None:
    """Seed (one per batch element when a list), steps and denoise of one sampler over `latent`."""
    for check, value, key in ((lambda v: check_seed(v, latent.shape[0]), seed, "seed"), (check_steps, steps, "steps"),
                              (check_denoise, denoise, "denoise")):
        try:
            check(value)
        except ValueError as error:
            if not prefix:
                raise
            raise ValueError(f"{prefix}{key}: {error}") from None


def check_common(latent: Tensor, seed: Seed, steps: int, denoise: float) -> None:
    check_latent(latent)
    check_settings(latent, seed, steps, denoise)


def check_fraction(value: Any, name: str, low: float = 0.0, high: float = 1.0) -> float:
    """A real number in [low, high] -> float; the error names the parameter and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)
