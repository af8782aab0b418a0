"""DEIS, the time-quadratic Adams-Bashforth variant tAB-DEIS (Zhang & Chen 2023, "Fast Sampling of Diffusion Models
with Exponential Integrator", eq. 15), as diff-sampler and upstream run it on sigma lists.

The sigma list is mapped to the time `t` of a VP SDE fitted to EDM's range (beta chosen so that `sigma(t = 1e-3) =
0.002`, `sigma(t = 1) = 80`); the derivative `d = (x - D) / sigma` is extrapolated by a Lagrange polynomial in `t`
through the last `order` steps and integrated in sigma: `x <- x + sum_j C_ij d_{i-j}`,
`C_ij = integral over [t_i, t_{i+1}] of L_j(tau) dsigma/dtau`, by the same 10,000-node sum as upstream.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, report, sigma_list, to_d
from .ipndm import check_max_order

QUADRATURE_NODES = 10_000


def vp_fit(eps_s: float = 1e-3, sigma_min: float = 0.002, sigma_max: float = 80.0) -> tuple[float, float]:
    """`(beta_min, beta_d)` of the VP SDE `sigma(t)^2 = exp(beta_d t^2 / 2 + beta_min t) - 1` through
    `(eps_s, sigma_min)` and `(1, sigma_max)`."""
    log_min, log_max = math.log(sigma_min**2 + 1), math.log(sigma_max**2 + 1)
    beta_d = 2 * (log_min / eps_s - log_max) / (eps_s - 1)
    return log_max - beta_d / 2, beta_d


def sigma_to_vp_time(sigma: float, beta_min: float, beta_d: float) -> float:
    return (math.sqrt(beta_min**2 + 2 * beta_d * math.log(sigma**2 + 1)) - beta_min) / beta_d


def deis_weights(times: list[float], i: int, order: int, beta_min: float, beta_d: float) -> list[float]:
    """`C_ij` for step `i` (from `times[i]` to `times[i+1]`) at `order`, the nodes `times[i], times[i-1], ...`.

    `dsigma/dtau = (beta_d tau + beta_min) / (2 sqrt(a (1 - a)))` with `a = exp(-beta_d tau^2 / 2 - beta_min tau)`;
    the integral is `(t_{i+1} - t_i) / N` times the sum over N equally spaced points from `t_i` to `t_{i+1}`."""
    t_cur, t_next = times[i], times[i + 1]
    tau = torch.linspace(t_cur, t_next, QUADRATURE_NODES, dtype=torch.float64)
    a = torch.exp(-0.5 * beta_d * tau**2 - beta_min * tau)
    dsigma = 0.5 * (beta_d * tau + beta_min) / torch.sqrt(a * (1 - a))
    nodes = [times[i - k] for k in range(order)]
    weights = []
    for j in range(order):
        basis = torch.ones_like(tau)
        for k, node in enumerate(nodes):
            if k != j:
                basis = basis * (tau - node) / (nodes[j] - node)
        weights.append(float((dsigma * basis).sum()) * (t_next - t_cur) / QUADRATURE_NODES)
    return weights


def sample_deis(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    max_order: int = 3,
) -> Tensor:
    """`x <- x + sum_j C_ij d_{i-j}` at order `min(i+1, max_order)` (`deis_weights`); the first step and any step to
    sigma 0 are Euler steps `x + (s_next - s) d`."""
    check_max_order(max_order)
    s = sigma_list(sigmas)
    beta_min, beta_d = vp_fit()
    times = [sigma_to_vp_time(sigma, beta_min, beta_d) for sigma in s]
    history: list[Tensor] = []
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        d = to_d(x, s[i], denoised)
        history = [d, *history][:max_order]
        if s[i + 1] <= 0 or len(history) == 1:
            x = x + d * (s[i + 1] - s[i])
        else:
            weights = deis_weights(times, i, len(history), beta_min, beta_d)
            x = x + sum(w * d_k for w, d_k in zip(weights, history))
        report(callback, i, x, s[i], denoised)
    return x
