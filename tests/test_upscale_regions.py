"""TwoSamplersForMaskUpscaler with N regions (`extra_regions`): one region is upstream's node bit for bit; with two
regions each masked iteration is the base pass, then each region's pass over its own mask in region order."""

import dataclasses

import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from dualsampler.dual import Region, WholeRun, two_samplers_for_mask
from dualsampler.dual.base import inverse_mask
from dualsampler.dual.whole_run import run_to_zero
from dualsampler.masks import ellipse_mask, rectangle_mask
from dualsampler.models import random_world
from dualsampler.run import CONF_DIR
from dualsampler.runner.job import JobParts, run_job
from dualsampler.runner.settings import ConfigError
from dualsampler.runner.specs import SamplerSpec
from dualsampler.runner.upscaling import UpscaleSpec
from dualsampler.sampling import KSampler
from dualsampler.upscale import (
    DenoiseScheduleHook,
    TwoSamplersForMaskUpscaler,
    UpscaleHook,
    UpscaleSampler,
)
from dualsampler.upscale.two_samplers_upscaler import mask_for_latent

LEFT = ellipse_mask(64, 64, cy=0.5, cx=0.25, ry=0.3, rx=0.2)
RIGHT = rectangle_mask(64, 64, top=0.1, left=0.6, bottom=0.6, right=0.95)
TWO_REGIONS = ("regions=[{mask:{shape:ellipse,cx:0.25,rx:0.2},prompt:'red dots'},"
               "{mask:{shape:rectangle,top:0.5,bottom:1.0,left:0.5,right:1.0},prompt:'green waves'}]")


TINY = ["model=random_world", "seeds=1", "steps=2", "height=64", "width=64", "logger=none", "metrics=seams"]


def compose_job(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture(scope="module")
def world():
    return random_world(0)


@pytest.fixture(scope="module")
def passes(world):
    """The base pass and two region passes, each with its own sampler, seed, steps and denoise."""
    base = UpscaleSampler(KSampler(world.denoiser("blue stripes", cfg=3.0), "euler"), seed=1, steps=3, denoise=0.6)
    left = UpscaleSampler(KSampler(world.denoiser("red dots", cfg=4.0), "dpmpp_2m"), seed=7, steps=2, denoise=0.8)
    right = UpscaleSampler(KSampler(world.denoiser("green waves", cfg=2.0), "heun"), seed=11, steps=4, denoise=0.5)
    return base, left, right


@pytest.fixture(scope="module")
def latent():
    return torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))


def upscaler(world, base, regions, schedule="none", **kwargs):
    """The upscaler over `regions` [(sampler, mask), ...]: the first as mask_sampler/mask, the rest as extra regions."""
    (first, mask), *extra = regions
    return TwoSamplersForMaskUpscaler("bilinear", schedule, False, base, first, mask, world.vae,
                                      extra_regions=extra, **kwargs)


def pixel_stage(up, latent):
    """The iteration's decode -> 2x -> encode, without sampling (what the passes start from)."""
    return up.pixels(latent, 2 * 64, 2 * 64, UpscaleHook(), None)


def test_one_region_is_upstreams_two_sampler_iteration_bit_for_bit(world, passes, latent):
    base, left, _ = passes
    up = upscaler(world, base, [(left, LEFT)])
    out = up.upscale((0, 1), latent, 2.0)
    upscaled = pixel_stage(up, latent)
    expected = two_samplers_for_mask(upscaled, base.ksampler, left.ksampler, mask_for_latent(LEFT, upscaled),
                                     base.seed, base.steps, base.denoise, mask_seed=left.seed, mask_steps=left.steps,
                                     mask_denoise=left.denoise)
    assert torch.equal(out, expected)
    assert set(up.timings) == {"decode", "upscale", "encode", "base", "mask"}


def test_whole_runs_region_settings_for_one_region_are_the_mask_sampler_settings(world, passes, latent):
    base, left, _ = passes
    mask = mask_for_latent(LEFT, latent)
    call = two_samplers_for_mask(latent, base.ksampler, left.ksampler, mask, 1, 3, 0.6, mask_seed=7, mask_steps=2,
                                 mask_denoise=0.8)
    regions = WholeRun().sample_regions(latent, base_sampler=base.ksampler, regions=[Region(mask, left.ksampler)],
                                        seed=1, steps=3, denoise=0.6, region_settings=[(7, 2, 0.8)])
    assert torch.equal(call, regions)


def test_two_regions_run_the_base_pass_then_each_regions_pass_over_its_own_mask(world, passes, latent):
    base, left, right = passes
    up = upscaler(world, base, [(left, LEFT), (right, RIGHT)])
    out = up.upscale((0, 1), latent, 2.0)
    upscaled = pixel_stage(up, latent)
    m_left, m_right = mask_for_latent(LEFT, upscaled), mask_for_latent(RIGHT, upscaled)
    base_only = run_to_zero(base.ksampler, upscaled, 1, 3, 0.6, inverse_mask(torch.maximum(m_left, m_right)), None,
                            True)
    after_left = run_to_zero(left.ksampler, base_only, 7, 2, 0.8, m_left, None, True)
    after_right = run_to_zero(right.ksampler, after_left, 11, 4, 0.5, m_right, None, True)
    assert torch.equal(out, after_right)
    outside = ((m_left == 0) & (m_right == 0)).expand_as(out)  # the masks resized to the latent (bilinear spread)
    assert outside.any() and torch.equal(out[outside], base_only[outside])
    for before, after, mask in ((base_only, after_left, m_left), (after_left, after_right, m_right)):
        inside = (mask == 1).expand_as(out)
        assert (after[inside] - before[inside]).abs().max() > 0.05  # the region's pass re-samples its region
        held = (mask == 0).expand_as(out)
        assert torch.equal(after[held], before[held])  # and nothing outside its mask
    assert set(up.timings) == {"decode", "upscale", "encode", "base", "region0", "region1"}


class Recording(UpscaleHook):
    """Records every pass it sets and lowers its cfg by one."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = []

    def pre_sample(self, sampler):
        self.seen.append((self.cur_step, sampler.seed))
        return dataclasses.replace(sampler, cfg=sampler.base_cfg - 1.0)


def test_hook_mask_sets_every_regions_pass_every_masked_iteration(world, passes, latent):
    base, left, right = passes
    hook = Recording()
    up = upscaler(world, base, [(left, LEFT), (right, RIGHT)], hook_mask=hook)
    up.upscale((0, 2), latent, 1.5)
    up.upscale((1, 2), latent, 1.5)
    assert hook.seen == [(0, 7), (0, 11), (1, 7), (1, 11)]


def test_full_sample_iterations_ignore_the_regions(world, passes, latent):
    base, left, right = passes
    one = upscaler(world, base, [(left, LEFT)], schedule="last1")
    two = upscaler(world, base, [(left, LEFT), (right, RIGHT)], schedule="last1")
    assert two.is_full_sample_time((0, 1))
    assert torch.equal(one.upscale((0, 1), latent, 2.0), two.upscale((0, 1), latent, 2.0))
    assert set(two.timings) == {"decode", "upscale", "encode", "base", "full"}


@pytest.mark.parametrize("extra, message", [
    ([(None, RIGHT)], r"extra_regions\[0\] sampler must be an UpscaleSampler"),
    ([("sampler", RIGHT, 1)], r"extra_regions\[0\] must be a pair"),
    (["right"], r"extra_regions\[0\] must be a pair"),
    ({"sampler": RIGHT}, r"extra_regions must be a list"),
])
def test_malformed_extra_regions_are_refused(world, passes, extra, message):
    base, left, _ = passes
    with pytest.raises(ValueError, match=message):
        TwoSamplersForMaskUpscaler("bilinear", "none", False, base, left, LEFT, world.vae, extra_regions=extra)


class Counting:
    """A denoiser that counts its calls."""

    def __init__(self) -> None:
        self.cfg = 5.0
        self.calls = 0

    def __call__(self, x, sigma):
        self.calls += 1
        return torch.zeros_like(x)


@pytest.mark.parametrize("mask, message", [
    (RIGHT * 2, r"extra_regions\[0\] mask values must lie in \[0, 1\]"),
    (torch.full((64, 64), float("nan")), r"extra_regions\[0\] mask values must lie in \[0, 1\]"),
    (torch.zeros(2, 3, 64, 64), r"extra_regions\[0\] mask must have shape"),
    ("right", r"extra_regions\[0\] mask must be a torch.Tensor"),
])
def test_bad_region_masks_are_refused_before_any_model_call(world, mask, message):
    counting = Counting()
    spec = SamplerSpec("euler", "normal", 5.0, "red dots")
    ksampler = KSampler(counting, "euler")
    samplers = {"base": (spec, ksampler), "mask": (spec, ksampler)}
    with pytest.raises(ValueError, match=message):
        UpscaleSpec(iterations=1, steps=2).build(world, samplers, LEFT, [(spec, ksampler, mask)])
    sampler = UpscaleSampler(ksampler, 0, 2, 1.0)
    with pytest.raises(ValueError, match=message):
        TwoSamplersForMaskUpscaler("bilinear", "none", False, sampler, sampler, LEFT, world.vae,
                                   extra_regions=[(sampler, mask)])
    assert counting.calls == 0


def test_a_jobs_bad_second_region_mask_is_refused_by_its_checks_before_any_model_loads():
    bad = TWO_REGIONS.replace("right:1.0", "right:1.5")  # JobParts.from_config loads nothing
    with pytest.raises(ConfigError, match=r"regions\[1\]\.mask: right must be a finite number in \[0, 1\]"):
        JobParts.from_config(compose_job(*TINY, bad, "upscaler=two_samplers"))


def test_upstream_compat_takes_one_region(world, passes):
    base, left, right = passes
    with pytest.raises(ValueError, match="upstream_compat=True takes no extra region"):
        upscaler(world, base, [(left, LEFT), (right, RIGHT)], upstream_compat=True)
    with pytest.raises(ConfigError, match="upscaler: upstream's two-sampler upscaler takes one region"):
        JobParts.from_config(compose_job(*TINY, TWO_REGIONS, "upscaler=two_samplers", "upscaler.upstream_compat=true"))


def test_a_hook_that_breaks_one_regions_pass_is_refused_naming_the_region():
    short = SamplerSpec("euler", "normal", 5.0, "red dots", steps=5)
    long = SamplerSpec("euler", "normal", 5.0, "green waves", steps=20)
    spec = UpscaleSpec(iterations=2, steps=5, hook_mask=DenoiseScheduleHook(0.001))
    spec.check(64, 64, {"base": short, "mask": short}, [short])  # 5 steps at denoise 0.001: a 5000-step schedule
    with pytest.raises(ValueError, match=r"hook_mask at iteration 2 of 2 \(region 1\): .*denoise"):
        spec.check(64, 64, {"base": short, "mask": short}, [long])


def test_a_job_with_two_regions_upscales_every_region(tmp_path, monkeypatch):
    config = compose_job(*TINY, TWO_REGIONS, "upscaler=two_samplers", "upscaler.iterations=1", "upscaler.steps=2")
    (item,) = JobParts.from_config(config).items
    assert len(item.regions) == 2
    upscaler_passes = []
    sample_regions = WholeRun.sample_regions

    def spy(self, latent, *, region_settings=None, **kwargs):
        if region_settings is not None:  # only the upscaler's masked iterations give each region its settings
            upscaler_passes.append((tuple(latent.shape[-2:]), len(kwargs["regions"]), region_settings))
        return sample_regions(self, latent, region_settings=region_settings, **kwargs)

    monkeypatch.setattr(WholeRun, "sample_regions", spy)
    result = run_job(config, tmp_path / "job", "job", tmp_path / "locks")
    assert upscaler_passes == [((32, 32), 2, [([0], 2, 0.5), ([0], 2, 0.5)])]
    (per_seed,) = result["per_seed"]
    assert Image.open(tmp_path / "job" / per_seed["image"]).size == (128, 128)
    assert "seam/color_jump/region1" in result["metrics"]
