"""`AYS SVD`: Align Your Steps (Sabour, Fidler and Kreis 2024) for Stable Video Diffusion:
NVIDIA's published 10-step sigma table, resampled log-linearly to `steps + 1` points
(`loglinear_interp`), the last set to 0.

Source: the table in NVIDIA's "Align Your Steps" how-to (research.nvidia.com/labs/toronto-ai/AlignYourSteps),
as the Impact Pack offers it. The table does not depend on the model's own sigmas.
"""

from torch import Tensor

from ..model_sampling import ModelSampling
from .loglinear import table_schedule

AYS_SVD_LEVELS = (700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002)


def ays_svd(ms: ModelSampling, steps: int) -> Tensor:
    return table_schedule(AYS_SVD_LEVELS, steps)
