"""SEEDS-3: the three-stage Stochastic Explicit Exponential Derivative-free Solver of Gonzalez et al. 2023
(SEEDS, VP data prediction), as upstream's `seeds_3`; seeded Gaussian noise, three draws per step."""

from __future__ import annotations

import math

from torch import Tensor

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
) -> Tensor:
    """With `h = log(s/s_next)`, `g = h (1 + eta)`, `s_k = s^(1-r_k) s_next^r_k`, `K(c) = (s_c/s) e^{-c eta h}`,
    `E1(v) = e^v - 1`, `E2(v) = (e^v - 1 - v)/v`:
    `x_1 = K(r_1) x - E1(-r_1 g) D + s_1 s_noise n_1`;
    `x_2 = K(r_2) x - [(E1(-r_2 g) - a) D + a D(x_1, s_1)] + s_2 s_noise n_2`, `a = r_2/r_1 E2(-r_2 g)`;
    `x <- K(1) x - [(E1(-g) - b) D + b D(x_2, s_2)] + s_next s_noise n_3`, `b = E2(-g) / r_2`;
    the noises carry one Brownian path: `n_1 = sqrt(1 - e^{-2 r_1 eta h}) z_1`,
    `n_{k+1} = e^{-(r_{k+1} - r_k) eta h} n_k + sqrt(1 - e^{-2 (r_{k+1} - r_k) eta h}) z_{k+1}` (`r_3 = 1`).
    The step to sigma 0 returns D."""
    noise = require_noise(noise, "seeds_3")
    inject = eta > 0 and s_noise > 0
    s = sigma_list(sigmas)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = denoised
        else:
            h = math.log(s[i]) - math.log(s[i + 1])
            h_eta = h * (eta + 1)
            s_1, s_2 = s[i] * math.exp(-r_1 * h), s[i] * math.exp(-r_2 * h)
            x_1 = (s_1 / s[i]) * math.exp(-r_1 * h * eta) * x - h_phi_1(-r_1 * h_eta) * denoised
            if inject:
                sde_noise = noise(x) * math.sqrt(-math.expm1(-2 * r_1 * h * eta))
                x_1 = x_1 + sde_noise * (s_1 * s_noise)
            denoised_1 = denoise(denoiser, x_1, s_1)
            a3_2 = r_2 / r_1 * h_phi_2(-r_2 * h_eta)
            a3_1 = h_phi_1(-r_2 * h_eta) - a3_2
            x_2 = (s_2 / s[i]) * math.exp(-r_2 * h * eta) * x - (a3_1 * denoised + a3_2 * denoised_1)
            if inject:
                segment = (r_1 - r_2) * h * eta
                sde_noise = sde_noise * math.exp(segment) + noise(x) * math.sqrt(-math.expm1(2 * segment))
                x_2 = x_2 + sde_noise * (s_2 * s_noise)
            denoised_2 = denoise(denoiser, x_2, s_2)
            b3 = h_phi_2(-h_eta) / r_2
            b1 = h_phi_1(-h_eta) - b3
            x = (s[i + 1] / s[i]) * math.exp(-h * eta) * x - (b1 * denoised + b3 * denoised_2)
            if inject:
                segment = (r_2 - 1) * h * eta
                sde_noise = sde_noise * math.exp(segment) + noise(x) * math.sqrt(-math.expm1(2 * segment))
                x = x + sde_noise * (s[i + 1] * s_noise)
        report(callback, i, x, s[i], denoised)
    return x
