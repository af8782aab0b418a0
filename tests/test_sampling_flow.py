"""Flow model sampling (SPEC §1.1): SD3's and Flux's sigmas as ComfyUI computes them, the flow noising at every
place noise meets a latent, and the samplers on Gaussian data whose exact flow denoiser is known."""

import math

import pytest
import torch

from dualsampler import dual
from dualsampler.dual.multidiffusion import background_noising
from dualsampler.sampling import (
    SAMPLERS,
    SCHEDULERS,
    FlowModelSampling,
    FluxModelSampling,
    KSampler,
    ModelSampling,
    NoiseStream,
    get_sigmas,
    sample,
)
from dualsampler.sampling.flow_sampling import flow_ancestral_step, is_flow, offset_first_sigma

MU, STD = 0.3, 0.6
SD3 = FlowModelSampling(shift=3.0)


class FlowGaussian:
    """The exact denoiser of data N(MU, STD^2) under `x = (1 - s) x0 + s n`:
    `E[x0 | x] = MU + (1 - s) STD^2 (x - (1 - s) MU) / ((1 - s)^2 STD^2 + s^2)`."""

    model_sampling = SD3

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = sigma.reshape(-1, 1, 1, 1).to(x.dtype)
        a = 1 - s
        return MU + a * STD**2 * (x - a * MU) / (a**2 * STD**2 + s**2)

    def with_uncond(self, x: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = self(x, sigma)
        return x0, x0


def test_the_flow_denoiser_is_the_data_mean_at_sigma_1_and_the_identity_at_sigma_0():
    x = torch.randn(1, 1, 4, 4)
    torch.testing.assert_close(FlowGaussian()(x, torch.ones(1)), torch.full_like(x, MU))
    torch.testing.assert_close(FlowGaussian()(x, torch.zeros(1)), x)


def test_sd3_sigmas_are_the_shifted_training_times():
    # sigma(t) = shift t / (1 + (shift - 1) t), t = timestep / multiplier, timesteps k * multiplier / 1000
    ms = FlowModelSampling(shift=3.0, multiplier=1000.0)
    assert len(ms.sigmas) == 1000
    assert ms.sigma_min == pytest.approx(3 * 0.001 / (1 + 2 * 0.001), rel=1e-6)
    assert ms.sigma_max == 1.0
    assert float(ms.sigmas[499]) == pytest.approx(1.5 / 2.0, rel=1e-6)
    assert float(ms.sigma_to_t(torch.tensor(0.75))) == pytest.approx(750.0)
    assert float(ms.t_to_sigma(torch.tensor(250.0))) == pytest.approx(0.75 / 1.5, rel=1e-6)
    assert float(FlowModelSampling(shift=1.0).sigmas[99]) == pytest.approx(0.1, rel=1e-6)


def test_flux_sigmas_use_the_exponential_shift_and_the_timestep_is_sigma():
    ms = FluxModelSampling(shift=1.15)
    assert len(ms.sigmas) == 10000
    assert float(ms.sigmas[4999]) == pytest.approx(math.exp(1.15) / (math.exp(1.15) + 1), rel=1e-6)
    assert ms.sigma_max == 1.0
    assert float(ms.sigma_to_t(torch.tensor(0.4))) == pytest.approx(0.4)


@pytest.mark.parametrize(("height", "width", "shift"), [
    (1024, 1024, 1.15),  # 4096 tokens: max_shift
    (256, 256, 0.5),  # 256 tokens: base_shift
    (512, 512, 0.5 + (1024 - 256) * 0.65 / 3840),
    (768, 1024, 0.5 + (3072 - 256) * 0.65 / 3840),
])
def test_flux_for_size_interpolates_the_shift_over_the_token_count(height, width, shift):
    assert FluxModelSampling.for_size(height, width).shift == pytest.approx(shift)


def test_flux_for_size_takes_its_shift_bounds():
    assert FluxModelSampling.for_size(1024, 1024, base_shift=0.2, max_shift=2.0).shift == pytest.approx(2.0)


@pytest.mark.parametrize(("build", "name"), [
    (lambda: FlowModelSampling(shift=0.0), "shift"),
    (lambda: FlowModelSampling(shift=float("nan")), "shift"),
    (lambda: FlowModelSampling(multiplier=-1.0), "multiplier"),
    (lambda: FluxModelSampling(shift=-0.5), "shift"),
    (lambda: FluxModelSampling.for_size(8, 1024), "height"),
    (lambda: FluxModelSampling.for_size(1024, 1024.5), "width"),
    (lambda: FluxModelSampling.for_size(1024, 1024, max_shift=101.0), "max_shift"),
])
def test_bad_parameters_are_refused_by_name(build, name):
    with pytest.raises(ValueError, match=name):
        build()


@pytest.mark.parametrize("ms", [SD3, FluxModelSampling()], ids=["sd3", "flux"])
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_scheduler_gives_a_descending_schedule_ending_at_zero(ms, scheduler):
    sigmas = get_sigmas(scheduler, 8, ms)
    assert len(sigmas) in (9, 10)
    assert torch.isfinite(sigmas).all() and sigmas[-1] == 0
    assert (sigmas[1:] < sigmas[:-1]).all()


def test_flow_schedules_start_at_sigma_1():
    for scheduler in ("normal", "simple", "beta", "karras", "kl_optimal"):
        assert float(get_sigmas(scheduler, 6, SD3)[0]) == pytest.approx(1.0)


def test_noise_scaling_mixes_noise_and_latent_and_its_inverse_undoes_a_noiseless_one():
    noise, latent = torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 4)
    torch.testing.assert_close(SD3.noise_scaling(0.3, noise, latent), 0.3 * noise + 0.7 * latent)
    noised = SD3.noise_scaling(0.3, torch.zeros_like(latent), latent)
    torch.testing.assert_close(SD3.inverse_noise_scaling(0.3, noised), latent)
    per_element = SD3.noise_scaling(torch.tensor([0.2, 0.6]), noise.expand(2, -1, -1, -1), latent)
    torch.testing.assert_close(per_element[1:], 0.6 * noise + 0.4 * latent)


def test_only_flow_samplings_are_flow():
    assert is_flow(SD3) and is_flow(FluxModelSampling())
    assert not is_flow(ModelSampling()) and not is_flow(None)


def test_a_first_sigma_of_1_is_moved_just_below_it_for_the_snr_samplers():
    moved = offset_first_sigma([1.0, 0.5, 0.0], SD3)
    assert moved[0] == pytest.approx(3 * 0.9999 / (1 + 2 * 0.9999), rel=1e-6) and moved[1:] == [0.5, 0.0]
    assert offset_first_sigma([1.0, 0.5, 0.0], ModelSampling()) == [1.0, 0.5, 0.0]


def spy_on(seen: list) -> FlowGaussian:
    class Spy(FlowGaussian):
        def __call__(self, x, sigma):
            seen.append(x.clone())
            return super().__call__(x, sigma)

    return Spy()


def test_a_full_run_starts_from_pure_noise_and_denoise_below_1_from_the_flow_noising():
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(7))
    seen: list = []
    KSampler(spy_on(seen), "euler", "simple").sample(latent, 7, 6)
    torch.testing.assert_close(seen[0], noise)
    seen.clear()
    sampler = KSampler(spy_on(seen), "euler", "simple")
    sampler.sample(latent, 7, 6, denoise=0.5)
    s0 = float(sampler.sigmas(12)[-7])
    torch.testing.assert_close(seen[0], s0 * noise + (1 - s0) * latent)


@pytest.mark.parametrize("sampler_name", ["euler", "heun"])
def test_a_leftover_slice_continued_without_noise_equals_the_whole_run(sampler_name):
    """A single-step sampler's split run: the leftover result (undone by the flow noising) is noised back exactly."""
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    sampler = KSampler(FlowGaussian(), sampler_name, "simple")
    whole = sampler.sample_advanced(True, 5, 10, latent, 0, 10, False)
    first = sampler.sample_advanced(True, 5, 10, latent, 0, 4, True)
    rest = sampler.sample_advanced(False, 5, 10, first, 4, 10, False)
    torch.testing.assert_close(rest, whole)


def test_a_leftover_result_is_the_sampled_state_undone_by_the_flow_noising():
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(8))
    sampler = KSampler(FlowGaussian(), "euler", "simple")
    out = sampler.sample_advanced(True, 5, 10, latent, 0, 4, True)
    sigmas = sampler.sigmas(10)[:5]
    start = SD3.noise_scaling(float(sigmas[0]), NoiseStream(5)(latent), latent)
    state = sample(FlowGaussian(), start, sigmas, "euler")
    torch.testing.assert_close(out, state / (1 - float(sigmas[-1])))


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m_sde", "ddim", "euler_ancestral"])
def test_pixels_outside_a_noise_mask_keep_their_latent_and_the_model_sees_them_flow_noised(sampler):
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(8, 8)
    mask[:, :4] = 1
    seen: list = []
    sigmas_seen: list = []

    class Spy(FlowGaussian):
        def __call__(self, x, sigma):
            seen.append(x.clone())
            sigmas_seen.append(float(sigma[0]))
            return super().__call__(x, sigma)

    out = KSampler(Spy(), sampler, "simple").sample(latent, 9, 6, noise_mask=mask)
    torch.testing.assert_close(out[..., 4:], latent[..., 4:])
    held_seed = 10 if sampler == "ddim" else 9  # upstream's ddim noises the held region with seed + 1
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(held_seed))
    s = sigmas_seen[1]
    torch.testing.assert_close(seen[1][..., 4:], (s * noise + (1 - s) * latent)[..., 4:])


def one_step_by_hand(x, s, s_next, z):
    """Upstream's rectified-flow ancestral Euler step: to sigma_down, then renoised to s_next."""
    down, scale, renoise = flow_ancestral_step(s, s_next)
    x = (down / s) * x + (1 - down / s) * FlowGaussian()(x, torch.tensor([s]))
    return scale * x + renoise * z


def test_euler_ancestral_takes_upstreams_rectified_flow_step_under_a_flow_model():
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    sigmas = torch.tensor([0.8, 0.5])
    out = sample(FlowGaussian(), x, sigmas, "euler_ancestral", seed=11)
    z = NoiseStream(11)(x)
    torch.testing.assert_close(out, one_step_by_hand(x, 0.8, 0.5, z))
    plain = sample(FlowGaussian(), x, sigmas, "euler_ancestral", seed=11, model_sampling=ModelSampling())
    assert (plain - out).abs().max() > 1e-2  # the discrete VP step is another one


def test_the_rectified_flow_split_lands_on_the_next_marginal():
    down, scale, renoise = flow_ancestral_step(0.8, 0.5)
    assert down == pytest.approx(0.5**2 / 0.8)
    # the deterministic part keeps (1 - down) x0 + down n; scaled, it is (1 - 0.5) x0 + scale down n
    assert (scale * down) ** 2 + renoise**2 == pytest.approx(0.5**2)
    assert scale * (1 - down) == pytest.approx(1 - 0.5)


DETERMINISTIC = ["euler", "heun", "dpm_2", "lms", "dpmpp_2m", "ipndm", "deis", "ddim", "uni_pc"]
STOCHASTIC = ["euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde",
              "dpmpp_3m_sde", "er_sde", "seeds_2", "seeds_3", "sa_solver"]


@pytest.mark.parametrize("sampler", DETERMINISTIC + STOCHASTIC)
def test_samplers_reach_the_data_distribution_on_a_flow_model(sampler):
    out = KSampler(FlowGaussian(), sampler, "simple").sample(torch.zeros(2, 1, 32, 32), 1, 60)
    assert float(out.mean()) == pytest.approx(MU, abs=0.03)
    assert float(out.std()) == pytest.approx(STD, abs=0.06)


@pytest.mark.parametrize("scheduler", ["normal", "karras", "beta"])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_on_flow_sampling_without_nan(sampler, scheduler):
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    for ms in (SD3, FluxModelSampling.for_size(512, 512)):
        out = KSampler(FlowGaussian(), sampler, scheduler, ms).sample(latent, 3, 5, denoise=0.8)
        assert torch.isfinite(out).all()


def test_the_denoisers_model_sampling_is_the_default_and_an_explicit_one_wins():
    assert KSampler(FlowGaussian(), "euler").model_sampling is SD3
    flux = FluxModelSampling()
    assert KSampler(FlowGaussian(), "euler", model_sampling=flux).model_sampling is flux


def test_multidiffusion_noises_its_constant_backgrounds_as_the_model_does():
    c, n = torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 4)
    torch.testing.assert_close(background_noising(SD3)(c, n, 0.25), 0.25 * n + 0.75 * c)
    torch.testing.assert_close(background_noising(ModelSampling())(c, n, 0.25), c + 0.25 * n)


@pytest.mark.parametrize("name", sorted(dual.ALGORITHMS))
def test_every_region_sampler_runs_on_a_flow_model(name):
    latent = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(6))
    mask = torch.zeros(16, 16)
    mask[5:11, 5:11] = 1
    out = dual.ALGORITHMS[name]()(latent, base_sampler=KSampler(FlowGaussian(), "euler_ancestral", "simple"),
                 mask_sampler=KSampler(FlowGaussian(), "dpmpp_2m_sde", "simple"), mask=mask, seed=3, steps=6)
    assert torch.isfinite(out).all()
