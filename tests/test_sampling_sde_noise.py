"""The SDE samplers' noise: a seeded Brownian tree over the run's sigmas, as upstream draws it, and seeded
Gaussian draws that do not depend on the latent's dtype."""

import math

import pytest
import torch

from dualsampler.sampling import NoiseStream, get_sigmas, sample
from dualsampler.sampling.brownian import as_float32, float32_log_midpoint, noise_interval
from dualsampler.sampling.noise import check_seed

SIGMAS = [14.6146, 6.0, 2.5, 1.0, 0.3, 0.0292, 0.0]


def tree_for(seed, like=None):
    like = torch.zeros(1, 4, 64, 64) if like is None else like
    return NoiseStream(seed).brownian(like, SIGMAS)


def test_tree_spans_the_smallest_nonzero_sigma_to_the_largest_in_float32():
    assert noise_interval(SIGMAS) == (as_float32(0.0292), as_float32(14.6146))
    with pytest.raises(ValueError, match="sigmas"):
        noise_interval([0.0])


@pytest.mark.parametrize("s, t", [(14.6146, 6.0), (6.0, 1.0), (1.0, 0.3), (0.3, 0.0292)])
def test_increment_over_an_interval_has_variance_its_length_in_sigma(s, t):
    w = tree_for(0).increment(s, t)
    assert w.var().item() == pytest.approx(s - t, rel=0.05)
    assert w.mean().item() == pytest.approx(0.0, abs=4 * math.sqrt((s - t) / w.numel()))
    z = tree_for(0)(s, t)
    assert z.std().item() == pytest.approx(1.0, rel=0.05)


def test_increments_add_up_over_nested_intervals_and_disjoint_ones_are_uncorrelated():
    tree = tree_for(1)
    whole = tree.increment(6.0, 0.3)
    first, second = tree.increment(6.0, 1.0), tree.increment(1.0, 0.3)
    torch.testing.assert_close(first + second, whole, rtol=0, atol=1e-5)
    assert torch.corrcoef(torch.stack([first.flatten(), second.flatten()]))[0, 1].abs() < 0.05
    torch.testing.assert_close(tree.increment(0.3, 6.0), -whole, rtol=0, atol=0)


def test_same_seed_gives_the_same_path_whatever_the_query_order():
    forward, backward = tree_for(5), tree_for(5)
    queries = [(14.6146, 6.0), (6.0, 2.5), (2.5, float32_log_midpoint(2.5, 1.0, 0.5)), (2.5, 1.0), (1.0, 0.0292)]
    first = [forward(s, t) for s, t in queries]
    second = [backward(s, t) for s, t in reversed(queries)][::-1]
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert (tree_for(6)(6.0, 2.5) - first[1]).abs().max() > 0.1


def test_per_element_seeds_give_each_element_its_own_tree():
    like = torch.zeros(3, 4, 16, 16)
    batched = NoiseStream([7, 8, 9]).brownian(like, SIGMAS)
    for b, seed in enumerate([7, 8, 9]):
        alone = NoiseStream([seed]).brownian(like[:1], SIGMAS)
        assert torch.equal(batched(6.0, 2.5)[b : b + 1], alone(6.0, 2.5))
        assert torch.equal(batched(1.0, 0.3)[b : b + 1], alone(1.0, 0.3))


def test_a_float64_latent_gets_the_float32_noise_cast():
    single, double = torch.zeros(2, 4, 8, 8), torch.zeros(2, 4, 8, 8, dtype=torch.float64)
    assert torch.equal(NoiseStream(3)(double), NoiseStream(3)(single).double())
    tree64 = NoiseStream(3).brownian(double, SIGMAS)(6.0, 2.5)
    assert tree64.dtype == torch.float64
    assert torch.equal(tree64, NoiseStream(3).brownian(single, SIGMAS)(6.0, 2.5).double())


def test_dpmpp_2m_sde_first_step_adds_the_trees_increment_over_that_step(gaussian):
    # One step from s to t > 0: x1 = (t/s) e^{-h} x + (1 - e^{-2h}) D(x, s) + t sqrt(1 - e^{-2h}) z, z = tree(s, t).
    sigmas = torch.tensor([6.0, 2.5, 1.0])
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 6.0
    seen = []
    sample(gaussian, x, sigmas, "dpmpp_2m_sde", seed=21, callback=lambda info: seen.append(info["x"]))
    s, t = 6.0, 2.5
    h = math.log(s / t)
    z = NoiseStream(21).brownian(x, [6.0, 2.5, 1.0])(s, t)
    expected = (t / s) * math.exp(-h) * x + (1 - math.exp(-2 * h)) * gaussian(x, torch.full((2,), s))
    expected = expected + z * t * math.sqrt(1 - math.exp(-2 * h))
    torch.testing.assert_close(seen[0], expected, rtol=0, atol=1e-5)


def test_the_trees_span_is_the_calls_own_sigmas(gaussian):
    # A slice of a schedule builds its own tree, as upstream does per call: over [1.0, 6.0] here, not [1.0, 14.6].
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 6.0
    seen = []
    sample(gaussian, x, torch.tensor([6.0, 2.5, 1.0]), "dpmpp_2m_sde", seed=2, callback=lambda i: seen.append(i["x"]))
    wider = NoiseStream(2).brownian(x, [14.6146, 6.0, 2.5, 1.0])(6.0, 2.5)
    own = NoiseStream(2).brownian(x, [6.0, 2.5, 1.0])(6.0, 2.5)
    assert (wider - own).abs().max() > 0.1
    h = math.log(6.0 / 2.5)
    drift = (2.5 / 6.0) * math.exp(-h) * x + (1 - math.exp(-2 * h)) * gaussian(x, torch.full((1,), 6.0))
    torch.testing.assert_close(seen[0], drift + own * 2.5 * math.sqrt(1 - math.exp(-2 * h)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("seed", [-1, 2**64, [0, -5], True, "7"])
def test_seeds_outside_0_to_2_pow_64_are_rejected_with_the_range(seed):
    with pytest.raises(ValueError, match=r"seed must be an int"):
        check_seed(seed, 2)


def test_seed_bounds_are_inclusive_of_zero_and_exclusive_of_2_pow_64():
    check_seed(0, 1)
    check_seed(2**64 - 1, 1)
    check_seed([0, 2**64 - 1], 2)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*64\)"):
        check_seed(2**64, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; on the CPU both variants share a tree")
def test_plain_sde_sampler_keeps_its_cpu_tree_on_cuda_and_the_gpu_variant_draws_on_the_device(gaussian):
    sigmas = get_sigmas("karras", 6)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * float(sigmas[0])
    on_cpu = sample(gaussian, x, sigmas, "dpmpp_2m_sde", seed=3)
    on_cuda = sample(gaussian, x.cuda(), sigmas.cuda(), "dpmpp_2m_sde", seed=3)
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=0, atol=1e-4)
    tree = NoiseStream(3).brownian(x.cuda(), [float(s) for s in sigmas], on_latent_device=True)
    assert tree.trees[0].device.type == "cuda" and tree(6.0, 2.5).device.type == "cuda"
