"""The diffusers UNet wrapper against SPEC §1 on small random UNets of the real architectures."""

import pytest
import torch
from diffusers import UNet2DConditionModel, UNet2DModel
from helpers import ForwardCounter, embeddings, tiny_cond_unet

from dualsampler.sampling import (
    JointDenoiser,
    KSampler,
    ModelSampling,
    UNetDenoiser,
    denoise_together,
)


@pytest.fixture(scope="module")
def unet() -> UNet2DConditionModel:
    return tiny_cond_unet()


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_x0_follows_the_prediction_type(unet, prediction_type):
    ms = ModelSampling(prediction_type=prediction_type)
    x, sigma, cond = torch.randn(2, 4, 8, 8), torch.tensor([3.0, 0.5]), embeddings(1)
    with torch.no_grad():
        raw = unet(x / (sigma**2 + 1).sqrt().reshape(-1, 1, 1, 1), ms.sigma_to_t(sigma),
                   encoder_hidden_states=cond.expand(2, -1, -1)).sample
    s = sigma.reshape(-1, 1, 1, 1)
    expected = x - s * raw if prediction_type == "epsilon" else x / (s**2 + 1) - raw * s / (s**2 + 1).sqrt()
    torch.testing.assert_close(UNetDenoiser(unet, ms, cond)(x, sigma), expected, atol=1e-5, rtol=1e-5)


def test_cfg_one_skips_the_unconditional_pass(unet):
    counter = ForwardCounter(unet)
    UNetDenoiser(unet, cond=embeddings(1), uncond=embeddings(2), cfg=1.0)(torch.randn(3, 4, 8, 8), torch.full((3,), 2.0))
    assert counter.batches == [3]


def test_cfg_runs_cond_and_uncond_in_one_batched_forward(unet):
    cond, uncond, x, sigma = embeddings(1), embeddings(2), torch.randn(2, 4, 8, 8), torch.full((2,), 2.0)
    counter = ForwardCounter(unet)
    guided = UNetDenoiser(unet, cond=cond, uncond=uncond, cfg=5.0)(x, sigma)
    assert counter.batches == [4]
    c = UNetDenoiser(unet, cond=cond)(x, sigma)
    u = UNetDenoiser(unet, cond=uncond)(x, sigma)
    torch.testing.assert_close(guided, u + (c - u) * 5.0, atol=1e-4, rtol=1e-4)


def test_two_denoisers_of_one_unet_share_one_forward(unet):
    a = UNetDenoiser(unet, cond=embeddings(1), uncond=embeddings(0), cfg=4.0)
    b = UNetDenoiser(unet, model_sampling=a.model_sampling, cond=embeddings(2), uncond=embeddings(0), cfg=6.0)
    x, sigma = torch.randn(2, 4, 8, 8), torch.full((2,), 1.5)
    counter = ForwardCounter(unet)
    together = denoise_together([a, b], x, sigma)
    assert counter.batches == [6]  # cond a, cond b and the shared negative prompt, each for 2 latents
    torch.testing.assert_close(together[0], a(x, sigma), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(together[1], b(x, sigma), atol=1e-4, rtol=1e-4)


def test_unconditional_unet2dmodel_samples_through_ksampler():
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4).eval()
    out = KSampler(UNetDenoiser(unet), "dpmpp_2m", "karras").sample(torch.zeros(1, 4, 8, 8), 0, 3)
    assert out.shape == (1, 4, 8, 8) and torch.isfinite(out).all()


def test_cfg_is_a_mutable_attribute_hooks_can_change(unet):
    den = UNetDenoiser(unet, cond=embeddings(1), uncond=embeddings(2), cfg=1.0)
    assert den.conditionings() == [den.cond]
    den.cfg = 7.5
    assert len(den.conditionings()) == 2


def test_model_sampling_built_twice_from_one_config_still_shares_one_forward(unet):
    config = {"beta_schedule": "scaled_linear", "prediction_type": "epsilon"}
    a = UNetDenoiser(unet, ModelSampling.from_config(config), cond=embeddings(1), uncond=embeddings(0), cfg=4.0)
    b = UNetDenoiser(unet, ModelSampling.from_config(config), cond=embeddings(2), uncond=embeddings(0), cfg=6.0)
    assert a.model_sampling is not b.model_sampling and a.model_sampling == b.model_sampling
    counter = ForwardCounter(unet)
    JointDenoiser([a, b])(torch.randn(2, 4, 8, 8), torch.full((2,), 1.5))
    assert counter.batches == [6]


def test_different_model_sampling_evaluates_each_denoiser_alone(unet):
    a = UNetDenoiser(unet, ModelSampling(), cond=embeddings(1))
    b = UNetDenoiser(unet, ModelSampling(prediction_type="v_prediction"), cond=embeddings(2))
    counter = ForwardCounter(unet)
    JointDenoiser([a, b])(torch.randn(1, 4, 8, 8), torch.full((1,), 1.5))
    assert counter.batches == [1, 1]


def test_with_uncond_gives_guided_and_unconditional_from_one_forward(unet):
    den = UNetDenoiser(unet, cond=embeddings(1), uncond=embeddings(2), cfg=1.0)
    x, sigma = torch.randn(2, 4, 8, 8), torch.full((2,), 2.0)
    counter = ForwardCounter(unet)
    guided, uncond = den.with_uncond(x, sigma)
    assert counter.batches == [4]  # the unconditional branch is evaluated even at cfg 1
    torch.testing.assert_close(guided, UNetDenoiser(unet, cond=embeddings(1))(x, sigma), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(uncond, UNetDenoiser(unet, cond=embeddings(2))(x, sigma), atol=1e-5, rtol=1e-5)


def test_joint_with_uncond_gives_each_members_unconditional_prediction(unet):
    a = UNetDenoiser(unet, cond=embeddings(1), uncond=embeddings(0), cfg=3.0)
    b = UNetDenoiser(unet, cond=embeddings(2), uncond=embeddings(5), cfg=2.0)
    x, sigma = torch.randn(1, 4, 8, 8), torch.full((1,), 0.8)
    counter = ForwardCounter(unet)
    pairs = JointDenoiser([a, b]).with_uncond(x, sigma)
    assert counter.batches == [4]
    for den, (guided, uncond) in zip((a, b), pairs):
        expected_guided, expected_uncond = den.with_uncond(x, sigma)
        torch.testing.assert_close(guided, expected_guided, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(uncond, expected_uncond, atol=1e-5, rtol=1e-5)


def test_a_hook_raising_cfg_changes_the_joint_plan(unet):
    a = UNetDenoiser(unet, cond=embeddings(1), uncond=embeddings(0), cfg=1.0)
    b = UNetDenoiser(unet, cond=embeddings(2), uncond=embeddings(0), cfg=1.0)
    joint, x, sigma = JointDenoiser([a, b]), torch.randn(1, 4, 8, 8), torch.full((1,), 1.0)
    counter = ForwardCounter(unet)
    joint(x, sigma)
    a.cfg = 5.0
    out = joint(x, sigma)
    assert counter.batches[0] == 2 and counter.batches[1] == 3
    torch.testing.assert_close(out[0], a(x, sigma), atol=1e-5, rtol=1e-5)


def test_half_precision_unet_returns_float32_x0(unet):
    half = tiny_cond_unet().to(torch.bfloat16)
    x, sigma = torch.randn(1, 4, 8, 8), torch.full((1,), 1.0)
    out = UNetDenoiser(half, cond=embeddings(1))(x, sigma)
    assert out.dtype == torch.float32
    reference = UNetDenoiser(unet, cond=embeddings(1))(x, sigma)
    assert (out - reference).abs().max() < 0.05 * reference.abs().max()
