"""`beta` (Lee et al. 2024): timesteps at the Beta(0.6, 0.6) quantiles of `1 - k/steps`, rounded, then 0.

Repeated timesteps are dropped as upstream does; that only happens for several hundred steps.
"""

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from ..model_sampling import ModelSampling


def beta(ms: ModelSampling, steps: int, alpha: float = 0.6, beta_: float = 0.6) -> Tensor:
    last = len(ms.sigmas) - 1
    quantiles = 1 - np.linspace(0, 1, steps, endpoint=False)
    ts = np.rint(stats.beta.ppf(quantiles, alpha, beta_) * last).astype(int)
    keep = [t for k, t in enumerate(ts) if k == 0 or t != ts[k - 1]]
    return torch.cat([ms.sigmas[keep], torch.zeros(1)])
