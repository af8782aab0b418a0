"""DPM-Solver++ SDE: the stochastic single-step second-order solver (Lu et al. 2022), eta = 1, r = 1/2.

The two sub-steps' noises are the normalised increments of one Brownian motion in sigma over the nested
intervals (s_mid, s] and (s_next, s], as upstream's Brownian tree gives them: `z_1 = a`,
`z_2 = (sqrt(s - s_mid) a + sqrt(s_mid - s_next) b) / sqrt(s - s_next)` with a, b i.i.d. from the seeded stream.
"""

from __future__ import annotations

import math

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, ancestral_step, denoise, report, require_noise, sigma_list, to_d


def sample_dpmpp_sde(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """Stage 1: ancestral DPM-Solver++(1) to the log-midpoint `s_mid`; stage 2: from `s` to `s_next` with
    `D = (1 - 1/(2r)) D(x) + 1/(2r) D(x_mid)`, both stages ancestral (`sigma_down`, `sigma_up`)."""
    noise = require_noise(noise, "dpmpp_sde")
    r = 0.5
    s = sigma_list(sigmas)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = x + to_d(x, s[i], denoised) * (s[i + 1] - s[i])
        else:
            h = math.log(s[i]) - math.log(s[i + 1])
            s_mid = s[i] * math.exp(-h * r)
            down, up = ancestral_step(s[i], s_mid)
            x_2 = (down / s[i]) * x - math.expm1(math.log(down / s[i])) * denoised
            a, b = noise(x), noise(x)
            x_2 = x_2 + a * up
            denoised_2 = denoise(denoiser, x_2, s_mid)
            down, up = ancestral_step(s[i], s[i + 1])
            fac = 1 / (2 * r)
            denoised_d = (1 - fac) * denoised + fac * denoised_2
            x = (down / s[i]) * x - math.expm1(math.log(down / s[i])) * denoised_d
            z_2 = (math.sqrt(s[i] - s_mid) * a + math.sqrt(s_mid - s[i + 1]) * b) / math.sqrt(s[i] - s[i + 1])
            x = x + z_2 * up
        report(callback, i, x, s[i], denoised)
    return x
