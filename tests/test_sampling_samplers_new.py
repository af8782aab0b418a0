"""The samplers ComfyUI offers beyond k-diffusion's (issue 12), on the Gaussian data distribution whose exact
denoiser and probability-flow solution are known (the `gaussian` fixture, tests/helpers.py's GaussianData)."""

import math

import pytest
import torch

from dualsampler.sampling import (
    SAMPLERS,
    STOCHASTIC_SAMPLERS,
    KSampler,
    ModelSampling,
    NoiseStream,
    get_sigmas,
    sample,
)
from dualsampler.sampling.samplers import SAMPLER_FUNCTIONS
from dualsampler.sampling.samplers.deis import deis_weights, sigma_to_vp_time, vp_fit
from dualsampler.sampling.samplers.dpm_adaptive import sample_dpm_adaptive
from dualsampler.sampling.samplers.dpm_fast import fast_orders, sample_dpm_fast
from dualsampler.sampling.samplers.guidance import CFG_PP_SAMPLERS
from dualsampler.sampling.samplers.ipndm_v import variable_step_weights

# name: (observed global order on a log-uniform schedule, coarse step count; the fine run takes twice as many).
# Warm-up steps and iPNDM's constant-step weights on a geometric grid cap the multistep methods near 2; Heun++'s
# sigma weights make it first order; gradient estimation reaches order 1 only past ~40 steps.
ORDER = {
    "euler_cfg_pp": (1, 10),
    "heunpp2": (1, 10),
    "dpmpp_2m_cfg_pp": (2, 10),
    "ipndm": (2, 20),
    "ipndm_v": (2, 20),
    "deis": (2.5, 10),
    "res_multistep": (2, 10),
    "res_multistep_cfg_pp": (2, 10),
    "gradient_estimation": (1, 40),
    "gradient_estimation_cfg_pp": (1, 40),
}
STOCHASTIC = ["euler_ancestral_cfg_pp", "dpmpp_2s_ancestral_cfg_pp", "ddpm", "lcm", "res_multistep_ancestral",
              "res_multistep_ancestral_cfg_pp"]
# lcm samples the data only with a consistency model (x0 on the trajectory); a posterior-mean denoiser halves the
# data variance under it, so it gets the Gaussian's consistency function.
CONSISTENCY = {"lcm"}
NEW_SAMPLERS = [*ORDER, "dpm_fast", "dpm_adaptive", *STOCHASTIC]
# cfg_pp sampler: its plain counterpart, which it equals without guidance (dpmpp_2s_ancestral_cfg_pp does not, as
# upstream: its second stage is shifted by D(x) - D_uncond(x_2)).
CFG_PP = {
    "euler_cfg_pp": "euler",
    "euler_ancestral_cfg_pp": "euler_ancestral",
    "dpmpp_2s_ancestral_cfg_pp": None,
    "dpmpp_2m_cfg_pp": "dpmpp_2m",
    "res_multistep_cfg_pp": "res_multistep",
    "res_multistep_ancestral_cfg_pp": "res_multistep_ancestral",
    "gradient_estimation_cfg_pp": "gradient_estimation",
}


class ConsistencyGaussian:
    """The Gaussian's consistency function: x at sigma carried along the probability-flow ODE to sigma 0."""

    def __init__(self, data) -> None:
        self.data = data

    def __call__(self, x, sigma):
        s2 = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype) ** 2
        return self.data.mu + (x - self.data.mu) * self.data.std / torch.sqrt(self.data.std**2 + s2)


class GuidedGaussian:
    """A denoiser with `with_uncond` (SPEC §9): the unconditional x0 is the Gaussian's exact one, the guided x0 that
    plus a constant `guidance` (0: guidance changes nothing)."""

    def __init__(self, data, guidance: float = 0.0) -> None:
        self.data, self.guidance = data, guidance
        self.calls = 0

    def __call__(self, x, sigma):
        return self.with_uncond(x, sigma)[0]

    def with_uncond(self, x, sigma):
        self.calls += 1
        uncond = self.data(x, sigma)
        return uncond + self.guidance, uncond


def log_uniform(s0: float, s1: float, steps: int) -> torch.Tensor:
    return torch.exp(torch.linspace(math.log(s0), math.log(s1), steps + 1, dtype=torch.float64))


def start(gaussian, batch: int = 2, size: int = 4, sigma: float = 10.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return gaussian.mu + torch.randn(batch, 1, size, size, dtype=torch.float64, generator=g) * sigma


def test_every_new_sampler_is_registered_under_its_upstream_name_and_stochastic_ones_are_marked():
    assert set(NEW_SAMPLERS) <= set(SAMPLERS)
    assert set(STOCHASTIC) <= STOCHASTIC_SAMPLERS
    assert not (set(ORDER) | {"dpm_fast", "dpm_adaptive"}) & STOCHASTIC_SAMPLERS


@pytest.mark.parametrize("name", sorted(ORDER))
def test_deterministic_sampler_converges_to_the_exact_flow_at_its_order(gaussian, name):
    order, coarse = ORDER[name]
    x = start(gaussian)
    errors = []
    for steps in (coarse, 2 * coarse):
        out = sample(GuidedGaussian(gaussian), x.clone(), log_uniform(10.0, 0.5, steps), name)
        errors.append((out - gaussian.flow(x, 10.0, 0.5)).abs().max().item())
    observed = math.log2(errors[0] / errors[1])
    assert observed > order - 0.25, f"{name}: errors {errors}"
    assert errors[1] < 0.05


@pytest.mark.parametrize("name", sorted(ORDER))
def test_deterministic_sampler_to_zero_lands_near_the_exact_endpoint(gaussian, name):
    ms = ModelSampling()
    x = start(gaussian, 1, 16, ms.sigma_max)
    out = sample(GuidedGaussian(gaussian), x, get_sigmas("karras", 30, ms).double(), name)
    assert (out - gaussian.flow(x, ms.sigma_max, 0.0)).abs().max() < (0.2 if ORDER[name][0] == 1 else 0.05)


def test_dpm_fast_spends_one_model_call_per_listed_step_and_is_third_order(gaussian):
    x = start(gaussian)
    errors = []
    for nfe in (11, 23):  # 4 and 8 steps: third order, the last one second order
        calls = gaussian.calls
        out = sample(gaussian, x.clone(), log_uniform(10.0, 0.5, nfe), "dpm_fast")
        assert gaussian.calls - calls == nfe
        errors.append((out - gaussian.flow(x, 10.0, 0.5)).abs().max().item())
    assert math.log2(errors[0] / errors[1]) > 2.75, errors
    assert fast_orders(11) == [3, 3, 3, 2] and fast_orders(12) == [3, 3, 3, 2, 1] and fast_orders(1) == [1]


def test_dpm_fast_uses_only_the_ends_of_the_list_and_stops_at_the_last_nonzero_sigma(gaussian):
    x = start(gaussian)
    ending_at_zero = torch.cat([log_uniform(10.0, 0.5, 10), torch.zeros(1, dtype=torch.float64)])
    same_ends = torch.linspace(10.0, 0.5, 12, dtype=torch.float64)  # other sigmas in between, same ends
    a = sample_dpm_fast(gaussian, x.clone(), ending_at_zero)
    torch.testing.assert_close(a, sample_dpm_fast(gaussian, x.clone(), same_ends), rtol=0, atol=1e-12)
    assert (a - gaussian.flow(x, 10.0, 0.5)).abs().max() < 0.05
    assert (a - gaussian.flow(x, 10.0, 0.0)).abs().max() > 0.1


def test_dpm_adaptive_meets_a_tighter_tolerance_with_more_model_calls(gaussian):
    x = start(gaussian)
    exact = gaussian.flow(x, 10.0, 0.5)
    results = []
    for rtol, atol in ((0.05, 0.0078), (5e-5, 7.8e-6)):
        calls = gaussian.calls
        out = sample_dpm_adaptive(gaussian, x.clone(), log_uniform(10.0, 0.5, 3), rtol=rtol, atol=atol)
        results.append(((out - exact).abs().max().item(), gaussian.calls - calls))
    (loose_error, loose_calls), (tight_error, tight_calls) = results
    assert loose_error < 0.05 and tight_error < 1e-3
    assert tight_calls > loose_calls


def test_dpm_adaptive_takes_the_same_steps_whatever_the_sigmas_between_the_ends(gaussian):
    x = start(gaussian)
    a = sample(gaussian, x.clone(), torch.tensor([10.0, 2.0, 0.5, 0.0], dtype=torch.float64), "dpm_adaptive")
    b = sample(gaussian, x.clone(), torch.tensor([10.0, 0.5], dtype=torch.float64), "dpm_adaptive")
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kwargs", [{"order": 4}, {"rtol": -1.0}, {"rtol": 0.0, "atol": 0.0}, {"h_init": 0.0},
                                    {"accept_safety": 1.5}, {"eta": -0.5}])
def test_dpm_adaptive_rejects_bad_settings_before_any_model_call(gaussian, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        sample_dpm_adaptive(gaussian, start(gaussian), log_uniform(10.0, 0.5, 3), **kwargs)
    assert gaussian.calls == 0


@pytest.mark.parametrize("name", ["ipndm", "ipndm_v", "deis"])
def test_multistep_sampler_rejects_an_order_outside_1_to_4_before_any_model_call(gaussian, name):
    with pytest.raises(ValueError, match="max_order must be one of 1, 2, 3, 4"):
        SAMPLER_FUNCTIONS[name](gaussian, start(gaussian), log_uniform(10.0, 0.5, 4), max_order=5)
    assert gaussian.calls == 0


def test_dpm_fast_rejects_a_negative_eta_before_any_model_call(gaussian):
    with pytest.raises(ValueError, match="eta must be a finite number >= 0"):
        sample_dpm_fast(gaussian, start(gaussian), log_uniform(10.0, 0.5, 4), eta=-1.0)
    assert gaussian.calls == 0


def test_dpm_fast_with_eta_draws_seeded_noise(gaussian):
    x = start(gaussian)
    sigmas = log_uniform(10.0, 0.5, 9)
    a = sample_dpm_fast(gaussian, x.clone(), sigmas, noise=NoiseStream(1), eta=1.0)
    b = sample_dpm_fast(gaussian, x.clone(), sigmas, noise=NoiseStream(1), eta=1.0)
    c = sample_dpm_fast(gaussian, x.clone(), sigmas, noise=NoiseStream(2), eta=1.0)
    assert torch.equal(a, b) and (a - c).abs().max() > 1e-3


@pytest.mark.parametrize("name", sorted(name for name, plain in CFG_PP.items() if plain))
def test_cfg_pp_sampler_without_guidance_equals_its_plain_counterpart(gaussian, name):
    sigmas = get_sigmas("karras", 8, ModelSampling()).double()
    x = start(gaussian, sigma=float(sigmas[0]))
    plain = sample(gaussian, x.clone(), sigmas, CFG_PP[name], seed=3)
    torch.testing.assert_close(sample(GuidedGaussian(gaussian), x.clone(), sigmas, name, seed=3), plain,
                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", sorted(CFG_PP))
def test_cfg_pp_sampler_lands_on_the_guided_x0_when_stepping_to_zero(gaussian, name):
    guided = GuidedGaussian(gaussian, guidance=0.3)
    x = start(gaussian, sigma=3.0)
    sigma = torch.full((x.shape[0],), 3.0, dtype=torch.float64)
    out = sample(guided, x, torch.tensor([3.0, 0.0], dtype=torch.float64), name, seed=0)
    torch.testing.assert_close(out, gaussian(x, sigma) + 0.3, rtol=0, atol=1e-12)


def test_dpmpp_2s_ancestral_cfg_pp_shifts_its_second_stage_by_the_midpoints_unconditional_prediction(gaussian):
    """Upstream's update, by hand, for one step without noise: `x_2 = (s_mid/s)(x + D - U) - expm1(-h/2) D`,
    `x' = (sigma_down/s)(x + D - U(x_2)) - expm1(-h) D(x_2)` with D = U + 0.3 the guided prediction."""
    guided = GuidedGaussian(gaussian, guidance=0.3)
    s, s_next = 4.0, 1.0
    x = start(gaussian, sigma=s)
    out = SAMPLER_FUNCTIONS["dpmpp_2s_ancestral_cfg_pp"](guided, x, torch.tensor([s, s_next], dtype=torch.float64),
                                                         noise=lambda like: torch.zeros_like(like))
    down = s_next * s_next / s  # sigma_down of the eta = 1 ancestral split
    h = math.log(s / down)
    s_mid = s * math.exp(-h / 2)
    at = lambda sigma: torch.full((2,), sigma, dtype=torch.float64)  # noqa: E731
    d, u = guided.with_uncond(x, at(s))
    x_2 = (s_mid / s) * (x + d - u) - math.expm1(-h / 2) * d
    d_2, u_2 = guided.with_uncond(x_2, at(s_mid))
    torch.testing.assert_close(out, (down / s) * (x + d - u_2) - math.expm1(-h) * d_2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(name for name, plain in CFG_PP.items() if plain))
def test_one_cfg_pp_step_renoises_with_the_unconditional_noise_estimate(gaussian, name):
    """One step s -> s' (sigma_down for the ancestral ones): CFG++ gives `D_cfg + s' (x - D_uncond) / s`, the plain
    sampler on the guided denoiser `D_cfg + s' (x - D_cfg) / s`: they differ by the guidance times `s' / s`."""
    guided = GuidedGaussian(gaussian, guidance=0.3)
    x = start(gaussian, sigma=4.0)
    sigmas = torch.tensor([4.0, 1.0], dtype=torch.float64)
    target = 1.0**2 / 4.0 if "ancestral" in name else 1.0  # sigma_down = s'^2 / s for eta = 1
    difference = sample(guided, x, sigmas, name, seed=5) - sample(guided, x, sigmas, CFG_PP[name], seed=5)
    torch.testing.assert_close(difference, torch.full_like(x, 0.3 * target / 4.0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CFG_PP))
def test_cfg_pp_sampler_rejects_a_denoiser_without_with_uncond_before_any_model_call(gaussian, name):
    with pytest.raises(ValueError, match=rf"{name}.*with_uncond"):
        sample(gaussian, start(gaussian), log_uniform(10.0, 0.5, 4), name, seed=0)
    assert gaussian.calls == 0


# dpmpp_2s_ancestral_cfg_pp's upstream shift D(x) - D(x_2) narrows the result (std 0.57 for 0.7 here), as upstream.
@pytest.mark.parametrize("name", [name for name in STOCHASTIC if name != "dpmpp_2s_ancestral_cfg_pp"])
def test_stochastic_sampler_reproduces_data_mean_and_spread(gaussian, name):
    ms = ModelSampling()
    sigmas = get_sigmas("karras", 100, ms).double()
    x = start(gaussian, 64, 16, float(sigmas[0]), seed=3)
    denoiser = ConsistencyGaussian(gaussian) if name in CONSISTENCY else GuidedGaussian(gaussian)
    out = sample(denoiser, x, sigmas, name, seed=7)
    assert out.mean().item() == pytest.approx(gaussian.mu, abs=0.02)
    assert out.std().item() == pytest.approx(gaussian.std, rel=0.05)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_same_seed_same_tensor_other_seed_other_tensor(gaussian, name):
    sigmas = get_sigmas("karras", 6, ModelSampling())
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * float(sigmas[0])
    denoiser = GuidedGaussian(gaussian)
    a = sample(denoiser, x, sigmas, name, seed=1)
    b = sample(denoiser, x, sigmas, name, seed=1)
    c = sample(denoiser, x, sigmas, name, seed=2)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


def test_ksampler_with_a_cfg_pp_sampler_rejects_a_denoiser_without_with_uncond_when_built(gaussian):
    assert CFG_PP_SAMPLERS == {name for name in SAMPLERS if name.endswith("_cfg_pp")} == set(CFG_PP)
    for name in CFG_PP:
        with pytest.raises(ValueError, match=rf"{name}.*with_uncond"):
            KSampler(gaussian, name, "karras")
        KSampler(GuidedGaussian(gaussian), name, "karras")


@pytest.mark.parametrize("name", STOCHASTIC)
def test_a_list_of_seeds_gives_each_element_its_single_seed_result(gaussian, name):
    sigmas = get_sigmas("karras", 5, ModelSampling())
    x = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * float(sigmas[0])
    denoiser = GuidedGaussian(gaussian)
    batched = sample(denoiser, x, sigmas, name, seed=[5, 6, 7])
    for b, seed in enumerate([5, 6, 7]):
        torch.testing.assert_close(batched[b : b + 1], sample(denoiser, x[b : b + 1], sigmas, name, seed=[seed]))


@pytest.mark.parametrize("name", ["euler_cfg_pp", "dpmpp_2m_cfg_pp", "res_multistep_ancestral_cfg_pp"])
def test_cfg_pp_sampler_runs_under_a_noise_mask_and_holds_the_latent_outside_it(gaussian, name):
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    out = KSampler(GuidedGaussian(gaussian), name, "karras").sample(latent, 11, 8, noise_mask=mask)
    plain = KSampler(gaussian, str(CFG_PP[name]), "karras").sample(latent, 11, 8, noise_mask=mask)
    assert torch.equal(out[..., 0, :], latent[..., 0, :])
    torch.testing.assert_close(out, plain, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ["dpm_fast", "dpm_adaptive"])
def test_dpm_solver_reports_end_at_sigma_min_and_count_every_model_call(gaussian, name):
    reports = []
    sigmas = torch.tensor([10.0, 4.0, 2.0, 1.0, 0.5, 0.0], dtype=torch.float64)
    calls = gaussian.calls
    sample(gaussian, start(gaussian), sigmas, name, callback=reports.append)
    assert reports[-1]["sigma_next"] == pytest.approx(0.5)
    assert [r["i"] for r in reports] == list(range(len(reports)))
    assert sum(r["evals"] for r in reports) == gaussian.calls - calls


def test_lcm_step_is_the_x0_prediction_renoised_to_the_next_sigma(gaussian):
    x = start(gaussian, sigma=5.0)
    out = SAMPLER_FUNCTIONS["lcm"](gaussian, x, torch.tensor([5.0, 2.0], dtype=torch.float64), noise=NoiseStream(4))
    x0 = gaussian(x, torch.full((2,), 5.0, dtype=torch.float64))
    torch.testing.assert_close(out, x0 + 2.0 * NoiseStream(4)(x), rtol=0, atol=1e-12)


def test_ddpm_step_without_noise_is_the_gaussian_posterior_mean(gaussian):
    """In the VP frame (`a = 1/(1+s^2)`), q(x_{t-1} | x_t, x0) has mean
    `sqrt(a') (1 - alpha) / (1 - a) x0 + sqrt(alpha) (1 - a') / (1 - a) x_t`, `alpha = a / a'` (Ho et al. eq. 7)."""
    s, s_next = 3.0, 1.5
    x = start(gaussian, sigma=s)
    out = SAMPLER_FUNCTIONS["ddpm"](gaussian, x, torch.tensor([s, s_next], dtype=torch.float64),
                                    noise=lambda like: torch.zeros_like(like))
    a, a_next = 1 / (1 + s**2), 1 / (1 + s_next**2)
    alpha = a / a_next
    x0 = gaussian(x, torch.full((2,), s, dtype=torch.float64))
    mean_vp = math.sqrt(a_next) * (1 - alpha) / (1 - a) * x0 + math.sqrt(alpha) * (1 - a_next) / (1 - a) * (
        x * math.sqrt(a))
    torch.testing.assert_close(out, mean_vp / math.sqrt(a_next), rtol=0, atol=1e-12)


def test_heunpp2_spends_three_calls_per_step_two_before_the_last_and_one_on_the_last(gaussian):
    sample(gaussian, start(gaussian), log_uniform(10.0, 0.5, 6), "heunpp2")
    assert gaussian.calls == 3 * 4 + 2 + 1


def test_ipndm_v_weights_are_adams_bashforth_on_a_uniform_grid_and_consistent_on_a_geometric_one():
    torch.testing.assert_close(torch.tensor(variable_step_weights([-1.0, -1.0])), torch.tensor([1.5, -0.5]))
    torch.testing.assert_close(torch.tensor(variable_step_weights([-1.0] * 3)), torch.tensor([23.0, -16.0, 5.0]) / 12)
    geometric = [-0.8**k for k in range(4)]
    for order in (2, 3, 4):
        assert sum(variable_step_weights(geometric[:order])) == pytest.approx(1.0, abs=1e-12)


def test_deis_weights_integrate_the_sigma_step_and_are_exact_for_a_constant_derivative():
    sigmas = [10.0, 6.0, 3.5, 2.0, 1.1]
    beta_min, beta_d = vp_fit()
    times = [sigma_to_vp_time(s, beta_min, beta_d) for s in sigmas]
    assert [math.sqrt(math.expm1(beta_d * t**2 / 2 + beta_min * t)) for t in times] == pytest.approx(sigmas)
    for i, order in ((1, 2), (2, 3), (3, 3)):
        weights = deis_weights(times, i, order, beta_min, beta_d)
        assert sum(weights) == pytest.approx(sigmas[i + 1] - sigmas[i], rel=1e-3)
