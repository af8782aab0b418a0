"""Linear multistep (Adams-Bashforth in sigma) of order up to 4 on the probability-flow ODE (Karras et al. 2022)."""

from __future__ import annotations

import numpy as np
from numpy.polynomial import polynomial as P
from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, report, sigma_list, to_d


def lms_coefficient(nodes: list[float], j: int, lo: float, hi: float) -> float:
    """`int_lo^hi L_j(tau) dtau` for the Lagrange basis polynomial `L_j` over `nodes` (exact, by polynomial algebra)."""
    basis = np.array([1.0])
    for m, node in enumerate(nodes):
        if m != j:
            basis = P.polymul(basis, np.array([-node, 1.0]) / (nodes[j] - node))
    antiderivative = P.polyint(basis)
    return float(P.polyval(hi, antiderivative) - P.polyval(lo, antiderivative))


def sample_lms(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    order: int = 4,
) -> Tensor:
    """`x <- x + sum_j c_j d_{i-j}`, `c_j` the integral over [s_i, s_next] of the Lagrange polynomial through
    the last `min(i+1, order)` sigmas; one model call per step. The step to sigma 0 returns `D(x, s_i)`, as
    upstream does."""
    s = sigma_list(sigmas)
    ds: list[Tensor] = []
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        ds.insert(0, to_d(x, s[i], denoised))
        del ds[order:]
        if s[i + 1] == 0:
            x = denoised
        else:
            nodes = [s[i - j] for j in range(len(ds))]
            for j, d in enumerate(ds):
                x = x + lms_coefficient(nodes, j, s[i], s[i + 1]) * d
        report(callback, i, x, s[i], denoised)
    return x
