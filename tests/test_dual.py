"""Region samplers (SPEC §5-6): content on the right side of the mask, invariants of each step, errors."""

import contextlib

import pytest
import torch

from dualsampler.dual import (MODES, Alternate, Fused, Region, Regional, WholeRun, inverse_mask,
                             two_advanced_samplers_for_mask, two_samplers_for_mask)
from dualsampler.masks import ellipse_mask, grow_mask, rectangle_mask
from dualsampler.sampling import KSampler, UNetDenoiser

from helpers import ForwardCounter, GaussianData, embeddings, tiny_cond_unet

H, W = 8, 20  # a non-square latent


@pytest.fixture
def samplers():
    """Base data ~ N(-1, 0.1^2), mask data ~ N(+1, 0.1^2): the sign of the result tells who painted a pixel."""
    return KSampler(GaussianData(mu=-1.0, std=0.1), "euler"), KSampler(GaussianData(mu=1.0, std=0.1), "euler")


@pytest.fixture
def latent():
    return torch.zeros(2, 4, H, W)


@pytest.fixture
def mask():
    return rectangle_mask(H, W, 0.0, 0.5, 1.0, 1.0)  # right half


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "euler_ancestral"])
def test_each_side_gets_its_own_sampler_content(samplers, latent, mask, mode, sampler):
    base, inside = (KSampler(s.denoiser, sampler) for s in samplers)
    out = two_advanced_samplers_for_mask(3, 12, 1.0, latent, base, inside, mask, overlap_factor=3, mode=mode)
    band = grow_mask(mask, H, W, 3) - mask  # one column left of the boundary
    outside, inside_ = (1 - mask - band).bool().expand_as(out), mask.bool().expand_as(out)
    # seed mode restarts ancestral noise from the seed at every per-step call (as upstream): wider spread
    assert (out[inside_] > 0).all() and out[inside_].mean() > 0.8
    assert (out[outside] < 0).all() and out[outside].mean() < -0.8


def test_two_samplers_for_mask_runs_base_then_mask(samplers, latent, mask):
    out = two_samplers_for_mask(latent, *samplers, mask, seed=1, steps=10)
    assert (out[mask.bool().expand_as(out)] > 0.5).all() and (out[(1 - mask).bool().expand_as(out)] < -0.5).all()


def test_mask_sampler_may_carry_its_own_seed_steps_and_denoise(samplers, latent, mask):
    base, inside = samplers
    out = two_samplers_for_mask(latent, base, inside, mask, 1, 10, mask_seed=2, mask_steps=4, mask_denoise=0.5)
    x = base.sample(latent, 1, 10, 1.0, (mask != 1).float())
    torch.testing.assert_close(out, inside.sample(x, 2, 4, 0.5, mask))


def test_empty_mask_in_seed_mode_equals_one_base_run(samplers, latent):
    base, inside = samplers
    out = two_advanced_samplers_for_mask(5, 10, 1.0, latent, base, inside, torch.zeros(H, W), overlap_factor=4)
    torch.testing.assert_close(out, base.sample(latent, 5, 10), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_full_mask_is_all_mask_sampler(samplers, latent, mode):
    with pytest.warns(UserWarning, match="the grown mask covers the whole canvas"):
        out = two_advanced_samplers_for_mask(5, 8, 1.0, latent, *samplers, torch.ones(H, W), mode=mode)
    assert (out > 0.5).all()


def test_step_invariants_of_seed_mode(samplers, latent, mask):
    """In the mask sampler's step nothing outside the grown mask changes; in the base's nothing where mask == 1."""
    grown = grow_mask(mask, H, W, 3)
    states = []
    base, inside = samplers
    two_advanced_samplers_for_mask(0, 6, 1.0, latent, base, inside, mask, 3,
                                   callback=lambda info: states.append((info["sampler"], info["step"], info["x"])))
    assert [s[:2] for s in states] == [(name, i) for i in range(6) for name in ("base", "mask")]
    for k in range(1, len(states)):
        name, step, x = states[k]
        before = states[k - 1][2]
        frozen = (1 - grown) if name == "mask" else mask
        if step > 0:
            assert (x - before)[frozen.bool().expand_as(x)].abs().max() < 1e-5, (name, step)


def test_denoise_below_one_keeps_part_of_the_input(samplers, mask):
    start = torch.full((1, 4, H, W), 3.0)
    light = two_advanced_samplers_for_mask(0, 6, 0.2, start, *samplers, mask, 2)
    full = two_advanced_samplers_for_mask(0, 6, 1.0, start, *samplers, mask, 2)
    assert (light - start).abs().mean() < (full - start).abs().mean()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("overlap", [0, 1, 7, 100])
def test_overlap_factors_from_zero_to_larger_than_the_latent(samplers, latent, mask, mode, overlap):
    covering = pytest.warns(UserWarning, match="the grown mask covers the whole canvas")
    with covering if overlap == 100 else contextlib.nullcontext():
        out = two_advanced_samplers_for_mask(0, 4, 1.0, latent, *samplers, mask, overlap, mode)
    assert out.shape == latent.shape and torch.isfinite(out).all()
    assert (out[mask.bool().expand_as(out)] > 0.5).all()


@pytest.mark.parametrize("mode", ["seed", "fused"])
def test_mask_at_image_resolution_equals_mask_at_latent_resolution(samplers, latent, mode):
    image_mask = rectangle_mask(4 * H, 4 * W, 0.0, 0.5, 1.0, 1.0)
    latent_mask = rectangle_mask(H, W, 0.0, 0.5, 1.0, 1.0)
    a = two_advanced_samplers_for_mask(0, 5, 1.0, latent, *samplers, image_mask, 3, mode)
    b = two_advanced_samplers_for_mask(0, 5, 1.0, latent, *samplers, latent_mask, 3, mode)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m_sde"])
def test_several_seeds_in_one_batch_match_one_at_a_time(samplers, mask, mode, sampler):
    base, inside = (KSampler(s.denoiser, sampler) for s in samplers)
    latent = torch.zeros(3, 4, H, W)
    batched = two_advanced_samplers_for_mask([4, 5, 6], 6, 1.0, latent, base, inside, mask, 3, mode)
    for b, seed in enumerate([4, 5, 6]):
        single = two_advanced_samplers_for_mask([seed], 6, 1.0, latent[:1], base, inside, mask, 3, mode)
        torch.testing.assert_close(batched[b : b + 1], single, atol=1e-5, rtol=1e-5)


def test_fused_mode_makes_one_forward_per_model_call_and_seed_mode_two():
    unet = tiny_cond_unet()
    base = KSampler(UNetDenoiser(unet, cond=embeddings(1), uncond=embeddings(0), cfg=3.0), "euler", "karras")
    inside = KSampler(UNetDenoiser(unet, base.denoiser.model_sampling, embeddings(2), embeddings(0), 3.0), "euler", "karras")
    latent, mask = torch.zeros(1, 4, 8, 8), rectangle_mask(8, 8, 0.25, 0.25, 0.75, 0.75)
    counter = ForwardCounter(unet)
    two_advanced_samplers_for_mask(0, 4, 1.0, latent, base, inside, mask, 2, "fused")
    assert counter.batches == [3] * 4  # 4 model calls, each ONE forward: 2 prompts + the shared negative one
    counter.batches.clear()
    two_advanced_samplers_for_mask(0, 4, 1.0, latent, base, inside, mask, 2, "seed")
    assert counter.batches == [2] * 8


def test_regional_route_takes_n_regions(latent):
    base = KSampler(GaussianData(mu=-1.0, std=0.1), "euler")
    left = Region(rectangle_mask(H, W, 0, 0, 1, 0.25), KSampler(GaussianData(mu=1.0, std=0.1)))
    right = Region(rectangle_mask(H, W, 0, 0.75, 1, 1), KSampler(GaussianData(mu=3.0, std=0.1)))
    out = Regional(overlap_factor=0).sample_regions(latent, base_sampler=base, regions=[left, right], seed=0, steps=8)
    assert (out[..., :5] > 0.5).all() and (out[..., :5] < 1.5).all()
    assert (out[..., 15:] > 2.5).all()
    assert (out[..., 6:14] < -0.5).all()


@pytest.mark.parametrize("options", [
    {"base_only_steps": 0}, {"base_only_steps": 3}, {"restore_latent": False},
    {"seed_2nd": 7, "seed_2nd_mode": "seed+seed_2nd"}, {"seed_2nd": 7, "seed_2nd_mode": "fixed"},
    {"additional_mode": "ratio additional"}, {"additional_mode": "DISABLE"},
])
def test_regional_options_keep_each_side_painted(samplers, latent, mask, options):
    base, inside = (KSampler(s.denoiser, "dpmpp_2m_sde") for s in samplers)
    out = two_advanced_samplers_for_mask(1, 8, 1.0, latent, base, inside, mask, 0, "regional", **options)
    assert (out[mask.bool().expand_as(out)] > 0.5).all() and (out[(1 - mask).bool().expand_as(out)] < -0.5).all()


def test_fused_feathering_softens_the_blend(samplers, latent, mask):
    hard = two_advanced_samplers_for_mask(0, 6, 1.0, latent, *samplers, mask, 0, "fused")
    soft = two_advanced_samplers_for_mask(0, 6, 1.0, latent, *samplers, mask, 0, "fused", feather=3.0)
    column = soft[0, 0, 4]
    assert -0.9 < column[W // 2 - 1].item() < 0.9 and (hard[0, 0, 4, W // 2 - 1] < -0.5)


@pytest.mark.parametrize("kwargs, message", [
    ({"mask": torch.ones(H + 1, W)}, "does not match the latent"),
    ({"mask": torch.full((H, W), 1.5)}, r"mask values must lie in \[0, 1\]"),
    ({"mode": "parallel"}, "mode must be one of seed, regional, fused"),
    ({"overlap_factor": -1}, r"overlap_factor must be an integer in \[0,"),
    ({"denoise": 0}, r"denoise must be a finite number in \(0, 1\]"),
    ({"steps": 0}, "steps must be an integer in \\[1,"),
    ({"mask": torch.ones(3, 1, H, W)}, "mask batch must be 1 or 2"),
    ({"additional_mode": "more", "mode": "regional"}, "additional_mode must be one of"),
])
def test_bad_inputs_are_rejected_before_any_model_call(latent, kwargs, message):
    base, inside = GaussianData(), GaussianData()
    args = dict(seed=0, steps=4, denoise=1.0, latent=latent, base_sampler=KSampler(base), mask_sampler=KSampler(inside),
                mask=torch.ones(H, W), overlap_factor=2, mode="seed") | kwargs
    with pytest.raises(ValueError, match=message):
        two_advanced_samplers_for_mask(**args)
    assert base.calls == inside.calls == 0


def test_a_per_step_run_checks_its_inputs_once_and_builds_each_schedule_once(samplers, latent, mask, monkeypatch):
    import dualsampler.dual.checks as checks
    import dualsampler.sampling.ksampler as ksampler

    calls = {"check_latent": 0, "get_sigmas": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(checks, "check_latent", counted("check_latent", checks.check_latent))
    monkeypatch.setattr(ksampler, "schedule_sigmas", counted("get_sigmas", ksampler.schedule_sigmas))
    two_advanced_samplers_for_mask(0, 12, 1.0, latent, *samplers, mask, 3, "seed")
    assert calls == {"check_latent": 1, "get_sigmas": 2}  # one schedule per sampler, not one per step


@pytest.mark.parametrize("mode, algorithm", [("seed", Alternate(3)), ("regional", Regional(3)), ("fused", Fused(3))])
def test_the_upstream_entry_point_gives_the_algorithm_objects_tensor(samplers, latent, mask, mode, algorithm):
    old = two_advanced_samplers_for_mask(7, 6, 1.0, latent, *samplers, mask, 3, mode)
    new = algorithm(latent, base_sampler=samplers[0], mask_sampler=samplers[1], mask=mask, seed=7, steps=6)
    assert torch.equal(old, new)


@pytest.mark.parametrize("overlap", [0, 1])
def test_the_regional_route_denoises_every_pixel_of_an_image_resolution_disc(overlap):
    """A 128 px disc on a 32x32 latent: boundary pixels that resize to 0.5 belong to both routes, never to none."""
    base = KSampler(GaussianData(mu=-1.0, std=0.1), "euler")
    inside = KSampler(GaussianData(mu=1.0, std=0.1), "euler")
    disc = ellipse_mask(128, 128, 0.5, 0.5, 0.3, 0.3)
    out = Regional(overlap).sample_regions(torch.zeros(1, 4, 32, 32), base_sampler=base,
                                           regions=[Region(disc, inside)], seed=0, steps=10)
    assert out.abs().max() < 1.6  # an undenoised pixel keeps noise of std sigma_max (14.6)


def test_whole_runs_return_the_last_x0_prediction_as_upstream(samplers, latent, mask):
    base, inside = (KSampler(s.denoiser, "uni_pc") for s in samplers)
    upstream = WholeRun()(latent, base_sampler=base, mask_sampler=inside, mask=mask, seed=1, steps=6)
    final_x = WholeRun(return_x0=False)(latent, base_sampler=base, mask_sampler=inside, mask=mask, seed=1, steps=6)
    assert not torch.equal(upstream, final_x) and (upstream - final_x).abs().max() < 0.1


def test_regional_rejects_more_base_only_steps_than_steps(samplers, latent, mask):
    base, inside = samplers
    with pytest.raises(ValueError, match=r"base_only_steps must be in \[0, steps\] = \[0, 4\]"):
        Regional(base_only_steps=5)(latent, base_sampler=base, mask_sampler=inside, mask=mask, seed=0, steps=4)
    assert base.denoiser.calls == 0


@pytest.mark.parametrize("seed_2nd_mode", ["ignore", "fixed"])
def test_regional_with_base_only_steps_equal_to_steps_is_a_base_only_run(samplers, latent, mask, seed_2nd_mode):
    """Upstream runs the whole schedule with the base sampler and never calls a region's sampler."""
    base, inside = (KSampler(s.denoiser, "uni_pc") for s in samplers)
    out = two_advanced_samplers_for_mask(3, 5, 1.0, latent, base, inside, mask, 2, "regional", base_only_steps=5,
                                         seed_2nd=9, seed_2nd_mode=seed_2nd_mode)
    assert inside.denoiser.calls == 0
    last = []
    alone = base.sample(latent, 3, 5, callback=lambda info: last.append(info["denoised"]))
    # with leftover noise kept (ignore) the final x, else the last x0 prediction, as upstream's wrapper returns
    torch.testing.assert_close(out, alone if seed_2nd_mode == "ignore" else last[-1], atol=0, rtol=0)


def test_the_second_seed_wraps_once_at_2_to_the_50_as_upstream():
    from dualsampler.dual.regional import second_seed

    top = 2**50
    assert second_seed(top - 1, 5, "add") == 4 and second_seed(top, 0, "add") == top  # > 2**50 only
    assert second_seed(2**60, 3, "add") == 2**60 + 3 - top  # once, not mod 2**50
    assert second_seed(3, 5, "subtract") == top - 2 and second_seed([3, 9], 5, "subtract") == [top - 2, 4]
    assert second_seed(3, 7, "fixed") == 7 and second_seed(3, 7, "none") == 3
    with pytest.raises(ValueError, match=r"second_seed: .* must be in \[0, 2\*\*64\)"):
        second_seed(0, 2**51, "subtract")
    with pytest.raises(ValueError, match="second_seed"):
        second_seed(2**64 - 1, 2**64 - 1, "add")


def test_a_mask_within_rounding_of_1_gives_the_base_sampler_nothing(samplers, latent):
    """A constant-1 mask resized with aligned corners holds 0.99999994 at some pixels: still fully on."""
    ones = torch.nn.functional.interpolate(torch.ones(1, 1, 3, 7), size=(H, W), mode="bilinear", align_corners=True)
    assert bool((ones < 1).any())
    assert inverse_mask(ones).sum() == 0 and inverse_mask(torch.full((1, 1, 2, 2), 0.9999)).sum() == 4
    start = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
    rounded = two_samplers_for_mask(start, *samplers, ones, 0, 4, 0.5)
    exact = two_samplers_for_mask(start, *samplers, torch.ones(H, W), 0, 4, 0.5)
    torch.testing.assert_close(rounded, exact, atol=1e-6, rtol=0)  # (mask != 1) gave the base sampler 0.096


@pytest.mark.parametrize("options", [{"base_only_steps": 0}, {"seed_2nd": 7, "seed_2nd_mode": "fixed"}])
def test_upstream_compat_re_noises_every_regional_base_step_where_upstream_does(samplers, latent, mask, options):
    """Upstream's RegionalSampler hands its noise to every base step once it added noise after the base-only
    steps; ours adds it once, and reproduces upstream with the base sampler's upstream_compat."""
    base, inside = samplers
    compat = KSampler(base.denoiser, "euler", upstream_compat=True)
    run = lambda b, **kw: two_advanced_samplers_for_mask(1, 6, 1.0, latent, b, inside, mask, 0, "regional", **kw)
    once, renoised = run(base, **options), run(compat, **options)
    assert (once - renoised).abs().max() > 0.1
    outside = (1 - mask).bool().expand_as(once)
    assert renoised[outside].std() > 2 * once[outside].std()  # the same noise added again at every step
    torch.testing.assert_close(run(compat), run(base))  # leftover noise kept: nothing re-noised


def test_an_overlap_covering_the_whole_canvas_warns(samplers, latent, mask):
    with pytest.warns(UserWarning, match="covers the whole canvas"):
        Alternate(100)(latent, base_sampler=samplers[0], mask_sampler=samplers[1], mask=mask, seed=0, steps=2)


@pytest.mark.parametrize("call, message", [
    (lambda s, l, m: Alternate()(l, base_sampler=None, mask_sampler=s[1], mask=m, seed=0, steps=4),
     "base_sampler must be a dualsampler.sampling.KSampler"),
    (lambda s, l, m: WholeRun()(l, base_sampler=s[0], mask_sampler=s[1], mask=m, seed=0, steps=4, mask_steps=0),
     "mask_steps"),
    (lambda s, l, m: Fused(feather=float("nan")), "feather must be a finite number in"),
    (lambda s, l, m: Alternate(overlap_factor=float("inf")), "overlap_factor must be an integer in \\[0,"),
    (lambda s, l, m: Regional(second_seed_mode="sometimes"), "second_seed_mode must be one of"),
])
def test_algorithm_errors_name_the_parameter(samplers, latent, mask, call, message):
    with pytest.raises(ValueError, match=message):
        call(samplers, latent, mask)
    assert samplers[0].denoiser.calls == samplers[1].denoiser.calls == 0


def test_a_latent_with_the_wrong_channel_count_is_rejected_before_the_unet_runs():
    unet = tiny_cond_unet()
    base = KSampler(UNetDenoiser(unet, cond=embeddings(1)), "euler")
    counter = ForwardCounter(unet)
    with pytest.raises(ValueError, match="latent has 3 channels but base_sampler's model expects 4"):
        Fused()(torch.zeros(1, 3, 8, 8), base_sampler=base, mask_sampler=base, mask=torch.ones(8, 8), seed=0, steps=2)
    assert counter.batches == []


@pytest.mark.parametrize("algorithm", [Alternate(2), Fused(2)])
def test_a_seed_list_gives_each_image_its_own_result_to_float_rounding(algorithm):
    """Each element draws the noise it draws alone; batched convolutions only round differently (README)."""
    from dualsampler.models import random_world

    world = random_world(0)
    base = KSampler(world.denoiser("blue stripes", cfg=3.0), "euler")
    inside = KSampler(world.denoiser("red dots", cfg=3.0), "dpmpp_2m")
    mask = ellipse_mask(64, 64, 0.5, 0.5, 0.3, 0.3)
    run = lambda n, seed: algorithm(torch.zeros(n, 4, 16, 16), base_sampler=base, mask_sampler=inside, mask=mask,
                                    seed=seed, steps=4)
    batched = run(3, [4, 5, 6])
    for k, seed in enumerate([4, 5, 6]):
        torch.testing.assert_close(batched[k:k + 1], run(1, [seed]), atol=2e-4, rtol=0)


def test_regional_sampler_keeps_upstreams_argument_order_and_is_the_one_region_route(samplers, latent, mask):
    from dualsampler.dual import regional_sampler

    route = two_advanced_samplers_for_mask(5, 6, 1.0, latent, *samplers, mask, 2, "regional")
    node = regional_sampler(5, 0, "ignore", 6, 1, 1.0, latent, samplers[0], [Region(mask, samplers[1])], 2)
    assert torch.equal(route, node)
    with pytest.raises(ValueError, match="seed_2nd_mode must be one of"):
        regional_sampler(5, 0, "twice", 6, 1, 1.0, latent, samplers[0], [Region(mask, samplers[1])])
