"""Every sampler on a Gaussian data distribution, where the exact denoiser and PF-ODE solution are known."""

import math

import pytest
import torch

from dualsampler.sampling import SAMPLERS, STOCHASTIC_SAMPLERS, ModelSampling, get_sigmas, sample

DETERMINISTIC = [s for s in SAMPLERS if s not in STOCHASTIC_SAMPLERS]
# Observed global order on a smooth log-uniform schedule. Multistep methods start (and UniPC ends, as upstream)
# with lower-order steps, which caps lms at ~3 and uni_pc at 2 even though their full-order steps are higher.
ORDER = {"euler": 1, "ddim": 1, "heun": 2, "dpm_2": 2, "dpmpp_2m": 2, "lms": 3, "uni_pc": 2, "uni_pc_bh2": 2}


def log_uniform(s0: float, s1: float, steps: int) -> torch.Tensor:
    return torch.exp(torch.linspace(math.log(s0), math.log(s1), steps + 1, dtype=torch.float64))


def test_sampler_table_holds_the_names_users_know():
    assert set(ORDER) == set(DETERMINISTIC)
    assert {"euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2s_ancestral",
            "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddim", "uni_pc"} <= set(SAMPLERS)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_sampler_converges_to_the_exact_flow_at_its_order(gaussian, name):
    x = gaussian.mu + torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 10
    errors = []
    for steps in (10, 20):
        out = sample(gaussian, x.clone(), log_uniform(10.0, 0.5, steps), name)
        errors.append((out - gaussian.flow(x, 10.0, 0.5)).abs().max().item())
    observed = math.log2(errors[0] / errors[1])
    assert observed > ORDER[name] - 0.25, f"{name}: errors {errors}"
    assert errors[1] < 0.05


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_sampler_to_zero_lands_near_the_exact_endpoint(gaussian, name):
    ms = ModelSampling()
    x = gaussian.mu + torch.randn(1, 1, 16, 16, dtype=torch.float64) * ms.sigma_max
    out = sample(gaussian, x, get_sigmas("karras", 30, ms).double(), name)
    target = gaussian.flow(x, ms.sigma_max, 0.0)
    assert (out - target).abs().max() < (0.2 if ORDER[name] == 1 else 0.05)


@pytest.mark.parametrize("name", sorted(STOCHASTIC_SAMPLERS))
def test_stochastic_sampler_reproduces_data_mean_and_spread(gaussian, name):
    ms = ModelSampling()
    sigmas = get_sigmas("karras", 100, ms).double()
    x = gaussian.mu + NoiseLike(3)(torch.zeros(64, 1, 16, 16, dtype=torch.float64)) * float(sigmas[0])
    out = sample(gaussian, x, sigmas, name, seed=7)
    assert out.mean().item() == pytest.approx(gaussian.mu, abs=0.02)
    assert out.std().item() == pytest.approx(gaussian.std, rel=0.05)


@pytest.mark.parametrize("name", sorted(STOCHASTIC_SAMPLERS))
def test_same_seed_same_tensor_other_seed_other_tensor(gaussian, name):
    sigmas = get_sigmas("karras", 6, ModelSampling())
    x = torch.randn(2, 4, 8, 8) * float(sigmas[0])
    a = sample(gaussian, x, sigmas, name, seed=1)
    b = sample(gaussian, x, sigmas, name, seed=1)
    c = sample(gaussian, x, sigmas, name, seed=2)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


@pytest.mark.parametrize("name", sorted(STOCHASTIC_SAMPLERS))
def test_a_list_of_seeds_gives_each_element_its_single_seed_result(gaussian, name):
    sigmas = get_sigmas("karras", 5, ModelSampling())
    x = torch.randn(3, 4, 8, 8) * float(sigmas[0])
    batched = sample(gaussian, x, sigmas, name, seed=[5, 6, 7])
    for b, seed in enumerate([5, 6, 7]):
        torch.testing.assert_close(batched[b : b + 1], sample(gaussian, x[b : b + 1], sigmas, name, seed=[seed]))


def test_callback_sees_every_step(gaussian):
    seen = []
    sample(gaussian, torch.randn(1, 4, 8, 8) * 14.6, get_sigmas("normal", 7), "dpmpp_2m",
           callback=lambda info: seen.append((info["i"], info["sigma"], info["denoised"].shape)))
    assert [i for i, _, _ in seen] == list(range(7))
    assert seen[0][1] == pytest.approx(14.6146, abs=1e-3)


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
    assert gaussian.calls == 0


class NoiseLike:
    """Seeded standard normal noise shaped like a tensor (keeps the test independent of the global RNG)."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self.generator, dtype=like.dtype)
