"""Pieces every sampler shares: the denoiser call, the ODE derivative, the ancestral split, the step report."""

from __future__ import annotations

import math
from typing import Any, Callable

from torch import Tensor

Denoiser = Callable[[Tensor, Tensor], Tensor]
NoiseFn = Callable[[Tensor], Tensor]
Callback = Callable[[dict[str, Any]], None]


def denoise(denoiser: Denoiser, x: Tensor, sigma: float) -> Tensor:
    """`D(x, sigma)` with sigma broadcast to a `[B]` tensor."""
    return denoiser(x, x.new_full((x.shape[0],), sigma))


def to_d(x: Tensor, sigma: float, denoised: Tensor) -> Tensor:
    """Probability-flow ODE derivative `dx/dsigma = (x - D(x)) / sigma`."""
    return (x - denoised) / sigma


def ancestral_step(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """Split a step into a deterministic part down to `sigma_down` and fresh noise of std `sigma_up`."""
    if sigma_next == 0:
        return 0.0, 0.0
    sigma_up = min(sigma_next, eta * math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2))
    return math.sqrt(sigma_next**2 - sigma_up**2), sigma_up


def report(callback: Callback | None, i: int, x: Tensor, sigma: float, denoised: Tensor) -> None:
    if callback is not None:
        callback({"i": i, "x": x, "sigma": sigma, "denoised": denoised})


def require_noise(noise: NoiseFn | None, name: str) -> NoiseFn:
    if noise is None:
        raise ValueError(f"sampler {name!r} is stochastic: pass noise=NoiseStream(seed)")
    return noise


def sigma_list(sigmas: Tensor) -> list[float]:
    return [float(s) for s in sigmas]
