"""iPNDM (Zhang & Chen 2023, "Fast Sampling of Diffusion Models with Exponential Integrator", Section 4 / Appendix:
improved pseudo numerical methods): explicit Adams-Bashforth in sigma on the probability-flow ODE with the
constant-step coefficients up to order 4, warmed up with lower orders from the first steps."""

from __future__ import annotations

from torch import Tensor

from ...validation import check_choice
from .common import Callback, Denoiser, NoiseFn, denoise, report, sigma_list, to_d

# Adams-Bashforth weights of d_i, d_{i-1}, ... for each order (constant step size).
ADAMS_BASHFORTH = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}


def check_max_order(max_order: int) -> int:
    """1, 2, 3 or 4 (the multistep order's cap)."""
    return check_choice(max_order, "max_order", (1, 2, 3, 4))


def sample_ipndm(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    max_order: int = 4,
) -> Tensor:
    """`x <- x + (s_next - s) * sum_k c_k d_{i-k}` with `d = (x - D(x, s)) / s` and the order-`min(i+1, max_order)`
    weights `c` of `ADAMS_BASHFORTH`; the step to sigma 0 returns `D(x, s)`."""
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
            weights = ADAMS_BASHFORTH[len(history)]
            x = x + sum(w * d_k for w, d_k in zip(weights, history)) * (s[i + 1] - s[i])
        report(callback, i, x, s[i], denoised)
    return x
