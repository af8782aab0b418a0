"""Ancestral Euler: an Euler step down to `sigma_down`, then fresh noise of std `sigma_up` (eta = 1)."""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, ancestral_step, denoise, report, require_noise, sigma_list, to_d


def sample_euler_ancestral(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """`x <- x + d*(sigma_down - s) + sigma_up * z`, with `sigma_down^2 + sigma_up^2 = s_next^2`."""
    noise = require_noise(noise, "euler_ancestral")
    s = sigma_list(sigmas)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        down, up = ancestral_step(s[i], s[i + 1])
        x = x + to_d(x, s[i], denoised) * (down - s[i])
        if s[i + 1] > 0:
            x = x + noise(x) * up
        report(callback, i, x, s[i], denoised)
    return x
