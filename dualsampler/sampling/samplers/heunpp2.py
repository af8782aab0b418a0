"""Heun++ (heunpp2): Heun's method (Karras et al. 2022, Algorithm 1 without churn) with a third stage and
sigma-weighted slopes, as in Carzit's sd-webui-samplers-scheduler (MIT) which ComfyUI adopted.

The slopes are weighted by how far down the schedule their sigma lies (`w_k = sigma_k / (m * sigmas[0])` for the
stages past the first, `m` the stage count), so early steps lean on the first slope. The weights do not sum the
slopes to a second-order rule, so the method is first order; one, two or three model calls per step.
"""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn, denoise, report, sigma_list, to_d


def sample_heunpp2(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """With `dt = s_{i+1} - s_i`, `d_1 = d(x, s_i)`, Euler predictors `x_2 = x + d_1 dt`, `x_3 = x_2 + d_2 dt'`:
    three stages `x <- x + (w_1 d_1 + w_2 d_2 + w_3 d_3) dt`, `w_{2,3} = s_{i+1,i+2} / (3 s_0)`, `w_1 = 1 - w_2 - w_3`;
    the step before the last uses two (`w_2 = s_{i+1} / (2 s_0)`), the step to the last sigma is Euler's."""
    s = sigma_list(sigmas)
    last = s[-1]
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        d = to_d(x, s[i], denoised)
        dt = s[i + 1] - s[i]
        if s[i + 1] == last:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = to_d(x_2, s[i + 1], denoise(denoiser, x_2, s[i + 1]))
            if s[i + 2] == last:
                w_2 = s[i + 1] / (2 * s[0])
                x = x + (d * (1 - w_2) + d_2 * w_2) * dt
            else:
                x_3 = x_2 + d_2 * (s[i + 2] - s[i + 1])
                d_3 = to_d(x_3, s[i + 2], denoise(denoiser, x_3, s[i + 2]))
                w_2, w_3 = s[i + 1] / (3 * s[0]), s[i + 2] / (3 * s[0])
                x = x + (d * (1 - w_2 - w_3) + d_2 * w_2 + d_3 * w_3) * dt
        report(callback, i, x, s[i], denoised)
    return x
