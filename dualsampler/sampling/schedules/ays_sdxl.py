"""`AYS SDXL`: Align Your Steps (Sabour, Fidler and Kreis 2024) for Stable Diffusion XL:
NVIDIA's published 10-step sigma table, resampled log-linearly to `steps + 1` points
(`loglinear_interp`), the last set to 0.

Source: the table in NVIDIA's "Align Your Steps" how-to (research.nvidia.com/labs/toronto-ai/AlignYourSteps),
as the Impact Pack offers it. The table does not depend on the model's own sigmas.
"""

from torch import Tensor

from ..model_sampling import ModelSampling
from .loglinear import table_schedule

AYS_SDXL_LEVELS = (14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141, 0.5550693289, 0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582)


def ays_sdxl(ms: ModelSampling, steps: int) -> Tensor:
    return table_schedule(AYS_SDXL_LEVELS, steps)
