"""DPM-Solver-fast (Lu et al. 2022, "DPM-Solver", Section 3.4): fixed steps uniform in lambda = -log(sigma),
mostly third order, spending exactly `len(sigmas) - 1` model calls.

Like upstream it uses only the ends of the sigma list: it integrates from `sigmas[0]` to `sigma_min` (the last
sigma, or the one before it when the list ends at 0) and returns x at `sigma_min`: it never steps to sigma 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, require_noise
from .dpm_solver import ancestral_target, check_eta, dpm_solver_step, eps_function, lambda_of, report_step, sigma_of


def fast_orders(nfe: int) -> list[int]:
    """Step orders summing to `nfe` over `nfe // 3 + 1` steps: third order, then a tail of `nfe % 3`, or `2, 1`
    when `nfe` is a multiple of 3."""
    steps = nfe // 3 + 1
    if nfe % 3 == 0:
        return [3] * (steps - 2) + [2, 1]
    return [3] * (steps - 1) + [nfe % 3]


def sample_dpm_fast(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    eta: float = 0.0,
) -> Tensor:
    """Steps `lambda_k` uniform from `-log sigmas[0]` to `-log sigma_min`, each a DPM-Solver-1/2/3 step
    (`x - sigma_next expm1(h) eps - ...`, see dpm_solver.py) with the orders of `fast_orders(len(sigmas) - 1)`.
    With `eta > 0` each step lands at the ancestral `sigma_down` and adds fresh noise up to `sigma_next`."""
    check_eta(eta)
    if eta > 0:
        noise = require_noise(noise, "dpm_fast")
    ends = sigmas.detach().cpu()
    lam_end = lambda_of(ends[-1] if ends[-1] > 0 else ends[-2])
    orders = fast_orders(len(ends) - 1)
    lams = torch.linspace(float(lambda_of(ends[0])), float(lam_end), len(orders) + 1, dtype=ends.dtype)
    eps_at = eps_function(denoiser)
    for i, order in enumerate(orders):
        lam, lam_next = lams[i], lams[i + 1]
        lam_target, renoise = lam_next, 0.0
        if eta > 0:
            lam_target, renoise = ancestral_target(lam, lam_next, lam_end, eta)
        sigma = float(sigma_of(lam))
        denoised = denoise(denoiser, x, sigma)
        x = dpm_solver_step(eps_at, x, (x - denoised) / sigma_of(lam), lam, lam_target, order)
        if renoise > 0:
            x = x + noise(x) * renoise
        report_step(callback, i, x, sigma, float(sigma_of(lam_next)), denoised)
    return x
