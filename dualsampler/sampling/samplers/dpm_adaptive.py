"""DPM-Solver-12 / -23 with adaptive step size (Lu et al. 2022, "DPM-Solver", Section 3.3 and Appendix C):
each step computes a lower- and a higher-order solution, and a PI(D) controller on their scaled difference
accepts or rejects the step and sets the next step size in lambda = -log(sigma).

Like upstream it integrates from `sigmas[0]` to `sigma_min` (the last sigma, or the one before it when the list
ends at 0), ignores the sigmas in between, returns x at `sigma_min`, and measures the error over the whole batch.
A rejected try keeps the model call at the step's start for the next try (upstream repeats it): the same tensor
with fewer model calls.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...validation import check_choice, check_real
from .common import Callback, Denoiser, NoiseFn, denoise, require_noise
from .dpm_solver import (
    ancestral_target,
    check_eta,
    eps_function,
    first_order,
    intermediate,
    lambda_of,
    report_step,
    second_order,
    sigma_of,
    third_order,
    third_order_intermediate,
)


class StepSizeController:
    """PID step-size control (Söderlind 2003): `h <- h * limit(e_n^b1 e_{n-1}^b2 e_{n-2}^b3)` with `e = 1/error`,
    `limit(f) = 1 + atan(f - 1)`; a step is accepted when the factor is at least `accept_safety`."""

    def __init__(
        self, h: float, pcoeff: float, icoeff: float, dcoeff: float, order: float, accept_safety: float
    ) -> None:
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety = accept_safety
        self.inverse_errors: list[float] = []

    def propose(self, error: float) -> bool:
        inverse = 1 / (error + 1e-8)
        if not self.inverse_errors:
            self.inverse_errors = [inverse] * 3
        self.inverse_errors[0] = inverse
        e0, e1, e2 = self.inverse_errors
        factor = 1 + math.atan(e0**self.b1 * e1**self.b2 * e2**self.b3 - 1)
        accept = factor >= self.accept_safety
        if accept:
            self.inverse_errors = [e0, e0, e1]
        self.h *= factor
        return accept


# The least rtol/atol (the larger of the two) and h_init: far below upstream's 0.05 / 0.0078 / 0.05, the number of
# steps grows without bound.
MIN_TOLERANCE = 1e-6


def check_adaptive(order: int, rtol: float, atol: float, h_init: float, accept_safety: float, eta: float) -> None:
    check_choice(order, "order", (2, 3))
    if max(check_real(rtol, "rtol", 0.0, 10.0), check_real(atol, "atol", 0.0, 10.0)) < MIN_TOLERANCE:
        raise ValueError(f"rtol or atol must be >= {MIN_TOLERANCE:g} (a smaller tolerance takes unbounded steps), "
                         f"got rtol={rtol!r}, atol={atol!r}")
    check_real(h_init, "h_init", MIN_TOLERANCE, 10.0)
    check_real(accept_safety, "accept_safety", 0.0, 1.0, low_open=True)
    check_eta(eta)


def sample_dpm_adaptive(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    order: int = 3,
    rtol: float = 0.05,
    atol: float = 0.0078,
    h_init: float = 0.05,
    pcoeff: float = 0.0,
    icoeff: float = 1.0,
    dcoeff: float = 0.0,
    accept_safety: float = 0.81,
    eta: float = 0.0,
) -> Tensor:
    """Order 3: low = DPM-Solver-2 (`r1 = 1/3`), high = DPM-Solver-3 sharing its first stage (3 calls per try);
    order 2: low = DPM-Solver-1, high = DPM-Solver-2 (2 calls). Error `||(low - high) / delta|| / sqrt(numel)` with
    `delta = max(atol, rtol * max(|low|, |x_prev_low|))`; an accepted step keeps `high` (plus ancestral noise when
    `eta > 0`, the controller then tuned for order 1.5)."""
    check_adaptive(order, rtol, atol, h_init, accept_safety, eta)
    if eta > 0:
        noise = require_noise(noise, "dpm_adaptive")
    ends = sigmas.detach().cpu()
    lam, lam_end = lambda_of(ends[0]), lambda_of(ends[-1] if ends[-1] > 0 else ends[-2])
    eps_at = eps_function(denoiser)
    controller = StepSizeController(h_init, pcoeff, icoeff, dcoeff, 1.5 if eta > 0 else order, accept_safety)
    x_prev = x
    denoised = eps = None
    accepted = 0
    while lam < lam_end - 1e-5:
        lam_next = torch.minimum(lam_end, lam + controller.h)
        lam_target, renoise = lam_next, 0.0
        if eta > 0:
            lam_target, renoise = ancestral_target(lam, lam_next, lam_end, eta)
        if eps is None:
            denoised = denoise(denoiser, x, float(sigma_of(lam)))
            eps = (x - denoised) / sigma_of(lam)
        h = lam_target - lam
        if order == 2:
            low = first_order(x, eps, lam, lam_target)
            eps_1 = eps_at(intermediate(x, eps, lam, h, 0.5), lam + 0.5 * h)
            high = second_order(x, eps, eps_1, lam, lam_target, 0.5)
        else:
            r1, r2 = 1 / 3, 2 / 3
            eps_1 = eps_at(intermediate(x, eps, lam, h, r1), lam + r1 * h)
            low = second_order(x, eps, eps_1, lam, lam_target, r1)
            eps_2 = eps_at(third_order_intermediate(x, eps, eps_1, lam, h, r1, r2), lam + r2 * h)
            high = third_order(x, eps, eps_2, lam, lam_target, r2)
        delta = torch.clamp(rtol * torch.maximum(low.abs(), x_prev.abs()), min=atol)
        error = float(torch.linalg.vector_norm((low - high) / delta) / x.numel() ** 0.5)
        if controller.propose(error):
            x_prev = low
            x = high + noise(x) * renoise if renoise > 0 else high
            report_step(callback, accepted, x, float(sigma_of(lam)), float(sigma_of(lam_next)), denoised)
            lam = lam_next
            accepted += 1
            denoised = eps = None
    return x
