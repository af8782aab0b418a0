"""`kl_optimal` (Sabour et al. 2024, "Align Your Steps", the KL-optimal schedule of its appendix):
`sigma_k = tan((1 - k/(steps-1)) * atan(sigma_max) + k/(steps-1) * atan(sigma_min))`, then 0.

Computed in float32 as upstream does. One step, where the formula divides by zero (upstream returns NaN),
gives `[sigma_max, 0]`, the formula's k = 0 point.
"""

import math

import torch
from torch import Tensor

from ..model_sampling import ModelSampling


def kl_optimal(ms: ModelSampling, steps: int) -> Tensor:
    frac = torch.arange(steps, dtype=torch.float32) / max(steps - 1, 1)
    angles = frac * math.atan(ms.sigma_min) + (1 - frac) * math.atan(ms.sigma_max)
    return torch.cat([angles.tan(), torch.zeros(1)])
