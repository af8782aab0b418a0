"""Check a job's whole config before anything is built: every bad value raises a ValueError naming its key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..dual import MODES
from ..sampling import SAMPLERS, SCHEDULERS
from ..upscale import FULL_SAMPLE_SCHEDULES, SCALE_METHODS, STEP_MODES


class ConfigError(ValueError):
    """A config value out of its allowed range or choices; the message starts with the key."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _invalid(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{key}={value!r} is invalid: {allowed}")


def _check_int(cfg: dict, key: str, minimum: int) -> None:
    value = _get(cfg, key)
    if not _is_int(value) or value < minimum:
        raise _invalid(key, value, f"must be an integer >= {minimum}")


def _get(cfg: dict, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def seed_list(seeds: Any) -> list[int]:
    """`seeds` as a list: a count n means seeds 0..n-1, a list is taken as it is (distinct integers >= 0)."""
    if _is_int(seeds) and seeds >= 1:
        return list(range(seeds))
    if isinstance(seeds, Sequence) and not isinstance(seeds, str) and seeds and all(_is_int(s) and s >= 0 for s in seeds):
        if len(set(seeds)) == len(seeds):
            return [int(s) for s in seeds]
    raise _invalid("seeds", seeds, "must be a count >= 1 or a non-empty list of distinct integers >= 0")


def _check_sampler(cfg: dict, group: str) -> None:
    spec = cfg.get(group)
    if not isinstance(spec, dict):
        raise _invalid(group, spec, f"must be a sampler config (sampler@{group}=<name>)")
    if spec.get("sampler") not in SAMPLERS:
        raise _invalid(f"{group}.sampler", spec.get("sampler"), f"choose one of {', '.join(SAMPLERS)}")
    if spec.get("scheduler") not in SCHEDULERS:
        raise _invalid(f"{group}.scheduler", spec.get("scheduler"), f"choose one of {', '.join(SCHEDULERS)}")
    if not _is_number(spec.get("cfg")) or spec["cfg"] < 0:
        raise _invalid(f"{group}.cfg", spec.get("cfg"), "must be a number >= 0")
    if not isinstance(spec.get("prompt"), str):
        raise _invalid(f"{group}.prompt", spec.get("prompt"), "must be a string")
    if spec.get("steps") is not None:
        _check_int(cfg, f"{group}.steps", 1)
    denoise = spec.get("denoise")
    if denoise is not None and not (_is_number(denoise) and 0 < denoise <= 1):
        raise _invalid(f"{group}.denoise", denoise, "must be null or in (0, 1]")


def _check_choice(cfg: dict, key: str, choices: tuple[str, ...]) -> None:
    if _get(cfg, key) not in choices:
        raise _invalid(key, _get(cfg, key), f"choose one of {', '.join(choices)}")


def _check_upscaler(cfg: dict) -> None:
    _check_choice(cfg, "upscaler.full_sample_schedule", FULL_SAMPLE_SCHEDULES)
    _check_choice(cfg, "upscaler.scale_method", SCALE_METHODS)
    _check_choice(cfg, "upscaler.step_mode", STEP_MODES)
    factor = _get(cfg, "upscaler.factor")
    if not _is_number(factor) or factor < 1:
        raise _invalid("upscaler.factor", factor, "must be a number >= 1")
    _check_int(cfg, "upscaler.iterations", 1)
    _check_int(cfg, "upscaler.steps", 1)
    denoise = _get(cfg, "upscaler.denoise")
    if not (_is_number(denoise) and 0 < denoise <= 1):
        raise _invalid("upscaler.denoise", denoise, "must be in (0, 1]")


def validate(config: DictConfig) -> None:
    """Raise ConfigError (a ValueError) naming the first invalid key of a job config (samplers, schedules, counts, ranges)."""
    cfg = OmegaConf.to_container(config, resolve=True)
    seed_list(cfg.get("seeds"))
    _check_int(cfg, "steps", 1)
    _check_int(cfg, "batch_size", 1)
    _check_int(cfg, "height", 8)
    _check_int(cfg, "width", 8)
    if not (_is_number(cfg.get("denoise")) and 0 < cfg["denoise"] <= 1):
        raise _invalid("denoise", cfg.get("denoise"), "must be in (0, 1]")
    overlap = cfg.get("overlap_factor")
    if not _is_number(overlap) or overlap < 0:
        raise _invalid("overlap_factor", overlap, "must be a number >= 0 (latent pixels the mask grows by)")
    for group in ("base_sampler", "mask_sampler"):
        _check_sampler(cfg, group)
    mode = _get(cfg, "dual.mode")
    if mode is not None and mode not in MODES:
        raise _invalid("dual.mode", mode, f"choose one of {', '.join(MODES)}")
    if _get(cfg, "dual.feather") is not None and not (_is_number(cfg["dual"]["feather"]) and cfg["dual"]["feather"] >= 0):
        raise _invalid("dual.feather", cfg["dual"]["feather"], "must be a number >= 0")
    if cfg.get("upscaler"):
        _check_upscaler(cfg)
    _check_int(cfg, "metrics.real_images", 0)
    _check_int(cfg, "metrics.compute.band_width", 1)
