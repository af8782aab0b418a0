"""Bounds of the upscaler's settings, each with its reason, and the checks that name the parameter and its range.

Every check runs before any work (in constructors and at the public entries), so a bad value never reaches the
VAE or a sampler: NaN and infinities are refused everywhere, and sizes are bounded by memory.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from dualsampler.masks import MAX_SIDE

MAX_FACTOR = 16.0  # upscale factor: 16x of a 1024 px canvas is already MAX_SIDE (16384 px, 3 GiB per float image)
MAX_ITERATIONS = 64  # each iteration decodes, encodes and re-samples the whole image
MAX_TILE_SIZE = 4096  # pixels: a VAE tile of 4096^2 px already needs several GiB of activations
MAX_STEPS = 10_000  # sampler steps of one pass (one model call per image and step)
MAX_CFG = 100.0  # classifier-free guidance scale: upstream's widget range (as the sampler configs)
MAX_SCHEDULE = 100_000  # steps / denoise: the length of the full schedule a partial-denoise pass is cut from

__all__ = ["MAX_CFG", "MAX_FACTOR", "MAX_ITERATIONS", "MAX_SCHEDULE", "MAX_SIDE", "MAX_STEPS", "MAX_TILE_SIZE",
           "check_count", "check_flag", "check_real"]


def check_real(value: object, name: str, low: float, high: float = math.inf, *, low_open: bool = False) -> float:
    """A finite real number in [low, high] (in (low, high] when `low_open`) -> float; booleans are refused."""
    fine = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if fine and (value > low if low_open else value >= low) and value <= high:
        return float(value)
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}]" if high < math.inf else f"{'>' if low_open else '>='} {low:g}"
    interval = f"in {interval}" if high < math.inf else interval
    raise ValueError(f"{name} must be a finite number {interval}, got {value!r}")


def check_count(value: object, name: str, low: int, high: int) -> int:
    """An integer in [low, high] (a float holding an integer is accepted) -> int; booleans are refused."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, float) and math.isfinite(value) and value == int(value):
        number = int(value)
    else:
        number = None
    if number is None or not low <= number <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return number


def check_flag(value: object, name: str) -> bool:
    """A boolean (true/false), not a truthy string or number."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value
