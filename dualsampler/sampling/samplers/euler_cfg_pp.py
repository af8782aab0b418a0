"""Euler with CFG++ (Chung et al. 2024, "CFG++: Manifold-constrained Classifier Free Guidance for Diffusion Models").

CFG++ renoises the guided x0 with the unconditional noise estimate instead of the guided one, which keeps the
trajectory near the data manifold at low guidance scales.
"""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, report, sigma_list
from .guidance import denoise_with_uncond, require_uncond


def sample_euler_cfg_pp(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """`x <- D_cfg(x, s) + s_next * (x - D_uncond(x, s)) / s`; with `D_uncond = D_cfg` this is Euler's step.
    Needs `denoiser.with_uncond`."""
    require_uncond(denoiser, "euler_cfg_pp")
    s = sigma_list(sigmas)
    for i in range(len(s) - 1):
        denoised, uncond = denoise_with_uncond(denoiser, x, s[i])
        x = denoised + (x - uncond) * (s[i + 1] / s[i])
        report(callback, i, x, s[i], denoised)
    return x
