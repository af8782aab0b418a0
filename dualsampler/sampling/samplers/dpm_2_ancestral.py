"""Ancestral DPM-Solver-2: the midpoint step down to `sigma_down`, then fresh noise of std `sigma_up`."""

from __future__ import annotations

import math

from torch import Tensor

from ..flow_sampling import flow_ancestral_step, is_flow
from .common import Callback, Denoiser, NoiseFn, ancestral_step, denoise, report, require_noise, sigma_list, to_d


def sample_dpm_2_ancestral(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    model_sampling: object = None,
) -> Tensor:
    """dpm_2 from `s` to `sigma_down` (log midpoint), then `x += sigma_up * z` (eta = 1); under a flow model
    sampling upstream's rectified-flow split: `x <- scale x + renoise z` after the step (`flow_ancestral_step`)."""
    noise = require_noise(noise, "dpm_2_ancestral")
    s = sigma_list(sigmas)
    flow = is_flow(model_sampling)
    for i in range(len(s) - 1):
        denoised = denoise(denoiser, x, s[i])
        if flow:
            down, scale, up = flow_ancestral_step(s[i], s[i + 1]) if s[i + 1] > 0 else (0.0, 1.0, 0.0)
        else:
            down, up = ancestral_step(s[i], s[i + 1])
        d = to_d(x, s[i], denoised)
        if down == 0:
            x = x + d * (down - s[i])
        else:
            s_mid = math.exp((math.log(s[i]) + math.log(down)) / 2)
            x_mid = x + d * (s_mid - s[i])
            x = x + to_d(x_mid, s_mid, denoise(denoiser, x_mid, s_mid)) * (down - s[i])
            x = (scale * x if flow else x) + noise(x) * up
        report(callback, i, x, s[i], denoised)
    return x
