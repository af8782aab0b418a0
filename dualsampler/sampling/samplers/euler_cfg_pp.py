"""Euler with CFG++ (Chung et al. 2024, "CFG++: Manifold-constrained Classifier Free Guidance for Diffusion Models").

CFG++ renoises the guided x0 with the unconditional noise estimate instead of the guided one, which keeps the
trajectory near the data manifold at low guidance scales.
"""

from __future__ import annotations

from torch import Tensor

from ..flow_sampling import is_flow
from .common import Callback, Denoiser, NoiseFn, report, sigma_list
from .guidance import denoise_with_uncond, require_uncond


def sample_euler_cfg_pp(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    model_sampling: object = None,
) -> Tensor:
    """`x <- D_cfg(x, s) + s_next * (x - D_uncond(x, s)) / s`; with `D_uncond = D_cfg` this is Euler's step.
    Needs `denoiser.with_uncond`. Under a flow model sampling, with `a = 1 - sigma`:
    `x <- a_next D_cfg + s_next (x - a D_uncond) / s` (upstream's form)."""
    require_uncond(denoiser, "euler_cfg_pp")
    s = sigma_list(sigmas)
    for i in range(len(s) - 1):
        denoised, uncond = denoise_with_uncond(denoiser, x, s[i])
        if not is_flow(model_sampling):
            x = denoised + (x - uncond) * (s[i + 1] / s[i])
        elif s[i + 1] == 0:
            x = denoised
        else:
            x = (1 - s[i + 1]) * denoised + (x - (1 - s[i]) * uncond) * (s[i + 1] / s[i])
        report(callback, i, x, s[i], denoised)
    return x
