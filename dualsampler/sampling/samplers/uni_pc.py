"""UniPC: unified predictor-corrector multistep solver in data prediction (Zhao et al. 2023), order 3,
variants `bh1` (B(h) = h) and `bh2` (B(h) = e^h - 1), lower orders at the start and at the end.

Works in sigma space with `lambda = -log(sigma)`. As upstream does, a final sigma of 0 is replaced by 0.001
(UniPC's log-sigma steps cannot reach 0), so the result keeps noise of std 0.001.

Over a one-step sigma list (what per-step region modes call) this takes a first-order step. Upstream's order
`min(3, len(sigmas) - 2)` is 0 there, so it evaluates the model once and only rescales x by
`sqrt(1 + s_last^2) / sqrt(1 + s_0^2)`: `upstream_one_step_uni_pc` reproduces that (a deliberate deviation,
SPEC §10).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, report, sigma_list

FINAL_SIGMA = 1e-3
UNI_PC_VARIANTS = frozenset({"uni_pc", "uni_pc_bh2"})


def unipc_coefficients(rks: list[float], hh: float, b_h: float, order: int) -> tuple[Tensor, Tensor]:
    """`R[i-1, k] = rks[k]^(i-1)` and `b[i-1] = phi_{i+1}(hh) * i! / B(h)`, `phi_1 = expm1(hh)/hh`, for i = 1..order."""
    ratios = torch.tensor(rks, dtype=torch.float64)
    rows, b = [], []
    phi = math.expm1(hh) / hh - 1
    factorial = 1
    for i in range(1, order + 1):
        rows.append(ratios ** (i - 1))
        b.append(phi * factorial / b_h)
        factorial *= i + 1
        phi = phi / hh - 1 / factorial
    return torch.stack(rows), torch.tensor(b, dtype=torch.float64)


def unipc_update(
    x: Tensor,
    history: list[tuple[float, Tensor]],
    sigma_next: float,
    order: int,
    variant: str,
    model_next: Callable[[Tensor], Tensor] | None,
) -> tuple[Tensor, Tensor | None]:
    """One UniP predictor step to `sigma_next` from the last `order` (sigma, D) pairs, then the UniC corrector
    with `D(x_pred, sigma_next)` when `model_next` is given. Returns the new x and that model output."""
    sigma_0, m0 = history[-1]
    lam_0, lam_t = -math.log(sigma_0), -math.log(sigma_next)
    h = lam_t - lam_0
    rks, d1s = [], []
    for k in range(1, order):
        sigma_k, m_k = history[-(k + 1)]
        rk = (-math.log(sigma_k) - lam_0) / h
        rks.append(rk)
        d1s.append((m_k - m0) / rk)
    rks.append(1.0)
    hh = -h
    b_h = hh if variant == "bh1" else math.expm1(hh)
    R, b = unipc_coefficients(rks, hh, b_h, order)
    x_base = (sigma_next / sigma_0) * x - math.expm1(hh) * m0
    if d1s:
        rhos_p = [0.5] if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1]).tolist()
        x_pred = x_base - b_h * sum(r * d for r, d in zip(rhos_p, d1s))
    else:
        x_pred = x_base
    if model_next is None:
        return x_pred, None
    m_t = model_next(x_pred)
    rhos_c = [0.5] if order == 1 else torch.linalg.solve(R, b).tolist()
    corr = sum(r * d for r, d in zip(rhos_c[:-1], d1s)) if d1s else 0.0
    return x_base - b_h * (corr + rhos_c[-1] * (m_t - m0)), m_t


def sample_uni_pc(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    variant: str = "bh1",
    order: int = 3,
) -> Tensor:
    """Multistep UniPC: each step predicts with UniP-p and corrects with UniC using the model call at the new
    point, which is reused as the next step's history; no corrector on the last step (one call per step)."""
    s = sigma_list(sigmas)
    if len(s) < 2:
        return x
    if s[-1] == 0:
        s[-1] = min(FINAL_SIGMA, s[-2] / 2)
    steps = len(s) - 1
    order = max(1, min(order, steps - 1)) if steps > 1 else 1
    denoised = denoise(denoiser, x, s[0])
    history = [(s[0], denoised)]
    for step in range(1, steps + 1):
        step_order = min(order, step, steps + 1 - step)
        last = step == steps
        model_next = None if last else (lambda z, sig=s[step]: denoise(denoiser, z, sig))
        x, m_t = unipc_update(x, history, s[step], step_order, variant, model_next)
        report(callback, step - 1, x, s[step - 1], history[-1][1])
        if m_t is not None:
            history.append((s[step], m_t))
            del history[:-order]
    return x


def sample_uni_pc_bh2(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """UniPC with `B(h) = e^h - 1` (variant bh2), recommended for guided sampling."""
    return sample_uni_pc(denoiser, x, sigmas, callback=callback, variant="bh2")


def upstream_one_step_uni_pc(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """Upstream's UniPC over a one-step sigma list `[s_0, s_1]`: one model call at `s_0` (reported, unused), then
    `x * sqrt(1 + s_1^2) / sqrt(1 + s_0^2)` with a final 0 read as 0.001; x is otherwise left as it is."""
    s = sigma_list(sigmas)
    if len(s) != 2:
        raise ValueError(f"sigmas must hold exactly two entries (one step), got {len(s)}")
    last = FINAL_SIGMA if s[-1] == 0 else s[-1]
    report(callback, 0, x, s[0], denoise(denoiser, x, s[0]))
    return x * (math.sqrt(1 + last**2) / math.sqrt(1 + s[0] ** 2))
