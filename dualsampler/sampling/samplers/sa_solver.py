"""SA-Solver: the Stochastic Adams predictor-corrector solver of Xue et al. 2023 (SA-Solver, data prediction in
log-SNR time), as upstream's `sa_solver`: predictor order 3, corrector order 4, noise strength tau = 1 for sigmas
between the model's 20% and 80% timesteps (ODE outside), seeded Gaussian noise, orders lowered near sigma 0."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from numpy.polynomial import polynomial as P
from torch import Tensor

from ..flow_sampling import half_log_snr, is_flow, offset_first_sigma, signal_scale
from ..model_sampling import ModelSampling
from .common import Callback, Denoiser, NoiseFn, denoise, report, require_noise, sigma_list

TauFn = Callable[[float], float]


def percent_to_sigma(model_sampling: object, percent: float) -> float:
    """Sigma at `percent` of the way through sampling: the (fractional) timestep `(1 - percent) * 999`, or a flow
    model sampling's own `percent_to_sigma`."""
    if is_flow(model_sampling):
        return model_sampling.percent_to_sigma(percent)  # type: ignore[attr-defined]
    return float(model_sampling.t_to_sigma(torch.tensor((1.0 - percent) * 999.0)))  # type: ignore[attr-defined]


def default_tau(denoiser: Denoiser, eta: float = 1.0, model_sampling: object = None) -> TauFn:
    """tau(sigma) = eta inside [sigma at 80%, sigma at 20%] of the model sampling (default: the denoiser's, else
    SD's), 0 outside: stochastic in the middle of sampling, deterministic at both ends."""
    model_sampling = model_sampling or getattr(denoiser, "model_sampling", None) or ModelSampling()
    start, end = percent_to_sigma(model_sampling, 0.2), percent_to_sigma(model_sampling, 0.8)
    return lambda sigma: eta if start >= sigma >= end else 0.0


def adams_coefficients(nodes: list[float], lambda_s: float, lambda_t: float, tau: float) -> list[float]:
    """`b_j = int_{lambda_s}^{lambda_t} k e^{k (l - lambda_t)} L_j(l) dl`, `k = 1 + tau^2`, `L_j` the Lagrange
    basis over `nodes` (Xue et al. 2023, eqs. 15 and 18, VP so alpha_t = 1). Exact, by parts:
    `int k e^{k(l - t)} p(l) dl = e^{k(l - t)} sum_n (-1)^n p^(n)(l) / k^n`."""
    k = 1.0 + tau**2
    decay = math.exp(-k * (lambda_t - lambda_s))
    out = []
    for j, node in enumerate(nodes):
        basis = np.array([1.0])
        for m, other in enumerate(nodes):
            if m != j:
                basis = P.polymul(basis, np.array([-other, 1.0]) / (node - other))
        at_t = at_s = 0.0
        derivative, scale = basis, 1.0
        while derivative.size and np.any(derivative):
            at_t += scale * P.polyval(lambda_t, derivative)
            at_s += scale * P.polyval(lambda_s, derivative)
            derivative, scale = P.polyder(derivative), -scale / k
        out.append(float(at_t - decay * at_s))
    return out


def scaled(coefficients: list[float], alpha: float) -> list[float]:
    """The Adams weights times the step's end `alpha` (1 for a VP model: the list itself)."""
    return coefficients if alpha == 1.0 else [alpha * b for b in coefficients]


def combine(coefficients: list[float], denoised: list[Tensor]) -> Tensor:
    """`sum_j b_j D_j` over the last `len(coefficients)` denoised predictions, oldest first."""
    recent = denoised[-len(coefficients):]
    total = coefficients[0] * recent[0]
    for b, d in zip(coefficients[1:], recent[1:]):
        total = total + b * d
    return total


def sample_sa_solver(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    tau: TauFn | None = None,
    s_noise: float = 1.0,
    predictor_order: int = 3,
    corrector_order: int = 4,
    use_pece: bool = False,
    model_sampling: object = None,
) -> Tensor:
    """With `l = -log(sigma)`, `h = l_{i+1} - l_i`, `tau = tau(s_{i+1})`, `n_i = s_{i+1} sqrt(1 - e^{-2 tau^2 h})
    s_noise z_i`: predictor `x~_{i+1} = (s_{i+1}/s_i) e^{-tau^2 h} x_i + sum_j b_j D_{i-j} + n_i` over the last
    `predictor_order` D's; corrector (from step 1) `x_{i+1} = (s_{i+1}/s_i) e^{-tau^2 h} x_i + sum_j b'_j D_{i+1-j}
    + n_i` over the last `corrector_order` D's including `D(x~_{i+1})`, the same noise `n_i`; `use_pece` evaluates
    the corrected state again (sa_solver_pece). Near sigma 0 the orders drop to the steps left; the step to
    sigma 0 returns D. Step `i` reports, after its model calls, `x~_i` and the prediction `D(x~_i)` from before
    any corrector, as upstream's callback does (so a consumer of the last x0, e.g. the Impact Pack's wrappers,
    gets the predicted D, not the PECE re-evaluation of the corrected state). Under a flow model sampling
    (upstream's form): `l = log((1 - sigma)/sigma)`, the b's scaled by the step's `alpha = 1 - sigma`, a first
    sigma of 1 moved just below it."""
    noise = require_noise(noise, "sa_solver")
    tau_fn = default_tau(denoiser, model_sampling=model_sampling) if tau is None else tau
    s = offset_first_sigma(sigma_list(sigmas), model_sampling)
    lam = [half_log_snr(v, model_sampling) if v > 0 else math.inf for v in s]
    max_order = max(predictor_order, corrector_order)
    lower_order_to_end = s[-1] == 0
    x_pred, h, tau_t, step_noise = x, 0.0, 0.0, None
    history: list[Tensor] = []
    for i in range(len(s) - 1):
        x_in = x_pred
        denoised = predicted = denoise(denoiser, x_in, s[i])
        history = (history + [denoised])[-max_order:]
        p_order = min(predictor_order, len(history))
        c_order = 0 if i == 0 or (s[i + 1] == 0 and not use_pece) else min(corrector_order, len(history))
        if lower_order_to_end:
            p_order = min(p_order, len(s) - 2 - i)
            c_order = min(c_order, len(s) - 1 - i)
        if c_order == 0:
            x = x_pred
        else:
            b = scaled(adams_coefficients(lam[i - c_order + 1 : i + 1], lam[i - 1], lam[i], tau_t),
                       signal_scale(s[i], model_sampling))
            x = (s[i] / s[i - 1]) * math.exp(-(tau_t**2) * h) * x + combine(b, history)
            if step_noise is not None:
                x = x + step_noise
            if use_pece:
                denoised = denoise(denoiser, x, s[i])
                history[-1] = denoised
        if s[i + 1] == 0:
            x_pred = denoised
        else:
            tau_t = tau_fn(s[i + 1])
            b = scaled(adams_coefficients(lam[i - p_order + 1 : i + 1], lam[i], lam[i + 1], tau_t),
                       signal_scale(s[i + 1], model_sampling))
            h = lam[i + 1] - lam[i]
            x_pred = (s[i + 1] / s[i]) * math.exp(-(tau_t**2) * h) * x + combine(b, history)
            step_noise = None
            if tau_t > 0 and s_noise > 0:
                step_noise = noise(x) * (s[i + 1] * math.sqrt(-math.expm1(-2 * tau_t**2 * h)) * s_noise)
                x_pred = x_pred + step_noise
        report(callback, i, x_in, s[i], predicted)
    return x_pred
