"""KSampler.sample_advanced / sample (SPEC §4): slices, noise, leftover noise, denoise, noise masks, errors."""

import pytest
import torch
from helpers import GaussianData

from dualsampler.masks import half_mask
from dualsampler.sampling import (
    KSampler,
    ModelSampling,
    SAMPLERS,
    NoiseStream,
    denoise_to_steps,
    get_sigmas,
    sample,
)
from dualsampler.sampling.ksampler import SpannedNoise, slice_schedule
from dualsampler.sampling.noise_mask import latent_noise_mask, masked_denoiser


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


@pytest.mark.parametrize("sampler", ["euler", "ddim", "dpm_2", "heun"])
def test_two_slices_with_leftover_noise_equal_one_call_for_single_step_samplers(gaussian, latent, sampler):
    ks = KSampler(gaussian, sampler, "karras")
    whole = ks.sample_advanced(True, 9, 12, latent, 0, 12, False)
    first = ks.sample_advanced(True, 9, 12, latent, 0, 5, True)
    second = ks.sample_advanced(False, 9, 12, first, 5, 12, False)
    torch.testing.assert_close(second, whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmpp_2s_ancestral"])
def test_ancestral_noise_restarts_from_the_seed_in_each_slice_as_upstream(gaussian, latent, sampler):
    ks = KSampler(gaussian, sampler, "karras")
    sigmas = ks.sigmas(12)
    whole = ks.sample_advanced(True, 9, 12, latent, 0, 12, False)
    first = ks.sample_advanced(True, 9, 12, latent, 0, 5, True)
    second = ks.sample_advanced(False, 9, 12, first, 5, 12, False)
    start = latent + NoiseStream(9)(latent) * (1 + float(sigmas[0]) ** 2) ** 0.5
    torch.testing.assert_close(first, sample(gaussian, start, sigmas[:6], sampler, seed=9))
    # The second call draws its ancestral noise from seed 9 again, from the first of its own steps.
    torch.testing.assert_close(second, sample(gaussian, first, sigmas[5:], sampler, seed=9))
    assert (second - whole).abs().mean() > 1e-3


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


class ConstantDenoiser:
    """`D(x, sigma) = target` whatever the input: the masked result is then known in closed form."""

    def __init__(self, target: torch.Tensor) -> None:
        self.target = target

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.target.expand_as(x).clone()


@pytest.mark.parametrize("sampler", ["euler", "ddim", "dpmpp_2m", "heun"])
def test_a_soft_mask_is_applied_once(latent, sampler):
    target = torch.full_like(latent, 2.0)
    mask = torch.full((8, 12), 0.5)
    out = KSampler(ConstantDenoiser(target), sampler, "karras").sample(latent, 0, 6, noise_mask=mask)
    torch.testing.assert_close(out, target * 0.5 + latent * 0.5)  # D*m + L*(1-m), not L + (D-L)*m^2


def test_a_feathered_mask_gives_the_blend_at_each_pixel_and_holds_zeros_exactly(latent):
    target = torch.full_like(latent, -1.0)
    mask = torch.linspace(0, 1, 12).expand(8, 12)
    out = KSampler(ConstantDenoiser(target), "euler", "normal").sample(latent, 0, 5, noise_mask=mask)
    torch.testing.assert_close(out, target * mask + latent * (1 - mask))
    assert torch.equal(out[..., 0], latent[..., 0])


def test_denoise_steps_are_pythons_int_of_the_quotient_as_upstream():
    assert denoise_to_steps(14, 0.56) == (24, 10)  # 14 / 0.56 = 24.999999999999996
    assert denoise_to_steps(6, 0.5) == (12, 6)
    assert denoise_to_steps(20, 1.0) == (20, 0)


def test_a_denoise_above_0_9999_is_a_full_run_as_upstream(gaussian, latent):
    ks = KSampler(gaussian, "euler", "normal")
    torch.testing.assert_close(ks.sample(latent, 3, 5, denoise=0.99995), ks.sample(latent, 3, 5))


def test_sample_with_denoise_runs_the_tail_of_the_int_rounded_schedule(gaussian, latent):
    seen = []
    KSampler(gaussian, "euler", "normal").sample(latent, 0, 14, denoise=0.56, callback=lambda i: seen.append(i["sigma"]))
    assert seen == pytest.approx(get_sigmas("normal", 24)[10:-1].tolist())


def test_ddim_uniform_with_denoise_takes_the_last_steps_plus_one_sigmas(gaussian, latent):
    # 7 steps at 0.5: the 14-step ddim_uniform schedule walks t = 1, 72, ..., 995 (15 sigmas and a 0);
    # upstream keeps its last 8 entries.
    seen = []
    KSampler(gaussian, "euler", "ddim_uniform").sample(latent, 0, 7, 0.5, callback=lambda i: seen.append(i["sigma"]))
    assert seen == pytest.approx(get_sigmas("ddim_uniform", 14)[-8:-1].tolist())


@pytest.mark.parametrize("add_noise", [True, False])
def test_ddim_noises_the_held_region_with_randn_from_seed_plus_one(gaussian, latent, add_noise):
    mask = half_mask(8, 12, "right").expand(2, 1, 8, 12)
    inputs = {}
    for sampler in ("ddim", "euler"):
        seen: list[torch.Tensor] = []
        spy = lambda x, s, seen=seen: seen.append(x.clone()) or gaussian(x, s)
        KSampler(spy, sampler, "karras").sample_advanced(add_noise, 7, 6, latent, 2, 6, False, mask)
        inputs[sampler] = seen[0]
    sigma = float(KSampler(gaussian, "euler", "karras").sigmas(6)[2])
    held = mask.expand_as(latent) == 0
    inpaint = torch.randn(latent.shape, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(inputs["ddim"][held], (latent + inpaint * sigma)[held])
    added = NoiseStream(7)(latent) if add_noise else torch.zeros_like(latent)
    torch.testing.assert_close(inputs["euler"][held], (latent + added * sigma)[held])
    torch.testing.assert_close(inputs["ddim"][~held], inputs["euler"][~held])


def test_ddim_under_a_mask_runs_with_the_largest_seed(gaussian, latent):
    out = KSampler(gaussian, "ddim", "karras").sample(latent, 2**64 - 1, 3, noise_mask=half_mask(8, 12, "right"))
    assert torch.isfinite(out).all()


def test_the_latent_is_held_exactly_outside_the_mask_unless_upstream_compat(gaussian, latent):
    mask = half_mask(8, 12, "right")
    outside = mask.expand_as(latent) == 0
    ours = KSampler(gaussian, "uni_pc", "karras").sample(latent, 0, 6, noise_mask=mask)
    upstream = KSampler(gaussian, "uni_pc", "karras", upstream_compat=True).sample(latent, 0, 6, noise_mask=mask)
    assert torch.equal(ours[outside], latent[outside])
    residual = (upstream - latent)[outside].abs().max()
    assert 1e-5 < residual < 1e-2  # uni_pc stops at sigma 0.001
    torch.testing.assert_close(ours[~outside], upstream[~outside])


@pytest.mark.parametrize("sampler", ["uni_pc", "uni_pc_bh2"])
def test_uni_pc_over_one_step_steps_by_default_and_only_rescales_with_upstream_compat(gaussian, latent, sampler):
    noisy = latent * 3
    sigmas = KSampler(gaussian, sampler, "karras").sigmas(10)
    s0, s1 = float(sigmas[4]), float(sigmas[5])
    ours = KSampler(gaussian, sampler, "karras").sample_advanced(False, 0, 10, noisy, 4, 5, True)
    ks = KSampler(gaussian, sampler, "karras", upstream_compat=True)
    calls = gaussian.calls
    upstream = ks.sample_advanced(False, 0, 10, noisy, 4, 5, True)
    torch.testing.assert_close(upstream, noisy * ((1 + s1**2) / (1 + s0**2)) ** 0.5)
    assert gaussian.calls == calls + 1  # upstream evaluates the model once and discards it
    exact = gaussian.flow(noisy, s0, s1)
    assert (ours - exact).abs().max() < 0.5 * (upstream - exact).abs().max()  # a first-order step toward the flow
    with pytest.raises(ValueError, match="upstream_compat must be true or false"):
        KSampler(gaussian, sampler, upstream_compat="yes")


class UncondGaussian:
    """A denoiser offering `with_uncond`: guided x0 from `GaussianData`, unconditional x0 = the input halved."""

    def __init__(self) -> None:
        self.inner = GaussianData()

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.inner(x, sigma)

    def with_uncond(self, x: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner(x, sigma), x / 2


def test_masked_denoiser_passes_with_uncond_through_when_the_inner_denoiser_has_it(latent):
    mask = latent_noise_mask(half_mask(8, 12, "right"), latent)
    noise = torch.randn_like(latent)
    sigma = torch.full((2,), 3.0)
    x = torch.randn_like(latent)
    masked = masked_denoiser(UncondGaussian(), mask, latent, noise)
    x0, x0_uncond = masked.with_uncond(x, sigma)
    x_in = x * mask + (latent + noise * 3.0) * (1 - mask)
    torch.testing.assert_close(x0, masked(x, sigma))
    torch.testing.assert_close(x0, GaussianData()(x_in, sigma) * mask + latent * (1 - mask))
    torch.testing.assert_close(x0_uncond, x_in / 2)  # at the masked input, unmasked: what upstream's cfg_pp sees
    assert not hasattr(masked_denoiser(GaussianData(), mask, latent, noise), "with_uncond")


def test_an_sde_slice_can_draw_from_the_brownian_tree_of_its_whole_schedule(gaussian, latent):
    ks = KSampler(gaussian, "dpmpp_sde", "karras")
    full = ks.sigmas(8)
    sliced = slice_schedule(full, 3, 6, True)
    spanned = SpannedNoise(5, full.tolist()).brownian(latent, sliced.tolist())
    whole = NoiseStream(5).brownian(latent, full.tolist())
    s, t = float(sliced[0]), float(sliced[1])
    torch.testing.assert_close(spanned(s, t), whole(s, t))
    by_slice = ks.run_slice(False, 5, latent, sliced)
    torch.testing.assert_close(ks.run_slice(False, 5, latent, sliced, noise_span=sliced), by_slice)
    assert (ks.run_slice(False, 5, latent, sliced, noise_span=full) - by_slice).abs().max() > 1e-3


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
        ({"steps": 0}, "steps must be an integer in \\[1,"),
        ({"denoise": 0.0}, r"denoise must be a finite number in \(0, 1\]"),
        ({"denoise": 1.5}, r"denoise must be a finite number in \(0, 1\]"),
        ({"denoise": 1e-9}, r"denoise must be >= steps / 10000 = 0.0004 for 4 steps"),
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
    with pytest.raises(ValueError, match="start_at_step must be <= end_at_step"):
        ks.sample_advanced(True, 0, 10, latent, 6, 5, False)
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
    with pytest.raises(ValueError, match="add_noise must be true, false, 'enable' or 'disable'"):
        ks.sample_advanced("yes", 3, 6, latent, 0, 3, True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; the CPU path is tested above")
@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m_sde"])
def test_cuda_sampling_matches_cpu_for_the_same_seed(gaussian, latent, sampler):
    mask = half_mask(8, 12, "right")
    cpu = KSampler(gaussian, sampler, "karras").sample(latent, 11, 6, noise_mask=mask)
    gpu = KSampler(gaussian, sampler, "karras").sample(latent.cuda(), 11, 6, noise_mask=mask.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("sampler", ["dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_2m_sde", "dpmpp_3m_sde_gpu"])
def test_only_the_impact_packs_six_sde_samplers_span_the_tree_over_the_whole_schedule(gaussian, latent, sampler):
    """The Impact Pack's wrapper replaces the noise sampler of dpmpp_sde, dpmpp_2m_sde, dpmpp_3m_sde (and _gpu);
    dpmpp_2m_sde_heun(_gpu) keep ComfyUI's tree over the slice (issue 18, bug 3)."""
    ks = KSampler(gaussian, sampler, "karras")
    full = ks.sigmas(8)
    sliced = slice_schedule(full, 3, 6, True)
    by_slice = ks.run_slice(False, 5, latent, sliced)
    spanned = ks.run_slice(False, 5, latent, sliced, noise_span=full)
    if "heun" in sampler:
        assert torch.equal(spanned, by_slice)
    else:
        assert (spanned - by_slice).abs().max() > 1e-3


class GaussianWithUncond(GaussianData):
    """GaussianData whose unconditional prediction is the data mean's pull towards 0 (for the cfg_pp samplers)."""

    def with_uncond(self, x, sigma):
        return self(x, sigma), GaussianData(0.0, self.std)(x, sigma)


# dpm_adaptive's step-size controller takes the error norm over the whole batch, so a batch's elements share
# their accepted steps and each differs from its run alone (README, seed lists).
BATCH_COUPLED = {"dpm_adaptive"}


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_seed_list_gives_each_element_its_run_alone(latent, sampler):
    ks = KSampler(GaussianWithUncond(), sampler, "karras")
    both = ks.sample(latent, [4, 5], 5, noise_mask=half_mask(8, 12, "left"))
    alone = torch.cat([ks.sample(latent[b : b + 1], [seed], 5, noise_mask=half_mask(8, 12, "left"))
                       for b, seed in enumerate([4, 5])])
    if sampler in BATCH_COUPLED:
        assert 1e-6 < (both - alone).abs().max() < 1e-2
    else:
        torch.testing.assert_close(both, alone, atol=1e-6, rtol=0)
