"""The literature's blending methods as region samplers: each region gets its own sampler's content (the sign and
level of the result say who painted a pixel), one batched forward per model call over a shared UNet, the papers'
options change what they should, closed forms of the pieces, hyper-parameter errors."""

import pytest
import torch

from dualsampler.dual import (ALGORITHMS, DifferentialDiffusion, MixtureOfDiffusers, MultiDiffusion, Region,
                              SoftInpainting)
from dualsampler.dual.differential_diffusion import Threshold, active
from dualsampler.dual.mixture_of_diffusers import gaussian_weight
from dualsampler.dual.joint import denoise_each
from dualsampler.dual.soft_inpainting import magnitude_blend, scheduled_mask
from dualsampler.masks import rectangle_mask
from dualsampler.sampling import KSampler, UNetDenoiser
from dualsampler.sampling.unet_denoiser import JointDenoiser

from helpers import ForwardCounter, GaussianData, embeddings, tiny_cond_unet

H, W = 8, 32
METHODS = [MultiDiffusion(), MixtureOfDiffusers(), SoftInpainting(feather=1.0), DifferentialDiffusion(feather=1.0)]


def two_regions(left_mu: float = 1.0, right_mu: float = 3.0) -> list[Region]:
    """Left quarter ~ N(left_mu, 0.1^2), right quarter ~ N(right_mu, 0.1^2); the base ~ N(-1, 0.1^2) between."""
    return [Region(rectangle_mask(H, W, 0, 0, 1, 0.25), KSampler(GaussianData(mu=left_mu, std=0.1))),
            Region(rectangle_mask(H, W, 0, 0.75, 1, 1), KSampler(GaussianData(mu=right_mu, std=0.1)))]


def test_the_four_methods_are_registered_under_their_config_names():
    assert {"multidiffusion", "mixture_of_diffusers", "soft_inpainting", "differential_diffusion"} <= set(ALGORITHMS)
    assert ALGORITHMS["multidiffusion"] is MultiDiffusion


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "euler_ancestral"])
def test_each_region_gets_its_own_samplers_content(method, sampler):
    base = KSampler(GaussianData(mu=-1.0, std=0.1), sampler)
    out = method.sample_regions(torch.zeros(2, 4, H, W), base_sampler=base, regions=two_regions(), seed=[3, 4],
                                steps=10)
    left, middle, right = out[..., :6], out[..., 12:20], out[..., 26:]  # 2 latent pixels clear of each boundary
    assert ((left > 0.5) & (left < 1.5)).all()
    assert (middle < -0.5).all()
    assert (right > 2.5).all()


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_the_two_sampler_call_is_the_one_region_form(method):
    base, inside = KSampler(GaussianData(mu=-1.0, std=0.1)), KSampler(GaussianData(mu=1.0, std=0.1))
    mask, latent = rectangle_mask(H, W, 0, 0.5, 1, 1), torch.zeros(1, 4, H, W)
    two = method(latent, base_sampler=base, mask_sampler=inside, mask=mask, seed=1, steps=6)
    one = method.sample_regions(latent, base_sampler=base, regions=[Region(mask, inside)], seed=1, steps=6)
    torch.testing.assert_close(two, one)


def shared_unet_samplers():
    """Three prompts on one tiny UNet with the shared negative prompt: the base and two regions."""
    unet = tiny_cond_unet()
    base = KSampler(UNetDenoiser(unet, cond=embeddings(1), uncond=embeddings(0), cfg=3.0), "euler", "karras")
    ms = base.denoiser.model_sampling
    masks = [rectangle_mask(8, 8, 0, 0, 1, 0.5), rectangle_mask(8, 8, 0.5, 0.5, 1, 1)]
    regions = [Region(m, KSampler(UNetDenoiser(unet, ms, embeddings(k), embeddings(0), 3.0)))
               for m, k in zip(masks, (2, 3))]
    return unet, base, regions


@pytest.mark.parametrize("method, batches", [
    (MultiDiffusion(bootstrap=0.0), [4] * 4),  # 3 prompts + the negative one evaluated once
    (MultiDiffusion(bootstrap=0.5), [6] * 2 + [4] * 2),  # bootstrap: each region at its own input, with its negative
    (MixtureOfDiffusers(), [4] * 4),
    (SoftInpainting(), [4] * 4),
    (DifferentialDiffusion(), [6] * 4),  # the base at its held trajectory, the regions at the edited one
], ids=["multidiffusion", "multidiffusion-bootstrap", "mixture_of_diffusers", "soft_inpainting",
        "differential_diffusion"])
def test_one_batched_forward_per_model_call_when_the_unet_is_shared(method, batches):
    unet, base, regions = shared_unet_samplers()
    counter = ForwardCounter(unet)
    out = method.sample_regions(torch.zeros(1, 4, 8, 8), base_sampler=base, regions=regions, seed=0, steps=4)
    assert counter.batches == batches and torch.isfinite(out).all()


def test_members_at_their_own_inputs_in_one_forward_equal_each_member_alone():
    _, base, regions = shared_unet_samplers()
    denoisers = [base.denoiser] + [r.sampler.denoiser for r in regions]
    xs = [torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    sigma = torch.full((2,), 1.5)
    together = denoise_each(JointDenoiser(denoisers), xs, sigma)
    for d, x, out in zip(denoisers, xs, together):
        torch.testing.assert_close(out, d(x, sigma), atol=1e-5, rtol=1e-5)
    pairs = denoise_each(JointDenoiser(denoisers), xs, sigma, with_uncond=True)
    for d, x, pair in zip(denoisers, xs, pairs):
        torch.testing.assert_close(pair, d.with_uncond(x, sigma), atol=1e-5, rtol=1e-5)


def test_multidiffusion_without_bootstrap_is_mixture_of_diffusers_with_flat_weights():
    _, base, regions = shared_unet_samplers()
    latent = torch.zeros(1, 4, 8, 8)
    run = dict(base_sampler=base, regions=regions, seed=5, steps=4)
    a = MultiDiffusion(overlap_factor=2, bootstrap=0).sample_regions(latent, **run)
    b = MixtureOfDiffusers(overlap_factor=2, weights="flat").sample_regions(latent, **run)
    torch.testing.assert_close(a, b)


def test_bootstrapping_changes_what_the_regions_paint():
    _, base, regions = shared_unet_samplers()
    latent, inside = torch.zeros(1, 4, 8, 8), regions[0].mask.bool().expand(1, 4, 8, 8)
    plain = MultiDiffusion(bootstrap=0).sample_regions(latent, base_sampler=base, regions=regions, seed=5, steps=6)
    booted = MultiDiffusion(bootstrap=0.5).sample_regions(latent, base_sampler=base, regions=regions, seed=5, steps=6)
    assert (plain - booted)[inside].abs().mean() > 1e-3


def test_gaussian_weights_leave_the_overlap_band_to_the_base_and_flat_weights_average_it():
    """With the band's weights w_base = 1 and w_region = 1 (flat) the x0 there is the average of N(-1) and N(+1)
    predictions, which ends near 0; the Gaussian weight of a region at its own edge is ~exp(-12.5) at the paper's
    0.1 scale, so the band ends on the base's -1."""
    base = KSampler(GaussianData(mu=-1.0, std=0.1))
    region = [Region(rectangle_mask(H, W, 0, 0.5, 1, 1), KSampler(GaussianData(mu=1.0, std=0.1)))]
    latent = torch.zeros(1, 4, H, W)
    flat = MixtureOfDiffusers(overlap_factor=5, weights="flat").sample_regions(latent, base_sampler=base,
                                                                             regions=region, seed=0, steps=8)
    gauss = MixtureOfDiffusers(overlap_factor=5).sample_regions(latent, base_sampler=base, regions=region, seed=0,
                                                                steps=8)
    band = (slice(None), slice(None), slice(None), slice(13, 16))  # mask grown by a 5-box: 2 columns left of it
    assert flat[band][..., 1:].abs().max() < 0.3
    assert (gauss[band] < -0.8).all()
    assert (flat[..., 18:] > 0.8).all() and (gauss[..., 18:] > 0.8).all()


def test_gaussian_weight_peaks_at_the_region_centre_with_its_extent_as_scale():
    support = torch.zeros(1, 1, 9, 21)
    support[..., 2:7, 5:16] = 1  # 5 rows x 11 columns, centre (4, 10)
    w = gaussian_weight(support, 0.1)
    assert w[0, 0, 4, 10] == 1
    torch.testing.assert_close(w[0, 0, 4, 15], torch.exp(torch.tensor(-0.5 * (5 / 1.1) ** 2)))
    torch.testing.assert_close(w[0, 0, 6, 10], torch.exp(torch.tensor(-0.5 * (2 / 0.5) ** 2)))


def test_scheduled_mask_is_the_mask_to_a_sigma_power():
    m = torch.tensor([0.0, 0.25, 0.5, 1.0]).reshape(1, 1, 1, 4)
    squared = torch.tensor([0.0, 0.25**2, 0.5**2, 1.0]).reshape(1, 1, 1, 4)
    torch.testing.assert_close(scheduled_mask(m, 4.0, 1.0, 0.5), squared)  # 4 ** 1 * 0.5 = 2
    torch.testing.assert_close(scheduled_mask(m, 4.0, 0.5, 0.5), m)  # 4 ** 0.5 * 0.5 = 1
    assert scheduled_mask(m, 0.0, 1.0, 0.5)[0, 0, 0, 0] == 0  # never 0 ** 0


def test_magnitude_blend_keeps_the_lerps_direction_with_the_p_mean_of_the_magnitudes():
    a, b = torch.tensor([3.0, 0, 0, 0]).reshape(1, 4, 1, 1), torch.tensor([0, 1.0, 0, 0]).reshape(1, 4, 1, 1)
    t = torch.full((1, 1, 1, 1), 0.5)
    out = magnitude_blend(a, b, t, 4.0)
    lerp = a * 0.5 + b * 0.5
    torch.testing.assert_close(out / out.norm(), lerp / lerp.norm())
    torch.testing.assert_close(out.norm(), torch.tensor((0.5 * 3**4 + 0.5 * 1) ** 0.25), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(magnitude_blend(a, b, torch.zeros_like(t), 4.0), a, rtol=1e-4, atol=1e-4)


def test_soft_inpainting_band_leans_to_the_region_as_sigma_falls():
    """The blurred band's weight m ** (sigma / 2) rises to ~1 at the last steps: the band ends on the region."""
    base = KSampler(GaussianData(mu=-1.0, std=0.1))
    region = [Region(rectangle_mask(H, W, 0, 0.5, 1, 1), KSampler(GaussianData(mu=1.0, std=0.1)))]
    out = SoftInpainting(feather=4.0).sample_regions(torch.zeros(1, 4, H, W), base_sampler=base, regions=region,
                                                     seed=0, steps=10)
    assert (out[..., 14:16] > 0.5).all() and (out[..., :10] < -0.5).all()


def test_differential_threshold_falls_from_one_at_the_first_sigma_to_zero_at_the_last():
    sampler = KSampler(GaussianData())
    sigmas = sampler.sigmas(10)
    tau = Threshold(sampler.model_sampling, sigmas)
    values = [tau(float(s)) for s in sigmas[:-1]]
    assert values[0] == 1 and values[-1] == 0 and values == sorted(values, reverse=True)
    change = torch.tensor([0.0, 0.3, 1.0])
    assert active(change, 0.0).tolist() == [0, 1, 1] and active(change, 0.5).tolist() == [0, 0, 1]


def test_differential_diffusion_holds_a_pixel_to_the_base_trajectory_until_the_threshold_reaches_its_change():
    """A column of change 0.5 follows the base sampler's own run step by step while tau > 0.5, then the region's."""
    base = KSampler(GaussianData(mu=-1.0, std=0.1), "euler_ancestral")
    mask = torch.zeros(1, 1, H, W)
    mask[..., 20:] = 1.0
    mask[..., 10] = 0.5
    region = [Region(mask, KSampler(GaussianData(mu=1.0, std=0.1)))]
    edited, alone = [], []
    DifferentialDiffusion(feather=0.0).sample_regions(torch.zeros(1, 4, H, W), base_sampler=base, regions=region,
                                                      seed=7, steps=8, callback=lambda info: edited.append(info))
    base.sample(torch.zeros(1, 4, H, W), 7, 8, callback=lambda info: alone.append(info["x"]))
    tau = Threshold(base.model_sampling, base.sigmas(8))
    for info, x_base in zip(edited, alone):
        held = tau(float(info["sigma"])) > 0.5
        assert torch.equal(info["x"][..., 10], x_base[..., 10]) == held
        assert torch.equal(info["x"][..., :8], x_base[..., :8])  # change 0: always the base's own run
    assert (edited[-1]["x"][..., 10] > 0.5).all()


@pytest.mark.parametrize("cls, kwargs, message", [
    (MultiDiffusion, {"bootstrap": 1.5}, r"bootstrap must be a finite number in \[0, 1\]"),
    (MultiDiffusion, {"overlap_factor": -2}, r"overlap_factor must be an integer in \[0,"),
    (MixtureOfDiffusers, {"sigma_scale": 0}, r"sigma_scale must be a finite number in \[0.01, 10\]"),
    (MixtureOfDiffusers, {"weights": "cosine"}, "weights must be one of gaussian, flat"),
    (SoftInpainting, {"schedule_bias": -1}, r"schedule_bias must be a finite number in \[0, 8\]"),
    (SoftInpainting, {"preservation_strength": 9}, r"preservation_strength must be a finite number in \[0, 8\]"),
    (SoftInpainting, {"transition_contrast_boost": 0.5}, r"transition_contrast_boost must be a finite number in \[1, 32\]"),
    (SoftInpainting, {"feather": float("nan")}, r"feather must be a finite number in \[0, 64\]"),
    (DifferentialDiffusion, {"feather": "wide"}, r"feather must be a finite number in \[0, 64\]"),
    (DifferentialDiffusion, {"overlap_factor": 1.5}, r"overlap_factor must be an integer in \[0,"),
])
def test_bad_hyper_parameters_are_rejected_when_the_method_is_made(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_bad_inputs_are_rejected_before_any_model_call(method):
    base, inside = GaussianData(), GaussianData()
    with pytest.raises(ValueError, match="does not match the latent"):
        method(torch.zeros(1, 4, H, W), base_sampler=KSampler(base), mask_sampler=KSampler(inside),
               mask=torch.ones(H + 1, W), seed=0, steps=4)
    assert base.calls == inside.calls == 0


@pytest.mark.parametrize("folder", ["sd15", "sdxl"])
def test_members_at_their_own_inputs_stack_stable_diffusion_conditionings_into_one_forward(sd_models, folder):
    """SDXL's conditioning (pooled text embeddings, size time ids) stacks as SD 1.5's hidden states do."""
    from dualsampler.models import load_model

    model = load_model(getattr(sd_models, folder))
    denoisers = [model.denoiser(prompt, cfg=4.0) for prompt in ("blue", "red dots", "green")]
    xs = [torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    sigma = torch.full((1,), 2.0)
    counter = ForwardCounter(model.unet)
    together = denoise_each(JointDenoiser(denoisers), xs, sigma)
    assert counter.batches == [6]
    for d, x, out in zip(denoisers, xs, together):
        torch.testing.assert_close(out, d(x, sigma), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("method", [MultiDiffusion(bootstrap=0.5), MixtureOfDiffusers(), SoftInpainting(),
                                    DifferentialDiffusion()], ids=lambda m: m.name)
def test_cfg_pp_samplers_get_the_blended_unconditional_prediction(method):
    _, base, regions = shared_unet_samplers()
    out = method.sample_regions(torch.zeros(1, 4, 8, 8), base_sampler=KSampler(base.denoiser, "dpmpp_2m_cfg_pp"),
                                regions=regions, seed=0, steps=4)
    assert torch.isfinite(out).all()
    gaussian = GaussianData()
    with pytest.raises(ValueError, match="CFG\\+\\+ sampler"):
        method.sample_regions(torch.zeros(1, 4, 8, 8), base_sampler=KSampler(gaussian, "euler_cfg_pp"),
                              regions=[Region(regions[0].mask, KSampler(gaussian))], seed=0, steps=4)
    assert gaussian.calls == 0
