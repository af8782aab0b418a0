"""The diffusers UNet wrapper against SPEC §1 on small random UNets of the real architectures."""

import pytest
import torch
from diffusers import UNet2DConditionModel, UNet2DModel

from dualsampler.sampling import KSampler, ModelSampling, UNetDenoiser, denoise_together

from helpers import ForwardCounter, embeddings, tiny_cond_unet


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
