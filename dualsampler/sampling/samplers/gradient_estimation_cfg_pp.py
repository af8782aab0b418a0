"""Gradient estimation (Permenter & Yuan 2024, Algorithm 2) with CFG++ (Chung et al. 2024): the extrapolated
direction comes from the unconditional prediction, the Euler part re-noises the guided x0."""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn
from .gradient_estimation import gradient_estimation_loop


def sample_gradient_estimation_cfg_pp(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    gamma: float = 2.0,
) -> Tensor:
    """`x <- D_cfg + s_next d_i + (gamma - 1)(d_i - d_{i-1})(s_next - s)`, `d = (x - D_uncond) / s`. Needs
    `denoiser.with_uncond`."""
    return gradient_estimation_loop(denoiser, x, sigmas, callback, gamma=gamma, cfg_pp=True,
                                    name="gradient_estimation_cfg_pp")
