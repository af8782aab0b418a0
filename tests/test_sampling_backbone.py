"""The guided denoiser over any network's `Backbone` (SPEC §9): a flow backbone whose velocity is exact for
Gaussian data gives the exact posterior mean, stacking follows the backbone's key, and every loaded model
implements the one `Model` interface."""

import pytest
import torch

from dualsampler.models import random_world
from dualsampler.models.interface import Model
from dualsampler.sampling import (
    Conditioning,
    FlowModelSampling,
    JointDenoiser,
    KSampler,
    ModelDenoiser,
)
from dualsampler.sampling.conditioning import stack_rows

DATA_STD = 0.7
MULTIPLIER = 1000.0


class GaussianVelocity:
    """The exact rectified-flow velocity `(x - E[x0|x]) / sigma` for data x0 ~ N(mean, DATA_STD^2) per pixel, the
    mean read from the conditioning's `hidden` [N, 1, 1] (plus `guidance` when given), sigma = t / MULTIPLIER."""

    dtype = torch.float32

    def __init__(self, key: object = "gaussian") -> None:
        self.key = key
        self.batches: list[int] = []

    def stack(self, conds, x):
        hidden = stack_rows([c.hidden for c in conds], x.shape[0], x.device)
        guidance = None if conds[0].guidance is None else stack_rows([c.guidance for c in conds], x.shape[0], x.device)
        return Conditioning(hidden, guidance=guidance)

    def __call__(self, x, t, cond):
        self.batches.append(x.shape[0])
        sigma = (t / MULTIPLIER).reshape(-1, 1, 1, 1)
        mean = cond.hidden.reshape(-1, 1, 1, 1)
        if cond.guidance is not None:
            mean = mean + cond.guidance.reshape(-1, 1, 1, 1)
        return (x - posterior_mean(x, sigma, mean)) / sigma


def posterior_mean(x, sigma, mean):
    """E[x0 | x] for x = (1 - sigma) x0 + sigma n, x0 ~ N(mean, s^2), n ~ N(0, 1)."""
    a, var = 1 - sigma, DATA_STD**2
    return mean + a * var / (a**2 * var + sigma**2) * (x - a * mean)


def prompt(mean: float, guidance: float | None = None) -> Conditioning:
    return Conditioning(torch.full((1, 1, 1), mean), guidance=None if guidance is None else torch.tensor([guidance]))


FLOW = FlowModelSampling(shift=1.0, multiplier=MULTIPLIER)


def test_a_flow_backbone_gives_the_exact_posterior_mean():
    x, sigma = torch.randn(3, 4, 8, 8), torch.tensor([0.9, 0.5, 0.1])
    x0 = ModelDenoiser(GaussianVelocity(), FLOW, prompt(0.5))(x, sigma)
    torch.testing.assert_close(x0, posterior_mean(x, sigma.reshape(-1, 1, 1, 1), 0.5), atol=1e-5, rtol=1e-5)


def test_classifier_free_guidance_extrapolates_in_one_forward():
    backbone = GaussianVelocity()
    x, sigma = torch.randn(2, 4, 8, 8), torch.full((2,), 0.6)
    guided = ModelDenoiser(backbone, FLOW, prompt(1.0), prompt(-1.0), cfg=3.0)(x, sigma)
    assert backbone.batches == [4]
    s = sigma.reshape(-1, 1, 1, 1)
    cond, uncond = posterior_mean(x, s, 1.0), posterior_mean(x, s, -1.0)
    torch.testing.assert_close(guided, uncond + (cond - uncond) * 3.0, atol=1e-5, rtol=1e-5)


def test_guidance_is_part_of_the_conditioning():
    x, sigma = torch.randn(1, 4, 8, 8), torch.tensor([0.5])
    low = ModelDenoiser(GaussianVelocity(), FLOW, prompt(0.0, guidance=1.0))(x, sigma)
    high = ModelDenoiser(GaussianVelocity(), FLOW, prompt(0.0, guidance=4.0))(x, sigma)
    torch.testing.assert_close(high - low, torch.full_like(low, 3.0 * (1 - posterior_gain(0.5))), atol=1e-5, rtol=1e-5)
    assert not prompt(0.0, guidance=1.0).same_as(prompt(0.0, guidance=4.0))


def posterior_gain(sigma: float) -> float:
    a, var = 1 - sigma, DATA_STD**2
    return a * a * var / (a**2 * var + sigma**2)


def test_denoisers_stack_only_when_their_backbone_keys_match():
    shared = GaussianVelocity()
    a, b = ModelDenoiser(shared, FLOW, prompt(1.0)), ModelDenoiser(shared, FLOW, prompt(-1.0))
    x, sigma = torch.randn(2, 4, 8, 8), torch.full((2,), 0.4)
    joint = JointDenoiser([a, b])
    assert joint.shared
    together = joint(x, sigma)
    assert shared.batches == [4]
    torch.testing.assert_close(together[0], a(x, sigma))
    other = ModelDenoiser(GaussianVelocity(key=("gaussian", (("lora", 1.0),))), FLOW, prompt(-1.0))
    assert not JointDenoiser([a, other]).shared


def test_a_ksampler_samples_the_data_distribution_on_a_flow_backbone():
    sampler = KSampler(ModelDenoiser(GaussianVelocity(), FLOW, prompt(2.0)), "euler", "simple", model_sampling=FLOW)
    out = sampler.sample(torch.zeros(64, 1, 8, 8), seed=0, steps=30)
    assert abs(out.mean().item() - 2.0) < 0.05
    assert abs(out.std().item() - DATA_STD) < 0.05


def test_every_model_implements_the_model_interface(sd_models):
    from dualsampler.models import load_model

    world = random_world(0)
    sd = load_model(sd_models.sd15)
    for model in (world, sd):
        assert isinstance(model, Model)
        assert model.canvas_multiple % model.vae_scale_factor == 0
    assert (world.kind, sd.kind) == ("world", "sd1")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_cfg_is_refused(bad):
    with pytest.raises(ValueError, match="cfg"):
        ModelDenoiser(GaussianVelocity(), FLOW, prompt(0.0), prompt(1.0), cfg=bad)
