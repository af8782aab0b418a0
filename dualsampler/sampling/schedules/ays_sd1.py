"""`AYS SD1`: Align Your Steps (Sabour, Fidler and Kreis 2024) for Stable Diffusion 1.x:
NVIDIA's published 10-step sigma table, resampled log-linearly to `steps + 1` points
(`loglinear_interp`), the last set to 0.

Source: the table in NVIDIA's "Align Your Steps" how-to (research.nvidia.com/labs/toronto-ai/AlignYourSteps),
as the Impact Pack offers it. The table does not depend on the model's own sigmas.
"""

from torch import Tensor

from ..model_sampling import ModelSampling
from .loglinear import table_schedule

AYS_SD1_LEVELS = (14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582)


def ays_sd1(ms: ModelSampling, steps: int) -> Tensor:
    return table_schedule(AYS_SD1_LEVELS, steps)
