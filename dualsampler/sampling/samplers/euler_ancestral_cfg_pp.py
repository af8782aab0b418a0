"""Ancestral Euler with CFG++ (Chung et al. 2024, "CFG++: Manifold-constrained Classifier Free Guidance"), eta = 1."""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, ancestral_step, report, require_noise, sigma_list
from .guidance import denoise_with_uncond, require_uncond


def sample_euler_ancestral_cfg_pp(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """`x <- D_cfg + sigma_down * (x - D_uncond) / s + sigma_up * z`, with `sigma_down^2 + sigma_up^2 = s_next^2`
    (the ancestral split); the step to sigma 0 returns `D_cfg`. Needs `denoiser.with_uncond`."""
    require_uncond(denoiser, "euler_ancestral_cfg_pp")
    noise = require_noise(noise, "euler_ancestral_cfg_pp")
    s = sigma_list(sigmas)
    for i in range(len(s) - 1):
        denoised, uncond = denoise_with_uncond(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = denoised
        else:
            down, up = ancestral_step(s[i], s[i + 1])
            x = denoised + (x - uncond) * (down / s[i]) + noise(x) * up
        report(callback, i, x, s[i], denoised)
    return x
