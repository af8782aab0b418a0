"""DPM-Solver++(3M) SDE: the stochastic third-order multistep exponential integrator (Lu et al. 2022,
DPM-Solver++), noise as upstream draws it: normalised increments of one seeded Brownian tree in sigma."""

from __future__ import annotations

import math

from torch import Tensor

from ..flow_sampling import log_snr_step, offset_first_sigma, signal_scale
from .common import Callback, Denoiser, NoiseFn, brownian_noise, denoise, report, sigma_list


def sample_dpmpp_3m_sde(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    on_latent_device: bool = False,
    model_sampling: object = None,
) -> Tensor:
    """With `h = log(s/s_next)`, `g = h (1 + eta)`, `phi2 = (e^{-g} - 1)/g + 1`, `phi3 = phi2/g - 1/2`:
    `x <- (s_next/s) e^{-eta h} x + (1 - e^{-g}) D_i + phi2 d1 - phi3 d2 + s_next sqrt(1 - e^{-2 eta h}) s_noise z`,
    d1 and d2 the first and second divided differences of the last three D's in log-sigma (one D back: `phi2 d1`
    only, none on the first step); the step to sigma 0 returns D_i. Under a flow model sampling (upstream's form):
    `h` the step in `log((1 - sigma)/sigma)`, the D terms scaled by `alpha_next = 1 - s_next`, and a first sigma of
    1 moved just below it (`offset_first_sigma`)."""
    s = sigma_list(sigmas)
    tree = brownian_noise(noise, "dpmpp_3m_sde", x, s, on_latent_device)
    s = offset_first_sigma(s, model_sampling)
    d_1 = d_2 = None
    h = h_1 = h_2 = None
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = denoised
        else:
            h = log_snr_step(s[i], s[i + 1], model_sampling)
            h_eta = h * (eta + 1)
            alpha = signal_scale(s[i + 1], model_sampling)
            x = (s[i + 1] / s[i]) * math.exp(-h * eta) * x - (alpha * math.expm1(-h_eta)) * denoised
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - d_1) / r0
                d1_1 = (d_1 - d_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                x = x + (alpha * phi_2) * d1 - (alpha * (phi_2 / h_eta - 0.5)) * d2
            elif h_1 is not None:
                x = x + (alpha * phi_2) * (denoised - d_1) / (h_1 / h)
            if eta > 0 and s_noise > 0:
                x = x + tree(s[i], s[i + 1]) * (s[i + 1] * math.sqrt(-math.expm1(-2 * h * eta)) * s_noise)
        d_1, d_2 = denoised, d_1
        h_1, h_2 = h, h_1
        report(callback, i, x, s[i], denoised)
    return x
