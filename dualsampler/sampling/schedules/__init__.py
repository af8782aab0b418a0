"""Noise schedules: each maps `(model_sampling, steps)` to `steps` descending sigmas plus a final 0 (SPEC §2).

Names as users know them: ComfyUI's nine, then the Impact Pack's `AYS SDXL`, `AYS SD1`, `AYS SVD` and
`GITS[coeff=1.2]`. `ddim_uniform` may have one more step (upstream's walk to the top of the range).
"""

from __future__ import annotations

from collections.abc import Callable
from torch import Tensor

from ..model_sampling import ModelSampling, check_model_sampling
from .ays_sd1 import ays_sd1
from .ays_sdxl import ays_sdxl
from .ays_svd import ays_svd
from .beta import beta
from .ddim_uniform import ddim_uniform
from .exponential import exponential
from .gits import gits
from .karras import karras, karras_sigmas
from .kl_optimal import kl_optimal
from .linear_quadratic import linear_quadratic
from .normal import normal
from .sgm_uniform import sgm_uniform
from .simple import simple
from ...validation import MAX_STEPS, check_bounded, check_choice

SCHEDULE_FUNCTIONS: dict[str, Callable[[ModelSampling, int], Tensor]] = {
    "normal": normal,
    "karras": karras,
    "exponential": exponential,
    "sgm_uniform": sgm_uniform,
    "simple": simple,
    "ddim_uniform": ddim_uniform,
    "beta": beta,
    "linear_quadratic": linear_quadratic,
    "kl_optimal": kl_optimal,
    "AYS SDXL": ays_sdxl,
    "AYS SD1": ays_sd1,
    "AYS SVD": ays_svd,
    "GITS[coeff=1.2]": gits,
}
SCHEDULERS: tuple[str, ...] = tuple(SCHEDULE_FUNCTIONS)


def check_scheduler(scheduler: str) -> str:
    """One of SCHEDULERS -> the name."""
    return check_choice(scheduler, "scheduler", SCHEDULERS)


def check_steps(steps: int, name: str = "steps") -> int:
    """An integer within `BOUNDS['steps']` -> int."""
    return int(check_bounded(steps, "steps", name))


def schedule_sigmas(scheduler: str, steps: int, model_sampling: ModelSampling) -> Tensor:
    """`get_sigmas` without its checks (callers checked the name and `steps`)."""
    return SCHEDULE_FUNCTIONS[scheduler](model_sampling, steps).float()


def get_sigmas(scheduler: str, steps: int, model_sampling: ModelSampling | None = None) -> Tensor:
    """`steps + 1` sigmas of the named schedule, descending, the last 0 (float32)."""
    check_scheduler(scheduler)
    steps = check_steps(steps)
    check_model_sampling(model_sampling)
    return schedule_sigmas(scheduler, steps, model_sampling or ModelSampling())


__all__ = ["MAX_STEPS", "SCHEDULERS", "SCHEDULE_FUNCTIONS", "check_scheduler", "check_steps", "get_sigmas",
           "karras_sigmas", "schedule_sigmas"]
