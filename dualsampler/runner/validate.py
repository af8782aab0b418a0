"""Check a job's whole config before anything is built: every bad value raises a ConfigError naming its key.

The checks are the library's own (`check_sampler`, `check_overlap`, `check_full_sample_schedule`, ...); this
module walks the config and prefixes their messages with the full key (`mask_sampler.sampler: ...`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..dual import MODES
from ..dual.checks import check_overlap
from ..sampling.ksampler import check_denoise
from ..sampling.samplers import check_sampler
from ..sampling.schedules import check_scheduler, check_steps
from ..upscale.scale_methods import check_scale_method
from ..upscale.schedules import check_full_sample_schedule
from ..upscale.step_plan import STEP_MODES, check_upscale_args


class ConfigError(ValueError):
    """A config value out of its allowed range or choices; the message starts with the key."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _get(cfg: dict, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _check(cfg: dict, key: str, check: Callable[[Any], None]) -> None:
    """Run a library check on the value at `key`; its ValueError becomes a ConfigError naming the key."""
    try:
        check(_get(cfg, key))
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{key}={_get(cfg, key)!r} is invalid: {error}") from None


def _require(condition: bool, allowed: str) -> None:
    if not condition:
        raise ValueError(allowed)


def _at_least(minimum: int) -> Callable[[Any], None]:
    return lambda value: _require(_is_int(value) and value >= minimum, f"must be an integer >= {minimum}")


def _optional(check: Callable[[Any], None]) -> Callable[[Any], None]:
    return lambda value: None if value is None else check(value)


def _one_of(choices: Sequence[str]) -> Callable[[Any], None]:
    return lambda value: _require(value in choices, f"choose one of {', '.join(choices)}")


def seed_list(seeds: Any) -> list[int]:
    """`seeds` as a list: a count n means seeds 0..n-1, a list is taken as it is (distinct integers >= 0)."""
    if _is_int(seeds) and seeds >= 1:
        return list(range(seeds))
    if isinstance(seeds, Sequence) and not isinstance(seeds, str) and seeds and all(_is_int(s) and s >= 0 for s in seeds):
        if len(set(seeds)) == len(seeds):
            return [int(s) for s in seeds]
    raise ConfigError(f"seeds={seeds!r} is invalid: must be a count >= 1 or a non-empty list of distinct integers >= 0")


def _check_sampler(cfg: dict, group: str) -> None:
    _check(cfg, group, lambda spec: _require(isinstance(spec, dict), f"must be a sampler (sampler@{group}=<name>)"))
    _check(cfg, f"{group}.sampler", check_sampler)
    _check(cfg, f"{group}.scheduler", check_scheduler)
    _check(cfg, f"{group}.cfg", lambda cfg_: _require(isinstance(cfg_, (int, float)) and cfg_ >= 0, "must be >= 0"))
    _check(cfg, f"{group}.prompt", lambda prompt: _require(isinstance(prompt, str), "must be a string"))
    _check(cfg, f"{group}.steps", _optional(check_steps))
    _check(cfg, f"{group}.denoise", _optional(check_denoise))


def _check_upscaler(cfg: dict) -> None:
    _check(cfg, "upscaler.full_sample_schedule", check_full_sample_schedule)
    _check(cfg, "upscaler.scale_method", check_scale_method)
    _check(cfg, "upscaler.step_mode", _one_of(STEP_MODES))
    _check(cfg, "upscaler.factor", lambda factor: check_upscale_args(factor, 1, "simple"))
    _check(cfg, "upscaler.iterations", check_steps)
    _check(cfg, "upscaler.steps", check_steps)
    _check(cfg, "upscaler.denoise", check_denoise)


def validate(config: DictConfig) -> None:
    """Raise ConfigError (a ValueError) naming the first invalid key of a job config (samplers, schedules, counts, ranges)."""
    cfg = OmegaConf.to_container(config, resolve=True)
    seed_list(cfg.get("seeds"))
    _check(cfg, "steps", check_steps)
    _check(cfg, "denoise", check_denoise)
    _check(cfg, "batch_size", _at_least(1))
    _check(cfg, "threads", _optional(_at_least(1)))
    _check(cfg, "height", _at_least(8))
    _check(cfg, "width", _at_least(8))
    _check(cfg, "overlap_factor", check_overlap)
    for group in ("base_sampler", "mask_sampler"):
        _check_sampler(cfg, group)
    _check(cfg, "dual.mode", _optional(_one_of(MODES)))
    _check(cfg, "dual.feather", _optional(lambda f: _require(isinstance(f, (int, float)) and f >= 0, "must be >= 0")))
    if cfg.get("upscaler"):
        _check_upscaler(cfg)
    _check(cfg, "metrics.real_images", _at_least(0))
    _check(cfg, "metrics.compute.band_width", _at_least(1))
