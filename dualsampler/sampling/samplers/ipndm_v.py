"""iPNDM with variable step sizes (Zhou et al. 2024, "Fast ODE-based Sampling for Diffusion Models in Around 5
Steps", diff-sampler's `ipndm_v`): iPNDM's Adams-Bashforth steps in sigma with weights that follow the actual
step sizes of the schedule, up to order 4, warmed up with lower orders from the first steps."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, report, sigma_list, to_d
from .ipndm import check_max_order


def variable_step_weights(steps: Sequence[float | Tensor]) -> list[float | Tensor]:
    """Weights of `d_i, d_{i-1}, ...` from the step sizes `steps = [h_i, h_{i-1}, ...]` (`h_i = s_{i+1} - s_i`),
    one weight per step size given (order `len(steps)`, at most 4), in the precision of the step sizes given.

    Order 2 is the exact variable-step Adams-Bashforth rule `(1 + r/2, -r/2)`, `r = h_i / h_{i-1}`; orders 3 and 4
    add diff-sampler's correction terms `a_3 = (1 - h_i^2 / (3 h_{i-1} (h_{i-1} + h_{i-2}))) / 2` and `a_4`, which
    reduce to AB3 on a uniform grid (order 4 gives `(57, -65, 43, -11) / 24` there). The operations run in
    upstream's order: on very unequal steps (linear_quadratic's) the weights reach the hundreds and float32
    rounding of another order would show in the result."""
    h = steps
    if len(h) == 1:
        return [1.0]
    r = h[0] / h[1]
    weights = [(2 + r) / 2, -r / 2]
    if len(h) == 2:
        return weights
    span_1 = h[0] + h[1]
    a_3 = (1 - h[0] / (3 * span_1) * (h[0] * span_1) / (h[1] * (h[1] + h[2]))) / 2
    r_1 = h[1] / h[2]
    if len(h) == 3:
        return [weights[0] + a_3, weights[1] - (1 + r_1) * a_3, a_3 * h[1] / h[2]]
    span_2 = span_1 + h[2]
    a_4 = ((1 - h[0] / (3 * span_1)) / 2 + (1 - h[0] / (2 * span_1)) * h[0] / (6 * span_2)) * (
        h[0] * span_1 * span_2
    ) / (h[1] * (h[1] + h[2]) * (h[1] + h[2] + h[3]))
    q = h[1] * (h[1] + h[2]) / (h[2] * (h[2] + h[3]))
    return [
        weights[0] + a_3 + a_4,
        weights[1] - (1 + r_1) * a_3 - (1 + r_1 + q) * a_4,
        a_3 * h[1] / h[2] + (r_1 + q * (1 + h[2] / h[3])) * a_4,
        -a_4 * q * h[1] / h[2],
    ]


def sample_ipndm_v(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    max_order: int = 4,
) -> Tensor:
    """`x <- x + h_i * sum_k c_k d_{i-k}` with `d = (x - D(x, s)) / s`, `c = variable_step_weights(h_i, h_{i-1},
    ...)` at order `min(i+1, max_order)`; the step to sigma 0 returns `D(x, s)`."""
    check_max_order(max_order)
    s = sigma_list(sigmas)
    # Step sizes and weights in the sigma list's own precision, as upstream computes them: with very unequal steps
    # (linear_quadratic's) the weights are large and float32 rounding of the small steps shows in the result.
    h = list(torch.diff(sigmas.detach().cpu()))
    history: list[Tensor] = []
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        d = to_d(x, s[i], denoised)
        history = [d, *history][:max_order]
        if s[i + 1] == 0:
            x = denoised
        else:
            weights = variable_step_weights([h[i - k] for k in range(len(history))])
            x = x + sum(float(w) * d_k for w, d_k in zip(weights, history)) * float(h[i])
        report(callback, i, x, s[i], denoised)
    return x
