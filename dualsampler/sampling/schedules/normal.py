"""`normal`: timesteps linearly from t(sigma_max) to t(sigma_min), `steps` points, then 0."""

import torch
from torch import Tensor

from ..model_sampling import ModelSampling


def timestep_spaced(ms: ModelSampling, count: int) -> Tensor:
    """Sigmas at `count` timesteps evenly spaced from t(sigma_max) down to t(sigma_min) inclusive."""
    start = ms.sigma_to_t(torch.tensor(ms.sigma_max))
    end = ms.sigma_to_t(torch.tensor(ms.sigma_min))
    return ms.t_to_sigma(torch.linspace(float(start), float(end), count))


def normal(ms: ModelSampling, steps: int) -> Tensor:
    return torch.cat([timestep_spaced(ms, steps), torch.zeros(1)])
