"""Which iterations full-sample (both semantics) and the scale of every iteration."""

import math

import pytest

from dualsampler.upscale import FULL_SAMPLE_SCHEDULES, full_sample_iterations, is_full_sample_time, upscale_plan

# Written by hand from the names (k = i + 1, n = steps): 0-based iterations i that full-sample, steps 1..6.
NAMED = {
    "none": [set(), set(), set(), set(), set(), set()],
    "interleave1": [set(), {1}, {1}, {1, 3}, {1, 3}, {1, 3, 5}],
    "interleave2": [set(), set(), {2}, {2}, {2}, {2, 5}],
    "interleave3": [set(), set(), set(), {3}, {3}, {3}],
    "last1": [{0}, {1}, {2}, {3}, {4}, {5}],
    "last2": [{0}, {0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}],
    "interleave1+last1": [{0}, {1}, {1, 2}, {1, 3}, {1, 3, 4}, {1, 3, 5}],
    "interleave2+last1": [{0}, {1}, {2}, {2, 3}, {2, 4}, {2, 5}],
    "interleave3+last1": [{0}, {1}, {2}, {3}, {3, 4}, {3, 5}],
}

# Upstream counts n + 1 iterations: last1 never fires, last2 fires on the last only, +last1 = interleave1 or k >= n.
UPSTREAM_PLUS_LAST1 = [{0}, {1}, {1, 2}, {1, 3}, {1, 3, 4}, {1, 3, 5}]
UPSTREAM = {
    "none": NAMED["none"],
    "interleave1": NAMED["interleave1"],
    "interleave2": NAMED["interleave2"],
    "interleave3": NAMED["interleave3"],
    "last1": [set(), set(), set(), set(), set(), set()],
    "last2": [{0}, {1}, {2}, {3}, {4}, {5}],
    "interleave1+last1": UPSTREAM_PLUS_LAST1,
    "interleave2+last1": UPSTREAM_PLUS_LAST1,
    "interleave3+last1": UPSTREAM_PLUS_LAST1,
}


def test_tables_cover_every_schedule():
    assert set(NAMED) == set(FULL_SAMPLE_SCHEDULES) == set(UPSTREAM)


@pytest.mark.parametrize("schedule", FULL_SAMPLE_SCHEDULES)
@pytest.mark.parametrize("steps", range(1, 7))
def test_full_sample_iterations_by_name(schedule, steps):
    assert full_sample_iterations(steps, schedule) == NAMED[schedule][steps - 1]


@pytest.mark.parametrize("schedule", FULL_SAMPLE_SCHEDULES)
@pytest.mark.parametrize("steps", range(1, 7))
def test_full_sample_iterations_upstream_compat(schedule, steps):
    assert full_sample_iterations(steps, schedule, upstream_compat=True) == UPSTREAM[schedule][steps - 1]


def test_unknown_schedule_and_bad_step_info_are_rejected():
    with pytest.raises(ValueError, match="full_sample_schedule must be one of"):
        is_full_sample_time((0, 3), "last3")
    with pytest.raises(ValueError, match="step_info"):
        is_full_sample_time((3, 3), "last1")


def test_simple_steps_add_equal_increments_and_end_on_the_factor():
    plan = upscale_plan(2.0, 4, "simple")
    assert [info for info, _ in plan] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert [s for _, s in plan] == pytest.approx([1.25, 1.5, 1.75, 2.0])
    assert plan[-1][1] == 2.0


def test_geometric_steps_multiply_and_end_exactly_on_the_factor():
    plan = upscale_plan(3.0, 3, "geometric")
    unit = 3.0 ** (1 / 3)
    assert [s for _, s in plan] == pytest.approx([unit, unit**2, 3.0])
    assert plan[-1] == ((2, 3), 3.0)


def test_one_step_goes_straight_to_the_factor():
    assert upscale_plan(1.5, 1, "simple") == [((0, 1), 1.5)]
    assert upscale_plan(1.5, 1, "geometric") == [((0, 1), 1.5)]


def test_factor_one_resamples_without_a_final_iteration_like_upstream():
    assert upscale_plan(1.0, 3) == [((0, 3), 1.0), ((1, 3), 1.0)]


@pytest.mark.parametrize(
    "factor, steps, mode, message",
    [(0.5, 2, "simple", r"upscale_factor \(upscaler.factor\) must be a finite number in \[1, 16\]"),
     (2.0, 0, "simple", r"steps \(upscaler.iterations\) must be an integer in \[1, 64\]"),
     (2.0, 2, "cubic", "step_mode must be one of")],
)
def test_bad_plan_arguments_are_rejected(factor, steps, mode, message):
    with pytest.raises(ValueError, match=message):
        upscale_plan(factor, steps, mode)


def test_geometric_increments_have_a_constant_ratio():
    scales = [1.0] + [s for _, s in upscale_plan(5.0, 5, "geometric")]
    ratios = [b / a for a, b in zip(scales, scales[1:])]
    assert ratios == pytest.approx([math.pow(5.0, 0.2)] * 5)
