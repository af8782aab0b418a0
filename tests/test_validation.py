"""dualsampler.validation: one table of bounds, each with its reason; one message format; booleans are booleans;
the legitimate edge values of every bound are accepted, through the checks and through the API."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dualsampler.dual import Alternate, Regional, WholeRun
from dualsampler.masks import half_mask
from dualsampler.runner.upscaling import UpscaleSpec
from dualsampler.sampling import KSampler
from dualsampler.upscale import upscale_plan
from dualsampler.validation import (BOUNDS, MAX_STEPS, check_bool, check_bounded, check_choice, check_device,
                                    check_int, check_real, check_schedule_length, check_switch)


def zero(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


def test_every_bound_states_its_reason_and_a_non_empty_range():
    for key, bound in BOUNDS.items():
        assert len(bound.reason) > 20, key
        assert bound.low < bound.high, key
        if bound.integer:
            assert float(bound.low).is_integer() and float(bound.high).is_integer(), key


@pytest.mark.parametrize("key", list(BOUNDS))
def test_each_bound_accepts_its_edges_and_refuses_just_past_them_naming_the_key_and_range(key):
    bound = BOUNDS[key]
    step = 1 if bound.integer else 1e-6 * max(1.0, abs(bound.high))
    assert check_bounded(bound.high, key) == bound.high
    assert check_bounded(bound.low + (step if bound.low_open else 0), key) >= bound.low
    for bad in (bound.high + step, bound.low - step if not bound.low_open else bound.low, math.nan, True, "1"):
        with pytest.raises(ValueError, match=rf"^{key} must be (an integer|a finite number) in [\[(].*\], got "):
            check_bounded(bad, key)


def test_one_message_format():
    with pytest.raises(ValueError, match=r"^steps must be an integer in \[1, 10000\], got 0$"):
        check_int(0, "steps", 1, MAX_STEPS)
    with pytest.raises(ValueError, match=r"^denoise must be a finite number in \(0, 1\], got 0$"):
        check_real(0, "denoise", 0.0, 1.0, low_open=True)
    with pytest.raises(ValueError, match=r"^strength must be a finite number >= 0, got -1$"):
        check_real(-1, "strength", 0.0)
    with pytest.raises(ValueError, match=r"^mode must be one of a, b; got 'c'$"):
        check_choice("c", "mode", ("a", "b"))


def test_integers_from_numpy_and_floats_holding_integers_are_integers():
    assert check_int(np.int64(7), "steps", 1, 10) == 7 and type(check_int(np.int64(7), "steps", 1, 10)) is int
    assert check_int(2.0, "iterations", 1, 64) == 2 and type(check_int(2.0, "iterations", 1, 64)) is int
    assert check_real(np.float32(0.5), "denoise", 0, 1) == 0.5


@pytest.mark.parametrize("value", ["no", "false", "yes", 0, 1, None, np.bool_(True)])
def test_booleans_are_booleans(value):
    with pytest.raises(ValueError, match="flag must be true or false"):
        check_bool(value, "flag")


def test_upstream_switches_take_exactly_their_spellings():
    assert check_switch("enable", "add_noise") is True and check_switch("disable", "add_noise") is False
    assert check_switch(False, "add_noise") is False
    for bad in ("Enable", "DISABLE", "no", 1):
        with pytest.raises(ValueError, match=r"add_noise must be true, false, 'enable' or 'disable'"):
            check_switch(bad, "add_noise")


def test_one_device_check():
    assert check_device("cpu") == torch.device("cpu") and check_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("gpu", "cuda:", "cpu:0", 0, None):
        with pytest.raises(ValueError, match=r"device must be one of cpu, cuda, cuda:N \(N a GPU index\), mps"):
            check_device(bad)


def test_the_schedule_a_partial_denoise_cuts_from_is_bounded_like_steps_everywhere():
    assert check_schedule_length(20, 0.002) == (10_000, 9_980)
    with pytest.raises(ValueError, match=r"denoise must be >= steps / 10000"):
        check_schedule_length(20, 0.0019)
    with pytest.raises(ValueError, match=r"denoise must be >= steps / 10000"):
        UpscaleSpec(steps=20, denoise=0.0019)


def test_seeds_as_numpy_integers_give_the_int_seeds_images():
    sampler = KSampler(zero, "euler_ancestral", "karras")
    latent = torch.zeros(2, 4, 8, 8)
    same = sampler.sample(latent, [3, 4], 3)
    assert torch.equal(sampler.sample(latent, np.array([3, 4]), 3), same)
    assert torch.equal(sampler.sample(latent, [np.uint64(3), np.int32(4)], 3), same)
    assert torch.equal(sampler.sample(latent[:1], np.int64(3), 3), sampler.sample(latent[:1], 3, 3))
    mask = half_mask(8, 8)
    assert torch.equal(Alternate(overlap_factor=1)(latent, base_sampler=sampler, mask_sampler=sampler, mask=mask,
                                                   seed=np.array([3, 4]), steps=2),
                       Alternate(overlap_factor=1)(latent, base_sampler=sampler, mask_sampler=sampler, mask=mask,
                                                   seed=[3, 4], steps=2))


@pytest.mark.parametrize("step", [0, 2, 4, 7])
def test_a_slice_with_start_equal_to_end_returns_the_latent_unchanged_without_a_model_call(step):
    calls = []
    sampler = KSampler(lambda x, s: calls.append(1) or torch.zeros_like(x), "euler", "karras")
    latent = torch.randn(1, 4, 8, 8)
    out = sampler.sample_advanced(True, 0, 4, latent, step, step, False)
    assert torch.equal(out, latent) and calls == []


def test_edge_values_of_the_api_are_accepted():
    sampler = KSampler(zero, "euler", "karras", model_sampling=None, upstream_compat=False)
    latent = torch.zeros(1, 4, 8, 8)
    assert sampler.sample(latent, 2**64 - 1, 1, denoise=1).shape == latent.shape
    assert sampler.sample(latent, 0, 2.0, denoise=1e-3 * 2).shape == latent.shape  # 2 steps of a 1000-step schedule
    assert Regional(overlap_factor=1024, base_only_steps=0, restore_latent=False).restore_latent is False
    assert WholeRun(return_x0=False).return_x0 is False
    assert UpscaleSpec(iterations=2.0, steps=8.0).iterations == 2 and UpscaleSpec(iterations=2.0).steps == 8
    assert len(upscale_plan(2.0, 2.0)) == 2
