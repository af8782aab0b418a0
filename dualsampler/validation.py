"""One place that checks: the bounds of every numeric setting, each with its reason, and the checks that enforce
them with one message format, `<name> must be <what> in <range>, got <value>`.

The API (samplers, region algorithms, masks, the upscaler, metrics, loaders), the config schema and the runner
all check through these functions, so a limit is defined once and a value is refused the same way wherever it
enters. Every check is cheap (no model, no file decoded) and runs before any work. Booleans are booleans: a
string such as "no" is refused, never read as true; a bool is not a number (`denoise=True` is refused).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class Bound:
    """An allowed range `[low, high]` (`(low, high]` when `low_open`), integers only when `integer`, and why."""

    low: float
    high: float
    integer: bool
    reason: str
    low_open: bool = False


BOUNDS: dict[str, Bound] = {
    "steps": Bound(1, 10_000, True, "upstream's KSampler widget maximum; a run makes one model call per image and "
                                    "step, and a schedule of steps / denoise steps is bounded the same way"),
    "denoise": Bound(0.0, 1.0, False, "the fraction of the schedule a run covers; 0 would run nothing", low_open=True),
    "cfg": Bound(0.0, 100.0, False, "upstream's widget range for classifier-free guidance"),
    "guidance": Bound(0.0, 100.0, False, "Flux's distilled guidance value: upstream's FluxGuidance widget range"),
    "lora_scale": Bound(-100.0, 100.0, False, "a LoRA's strength: upstream's LoraLoader widget range"),
    "overlap_factor": Bound(0, 1024, True, "the side of the box kernel the mask is grown with, convolved over the "
                                           "whole mask: 1024 latent pixels already cover any canvas this toolkit "
                                           "samples"),
    "side": Bound(1, 16_384, True, "pixels per side of a mask or image: a float32 mask of 16384^2 px is 1 GiB"),
    "canvas": Bound(8, 4096, True, "a job's canvas in pixels: larger would not fit a CPU's memory at these models' "
                                   "sizes; 8 px is one latent cell of an 8x VAE"),
    "feather": Bound(0.0, 1024.0, False, "a mask's feather radius in pixels: a Gaussian kernel of 2 * radius + 1 "
                                         "taps"),
    "fused_feather": Bound(0.0, 64.0, False, "the fused blend's feather in latent pixels: beyond 64 the blend "
                                             "spans any latent this toolkit samples"),
    "upscale_factor": Bound(1.0, 16.0, False, "16x of a 1024 px canvas is already the largest side (16384 px, "
                                              "3 GiB per float image); 1 re-samples at the same size"),
    "iterations": Bound(1, 64, True, "each upscale iteration decodes, encodes and re-samples the whole image"),
    "tile_size": Bound(64, 4096, True, "a VAE tile of 4096^2 px already needs several GiB of activations; under "
                                       "64 px the tiles' overlap dominates"),
    "batch_size": Bound(1, 4096, True, "images per forward: 4096 latents already exceed any accelerator's memory"),
    "threads": Bound(1, 1024, True, "torch threads of one job: more than any machine's cores"),
    "models_kept": Bound(0, 8, True, "loaded models a worker process keeps for the next jobs of a sweep (0: none); "
                                     "each holds its weights in memory"),
    "regions": Bound(1, 16, True, "regions of one item: each adds a sampler, a mask and a set of per-region "
                                  "metrics; 16 already tiles a canvas into patches the judge can barely read"),
    "seed_count": Bound(1, 100_000, True, "images per job: each is saved, evaluated and logged"),
    "band_width": Bound(1, 4096, True, "pixels each side of a seam: 4096 px already spans any canvas"),
    "real_images": Bound(0, 100_000, True, "reference composites FID/KID render and read with the judge"),
    "kid_subsets": Bound(1, 10_000, True, "KID subsets: one polynomial-kernel MMD each"),
    "init_timeout": Bound(0.0, 600.0, False, "seconds W&B may take to start before the run logs offline",
                          low_open=True),
    "strength": Bound(0.0, 100.0, False, "injected noise relative to the latent's unit variance: 100 drowns any "
                                         "latent"),
    "penalty": Bound(0.0, 1e6, False, "the objective's weight on a floor's shortfall; metrics are O(1)"),
}

MAX_STEPS = int(BOUNDS["steps"].high)
MAX_SIDE = int(BOUNDS["side"].high)
MAX_FACTOR = BOUNDS["upscale_factor"].high
MAX_ITERATIONS = int(BOUNDS["iterations"].high)
MAX_TILE_SIZE = int(BOUNDS["tile_size"].high)
DEVICES = "cpu, cuda, cuda:N (N a GPU index), mps"


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _interval(low: float, high: float, low_open: bool = False) -> str:
    if high == math.inf:
        return f"{'>' if low_open else '>='} {_number(low)}"
    return f"in {'(' if low_open else '['}{_number(low)}, {_number(high)}]"


def is_real(value: object) -> bool:
    """A real number that is not a bool (numpy scalars included)."""
    return isinstance(value, Real) and not isinstance(value, bool)


def check_real(value: object, name: str, low: float = -math.inf, high: float = math.inf, *,
               low_open: bool = False) -> float:
    """A finite real number in [low, high] (in (low, high] when `low_open`) -> float; bools and NaN refused."""
    if is_real(value) and math.isfinite(value) and (value > low if low_open else value >= low) and value <= high:
        return float(value)
    raise ValueError(f"{name} must be a finite number {_interval(low, high, low_open)}, got {value!r}")


def check_fraction(value: object, name: str, *, low_open: bool = False) -> float:
    """A finite number in [0, 1] (in (0, 1] when `low_open`) -> float."""
    return check_real(value, name, 0.0, 1.0, low_open=low_open)


def check_int(value: object, name: str, low: int, high: int | float = math.inf) -> int:
    """An integer in [low, high] -> int: Python and numpy integers, and a float holding an integer (as YAML and
    Hydra sweeps write `2.0`); bools refused."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        number = int(value)
    elif is_real(value) and math.isfinite(value) and float(value).is_integer():
        number = int(value)
    else:
        number = None
    if number is None or not low <= number <= high:
        raise ValueError(f"{name} must be an integer {_interval(low, high)}, got {value!r}")
    return number


def check_bounded(value: object, key: str, name: str | None = None) -> float | int:
    """`value` within `BOUNDS[key]` (the message names `name`, default `key`) -> int or float."""
    bound = BOUNDS[key]
    if bound.integer:
        return check_int(value, name or key, int(bound.low), bound.high)
    return check_real(value, name or key, bound.low, bound.high, low_open=bound.low_open)


def check_bool(value: object, name: str) -> bool:
    """A bool (true/false); a truthy string or number is refused, never read as true."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def check_switch(value: object, name: str, on: str = "enable", off: str = "disable") -> bool:
    """A bool, or exactly upstream's widget spellings `on` / `off` -> bool."""
    if isinstance(value, bool):
        return value
    if value in (on, off) and isinstance(value, str):
        return value == on
    raise ValueError(f"{name} must be true, false, {on!r} or {off!r}, got {value!r}")


def check_choice(value: T, name: str, choices: Iterable[T]) -> T:
    """One of `choices` -> the value."""
    choices = list(choices)
    if not isinstance(value, type(choices[0])) or isinstance(value, bool) != isinstance(choices[0], bool) or (
            value not in choices):
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def check_text(value: object, name: str) -> str:
    """A string (a prompt, a path, a name)."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def check_callback(value: object, name: str = "callback") -> None:
    """None or a callable (a function of one report dict, a `Trace`)."""
    if value is not None and not callable(value):
        raise ValueError(f"{name} must be None or a callable taking one report (e.g. a dualsampler.trace.Trace), "
                         f"got {value!r}")


def check_device(device: object, name: str = "device") -> torch.device:
    """cpu | cuda | cuda:N | mps (a string or a torch.device), present on this machine -> torch.device.

    Only the name and torch's device counts are looked at, so a config's device is checked before any model loads.
    """
    text = str(device) if isinstance(device, (str, torch.device)) else None
    kind, colon, index = (text or "").partition(":")
    if text is None or kind not in ("cpu", "cuda", "mps") or (colon and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"{name} must be one of {DEVICES}; got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={text!r} is not available: CUDA is not available on this machine (use cpu)")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"{name}={text!r} is not available: this machine has {torch.cuda.device_count()} GPU(s)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={text!r} is not available: MPS is not available on this machine")
    return torch.device(text)


def check_schedule_length(steps: object, denoise: object) -> tuple[int, int]:
    """`steps` and `denoise` of one run, with the schedule a partial denoise cuts its steps from (SPEC §4.5:
    `int(steps / denoise)` steps) bounded like `steps` -> `(adv_steps, start)`."""
    steps = check_bounded(steps, "steps")
    denoise = check_bounded(denoise, "denoise")
    adv_steps = int(steps / denoise)
    if adv_steps > MAX_STEPS:
        raise ValueError(f"denoise must be >= steps / {MAX_STEPS} = {steps / MAX_STEPS:g} for {steps} steps "
                         f"(it would run a {adv_steps}-step schedule), got {denoise!r}")
    return adv_steps, adv_steps - steps
