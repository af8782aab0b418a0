"""Heun's method on the probability-flow ODE (Karras et al. 2022, Algorithm 1 without churn)."""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, report, sigma_list, to_d


def sample_heun(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """Euler predictor then trapezoidal corrector `x + (d + d') / 2 * dt`; an Euler step to sigma 0."""
    s = sigma_list(sigmas)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        d = to_d(x, s[i], denoised)
        dt = s[i + 1] - s[i]
        if s[i + 1] == 0:
            x = x + d * dt
        else:
            x_pred = x + d * dt
            d_pred = to_d(x_pred, s[i + 1], denoise(denoiser, x_pred, s[i + 1]))
            x = x + (d + d_pred) / 2 * dt
        report(callback, i, x, s[i], denoised)
    return x
