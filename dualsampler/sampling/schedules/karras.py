"""`karras` (Karras et al. 2022, eq. 5): `(smax^(1/rho) + r*(smin^(1/rho) - smax^(1/rho)))^rho`, r in [0,1], rho 7.

Computed in float32 as upstream computes it: the SDE samplers' Brownian tree is keyed by the schedule's ends, so
a last-bit difference in sigma_max gives another noise path.
"""

import torch
from torch import Tensor

from ..model_sampling import ModelSampling


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, rho: float = 7.0) -> Tensor:
    ramp = torch.linspace(0, 1, steps, dtype=torch.float32)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def karras(ms: ModelSampling, steps: int) -> Tensor:
    return torch.cat([karras_sigmas(ms.sigma_min, ms.sigma_max, steps), torch.zeros(1)])
