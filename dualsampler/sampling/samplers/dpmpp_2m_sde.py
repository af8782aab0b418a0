"""DPM-Solver++(2M) SDE: the stochastic second-order multistep solver of Lu et al. 2022 (DPM-Solver++).

Noise as upstream draws it: normalised increments of one seeded Brownian tree in sigma over each step
(`brownian.py`). `solver_type` picks the second-order correction: `midpoint` (this sampler) or `heun`
(`dpmpp_2m_sde_heun`).
"""

from __future__ import annotations

import math

from torch import Tensor

from ..flow_sampling import log_snr_step, offset_first_sigma, signal_scale
from .common import Callback, Denoiser, NoiseFn, brownian_noise, denoise, report, sigma_list

SOLVER_TYPES = ("midpoint", "heun")


def sample_dpmpp_2m_sde(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    solver_type: str = "midpoint",
    on_latent_device: bool = False,
    model_sampling: object = None,
) -> Tensor:
    """With `h = log(s/s_next)`, `g = h (1 + eta)`, `r = h_prev/h`:
    `x <- (s_next/s) e^{-eta h} x + (1 - e^{-g}) D_i + c (D_i - D_{i-1}) / r
    + s_next sqrt(1 - e^{-2 eta h}) s_noise z`, with `c = (1 - e^{-g})/2` (midpoint) or
    `c = (1 - e^{-g})/(-g) + 1` (heun), and no correction on the first step; the step to sigma 0 returns D_i.
    Under a flow model sampling (upstream's form): `h` the step in `log((1 - sigma)/sigma)`, both D terms scaled by
    `alpha_next = 1 - s_next`, and a first sigma of 1 moved just below it (`offset_first_sigma`)."""
    if solver_type not in SOLVER_TYPES:
        raise ValueError(f"solver_type must be one of {', '.join(SOLVER_TYPES)}, got {solver_type!r}")
    s = sigma_list(sigmas)
    tree = brownian_noise(noise, "dpmpp_2m_sde", x, s, on_latent_device)
    s = offset_first_sigma(s, model_sampling)
    old_denoised, h_last = None, None
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = denoised
        else:
            h = log_snr_step(s[i], s[i + 1], model_sampling)
            h_eta = h * (eta + 1)
            alpha = signal_scale(s[i + 1], model_sampling)
            phi_1 = -math.expm1(-h_eta)
            x = (s[i + 1] / s[i]) * math.exp(-h * eta) * x + (alpha * phi_1) * denoised
            if old_denoised is not None:
                coef = 0.5 * phi_1 if solver_type == "midpoint" else phi_1 / -h_eta + 1
                x = x + (alpha * coef * h / h_last) * (denoised - old_denoised)
            if eta > 0 and s_noise > 0:
                x = x + tree(s[i], s[i + 1]) * (s[i + 1] * math.sqrt(-math.expm1(-2 * h * eta)) * s_noise)
            h_last = h
        old_denoised = denoised
        report(callback, i, x, s[i], denoised)
    return x
