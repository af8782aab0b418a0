"""Gradient estimation sampler (Permenter & Yuan 2024, "Interpreting and Improving Diffusion Models from an
Optimization Perspective", Algorithm 2): Euler steps whose direction is extrapolated with the previous one,
`d_bar = gamma d_i + (1 - gamma) d_{i-1}`, gamma = 2; its CFG++ (Chung et al. 2024) variant shares this loop."""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, report, sigma_list, to_d
from .guidance import denoise_with_uncond, require_uncond


def gradient_estimation_loop(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    callback: Callback | None,
    *,
    gamma: float,
    cfg_pp: bool,
    name: str,
) -> Tensor:
    """`x <- x + (s_next - s) (d_i + (gamma - 1)(d_i - d_{i-1}))` (the first step plain Euler), `d = (x - D) / s`;
    the step to sigma 0 returns `D`. CFG++: `d` from the unconditional prediction and the Euler part
    `D_cfg + s_next d_i` in place of `x + (s_next - s) d_i`."""
    if cfg_pp:
        require_uncond(denoiser, name)
    s = sigma_list(sigmas)
    old_d: Tensor | None = None
    for i in range(len(s) - 1):
        if cfg_pp:
            denoised, uncond = denoise_with_uncond(denoiser, x, s[i])
        else:
            denoised = uncond = denoise(denoiser, x, s[i])
        d = to_d(x, s[i], uncond)
        dt = s[i + 1] - s[i]
        if s[i + 1] == 0:
            x = denoised
        else:
            x = denoised + d * s[i + 1] if cfg_pp else x + d * dt
            if old_d is not None:
                x = x + (gamma - 1) * (d - old_d) * dt
        old_d = d
        report(callback, i, x, s[i], denoised)
    return x


def sample_gradient_estimation(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    gamma: float = 2.0,
) -> Tensor:
    """`x <- x + (s_next - s) (gamma d_i + (1 - gamma) d_{i-1})`, see `gradient_estimation_loop`."""
    return gradient_estimation_loop(denoiser, x, sigmas, callback, gamma=gamma, cfg_pp=False,
                                    name="gradient_estimation")
