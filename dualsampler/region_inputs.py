"""Shared by the region samplers: input validation (latent, mask against the latent, overlap, steps, seeds) and
the step callback tagged with the step and the sampler's role."""

from __future__ import annotations

from torch import Tensor

from .masks import as_mask_batch
from .sampling.ksampler import check_denoise
from .sampling.noise import Seed, check_seed
from .sampling.samplers import Callback
from .sampling.sample import check_latent
from .sampling.schedules import check_steps


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


def check_overlap(overlap_factor: int, name: str = "overlap_factor") -> None:
    if (isinstance(overlap_factor, bool) or not isinstance(overlap_factor, (int, float)) or overlap_factor < 0
            or overlap_factor != int(overlap_factor)):
        raise ValueError(f"{name} must be an integer >= 0, got {overlap_factor!r}")


def check_settings(latent: Tensor, seed: Seed, steps: int, denoise: float) -> None:
    """Seed (one per batch element when a list), steps and denoise of one sampler over `latent`."""
    check_seed(seed, latent.shape[0])
    check_steps(steps)
    check_denoise(denoise)


def check_common(latent: Tensor, seed: Seed, steps: int, denoise: float) -> None:
    check_latent(latent)
    check_settings(latent, seed, steps, denoise)


def tagged(callback: Callback | None, step: int | None, sampler: str) -> Callback | None:
    """The callback with `step` (the sampler's own `i` when None) and `sampler` added to every report."""
    if callback is None:
        return None
    return lambda info: callback({**info, "step": info["i"] if step is None else step, "sampler": sampler})
