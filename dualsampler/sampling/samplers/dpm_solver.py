"""DPM-Solver single steps of order 1, 2 and 3 in noise-prediction form (Lu et al. 2022, "DPM-Solver: A Fast ODE
Solver for Diffusion Probabilistic Model Sampling in Around 10 Steps", Algorithms 4 and 5 / eqs. 3.7-3.9), written
in `lambda = -log(sigma)` for sigma-space models (alpha = 1); shared by dpm_fast and dpm_adaptive.

The lambdas are 0-d tensors in the sigma list's dtype and every coefficient is computed with them in upstream's
order, so float32 runs round as upstream's do: dpm_adaptive's error estimate is a small difference of two
solutions, and its accept/reject chain follows the rounding.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ...validation import check_real
from .common import Callback, Denoiser, ancestral_step, denoise

EpsFn = Callable[[Tensor, Tensor], Tensor]


def check_eta(eta: float) -> float:
    """The ancestral noise scale: a finite number >= 0 -> float."""
    return check_real(eta, "eta", 0.0)


def report_step(
    callback: Callback | None, i: int, x: Tensor, sigma: float, sigma_next: float, denoised: Tensor
) -> None:
    """The step report with the sigma the step landed on (these solvers' steps are not the list's steps)."""
    if callback is not None:
        callback({"i": i, "x": x, "sigma": sigma, "sigma_hat": sigma, "sigma_next": sigma_next, "denoised": denoised})


def lambda_of(sigma: Tensor) -> Tensor:
    return sigma.log().neg()


def sigma_of(lam: Tensor) -> Tensor:
    return lam.neg().exp()


def ancestral_target(lam: Tensor, lam_next: Tensor, lam_end: Tensor, eta: float) -> tuple[Tensor, float]:
    """With `eta > 0`: the step lands at the ancestral `sigma_down` of `sigma(lam) -> sigma(lam_next)` (never past
    `lam_end`) and fresh noise of std `sqrt(sigma_next^2 - sigma(target)^2)` tops it up to `sigma(lam_next)`."""
    sigma_next = float(sigma_of(lam_next))
    down, _ = ancestral_step(float(sigma_of(lam)), sigma_next, eta)
    target = lam_end if down == 0 else torch.minimum(lam_end, lambda_of(lam.new_tensor(down)))
    return target, math.sqrt(max(sigma_next**2 - float(sigma_of(target)) ** 2, 0.0))


def eps_function(denoiser: Denoiser) -> EpsFn:
    """`eps(x, lambda) = (x - D(x, sigma)) / sigma` at `sigma = exp(-lambda)`."""

    def eps(x: Tensor, lam: Tensor) -> Tensor:
        sigma = sigma_of(lam)
        return (x - denoise(denoiser, x, float(sigma))) / sigma

    return eps


def first_order(x: Tensor, eps: Tensor, lam: Tensor, lam_next: Tensor) -> Tensor:
    """DPM-Solver-1 (DDIM): `x - sigma_next * expm1(h) * eps`, `h = lam_next - lam`."""
    return x - sigma_of(lam_next) * torch.expm1(lam_next - lam) * eps


def intermediate(x: Tensor, eps: Tensor, lam: Tensor, h: Tensor, r: float) -> Tensor:
    """The first-order point at `lambda + r h`: `x - sigma(lambda + r h) * expm1(r h) * eps`."""
    return x - sigma_of(lam + r * h) * torch.expm1(r * h) * eps


def second_order(x: Tensor, eps: Tensor, eps_1: Tensor, lam: Tensor, lam_next: Tensor, r1: float) -> Tensor:
    """DPM-Solver-2 with `eps_1` taken at `lambda + r1 h`:
    `x - sigma_next expm1(h) eps - sigma_next / (2 r1) expm1(h) (eps_1 - eps)`."""
    h = lam_next - lam
    sigma_next = sigma_of(lam_next)
    return x - sigma_next * torch.expm1(h) * eps - sigma_next / (2 * r1) * torch.expm1(h) * (eps_1 - eps)


def third_order_intermediate(
    x: Tensor, eps: Tensor, eps_1: Tensor, lam: Tensor, h: Tensor, r1: float, r2: float
) -> Tensor:
    """DPM-Solver-3's second stage at `lambda + r2 h`:
    `u_2 = x - sigma_2 expm1(r2 h) eps - sigma_2 (r2 / r1) (expm1(r2 h) / (r2 h) - 1) (eps_1 - eps)`."""
    sigma_2 = sigma_of(lam + r2 * h)
    e = torch.expm1(r2 * h)
    return x - sigma_2 * e * eps - sigma_2 * (r2 / r1) * (e / (r2 * h) - 1) * (eps_1 - eps)


def third_order(x: Tensor, eps: Tensor, eps_2: Tensor, lam: Tensor, lam_next: Tensor, r2: float) -> Tensor:
    """DPM-Solver-3's update: `x - sigma_next expm1(h) eps - sigma_next / r2 (expm1(h) / h - 1) (eps_2 - eps)`."""
    h = lam_next - lam
    sigma_next = sigma_of(lam_next)
    return x - sigma_next * torch.expm1(h) * eps - sigma_next / r2 * (torch.expm1(h) / h - 1) * (eps_2 - eps)


def dpm_solver_step(eps_at: EpsFn, x: Tensor, eps: Tensor, lam: Tensor, lam_next: Tensor, order: int) -> Tensor:
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
