"""DPM-Solver++(2S) single-step, ancestral (Lu et al. 2022, DPM-Solver++), eta = 1."""

from __future__ import annotations

import math

from torch import Tensor

from ..flow_sampling import flow_ancestral_step, half_log_snr, half_log_snr_to_sigma, is_flow
from .common import Callback, Denoiser, NoiseFn, ancestral_step, denoise, report, require_noise, sigma_list, to_d


def sample_dpmpp_2s_ancestral(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    model_sampling: object = None,
) -> Tensor:
    """With `lambda = -log sigma`, `h = lambda(sigma_down) - lambda(s)`, midpoint `r = 1/2`:
    `x_2 = (s_mid/s) x - expm1(-h/2) D(x)`, `x <- (sigma_down/s) x - expm1(-h) D(x_2)`, then `+ sigma_up z`. Under a flow model sampling, upstream's
    rectified-flow variant (`dpmpp_2s_ancestral_rf`)."""
    noise = require_noise(noise, "dpmpp_2s_ancestral")
    s = sigma_list(sigmas)
    if is_flow(model_sampling):
        return dpmpp_2s_ancestral_rf(denoiser, x, s, noise, callback, model_sampling)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        down, up = ancestral_step(s[i], s[i + 1])
        if down == 0:
            x = x + to_d(x, s[i], denoised) * (down - s[i])
        else:
            h = math.log(s[i]) - math.log(down)
            s_mid = s[i] * math.exp(-h / 2)
            x_2 = (s_mid / s[i]) * x - math.expm1(-h / 2) * denoised
            denoised_2 = denoise(denoiser, x_2, s_mid)
            x = (down / s[i]) * x - math.expm1(-h) * denoised_2
        if s[i + 1] > 0:
            x = x + noise(x) * up
        report(callback, i, x, s[i], denoised)
    return x


# Upstream's stand-in for the midpoint sigma of a step from sigma 1, whose half-log-SNR is infinite.
FIRST_MIDPOINT_SIGMA = 0.9999


def dpmpp_2s_ancestral_rf(denoiser: Denoiser, x: Tensor, s: list[float], noise: NoiseFn, callback: Callback | None,
                          model_sampling: object) -> Tensor:
    """DPM-Solver++(2S) ancestral for a rectified-flow model (upstream's `sample_dpmpp_2s_ancestral_RF`, eta = 1):
    with `lambda = log((1 - sigma)/sigma)` and the midpoint `s_mid` of `lambda(s)` and `lambda(sigma_down)`
    (0.9999 from sigma 1), `u = (s_mid/s) x + (1 - s_mid/s) D(x)`, `x <- (down/s) x + (1 - down/s) D(u, s_mid)`,
    then `x <- scale x + renoise z`; the step to sigma 0 returns D(x)."""
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = x + to_d(x, s[i], denoised) * (0.0 - s[i])
        else:
            down, scale, renoise = flow_ancestral_step(s[i], s[i + 1])
            if s[i] == 1.0:
                s_mid = FIRST_MIDPOINT_SIGMA
            else:
                lam, lam_down = half_log_snr(s[i], model_sampling), half_log_snr(down, model_sampling)
                s_mid = half_log_snr_to_sigma(lam + (lam_down - lam) / 2, model_sampling)
            u = (s_mid / s[i]) * x + (1 - s_mid / s[i]) * denoised
            denoised_mid = denoise(denoiser, u, s_mid)
            x = (down / s[i]) * x + (1 - down / s[i]) * denoised_mid
            x = scale * x + noise(x) * renoise
        report(callback, i, x, s[i], denoised)
    return x
