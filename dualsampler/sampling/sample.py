"""`sample`: run a named sampler over a sigma list with noise seeded by the call's seed."""

from __future__ import annotations

import torch
from torch import Tensor

from .noise import NoiseStream, Seed, check_seed
from .samplers import SAMPLER_FUNCTIONS, Callback, Denoiser, check_sampler


def check_sigmas(sigmas: Tensor) -> None:
    if sigmas.ndim != 1 or len(sigmas) < 1:
        raise ValueError(f"sigmas must be a 1-D tensor with at least one entry, got shape {tuple(sigmas.shape)}")
    if not torch.isfinite(sigmas).all() or (sigmas < 0).any():
        raise ValueError("sigmas must be finite and >= 0")
    if len(sigmas) > 1 and (sigmas[1:] >= sigmas[:-1]).any():
        raise ValueError("sigmas must be strictly decreasing")


def check_latent(x: Tensor, name: str = "latent") -> None:
    if not isinstance(x, Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 4-D tensor [B, C, H, W], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def sample(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    sampler: str = "euler",
    seed: Seed = 0,
    callback: Callback | None = None,
) -> Tensor:
    """Integrate from `sigmas[0]` to `sigmas[-1]`; `x` is already noised to `sigmas[0]`.

    Stochastic samplers draw their noise from `NoiseStream(seed)`, so the same seed gives the same tensor.
    """
    check_sampler(sampler)
    check_latent(x, "x")
    check_sigmas(sigmas)
    check_seed(seed, x.shape[0])
    return integrate(denoiser, x, sigmas, sampler, seed, callback)


def integrate(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    sampler: str,
    seed: Seed,
    callback: Callback | None = None,
) -> Tensor:
    """`sample` without its checks, for inner loops whose public entry checked the inputs once."""
    if len(sigmas) < 2:
        return x
    return SAMPLER_FUNCTIONS[sampler](denoiser, x, sigmas, noise=NoiseStream(seed), callback=callback)
