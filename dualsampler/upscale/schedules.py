"""Which iterations of an iterative upscale are full-sample iterations (`full_sample_schedule`, SPEC §8).

Iteration `i` of `n` (0-based, `step_info = (i, n)`) is numbered `k = i + 1`. By default the names mean what
they say: `interleaveN` fires every (N+1)-th iteration (`k % (N+1) == 0`), `last1` on the last iteration
(`k == n`), `last2` on the last two (`k >= n - 1`), `interleaveN+last1` on either. With `upstream_compat` the
upstream arithmetic is reproduced: it counts `n + 1` iterations, so `last1` never fires, `last2` fires on the
last iteration only, and every `+last1` combination behaves as `interleave1` or `k >= n`.
"""

from __future__ import annotations

from dualsampler.validation import check_choice

FULL_SAMPLE_SCHEDULES = (
    "none",
    "interleave1",
    "interleave2",
    "interleave3",
    "last1",
    "last2",
    "interleave1+last1",
    "interleave2+last1",
    "interleave3+last1",
)


def check_full_sample_schedule(schedule: str) -> None:
    """Raise ValueError unless `schedule` is one of FULL_SAMPLE_SCHEDULES."""
    check_choice(schedule, "full_sample_schedule", FULL_SAMPLE_SCHEDULES)


def _interleaved(k: int, schedule: str) -> bool:
    period = int(schedule[len("interleave")]) + 1
    return k % period == 0


def _named(k: int, n: int, schedule: str) -> bool:
    if schedule == "none":
        return False
    if schedule == "last1":
        return k == n
    if schedule == "last2":
        return k >= n - 1
    if schedule.endswith("+last1"):
        return _interleaved(k, schedule) or k == n
    return _interleaved(k, schedule)


def _upstream(k: int, n: int, schedule: str) -> bool:
    total = n + 1
    if schedule == "none":
        return False
    if schedule == "last1":
        return k == total
    if schedule == "last2":
        return k >= total - 1
    if schedule.endswith("+last1"):
        return k % 2 == 0 or k >= total - 1
    return _interleaved(k, schedule)


def is_full_sample_time(step_info: tuple[int, int], schedule: str, upstream_compat: bool = False) -> bool:
    """True when iteration `step_info = (i, n)` samples the whole latent (base then full sampler)."""
    check_full_sample_schedule(schedule)
    i, n = step_info
    if not 0 <= i < n:
        raise ValueError(f"step_info must be (i, n) with 0 <= i < n; got {step_info}")
    k = i + 1
    return _upstream(k, n, schedule) if upstream_compat else _named(k, n, schedule)


def full_sample_iterations(steps: int, schedule: str, upstream_compat: bool = False) -> set[int]:
    """The 0-based iterations `i` in `0 .. steps-1` that are full-sample iterations."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    return {i for i in range(steps) if is_full_sample_time((i, steps), schedule, upstream_compat)}
