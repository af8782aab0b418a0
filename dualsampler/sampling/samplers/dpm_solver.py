"""DPM-Solver single steps of order 1, 2 and 3 in noise-prediction form (Lu et al. 2022, "DPM-Solver: A Fast ODE
Solver for Diffusion Probabilistic Model Sampling in Around 10 Steps", Algorithms 4 and 5 / eqs. 3.7-3.9), written
in `lambda = -log(sigma)` for sigma-space models (alpha = 1); shared by dpm_fast and dpm_adaptive.
"""

from __future__ import annotations

import math
from typing import Callable

from torch import Tensor

from .common import Callback, Denoiser, denoise

EpsFn = Callable[[Tensor, float], Tensor]


def check_eta(eta: float) -> None:
    if isinstance(eta, bool) or not (isinstance(eta, (int, float)) and math.isfinite(eta) and eta >= 0):
        raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")


def report_step(
    callback: Callback | None, i: int, x: Tensor, sigma: float, sigma_next: float, denoised: Tensor
) -> None:
    """The step report with the sigma the step landed on (these solvers' steps are not the list's steps)."""
    if callback is not None:
        callback({"i": i, "x": x, "sigma": sigma, "sigma_hat": sigma, "sigma_next": sigma_next, "denoised": denoised})


def sigma_of(lam: float) -> float:
    return math.exp(-lam)


def eps_function(denoiser: Denoiser) -> EpsFn:
    """`eps(x, lambda) = (x - D(x, sigma)) / sigma` at `sigma = exp(-lambda)`."""

    def eps(x: Tensor, lam: float) -> Tensor:
        sigma = sigma_of(lam)
        return (x - denoise(denoiser, x, sigma)) / sigma

    return eps


def first_order(x: Tensor, eps: Tensor, lam: float, lam_next: float) -> Tensor:
    """DPM-Solver-1 (DDIM): `x - sigma_next * expm1(h) * eps`, `h = lam_next - lam`."""
    return x - sigma_of(lam_next) * math.expm1(lam_next - lam) * eps


def intermediate(x: Tensor, eps: Tensor, lam: float, h: float, r: float) -> Tensor:
    """The first-order point at `lambda + r h`: `x - sigma(lambda + r h) * expm1(r h) * eps`."""
    return x - sigma_of(lam + r * h) * math.expm1(r * h) * eps


def second_order(x: Tensor, eps: Tensor, eps_1: Tensor, lam: float, lam_next: float, r1: float) -> Tensor:
    """DPM-Solver-2 with `eps_1` taken at `lambda + r1 h`:
    `x - sigma_next expm1(h) eps - sigma_next / (2 r1) expm1(h) (eps_1 - eps)`."""
    h = lam_next - lam
    scale = sigma_of(lam_next) * math.expm1(h)
    return x - scale * eps - (scale / (2 * r1)) * (eps_1 - eps)


def third_order_intermediate(
    x: Tensor, eps: Tensor, eps_1: Tensor, lam: float, h: float, r1: float, r2: float
) -> Tensor:
    """DPM-Solver-3's second stage at `lambda + r2 h`:
    `u_2 = x - sigma_2 expm1(r2 h) eps - sigma_2 (r2 / r1) (expm1(r2 h) / (r2 h) - 1) (eps_1 - eps)`."""
    sigma_2 = sigma_of(lam + r2 * h)
    e = math.expm1(r2 * h)
    return x - sigma_2 * e * eps - sigma_2 * (r2 / r1) * (e / (r2 * h) - 1) * (eps_1 - eps)


def third_order(x: Tensor, eps: Tensor, eps_2: Tensor, lam: float, lam_next: float, r2: float) -> Tensor:
    """DPM-Solver-3's update: `x - sigma_next expm1(h) eps - sigma_next / r2 (expm1(h) / h - 1) (eps_2 - eps)`."""
    h = lam_next - lam
    sigma_next = sigma_of(lam_next)
    e = math.expm1(h)
    return x - sigma_next * e * eps - (sigma_next / r2) * (e / h - 1) * (eps_2 - eps)


def dpm_solver_step(eps_at: EpsFn, x: Tensor, eps: Tensor, lam: float, lam_next: float, order: int) -> Tensor:
    """One DPM-Solver-`order` step from `lambda` to `lambda_next` given `eps` at `(x, lambda)`; `order - 1` more
    model calls (midpoint `r1 = 1/2` for order 2, `r1, r2 = 1/3, 2/3` for order 3)."""
    if order == 1:
        return first_order(x, eps, lam, lam_next)
    h = lam_next - lam
    if order == 2:
        eps_1 = eps_at(intermediate(x, eps, lam, h, 0.5), lam + 0.5 * h)
        return second_order(x, eps, eps_1, lam, lam_next, 0.5)
    r1, r2 = 1 / 3, 2 / 3
    eps_1 = eps_at(intermediate(x, eps, lam, h, r1), lam + r1 * h)
    eps_2 = eps_at(third_order_intermediate(x, eps, eps_1, lam, h, r1, r2), lam + r2 * h)
    return third_order(x, eps, eps_2, lam, lam_next, r2)
