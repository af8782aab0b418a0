"""ER-SDE-Solver-3: the Extended Reverse-Time SDE solver of Cui et al. 2024 (VP, data prediction), as upstream's
`er_sde`: up to three stages, noise scale function `phi(l) = l (e^{l^0.3} + 10)`, seeded Gaussian noise."""

from __future__ import annotations

import math

import torch
from torch import Tensor

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
) -> Tensor:
    """In VP sigma space (`lambda = sigma`, `alpha = 1`), with `r = phi(s_next)/phi(s)`, `dt = s_next - s`:
    `x <- r x + (1 - r) D_i + (dt + S_1 phi(s_next)) D'_i + (dt^2/2 + S_2 phi(s_next)) D''_i
    + s_noise sqrt(s_next^2 - s^2 r^2) z`, D' and D'' the divided differences of the last D's in sigma (the
    second over half the two-step span), S_1, S_2 the stage integrals; stage k used from step k; the step to
    sigma 0 returns D_i."""
    noise = require_noise(noise, "er_sde")
    s = sigma_list(sigmas)
    old_denoised = old_denoised_d = None
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        stage = min(max_stage, i + 1)
        if s[i + 1] == 0:
            x = denoised
        else:
            lam_s, lam_t = s[i], s[i + 1]
            r = noise_scaler(lam_t) / noise_scaler(lam_s)
            x = r * x + (1 - r) * denoised
            if stage >= 2:
                dt = lam_t - lam_s
                s_1, s_2 = stage_integrals(lam_s, lam_t)
                denoised_d = (denoised - old_denoised) / (lam_s - s[i - 1])
                x = x + (dt + s_1 * noise_scaler(lam_t)) * denoised_d
                if stage >= 3:
                    denoised_u = (denoised_d - old_denoised_d) / ((lam_s - s[i - 2]) / 2)
                    x = x + (dt**2 / 2 + s_2 * noise_scaler(lam_t)) * denoised_u
                old_denoised_d = denoised_d
            if s_noise > 0:
                spread = lam_t**2 - lam_s**2 * r**2
                x = x + noise(x) * (s_noise * (math.sqrt(spread) if spread > 0 else 0.0))
        old_denoised = denoised
        report(callback, i, x, s[i], denoised)
    return x
