"""SEEDS-2: the two-stage Stochastic Explicit Exponential Derivative-free Solver of Gonzalez et al. 2023 (SEEDS,
VP data prediction), as upstream's `seeds_2`; seeded Gaussian noise, two draws per step."""

from __future__ import annotations

import math

from torch import Tensor

from ..flow_sampling import log_snr_step, offset_first_sigma, signal_scale, stage_sigma
from .common import Callback, Denoiser, NoiseFn, denoise, report, require_noise, sigma_list

SOLVER_TYPES = ("phi_1", "phi_2")


def h_phi_1(h: float) -> float:
    """`E1(h) = h phi_1(h) = e^h - 1`."""
    return math.expm1(h)


def h_phi_2(h: float) -> float:
    """`E2(h) = h phi_2(h) = (e^h - 1 - h) / h`."""
    return (math.expm1(h) - h) / h


def sample_seeds_2(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r: float = 0.5,
    solver_type: str = "phi_1",
    model_sampling: object = None,
) -> Tensor:
    """With `h = log(s/s_next)`, `g = h (1 + eta)`, `s_1 = s^(1-r) s_next^r`, `E1(v) = e^v - 1`,
    `E2(v) = (e^v - 1 - v)/v`:
    stage 1 `x_1 = (s_1/s) e^{-r eta h} x - E1(-r g) D + s_1 s_noise n_1`, `n_1 = sqrt(1 - e^{-2 r eta h}) z_1`;
    stage 2 `x <- (s_next/s) e^{-eta h} x - E1(-g) [(1 - 1/(2r)) D + 1/(2r) D(x_1, s_1)]` (`phi_1`), or
    `- (b1 D + b2 D(x_1, s_1))` with `b2 = E2(-g) / r`, `b1 = E1(-g) - b2` (`phi_2`); then
    `+ s_next s_noise n_2`, `n_2 = e^{(r-1) eta h} n_1 + sqrt(1 - e^{2 (r-1) eta h}) z_2` (the same Brownian path
    carried through both stages). The step to sigma 0 returns D. Under a flow model sampling (upstream's form):
    `h` and `s_1` in `log((1 - sigma)/sigma)`, each stage's D terms scaled by its `alpha = 1 - sigma`, a first sigma
    of 1 moved just below it."""
    if solver_type not in SOLVER_TYPES:
        raise ValueError(f"solver_type must be one of {', '.join(SOLVER_TYPES)}, got {solver_type!r}")
    noise = require_noise(noise, "seeds_2")
    inject = eta > 0 and s_noise > 0
    fac = 1 / (2 * r)
    s = offset_first_sigma(sigma_list(sigmas), model_sampling)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = denoised
        else:
            h = log_snr_step(s[i], s[i + 1], model_sampling)
            h_eta = h * (eta + 1)
            s_1 = stage_sigma(s[i], h, r, model_sampling)
            alpha_1, alpha = signal_scale(s_1, model_sampling), signal_scale(s[i + 1], model_sampling)
            x_1 = (s_1 / s[i]) * math.exp(-r * h * eta) * x - (alpha_1 * h_phi_1(-r * h_eta)) * denoised
            if inject:
                sde_noise = noise(x) * math.sqrt(-math.expm1(-2 * r * h * eta))
                x_1 = x_1 + sde_noise * (s_1 * s_noise)
            denoised_1 = denoise(denoiser, x_1, s_1)
            decay = (s[i + 1] / s[i]) * math.exp(-h * eta)
            if solver_type == "phi_1":
                x = decay * x - (alpha * h_phi_1(-h_eta)) * (denoised + fac * (denoised_1 - denoised))
            else:
                b2 = h_phi_2(-h_eta) / r
                b1 = h_phi_1(-h_eta) - b2
                x = decay * x - alpha * (b1 * denoised + b2 * denoised_1)
            if inject:
                segment = (r - 1) * h * eta
                sde_noise = sde_noise * math.exp(segment) + noise(x) * math.sqrt(-math.expm1(2 * segment))
                x = x + sde_noise * (s[i + 1] * s_noise)
        report(callback, i, x, s[i], denoised)
    return x
