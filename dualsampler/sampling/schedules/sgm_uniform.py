"""`sgm_uniform`: `steps+1` evenly spaced timesteps from t(sigma_max) to t(sigma_min), the last dropped, then 0."""

import torch
from torch import Tensor

from ..model_sampling import ModelSampling
from .normal import timestep_spaced


def sgm_uniform(ms: ModelSampling, steps: int) -> Tensor:
    return torch.cat([timestep_spaced(ms, steps + 1)[:-1], torch.zeros(1)])
