"""RES multistep: the second-order exponential multistep solver in data prediction of Zhang et al. 2023
("Improved Order Analysis and Design of Exponential Integrator for Diffusion Models", arXiv 2308.02157), in
lambda = -log(sigma); its ancestral and CFG++ (Chung et al. 2024) variants share this loop.
"""

from __future__ import annotations

import math

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, ancestral_step, denoise, report, require_noise, sigma_list, to_d
from .guidance import denoise_with_uncond, require_uncond


def phi_1(z: float) -> float:
    return math.expm1(z) / z


def phi_2(z: float) -> float:
    return (phi_1(z) - 1) / z


def res_multistep_loop(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    noise: NoiseFn | None,
    callback: Callback | None,
    *,
    eta: float,
    cfg_pp: bool,
    name: str,
) -> Tensor:
    """Each step aims at `sigma_down` (the ancestral split with `eta`; `s_next` when `eta = 0`) and then adds
    `sigma_up * z`. First step (and the step to sigma 0): Euler. Later steps, with `h = lambda(sigma_down) -
    lambda(s)`, `c = (lambda(s_prev) - lambda(sigma_down_prev)) / h` (as upstream: the previous step's target, not
    `s`), `b_2 = phi_2(-h) / c`, `b_1 = phi_1(-h) - b_2`:
    `x <- exp(-h) x + h (b_1 D_i + b_2 D_{i-1})`.
    CFG++: the Euler step is `D_cfg + sigma_down (x - D_uncond) / s`, the multistep one first moves `x` by
    `D_cfg - D_uncond` and then extrapolates the unconditional predictions."""
    if cfg_pp:
        require_uncond(denoiser, name)
    if eta > 0:
        noise = require_noise(noise, name)
    s = sigma_list(sigmas)
    old_denoised: Tensor | None = None
    old_down = 0.0
    for i in range(len(s) - 1):
        if cfg_pp:
            denoised, uncond = denoise_with_uncond(denoiser, x, s[i])
        else:
            denoised = uncond = denoise(denoiser, x, s[i])
        down, up = ancestral_step(s[i], s[i + 1], eta)
        if down == 0 or old_denoised is None:
            if cfg_pp:
                x = denoised + (x - uncond) * (down / s[i])
            else:
                x = x + to_d(x, s[i], denoised) * (down - s[i])
        else:
            h = math.log(s[i]) - math.log(down)
            c = (math.log(old_down) - math.log(s[i - 1])) / h
            b_2 = phi_2(-h) / c
            b_1 = phi_1(-h) - b_2
            if cfg_pp:
                x = x + (denoised - uncond)
            x = math.exp(-h) * x + h * (b_1 * uncond + b_2 * old_denoised)
        if s[i + 1] > 0 and up > 0:
            x = x + noise(x) * up
        old_denoised, old_down = uncond, down
        report(callback, i, x, s[i], denoised)
    return x


def sample_res_multistep(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """Deterministic RES multistep (`eta = 0`): `x <- exp(-h) x + h (b_1 D_i + b_2 D_{i-1})`, see
    `res_multistep_loop`."""
    return res_multistep_loop(denoiser, x, sigmas, noise, callback, eta=0.0, cfg_pp=False, name="res_multistep")
