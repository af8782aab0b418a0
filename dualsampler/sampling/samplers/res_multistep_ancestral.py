"""Ancestral RES multistep (Zhang et al. 2023, arXiv 2308.02157), eta = 1: each multistep update aims at the
ancestral `sigma_down` and fresh noise of std `sigma_up` tops it up to the next sigma."""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn
from .res_multistep import res_multistep_loop


def sample_res_multistep_ancestral(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """`x <- exp(-h) x + h (b_1 D_i + b_2 D_{i-1}) + sigma_up z`, `h = log(s / sigma_down)`."""
    return res_multistep_loop(denoiser, x, sigmas, noise, callback, eta=1.0, cfg_pp=False,
                              name="res_multistep_ancestral")
