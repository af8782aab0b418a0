"""`ddim_uniform`: the training sigmas at timesteps `1, 1+c, 1+2c, ...` below N with `c = max(N // steps, 1)`,
descending, then 0 (N = number of training sigmas).

This is upstream's walk: it runs up to the top of the training range, so it has one extra step when the
stride leaves room for it (7 steps on SD's 1000 timesteps: `c = 142`, timesteps 1 .. 995, 8 sigmas and 0),
and a text-to-image run starts at the top of the noise range. A model whose sigma at timestep 1 is 0
(zero terminal SNR read backwards) walks `steps + 1` strides and ends on that 0 instead of appending one.
"""

import math

import torch
from torch import Tensor

from ..model_sampling import ModelSampling


def ddim_uniform(ms: ModelSampling, steps: int) -> Tensor:
    n = len(ms.sigmas)
    ends_on_zero = math.isclose(float(ms.sigmas[1]), 0.0, abs_tol=1e-5)
    stride = max(n // (steps + 1 if ends_on_zero else steps), 1)
    walked = ms.sigmas[torch.arange(1, n, stride)].flip(0)
    return walked if ends_on_zero else torch.cat([walked, torch.zeros(1)])
