"""Pieces every sampler shares: the denoiser call, the ODE derivative, the ancestral split, the step report,
the noise sources (seeded Gaussians and the Brownian tree)."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from torch import Tensor

from ..brownian import BrownianTreeNoise

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


def report(
    callback: Callback | None, i: int, x: Tensor, sigma: float, denoised: Tensor, sigma_hat: float | None = None
) -> None:
    if callback is not None:
        callback({"i": i, "x": x, "sigma": sigma, "sigma_hat": sigma if sigma_hat is None else sigma_hat,
                  "denoised": denoised})


def require_noise(noise: NoiseFn | None, name: str) -> NoiseFn:
    if noise is None:
        raise ValueError(f"sampler {name!r} is stochastic: pass noise=NoiseStream(seed)")
    return noise


def brownian_noise(
    noise: NoiseFn | None, name: str, x: Tensor, sigmas: Sequence[float], on_latent_device: bool = False
) -> BrownianTreeNoise:
    """The seeded Brownian tree of `noise` (a `NoiseStream`) over the run's sigmas, as upstream's SDE samplers
    draw their noise: on the CPU, or on the latent's device for the `_gpu` variants."""
    noise = require_noise(noise, name)
    if not hasattr(noise, "brownian"):
        raise ValueError(f"sampler {name!r} draws Brownian-tree noise: pass noise=NoiseStream(seed)")
    return noise.brownian(x, sigmas, on_latent_device=on_latent_device)


def sigma_list(sigmas: Tensor) -> list[float]:
    return [float(s) for s in sigmas]
