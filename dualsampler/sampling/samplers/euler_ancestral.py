"""Ancestral Euler: an Euler step down to `sigma_down`, then fresh noise of std `sigma_up` (eta = 1)."""

from __future__ import annotations

from torch import Tensor

from ..flow_sampling import flow_ancestral_step, is_flow
from .common import Callback, Denoiser, NoiseFn, ancestral_step, denoise, report, require_noise, sigma_list, to_d


def sample_euler_ancestral(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    model_sampling: object = None,
) -> Tensor:
    """`x <- x + d*(sigma_down - s) + sigma_up * z`,
    with `sigma_down^2 + sigma_up^2 = s_next^2`. Under a flow model sampling, upstream's rectified-flow variant:
    `x <- (down/s) x + (1 - down/s) D`, then `x <- scale x + renoise z` (`flow_ancestral_step`)."""
    noise = require_noise(noise, "euler_ancestral")
    s = sigma_list(sigmas)
    if is_flow(model_sampling):
        return euler_ancestral_rf(denoiser, x, s, noise, callback)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        down, up = ancestral_step(s[i], s[i + 1])
        x = x + to_d(x, s[i], denoised) * (down - s[i])
        if s[i + 1] > 0:
            x = x + noise(x) * up
        report(callback, i, x, s[i], denoised)
    return x


def euler_ancestral_rf(denoiser: Denoiser, x: Tensor, s: list[float], noise: NoiseFn,
                       callback: Callback | None) -> Tensor:
    """Ancestral Euler for a rectified-flow model (upstream's `sample_euler_ancestral_RF`, eta = 1)."""
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = denoised
        else:
            down, scale, renoise = flow_ancestral_step(s[i], s[i + 1])
            x = (down / s[i]) * x + (1 - down / s[i]) * denoised
            x = scale * x + noise(x) * renoise
        report(callback, i, x, s[i], denoised)
    return x
