"""Checks the region samplers run once at their public entry: samplers, region lists, masks against the latent,
seed/steps/denoise (the latent's channels: `sampling.sample.check_latent_channels`). Each error names the
parameter and its allowed values (`dualsampler.validation`)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..masks import as_mask_batch
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


def check_sampler_object(sampler: Any, name: str) -> KSampler:
    """A `KSampler` (a denoiser with its sampler and schedule)."""
    if not isinstance(sampler, KSampler):
        raise ValueError(f"{name} must be a dualsampler.sampling.KSampler, got {type(sampler).__name__}")
    return sampler


def check_region_list(regions: Any) -> tuple[Any, ...]:
    """A non-empty list or tuple of regions -> a tuple (each region is checked by the caller)."""
    if not isinstance(regions, (list, tuple)) or not regions:
        raise ValueError(f"regions must be a non-empty list of dualsampler.dual.Region, got {regions!r}")
    return tuple(regions)


def check_settings(latent: Tensor, seed: Seed, steps: int, denoise: float, prefix: str = "") -> tuple[Seed, int, float]:
    """Seed (one per batch element when a list), steps and denoise of one sampler over `latent` -> the three as
    Python values (a numpy seed as an int, `8.0` steps as 8)."""
    checked = []
    for check, value, key in ((lambda v: check_seed(v, latent.shape[0]), seed, "seed"), (check_steps, steps, "steps"),
                              (check_denoise, denoise, "denoise")):
        try:
            checked.append(check(value))
        except ValueError as error:
            if not prefix:
                raise
            raise ValueError(f"{prefix}{key}: {error}") from None
    return tuple(checked)  # type: ignore[return-value]


def check_common(latent: Tensor, seed: Seed, steps: int, denoise: float) -> tuple[Seed, int, float]:
    """The latent, then `check_settings`."""
    check_latent(latent)
    return check_settings(latent, seed, steps, denoise)
