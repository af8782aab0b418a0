"""iPNDM with variable step sizes (Zhou et al. 2024, "Fast ODE-based Sampling for Diffusion Models in Around 5
Steps", diff-sampler's `ipndm_v`): iPNDM's Adams-Bashforth steps in sigma with weights that follow the actual
step sizes of the schedule, up to order 4, warmed up with lower orders from the first steps."""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, report, sigma_list, to_d
from .ipndm import check_max_order


def variable_step_weights(steps: list[float]) -> list[float]:
    """Weights of `d_i, d_{i-1}, ...` from the step sizes `steps = [h_i, h_{i-1}, ...]` (`h_i = s_{i+1} - s_i`),
    one weight per step size given (order `len(steps)`, at most 4). Order 2 is the exact variable-step
    Adams-Bashforth rule `(1 + r/2, -r/2)`, `r = h_i / h_{i-1}`; orders 3 and 4 add diff-sampler's correction
    terms, which reduce to AB3 on a uniform grid (order 4 gives `(57, -65, 43, -11) / 24` there)."""
    h = steps
    if len(h) == 1:
        return [1.0]
    ratio = h[0] / h[1]
    weights = [1 + ratio / 2, -ratio / 2]
    if len(h) == 2:
        return weights
    second = (1 - h[0] ** 2 / (3 * h[1] * (h[1] + h[2]))) / 2
    weights = [weights[0] + second, weights[1] - (1 + h[1] / h[2]) * second, second * h[1] / h[2]]
    if len(h) == 3:
        return weights
    span_1, span_2 = h[0] + h[1], h[0] + h[1] + h[2]
    third = ((1 - h[0] / (3 * span_1)) / 2 + (1 - h[0] / (2 * span_1)) * h[0] / (6 * span_2)) * (
        h[0] * span_1 * span_2 / (h[1] * (h[1] + h[2]) * (h[1] + h[2] + h[3]))
    )
    q = h[1] * (h[1] + h[2]) / (h[2] * (h[2] + h[3]))
    return [
        weights[0] + third,
        weights[1] - (1 + h[1] / h[2] + q) * third,
        weights[2] + (h[1] / h[2] + q * (1 + h[2] / h[3])) * third,
        -third * q * h[1] / h[2],
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
    history: list[Tensor] = []
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        d = to_d(x, s[i], denoised)
        history = [d, *history][:max_order]
        if s[i + 1] == 0:
            x = denoised
        else:
            steps = [s[i + 1 - k] - s[i - k] for k in range(len(history))]
            weights = variable_step_weights(steps)
            x = x + sum(w * d_k for w, d_k in zip(weights, history)) * (s[i + 1] - s[i])
        report(callback, i, x, s[i], denoised)
    return x
