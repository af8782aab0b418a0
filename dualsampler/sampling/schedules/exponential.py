"""`exponential`: sigmas evenly spaced in log between sigma_max and sigma_min, then 0.

Computed in float32 as upstream computes it (the SDE samplers' Brownian tree is keyed by the schedule's ends).
"""

import math

import torch
from torch import Tensor

from ..model_sampling import ModelSampling


def exponential(ms: ModelSampling, steps: int) -> Tensor:
    logs = torch.linspace(math.log(ms.sigma_max), math.log(ms.sigma_min), steps, dtype=torch.float32)
    return torch.cat([logs.exp(), torch.zeros(1)])
