"""Ancestral RES multistep (Zhang et al. 2023, arXiv 2308.02157), eta = 1, with CFG++ (Chung et al. 2024)."""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn
from .res_multistep import res_multistep_loop


def sample_res_multistep_ancestral_cfg_pp(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """`x <- exp(-h) (x + D_cfg - D_uncond) + h (b_1 D_uncond,i + b_2 D_uncond,i-1) + sigma_up z`,
    `h = log(s / sigma_down)`. Needs `denoiser.with_uncond`."""
    return res_multistep_loop(denoiser, x, sigmas, noise, callback, eta=1.0, cfg_pp=True,
                              name="res_multistep_ancestral_cfg_pp")
