"""The scale of each iteration of an iterative upscale (SPEC §8)."""

from __future__ import annotations

import math

from dualsampler.validation import MAX_FACTOR, MAX_ITERATIONS, MAX_SIDE, check_choice, check_int, check_real

STEP_MODES = ("simple", "geometric")


def check_upscale_args(upscale_factor: float, steps: int, step_mode: str) -> tuple[float, int, str]:
    """`(factor, steps, step_mode)` checked: the factor a finite number in [1, MAX_FACTOR] (1 re-samples at the same
    size), `steps` (the iterations) an integer in [1, MAX_ITERATIONS] (`2.0` runs as 2), `step_mode` one of
    STEP_MODES; raises ValueError naming the one that is not."""
    return (check_real(upscale_factor, "upscale_factor (upscaler.factor)", 1.0, MAX_FACTOR),
            check_int(steps, "steps (upscaler.iterations)", 1, MAX_ITERATIONS),
            check_choice(step_mode, "step_mode", STEP_MODES))


def check_final_size(height: int, width: int, upscale_factor: float) -> tuple[int, int]:
    """The final pixel size `(floor(height * f), floor(width * f))`; ValueError naming the factor when a side
    exceeds MAX_SIDE pixels (memory: one float image of 16384^2 px is 3 GiB)."""
    check_real(upscale_factor, "upscale_factor (upscaler.factor)", 1.0, MAX_FACTOR)
    final = (math.floor(height * upscale_factor), math.floor(width * upscale_factor))
    if max(final) > MAX_SIDE:
        raise ValueError(f"upscale_factor (upscaler.factor)={upscale_factor!r} makes the {height}x{width} px image "
                         f"{final[0]}x{final[1]} px; the final size must be <= {MAX_SIDE} px per side")
    return final


def upscale_plan(upscale_factor: float, steps: int, step_mode: str = "simple") -> list[tuple[tuple[int, int], float]]:
    """`[((i, steps), scale), ...]`: the step_info and cumulative scale of every iteration.

    `simple` adds `(f - 1) / steps` per iteration, `geometric` multiplies by `f ** (1 / steps)`; iterations
    `0 .. steps-2` take the running scale, then `(steps-1, steps)` takes exactly `f` unless it is already reached
    (only when `f == 1`).
    """
    upscale_factor, steps, step_mode = check_upscale_args(upscale_factor, steps, step_mode)
    plan = []
    scale = 1.0
    for i in range(steps - 1):
        scale = scale * upscale_factor ** (1.0 / steps) if step_mode == "geometric" else scale + (upscale_factor - 1.0) / steps
        plan.append(((i, steps), scale))
    if scale < upscale_factor:
        plan.append(((steps - 1, steps), float(upscale_factor)))
    return plan
