"""`simple`: every `N/steps`-th training sigma counted from the top (N = number of training sigmas), then 0."""

import torch
from torch import Tensor

from ..model_sampling import ModelSampling


def simple(ms: ModelSampling, steps: int) -> Tensor:
    stride = len(ms.sigmas) / steps
    picked = [ms.sigmas[-(1 + int(k * stride))] for k in range(steps)]
    return torch.cat([torch.stack(picked), torch.zeros(1)])
