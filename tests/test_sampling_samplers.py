"""Every sampler on a Gaussian data distribution, where the exact denoiser and PF-ODE solution are known.

The samplers added alongside H1's (cfg_pp, ddpm, lcm, ...) are tested in test_sampling_samplers_new.py; this file
covers the original fourteen, the SDE family and its `_gpu` variants, er_sde, SEEDS and SA-Solver.
"""

import math

import pytest
import torch

from dualsampler.sampling import SAMPLERS, STOCHASTIC_SAMPLERS, ModelSampling, NoiseStream, get_sigmas, sample
from dualsampler.sampling.sample import counting
from dualsampler.sampling.samplers import SAMPLER_FUNCTIONS
from dualsampler.sampling.samplers.sa_solver import adams_coefficients

UPSTREAM_SAMPLERS = (
    "euler, euler_cfg_pp, euler_ancestral, euler_ancestral_cfg_pp, heun, heunpp2, dpm_2, dpm_2_ancestral, lms, "
    "dpm_fast, dpm_adaptive, dpmpp_2s_ancestral, dpmpp_2s_ancestral_cfg_pp, dpmpp_sde, dpmpp_sde_gpu, dpmpp_2m, "
    "dpmpp_2m_cfg_pp, dpmpp_2m_sde, dpmpp_2m_sde_gpu, dpmpp_2m_sde_heun, dpmpp_2m_sde_heun_gpu, dpmpp_3m_sde, "
    "dpmpp_3m_sde_gpu, ddpm, lcm, ipndm, ipndm_v, deis, res_multistep, res_multistep_cfg_pp, res_multistep_ancestral, "
    "res_multistep_ancestral_cfg_pp, gradient_estimation, gradient_estimation_cfg_pp, er_sde, seeds_2, seeds_3, "
    "sa_solver, sa_solver_pece, ddim, uni_pc, uni_pc_bh2"
).split(", ")
# Observed global order on a smooth log-uniform schedule. Multistep methods start (and UniPC ends, as upstream)
# with lower-order steps, which caps lms at ~3 and uni_pc at 2 even though their full-order steps are higher.
ORDER = {"euler": 1, "ddim": 1, "heun": 2, "dpm_2": 2, "dpmpp_2m": 2, "lms": 3, "uni_pc": 2, "uni_pc_bh2": 2}
BROWNIAN = ["dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun",
            "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu"]
GAUSSIAN = ["euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "er_sde", "seeds_2", "seeds_3", "sa_solver",
            "sa_solver_pece"]
STOCHASTIC = BROWNIAN + GAUSSIAN
# With the noise switched off, the SDE solvers become ODE solvers: (sampler function, options, observed global
# order from sigma 10 to 0.05; the multistep ones start with lower-order steps, seeds_3 is third-order per step
# but its error on this linear denoiser is already ~1e-4 at 10 steps).
NOISELESS = {
    "dpmpp_sde": ("dpmpp_sde", {"eta": 0.0}, 2),
    "dpmpp_2m_sde": ("dpmpp_2m_sde", {"eta": 0.0}, 2),
    "dpmpp_2m_sde_heun": ("dpmpp_2m_sde", {"eta": 0.0, "solver_type": "heun"}, 2),
    "dpmpp_3m_sde": ("dpmpp_3m_sde", {"eta": 0.0}, 2.5),
    "seeds_2": ("seeds_2", {"eta": 0.0}, 2),
    "seeds_3": ("seeds_3", {"eta": 0.0}, 2.5),
    "sa_solver": ("sa_solver", {"tau": lambda sigma: 0.0}, 3.5),
    "sa_solver_pece": ("sa_solver", {"tau": lambda sigma: 0.0, "use_pece": True}, 4),
}


def log_uniform(s0: float, s1: float, steps: int) -> torch.Tensor:
    return torch.exp(torch.linspace(math.log(s0), math.log(s1), steps + 1, dtype=torch.float64))


def test_sampler_table_holds_upstreams_names_in_upstreams_order():
    assert SAMPLERS == tuple(UPSTREAM_SAMPLERS)
    assert set(STOCHASTIC) <= STOCHASTIC_SAMPLERS
    assert not set(ORDER) & STOCHASTIC_SAMPLERS


@pytest.mark.parametrize("name", sorted(ORDER))
def test_deterministic_sampler_converges_to_the_exact_flow_at_its_order(gaussian, name):
    x = gaussian.mu + torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 10
    errors = []
    for steps in (10, 20):
        out = sample(gaussian, x.clone(), log_uniform(10.0, 0.5, steps), name)
        errors.append((out - gaussian.flow(x, 10.0, 0.5)).abs().max().item())
    observed = math.log2(errors[0] / errors[1])
    assert observed > ORDER[name] - 0.25, f"{name}: errors {errors}"
    assert errors[1] < 0.05


@pytest.mark.parametrize("name", sorted(ORDER))
def test_deterministic_sampler_to_zero_lands_near_the_exact_endpoint(gaussian, name):
    ms = ModelSampling()
    x = gaussian.mu + torch.randn(1, 1, 16, 16, dtype=torch.float64) * ms.sigma_max
    out = sample(gaussian, x, get_sigmas("karras", 30, ms).double(), name)
    target = gaussian.flow(x, ms.sigma_max, 0.0)
    assert (out - target).abs().max() < (0.2 if ORDER[name] == 1 else 0.05)


@pytest.mark.parametrize("name", sorted(NOISELESS))
def test_sde_solver_without_noise_converges_to_the_exact_flow(gaussian, name):
    function, options, order = NOISELESS[name]
    x = gaussian.mu + torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 10
    errors = []
    for steps in (10, 20):
        out = SAMPLER_FUNCTIONS[function](
            gaussian, x.clone(), log_uniform(10.0, 0.05, steps), noise=NoiseStream(0), **options
        )
        errors.append((out - gaussian.flow(x, 10.0, 0.05)).abs().max().item())
    assert math.log2(errors[0] / errors[1]) > order - 0.3, f"{name}: errors {errors}"
    assert errors[1] < 0.02


def test_lms_step_to_sigma_zero_returns_the_last_denoised(gaussian):
    seen = []
    out = sample(gaussian, torch.randn(1, 4, 8, 8) * 14.6, get_sigmas("karras", 8), "lms",
                 callback=lambda info: seen.append(info["denoised"]))
    assert torch.equal(out, seen[-1])


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_sampler_reproduces_data_mean_and_spread(gaussian, name):
    ms = ModelSampling()
    sigmas = get_sigmas("karras", 100, ms).double()
    x = gaussian.mu + NoiseLike(3)(torch.zeros(64, 1, 16, 16, dtype=torch.float64)) * float(sigmas[0])
    out = sample(gaussian, x, sigmas, name, seed=7)
    assert out.mean().item() == pytest.approx(gaussian.mu, abs=0.02)
    assert out.std().item() == pytest.approx(gaussian.std, rel=0.05)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_same_seed_same_tensor_other_seed_other_tensor(gaussian, name):
    sigmas = get_sigmas("karras", 6, ModelSampling())
    x = torch.randn(2, 4, 8, 8) * float(sigmas[0])
    a = sample(gaussian, x, sigmas, name, seed=1)
    b = sample(gaussian, x, sigmas, name, seed=1)
    c = sample(gaussian, x, sigmas, name, seed=2)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


@pytest.mark.parametrize("name", STOCHASTIC)
def test_a_list_of_seeds_gives_each_element_its_single_seed_result(gaussian, name):
    sigmas = get_sigmas("karras", 5, ModelSampling())
    x = torch.randn(3, 4, 8, 8) * float(sigmas[0])
    batched = sample(gaussian, x, sigmas, name, seed=[5, 6, 7])
    for b, seed in enumerate([5, 6, 7]):
        assert torch.equal(batched[b : b + 1], sample(gaussian, x[b : b + 1], sigmas, name, seed=[seed]))


@pytest.mark.parametrize("name", STOCHASTIC)
def test_a_float64_latent_gets_the_float32_latents_image(gaussian, name):
    sigmas = get_sigmas("karras", 8, ModelSampling())
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * float(sigmas[0])
    single = sample(gaussian, x, sigmas, name, seed=11)
    double = sample(gaussian, x.double(), sigmas.double(), name, seed=11)
    assert double.dtype == torch.float64
    torch.testing.assert_close(double, single.double(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde"])
def test_gpu_variant_on_a_cpu_latent_is_the_cpu_variant(gaussian, name):
    sigmas = get_sigmas("karras", 6, ModelSampling())
    x = torch.randn(2, 4, 8, 8) * float(sigmas[0])
    assert torch.equal(sample(gaussian, x, sigmas, name, seed=3), sample(gaussian, x, sigmas, name + "_gpu", seed=3))


def test_callback_reports_every_step_with_its_model_calls_and_next_sigma(gaussian):
    seen = []
    sigmas = get_sigmas("normal", 7)
    sample(gaussian, torch.randn(1, 4, 8, 8) * 14.6, sigmas, "dpmpp_sde", callback=seen.append)
    assert [info["i"] for info in seen] == list(range(7))
    assert seen[0]["sigma"] == pytest.approx(14.6146, abs=1e-3)
    assert [info["sigma_next"] for info in seen] == [float(s) for s in sigmas[1:]]
    assert [info["evals"] for info in seen] == [2] * 6 + [1]
    assert sum(info["evals"] for info in seen) == gaussian.calls


def test_sa_solver_pece_evaluates_the_corrected_state_once_more_per_step(gaussian):
    seen = []
    sample(gaussian, torch.randn(1, 4, 8, 8) * 14.6, get_sigmas("karras", 6), "sa_solver_pece", callback=seen.append)
    assert [info["evals"] for info in seen] == [1] + [2] * 5


def test_call_counter_keeps_with_uncond_exactly_when_the_denoiser_has_it(gaussian):
    class Guided:
        def __call__(self, x, sigma):
            return x * 0

        def with_uncond(self, x, sigma):
            return x * 0, x * 0 + 1

    counted = counting(Guided())
    x0, x0_uncond = counted.with_uncond(torch.ones(1, 1, 2, 2), torch.ones(1))
    counted(torch.ones(1, 1, 2, 2), torch.ones(1))
    assert counted.evals == 2 and torch.equal(x0_uncond, torch.ones(1, 1, 2, 2))
    assert not hasattr(counting(gaussian), "with_uncond")


def test_adams_coefficients_integrate_the_lagrange_basis_against_the_exponential_weight():
    nodes, lambda_s, lambda_t, tau = [-0.4, 0.1, 0.35], 0.35, 0.8, 1.0
    k = 1 + tau**2
    b = adams_coefficients(nodes, lambda_s, lambda_t, tau)
    # The basis sums to 1, so the coefficients sum to the weight's integral; quadrature checks each one.
    assert sum(b) == pytest.approx(-math.expm1(-k * (lambda_t - lambda_s)), rel=1e-12)
    grid = torch.linspace(lambda_s, lambda_t, 20001, dtype=torch.float64)
    weight = k * torch.exp(k * (grid - lambda_t))
    for j, node in enumerate(nodes):
        basis = torch.ones_like(grid)
        for m, other in enumerate(nodes):
            if m != j:
                basis = basis * (grid - other) / (node - other)
        assert b[j] == pytest.approx(torch.trapezoid(weight * basis, grid).item(), abs=1e-8)


def test_bad_inputs_are_rejected_before_sampling(gaussian):
    sigmas = get_sigmas("normal", 4)
    x = torch.randn(1, 4, 8, 8)
    with pytest.raises(ValueError, match="sampler must be one of euler"):
        sample(gaussian, x, sigmas, "euler_a")
    with pytest.raises(ValueError, match="NaN"):
        sample(gaussian, x.masked_fill(x > 1, float("nan")), sigmas)
    with pytest.raises(ValueError, match="4-D tensor"):
        sample(gaussian, x[0], sigmas)
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample(gaussian, x, sigmas.flip(0))
    with pytest.raises(ValueError, match="seed must be"):
        sample(gaussian, x, sigmas, seed=[1, 2])
    for bad in (-1, 2**64, [2**64]):
        with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*64\)"):
            sample(gaussian, x, sigmas, "dpmpp_sde", seed=bad)
    assert gaussian.calls == 0


def test_the_largest_seed_is_accepted(gaussian):
    sigmas = get_sigmas("karras", 3)
    out = sample(gaussian, torch.randn(1, 4, 8, 8) * float(sigmas[0]), sigmas, "dpmpp_2m_sde", seed=2**64 - 1)
    assert torch.isfinite(out).all()


class NoiseLike:
    """Seeded standard normal noise shaped like a tensor (keeps the test independent of the global RNG)."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self.generator, dtype=like.dtype)


@pytest.mark.parametrize("sampler", ["sa_solver", "sa_solver_pece"])
def test_sa_solver_reports_the_prediction_before_its_corrector_as_upstream(gaussian, sampler):
    """Each report's x0 is D of the state it reports (upstream's callback), not the PECE re-evaluation of the
    corrected state, so the last report is what the Impact Pack's wrappers return (issue 18, bug 4)."""
    seen = []
    sample(gaussian, torch.randn(1, 4, 8, 8) * 14.6, get_sigmas("karras", 6), sampler, seed=3, callback=seen.append)
    for info in seen:
        torch.testing.assert_close(info["denoised"], gaussian(info["x"], torch.tensor([info["sigma"]])))
    assert sum(info["evals"] for info in seen) == (11 if sampler == "sa_solver_pece" else 6)
