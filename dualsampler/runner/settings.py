"""The job's own keys as a structured config (registered in Hydra's ConfigStore as `job_schema`): Hydra checks
their types when the config is composed, `JobSettings.__post_init__` their ranges before anything is built."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from ..figure_spec import check_figures
from ..metrics.registry import derived_keys, derived_means, describe
from .devices import AUTO
from ..sampling.ksampler import check_denoise
from ..sampling.schedules import check_steps
from ..validation import BOUNDS, check_bounded, check_device, check_real, check_schedule_length, check_text

MAX_SEED = 2**64  # seeds are unsigned 64-bit, as upstream
MAX_SEEDS = int(BOUNDS["seed_count"].high)


class ConfigError(ValueError):
    """A config value out of its allowed range or choices; the message starts with the key."""


def seed_list(seeds: Any) -> list[int]:
    """`seeds` as a list: a count n means seeds 0..n-1, a list is taken as it is (distinct integers in [0, 2**64))."""
    if isinstance(seeds, int) and not isinstance(seeds, bool) and 1 <= seeds <= MAX_SEEDS:
        return list(range(seeds))
    if isinstance(seeds, Sequence) and not isinstance(seeds, str) and seeds and len(seeds) <= MAX_SEEDS and all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s < MAX_SEED for s in seeds):
        if len(set(seeds)) == len(seeds):
            return [int(s) for s in seeds]
    raise ConfigError(f"seeds={seeds!r} is invalid: must be a count in [1, {MAX_SEEDS}] or a non-empty list of "
                      f"distinct integers in [0, 2**64)")


DIRECTIONS = ("minimize", "maximize")
SENSE = {"lower": "minimize", "higher": "maximize", "target": "minimize"}  # a registry direction as the sweeper's


@dataclass
class Objective:
    """What a job returns to a sweeper (Optuna): `metric`, plus `penalty` * (floor - value) for each metric in
    `floors` below its floor (so a search for the lowest seam keeps region accuracy high), signed for `direction`.
    `direction` null takes the metric's own from dualsampler/metrics/registry.py; a `target` metric (healthy at a
    value, e.g. seam/gradient_ratio at 1) then minimises its derived error key (`seam/gradient_ratio_error`), an
    explicit direction keeps the metric as it is. Derived keys are read from the metrics when there, else computed
    from the per-image rows (registry.derived_means). A job whose metric or a floored metric is absent, or that
    failed, returns the worst value (+inf when minimizing, -inf when maximizing): an unreadable constraint never
    looks satisfied, and the study goes on."""

    metric: str = "seam/gradient_ratio_error"
    floors: dict[str, float] = field(default_factory=dict)
    penalty: float = 10.0
    direction: str | None = None

    def __post_init__(self) -> None:
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise ConfigError(f"objective.direction must be one of {', '.join(DIRECTIONS)} or null (the metric's "
                              f"own); got {self.direction!r}")
        try:
            check_bounded(self.penalty, "penalty", "objective.penalty")
            check_text(self.metric, "objective.metric")
            if not isinstance(self.floors, dict):
                raise ValueError(f"objective.floors must map metric names to numbers, got {self.floors!r}")
            for key, floor in self.floors.items():
                check_real(floor, f"objective.floors[{key!r}]")
        except ValueError as error:
            raise ConfigError(str(error)) from None
        for key in [self.metric, *self.floors]:
            name = "objective.metric" if key == self.metric else "objective.floors"
            try:
                info = describe(key)
            except ValueError:
                raise ConfigError(f"{name}: {key!r} is not a metric this job reports: no metric of that name is "
                                  "declared (dualsampler/metrics/registry.py)") from None
            if info.direction == "none":
                raise ConfigError(f"{name}: {key!r} is a per-image reading ({info.unit}), not a number to optimise")

    @property
    def key(self) -> str:
        """The key the objective reads: `metric`, or its derived error key for a target metric without an explicit
        direction."""
        if self.direction is None and describe(self.metric).direction == "target":
            errors = derived_keys([self.metric])
            if errors:
                return errors[0]
        return self.metric

    @property
    def sense(self) -> str:
        """minimize | maximize: `direction`, else the direction of `key` in the registry."""
        return self.direction or SENSE[describe(self.key).direction]

    def check(self, metrics: list[str]) -> None:
        """Before any work: `metric` and every floored metric among `metrics`, the names the job reports, or derived
        from them (a typo would hand the sweeper the worst value for every trial)."""
        known = [*metrics, *derived_keys(metrics)]
        for key in [self.key, *self.floors]:
            if key not in known:
                name = "objective.floors" if key in self.floors else "objective.metric"
                raise ConfigError(f"{name}: {key!r} is not a metric this job reports (metrics=...); it reports "
                                  f"{', '.join(known)}")

    @classmethod
    def from_config(cls, values: Any) -> Objective:
        """The objective of a config's `objective:` mapping; ConfigError naming a key it does not have."""
        values = values or {}
        if not isinstance(values, dict):
            raise ConfigError(f"objective must be a mapping, got {values!r}")
        unknown = [key for key in values if key not in cls.__dataclass_fields__]
        if unknown:
            raise ConfigError(f"objective: unknown key {unknown[0]!r}; its keys are {', '.join(cls.__dataclass_fields__)}")
        return cls(**values)

    @property
    def worst(self) -> float:
        return math.inf if self.sense == "minimize" else -math.inf

    def value(self, metrics: dict[str, float], rows: Sequence[dict[str, Any]] = ()) -> float:
        """The objective of a job's metrics (see the class); `rows`, the job's per-image rows (result.json's
        `per_seed`), give derived keys the metrics lack."""
        metrics = {**derived_means(rows), **metrics}
        if self.key not in metrics or any(key not in metrics for key in self.floors):
            return self.worst
        shortfall = sum(max(0.0, floor - metrics[key]) for key, floor in self.floors.items())
        sign = 1.0 if self.sense == "minimize" else -1.0
        return float(metrics[self.key]) + sign * self.penalty * shortfall


@dataclass
class JobSettings:
    name: str = "default"
    seeds: Any = 4
    steps: int = 20
    denoise: float = 1.0
    batch_size: int = 4
    device: str = "cpu"
    threads: Any = None
    height: int = 128
    width: int = 128
    overlap_factor: int = 2
    regions: Any = field(default_factory=list)
    models_kept: int = 1
    objective: Objective = field(default_factory=Objective)
    model: Any = None
    base_sampler: Any = None
    mask_sampler: Any = None
    mask: Any = None
    dual: Any = None
    upscaler: Any = None
    metrics: Any = None
    logger: Any = None
    input: Any = None
    data: Any = None
    figures: Any = field(default_factory=list)

    def __post_init__(self) -> None:
        checks = {
            "steps": lambda v: check_steps(v),
            "denoise": lambda v: check_denoise(v),
            "overlap_factor": lambda v: check_bounded(v, "overlap_factor"),
            "device": lambda v: check_device(v),
            "batch_size": lambda v: check_bounded(v, "batch_size"),
            "threads": lambda v: v is None or v == AUTO or check_bounded(v, "threads"),
            "models_kept": lambda v: check_bounded(v, "models_kept"),
            "height": lambda v: check_bounded(v, "canvas", "height"),
            "width": lambda v: check_bounded(v, "canvas", "width"),
            "name": lambda v: check_text(v, "name"),
            "figures": lambda v: check_figures(v),
        }
        for key, check in checks.items():
            try:
                check(getattr(self, key))
            except (ValueError, TypeError) as error:
                message = str(error)
                if not message.startswith((f"{key}=", f"{key}[")):  # figures name their entry already
                    message = f"{key}={getattr(self, key)!r} is invalid: {message}"
                raise ConfigError(message) from None
        try:
            check_schedule_length(self.steps, self.denoise)
        except ValueError as error:
            raise ConfigError(f"denoise={self.denoise!r} is invalid with steps={self.steps}: {error}") from None
        seed_list(self.seeds)


def job_settings(config: DictConfig) -> JobSettings:
    """The job's settings with their ranges checked (ConfigError naming the key)."""
    plain = OmegaConf.to_container(config, resolve=True)
    known = {k: v for k, v in plain.items() if k in JobSettings.__dataclass_fields__}
    objective = Objective.from_config(known.pop("objective", None))
    return JobSettings(**known, objective=objective)


ConfigStore.instance().store(name="job_schema", node=JobSettings)
