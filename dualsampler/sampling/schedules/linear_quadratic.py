"""`linear_quadratic` (Genmo's Mochi schedule): noise levels `1 - u_k` times sigma_max, where `u` rises linearly
from 0 by `threshold/L` per step for the first `L = steps // 2` steps, then follows the quadratic
`a*k^2 + b*k + c` for k = L .. steps-1 that meets the linear part at k = L and reaches 1 at k = steps
(`a = (L - threshold*steps) / (L * Q^2)`, `b = threshold/L - 2(L - threshold*steps)/Q^2`, `c = a*L^2`,
`Q = steps - L`, threshold 0.025). One step is `[sigma_max, 0]`. Source: genmoai/models, mochi_preview/infer.py,
as offered by ComfyUI's scheduler list.
"""

import torch
from torch import Tensor

from ..model_sampling import ModelSampling


def linear_quadratic_levels(steps: int, threshold: float = 0.025) -> list[float]:
    """The `steps + 1` levels `1 - u_k` in [1, 0] (python floats)."""
    if steps == 1:
        return [1.0, 0.0]
    linear = steps // 2
    quad = steps - linear
    diff = linear - threshold * steps
    a = diff / (linear * quad**2)
    b = threshold / linear - 2 * diff / quad**2
    c = a * linear**2
    rises = [k * threshold / linear for k in range(linear)] + [a * k * k + b * k + c for k in range(linear, steps)]
    return [1.0 - u for u in rises + [1.0]]


def linear_quadratic(ms: ModelSampling, steps: int) -> Tensor:
    return torch.tensor(linear_quadratic_levels(steps), dtype=torch.float32) * torch.tensor(ms.sigma_max)
