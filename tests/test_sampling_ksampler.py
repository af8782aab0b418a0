"""KSampler.sample_advanced / sample (SPEC §4): slices, noise, leftover noise, denoise, noise masks, errors."""

import pytest
import torch

from dualsampler.masks import half_mask
from dualsampler.sampling import KSampler, ModelSampling, NoiseStream, get_sigmas, sample


@pytest.fixture
def latent() -> torch.Tensor:
    return torch.randn(2, 4, 8, 12, generator=torch.Generator().manual_seed(3))


def test_added_noise_is_upstream_cpu_randn_and_scaled_by_sqrt_1_plus_sigma_max(gaussian, latent):
    seen = []

    def spy(x, sigma):
        seen.append(x.clone())
        return gaussian(x, sigma)

    KSampler(spy, "euler", "normal").sample_advanced(True, 42, 10, latent, 0, 10, False)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(42))
    smax = ModelSampling().sigma_max
    torch.testing.assert_close(seen[0], latent + noise * (1 + smax**2) ** 0.5)


def test_partial_start_adds_noise_scaled_by_sigma(gaussian, latent):
    seen = []
    ks = KSampler(lambda x, s: seen.append(x.clone()) or gaussian(x, s), "euler", "karras")
    ks.sample_advanced(True, 1, 10, latent, 4, 10, False)
    noise = NoiseStream(1)(latent)
    torch.testing.assert_close(seen[0], latent + noise * float(ks.sigmas(10)[4]))


@pytest.mark.parametrize("sampler", ["euler", "ddim", "euler_ancestral", "dpmpp_2s_ancestral", "dpm_2", "heun"])
def test_two_slices_with_leftover_noise_equal_one_call_for_single_step_samplers(gaussian, latent, sampler):
    ks = KSampler(gaussian, sampler, "karras")
    whole = ks.sample_advanced(True, 9, 12, latent, 0, 12, False)
    first = ks.sample_advanced(True, 9, 12, latent, 0, 5, True)
    second = ks.sample_advanced(False, 9, 12, first, 5, 12, False)
    if sampler in ("euler", "ddim", "dpm_2", "heun"):
        torch.testing.assert_close(second, whole, atol=1e-5, rtol=1e-5)
    else:  # ancestral noise restarts from the seed in each call, as upstream: same law, other draw
        assert second.shape == whole.shape and torch.isfinite(second).all()


def test_end_before_steps_without_leftover_noise_denoises_fully(gaussian, latent):
    ks = KSampler(gaussian, "euler", "normal")
    seen = []
    ks.sample_advanced(True, 0, 10, latent, 0, 4, False, callback=lambda info: seen.append(info["sigma"]))
    assert len(seen) == 4
    leftover = ks.sample_advanced(True, 0, 10, latent, 0, 4, True)
    full = ks.sample_advanced(True, 0, 10, latent, 0, 4, False)
    assert (leftover - full).abs().mean() > 0.1


def test_a_slice_with_nothing_to_do_returns_the_latent(gaussian, latent):
    ks = KSampler(gaussian, "euler", "normal")
    out = ks.sample_advanced(True, 0, 10, latent, 10, 20, False)
    assert torch.equal(out, latent) and out is not latent
    assert gaussian.calls == 0


def test_denoise_maps_to_the_tail_of_a_longer_schedule(gaussian, latent):
    ks = KSampler(gaussian, "euler", "normal")
    partial = ks.sample(latent, 5, 6, denoise=0.5)
    same = ks.sample_advanced(True, 5, 12, latent, 6, 12, False)
    torch.testing.assert_close(partial, same)
    assert gaussian.calls == 12


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpmpp_2m", "lms", "uni_pc", "dpmpp_2m_sde", "dpmpp_sde"])
def test_noise_mask_holds_the_latent_outside_and_moves_it_inside(gaussian, latent, sampler):
    mask = half_mask(8, 12, "right")
    out = KSampler(gaussian, sampler, "karras").sample(latent, 0, 8, noise_mask=mask)
    outside, inside = mask.expand_as(latent) == 0, mask.expand_as(latent) == 1
    assert (out - latent)[outside].abs().max() < 1e-6
    assert (out - latent)[inside].abs().mean() > 0.1


def test_noise_mask_at_image_resolution_is_resized_to_the_latent(gaussian, latent):
    image_mask = half_mask(32, 48, "left")
    latent_mask = half_mask(8, 12, "left")
    ks = KSampler(gaussian, "euler", "normal")
    torch.testing.assert_close(ks.sample(latent, 0, 5, noise_mask=image_mask), ks.sample(latent, 0, 5, noise_mask=latent_mask))


def test_zero_mask_changes_nothing_and_leftover_noise_is_consistent_outside(gaussian, latent):
    ks = KSampler(gaussian, "dpmpp_2m", "karras")
    out = ks.sample(latent, 0, 6, noise_mask=torch.zeros(8, 12))
    torch.testing.assert_close(out, latent, atol=1e-6, rtol=0)
    noisy = latent + torch.randn_like(latent)
    step = KSampler(gaussian, "euler", "karras").sample_advanced(False, 0, 6, noisy, 2, 3, True, torch.zeros(1, 1, 8, 12))
    torch.testing.assert_close(step, noisy, atol=1e-6, rtol=0)


def test_per_element_masks_and_seeds(gaussian, latent):
    masks = torch.stack([half_mask(8, 12, "left")[0], half_mask(8, 12, "right")[0]])
    ks = KSampler(gaussian, "euler_ancestral", "normal")
    both = ks.sample(latent, [1, 2], 4, noise_mask=masks)
    one = ks.sample(latent[1:], [2], 4, noise_mask=masks[1:])
    torch.testing.assert_close(both[1:], one)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"denoise": 0.0}, r"denoise must be in \(0, 1\]"),
        ({"denoise": 1.5}, r"denoise must be in \(0, 1\]"),
        ({"noise_mask": torch.ones(3, 8, 12)}, "noise_mask batch must be 1 or 2"),
        ({"noise_mask": torch.ones(1, 2, 3, 8, 12)}, "noise_mask must have shape"),
        ({"noise_mask": torch.full((8, 12), 2.0)}, r"noise_mask values must lie in \[0, 1\]"),
    ],
)
def test_bad_input_is_rejected_before_any_model_call(gaussian, latent, kwargs, message):
    args = {"latent": latent, "seed": 0, "steps": 4} | kwargs
    with pytest.raises(ValueError, match=message):
        KSampler(gaussian, "euler", "normal").sample(**args)
    assert gaussian.calls == 0


def test_bad_names_start_end_and_nan_are_rejected(gaussian, latent):
    with pytest.raises(ValueError, match="sampler must be one of"):
        KSampler(gaussian, "k_euler")
    with pytest.raises(ValueError, match="scheduler must be one of"):
        KSampler(gaussian, "euler", "linear")
    ks = KSampler(gaussian)
    with pytest.raises(ValueError, match="start_at_step must satisfy"):
        ks.sample_advanced(True, 0, 10, latent, 5, 5, False)
    with pytest.raises(ValueError, match="latent contains NaN"):
        ks.sample(latent * float("nan"), 0, 4)
    assert gaussian.calls == 0


def test_sample_is_the_public_loop_over_a_schedule(gaussian, latent):
    sigmas = get_sigmas("karras", 5)
    x = latent + NoiseStream(0)(latent) * float(sigmas[0])
    assert sample(gaussian, x, sigmas).shape == latent.shape


def test_upstream_widget_strings_are_accepted_for_the_flags(gaussian, latent):
    ks = KSampler(gaussian, "euler", "normal")
    torch.testing.assert_close(ks.sample_advanced("enable", 3, 6, latent, 0, 3, "enable"),
                               ks.sample_advanced(True, 3, 6, latent, 0, 3, True))
    with pytest.raises(ValueError, match="add_noise must be a bool or 'enable'/'disable'"):
        ks.sample_advanced("yes", 3, 6, latent, 0, 3, True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; the CPU path is tested above")
@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m_sde"])
def test_cuda_sampling_matches_cpu_for_the_same_seed(gaussian, latent, sampler):
    mask = half_mask(8, 12, "right")
    cpu = KSampler(gaussian, sampler, "karras").sample(latent, 11, 6, noise_mask=mask)
    gpu = KSampler(gaussian, sampler, "karras").sample(latent.cuda(), 11, 6, noise_mask=mask.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)
