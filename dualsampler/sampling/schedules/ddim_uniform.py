"""`ddim_uniform`: training sigmas at timesteps `1, 1+c, 1+2c, ...` with `c = N // steps`, descending, then 0.

Upstream walks the timesteps up to N and so returns an extra step when `N % steps` leaves room for one
(7 steps -> 8 sigmas); here exactly `steps` timesteps are taken, so every schedule has `steps + 1` entries.
"""

import torch
from torch import Tensor

from ..model_sampling import ModelSampling


def ddim_uniform(ms: ModelSampling, steps: int) -> Tensor:
    stride = max(len(ms.sigmas) // steps, 1)
    idx = [min(1 + k * stride, len(ms.sigmas) - 1) for k in range(steps)]
    return torch.cat([ms.sigmas[idx].flip(0), torch.zeros(1)])
