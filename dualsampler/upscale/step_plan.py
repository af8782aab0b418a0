"""The scale of each iteration of an iterative upscale (SPEC §8)."""

from __future__ import annotations

STEP_MODES = ("simple", "geometric")


def check_upscale_args(upscale_factor: float, steps: int, step_mode: str) -> None:
    """Raise ValueError for a factor below 1, fewer than one step or an unknown step mode."""
    if upscale_factor < 1:
        raise ValueError(f"upscale_factor must be >= 1; got {upscale_factor}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    if step_mode not in STEP_MODES:
        raise ValueError(f"step_mode must be one of {', '.join(STEP_MODES)}; got {step_mode!r}")


def upscale_plan(upscale_factor: float, steps: int, step_mode: str = "simple") -> list[tuple[tuple[int, int], float]]:
    """`[((i, steps), scale), ...]`: the step_info and cumulative scale of every iteration.

    `simple` adds `(f - 1) / steps` per iteration, `geometric` multiplies by `f ** (1 / steps)`; iterations
    `0 .. steps-2` take the running scale, then `(steps-1, steps)` takes exactly `f` unless it is already reached
    (only when `f == 1`).
    """
    check_upscale_args(upscale_factor, steps, step_mode)
    plan = []
    scale = 1.0
    for i in range(steps - 1):
        scale = scale * upscale_factor ** (1.0 / steps) if step_mode == "geometric" else scale + (upscale_factor - 1.0) / steps
        plan.append(((i, steps), scale))
    if scale < upscale_factor:
        plan.append(((steps - 1, steps), float(upscale_factor)))
    return plan
