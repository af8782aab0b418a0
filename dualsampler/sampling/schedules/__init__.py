"""Noise schedules: each maps `(model_sampling, steps)` to `steps` descending sigmas plus a final 0 (SPEC §2)."""

from __future__ import annotations

from numbers import Integral
from typing import Callable

from torch import Tensor

from ..model_sampling import ModelSampling
from .beta import beta
from .ddim_uniform import ddim_uniform
from .exponential import exponential
from .karras import karras, karras_sigmas
from .normal import normal
from .sgm_uniform import sgm_uniform
from .simple import simple

SCHEDULE_FUNCTIONS: dict[str, Callable[[ModelSampling, int], Tensor]] = {
    "normal": normal,
    "karras": karras,
    "exponential": exponential,
    "sgm_uniform": sgm_uniform,
    "simple": simple,
    "ddim_uniform": ddim_uniform,
    "beta": beta,
}
SCHEDULERS: tuple[str, ...] = tuple(SCHEDULE_FUNCTIONS)


def check_scheduler(scheduler: str) -> None:
    if scheduler not in SCHEDULE_FUNCTIONS:
        raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}; got {scheduler!r}")


def check_steps(steps: int, name: str = "steps") -> None:
    if isinstance(steps, bool) or not isinstance(steps, Integral) or steps < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {steps!r}")


def get_sigmas(scheduler: str, steps: int, model_sampling: ModelSampling | None = None) -> Tensor:
    """`steps + 1` sigmas of the named schedule, descending, the last 0 (float32)."""
    check_scheduler(scheduler)
    check_steps(steps)
    return SCHEDULE_FUNCTIONS[scheduler](model_sampling or ModelSampling(), steps).float()


__all__ = ["SCHEDULERS", "SCHEDULE_FUNCTIONS", "get_sigmas", "karras_sigmas", "check_scheduler", "check_steps"]
