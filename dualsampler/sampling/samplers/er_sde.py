"""ER-SDE-Solver-3: the Extended Reverse-Time SDE solver of Cui et al. 2024 (VP, data prediction), as upstream's
`er_sde`: up to three stages, noise scale function `phi(l) = l (e^{l^0.3} + 10)`, seeded Gaussian noise."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..flow_sampling import offset_first_sigma, signal_scale
from .common import Callback, Denoiser, NoiseFn, denoise, report, require_noise, sigma_list

INTEGRATION_POINTS = 200


def noise_scaler(lam: float | Tensor) -> float | Tensor:
    """The ER-SDE noise scale function `phi(l) = l (exp(l^0.3) + 10)` (Cui et al. 2024)."""
    if isinstance(lam, Tensor):
        return lam * ((lam**0.3).exp() + 10.0)
    return lam * (math.exp(lam**0.3) + 10.0)


def stage_integrals(lam_s: float, lam_t: float) -> tuple[float, float]:
    """Left Riemann sums (200 points from `lam_t` towards `lam_s`) of `int dl / phi(l)` and `int (l - lam_s) dl /
    phi(l)` over [lam_t, lam_s], signed as upstream's: `step = (lam_s - lam_t) / 200`, `sum(...) * step`."""
    step = (lam_s - lam_t) / INTEGRATION_POINTS
    pos = lam_t + torch.arange(INTEGRATION_POINTS, dtype=torch.float64) * step
    scaled = noise_scaler(pos)
    return float((1 / scaled).sum() * step), float(((pos - lam_s) / scaled).sum() * step)


def sample_er_sde(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    s_noise: float = 1.0,
    max_stage: int = 3,
    model_sampling: object = None,
) -> Tensor:
    """In VP sigma space (`lambda = sigma`, `alpha = 1`), with `r = phi(s_next)/phi(s)`, `dt = s_next - s`:
    `x <- r x + (1 - r) D_i + (dt + S_1 phi(s_next)) D'_i + (dt^2/2 + S_2 phi(s_next)) D''_i
    + s_noise sqrt(s_next^2 - s^2 r^2) z`, D' and D'' the divided differences of the last D's in sigma (the
    second over half the two-step span), S_1, S_2 the stage integrals; stage k used from step k; the step to
    sigma 0 returns D_i. Under a flow model sampling (upstream's form): `lambda = sigma / alpha`, `alpha = 1 - sigma`,
    x scaled by `alpha_next / alpha` with r, every D and noise term by `alpha_next`, and a first sigma of 1 moved
    just below it."""
    noise = require_noise(noise, "er_sde")
    s = offset_first_sigma(sigma_list(sigmas), model_sampling)
    alphas = [signal_scale(v, model_sampling) for v in s]
    lams = [v / a for v, a in zip(s, alphas)]
    old_denoised = old_denoised_d = None
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        stage = min(max_stage, i + 1)
        if s[i + 1] == 0:
            x = denoised
        else:
            lam_s, lam_t = lams[i], lams[i + 1]
            alpha_t = alphas[i + 1]
            r = noise_scaler(lam_t) / noise_scaler(lam_s)
            x = (alphas[i + 1] / alphas[i] * r) * x + (alpha_t * (1 - r)) * denoised
            if stage >= 2:
                dt = lam_t - lam_s
                s_1, s_2 = stage_integrals(lam_s, lam_t)
                denoised_d = (denoised - old_denoised) / (lam_s - lams[i - 1])
                x = x + (alpha_t * (dt + s_1 * noise_scaler(lam_t))) * denoised_d
                if stage >= 3:
                    denoised_u = (denoised_d - old_denoised_d) / ((lam_s - lams[i - 2]) / 2)
                    x = x + (alpha_t * (dt**2 / 2 + s_2 * noise_scaler(lam_t))) * denoised_u
                old_denoised_d = denoised_d
            if s_noise > 0:
                spread = lam_t**2 - lam_s**2 * r**2
                x = x + noise(x) * (alpha_t * s_noise * (math.sqrt(spread) if spread > 0 else 0.0))
        old_denoised = denoised
        report(callback, i, x, s[i], denoised)
    return x
