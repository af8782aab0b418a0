"""SEEDS-3: the three-stage Stochastic Explicit Exponential Derivative-free Solver of Gonzalez et al. 2023
(SEEDS, VP data prediction), as upstream's `seeds_3`; seeded Gaussian noise, three draws per step."""

from __future__ import annotations

import math

from torch import Tensor

from ..flow_sampling import log_snr_step, offset_first_sigma, signal_scale, stage_sigma
from .common import Callback, Denoiser, NoiseFn, denoise, report, require_noise, sigma_list
from .seeds_2 import h_phi_1, h_phi_2


def sample_seeds_3(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r_1: float = 1 / 3,
    r_2: float = 2 / 3,
    model_sampling: object = None,
) -> Tensor:
    """With `h = log(s/s_next)`, `g = h (1 + eta)`, `s_k = s^(1-r_k) s_next^r_k`, `K(c) = (s_c/s) e^{-c eta h}`,
    `E1(v) = e^v - 1`, `E2(v) = (e^v - 1 - v)/v`:
    `x_1 = K(r_1) x - E1(-r_1 g) D + s_1 s_noise n_1`;
    `x_2 = K(r_2) x - [(E1(-r_2 g) - a) D + a D(x_1, s_1)] + s_2 s_noise n_2`, `a = r_2/r_1 E2(-r_2 g)`;
    `x <- K(1) x - [(E1(-g) - b) D + b D(x_2, s_2)] + s_next s_noise n_3`, `b = E2(-g) / r_2`;
    the noises carry one Brownian path: `n_1 = sqrt(1 - e^{-2 r_1 eta h}) z_1`,
    `n_{k+1} = e^{-(r_{k+1} - r_k) eta h} n_k + sqrt(1 - e^{-2 (r_{k+1} - r_k) eta h}) z_{k+1}` (`r_3 = 1`).
    The step to sigma 0 returns D. Under a flow model sampling (upstream's form): `h` and the stage sigmas in
    `log((1 - sigma)/sigma)`, each stage's D terms scaled by its `alpha = 1 - sigma`, a first sigma of 1 moved just
    below it."""
    noise = require_noise(noise, "seeds_3")
    inject = eta > 0 and s_noise > 0
    s = offset_first_sigma(sigma_list(sigmas), model_sampling)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = denoised
        else:
            h = log_snr_step(s[i], s[i + 1], model_sampling)
            h_eta = h * (eta + 1)
            s_1, s_2 = stage_sigma(s[i], h, r_1, model_sampling), stage_sigma(s[i], h, r_2, model_sampling)
            alpha_1, alpha_2, alpha = (signal_scale(v, model_sampling) for v in (s_1, s_2, s[i + 1]))
            x_1 = (s_1 / s[i]) * math.exp(-r_1 * h * eta) * x - (alpha_1 * h_phi_1(-r_1 * h_eta)) * denoised
            if inject:
                sde_noise = noise(x) * math.sqrt(-math.expm1(-2 * r_1 * h * eta))
                x_1 = x_1 + sde_noise * (s_1 * s_noise)
            denoised_1 = denoise(denoiser, x_1, s_1)
            a3_2 = r_2 / r_1 * h_phi_2(-r_2 * h_eta)
            a3_1 = h_phi_1(-r_2 * h_eta) - a3_2
            x_2 = (s_2 / s[i]) * math.exp(-r_2 * h * eta) * x - alpha_2 * (a3_1 * denoised + a3_2 * denoised_1)
            if inject:
                segment = (r_1 - r_2) * h * eta
                sde_noise = sde_noise * math.exp(segment) + noise(x) * math.sqrt(-math.expm1(2 * segment))
                x_2 = x_2 + sde_noise * (s_2 * s_noise)
            denoised_2 = denoise(denoiser, x_2, s_2)
            b3 = h_phi_2(-h_eta) / r_2
            b1 = h_phi_1(-h_eta) - b3
            x = (s[i + 1] / s[i]) * math.exp(-h * eta) * x - alpha * (b1 * denoised + b3 * denoised_2)
            if inject:
                segment = (r_2 - 1) * h * eta
                sde_noise = sde_noise * math.exp(segment) + noise(x) * math.sqrt(-math.expm1(2 * segment))
                x = x + sde_noise * (s[i + 1] * s_noise)
        report(callback, i, x, s[i], denoised)
    return x
