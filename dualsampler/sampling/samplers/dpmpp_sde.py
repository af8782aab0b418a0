"""DPM-Solver++ SDE: the stochastic single-step second-order solver of Lu et al. 2022 (DPM-Solver++), r = 1/2.

Noise as upstream draws it: normalised increments of one seeded Brownian tree in sigma (`brownian.py`), queried
over `(s, s_mid)` in the first stage and `(s, s_next)` in the second, so the two stages' noises are the nested
increments of one path.
"""

from __future__ import annotations

import math

from torch import Tensor

from ..brownian import float32_log_midpoint
from ..flow_sampling import float32_flow_midpoint, half_log_snr, is_flow, offset_first_sigma
from .common import Callback, Denoiser, NoiseFn, ancestral_step, brownian_noise, denoise, report, sigma_list


def sample_dpmpp_sde(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r: float = 0.5,
    on_latent_device: bool = False,
    model_sampling: object = None,
) -> Tensor:
    """With `s_mid = s^(1-r) s_next^r` and the ancestral split `(down, up)` of each stage:
    stage 1 `x_mid = (down/s) x + (1 - down/s) D(x, s) + up z_1` (to `s_mid`),
    stage 2 `x <- (down/s) x + (1 - down/s) [(1 - 1/(2r)) D(x, s) + 1/(2r) D(x_mid, s_mid)] + up z_2` (to `s_next`);
    the step to sigma 0 returns `D(x, s)`. Under a flow model sampling, upstream's general form
    (`dpmpp_sde_rf`)."""
    s = sigma_list(sigmas)
    tree = brownian_noise(noise, "dpmpp_sde", x, s, on_latent_device)
    if is_flow(model_sampling):
        return dpmpp_sde_rf(denoiser, x, offset_first_sigma(s, model_sampling), tree, callback, eta, s_noise, r,
                            model_sampling)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = denoised
        else:
            s_mid = s[i] * math.exp(-r * (math.log(s[i]) - math.log(s[i + 1])))
            down, up = ancestral_step(s[i], s_mid, eta)
            x_mid = (down / s[i]) * x + (1 - down / s[i]) * denoised
            if eta > 0 and s_noise > 0:
                x_mid = x_mid + tree(s[i], float32_log_midpoint(s[i], s[i + 1], r)) * (s_noise * up)
            denoised_mid = denoise(denoiser, x_mid, s_mid)
            down, up = ancestral_step(s[i], s[i + 1], eta)
            fac = 1 / (2 * r)
            denoised_d = (1 - fac) * denoised + fac * denoised_mid
            x = (down / s[i]) * x + (1 - down / s[i]) * denoised_d
            if eta > 0 and s_noise > 0:
                x = x + tree(s[i], s[i + 1]) * (s_noise * up)
        report(callback, i, x, s[i], denoised)
    return x


def dpmpp_sde_rf(denoiser: Denoiser, x: Tensor, s: list[float], tree: NoiseFn, callback: Callback | None, eta: float,
                 s_noise: float, r: float, model_sampling: object) -> Tensor:
    """DPM-Solver++ SDE for a rectified-flow model, as upstream writes it for any model sampling: with
    `l = log(alpha/sigma)`, `alpha = 1 - sigma`, the stages of `sample_dpmpp_sde` in `l` (the midpoint sigma in
    float32, where upstream queries its Brownian tree), each ancestral split taken between `e^{-l}` values and its
    noise scaled by the stage's alpha."""
    fac = 1 / (2 * r)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if s[i + 1] == 0:
            x = denoised
        else:
            lam_s, lam_t = half_log_snr(s[i], model_sampling), half_log_snr(s[i + 1], model_sampling)
            s_mid = float32_flow_midpoint(s[i], s[i + 1], r)
            lam_mid = half_log_snr(s_mid, model_sampling)
            alpha_s, alpha_mid, alpha_t = 1 - s[i], 1 - s_mid, 1 - s[i + 1]
            down, up = ancestral_step(math.exp(-lam_s), math.exp(-lam_mid), eta)
            h_down = -math.log(down) - lam_s
            x_mid = (alpha_mid / alpha_s * math.exp(-h_down)) * x - (alpha_mid * math.expm1(-h_down)) * denoised
            if eta > 0 and s_noise > 0:
                x_mid = x_mid + tree(s[i], s_mid) * (alpha_mid * s_noise * up)
            denoised_mid = denoise(denoiser, x_mid, s_mid)
            down, up = ancestral_step(math.exp(-lam_s), math.exp(-lam_t), eta)
            h_down = -math.log(down) - lam_s
            denoised_d = (1 - fac) * denoised + fac * denoised_mid
            x = (alpha_t / alpha_s * math.exp(-h_down)) * x - (alpha_t * math.expm1(-h_down)) * denoised_d
            if eta > 0 and s_noise > 0:
                x = x + tree(s[i], s[i + 1]) * (alpha_t * s_noise * up)
        report(callback, i, x, s[i], denoised)
    return x
