"""Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 2 without churn)."""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, report, sigma_list, to_d


def sample_euler(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """`x <- x + (x - D(x, s)) / s * (s_next - s)`; first order, one model call per step."""
    s = sigma_list(sigmas)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        x = x + to_d(x, s[i], denoised) * (s[i + 1] - s[i])
        report(callback, i, x, s[i], denoised)
    return x
