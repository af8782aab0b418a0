"""Flux.1 dev and schnell on tiny random-weight folders of the real architecture (tests/flux_fixtures.py): loading a
folder and a transformer file, prompts encoded by the pipeline's own code, latent packing and ids, model sampling
per canvas, and KSampler's euler against diffusers' own FluxPipeline loop from the same noise."""

import shutil

import pytest
import torch
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline, calculate_shift

from dualsampler.models import flux, load_model
from dualsampler.models.detect import inspect_folder
from dualsampler.models.interface import Model
from dualsampler.sampling import FlowModelSampling, FluxModelSampling, JointDenoiser, KSampler, NoiseStream

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def dev(flux_models):
    return load_model(flux_models.dev)


@pytest.fixture(scope="module")
def schnell(flux_models):
    return load_model(flux_models.schnell)


def test_a_flux_folder_is_detected_and_loads_with_its_geometry(dev, schnell, flux_models):
    info = inspect_folder(flux_models.dev)
    assert info.kind == "flux" and "transformer/diffusion_pytorch_model.safetensors" in info.files
    assert not flux.matches({"_class_name": "StableDiffusionPipeline"}, flux_models.dev)
    assert isinstance(dev, flux.Flux) and isinstance(dev, Model)
    assert dev.fingerprint() == flux.load_folder(info, torch.float32, CPU).fingerprint()
    assert dev.kind == "flux" and dev.latent_channels == 16 and dev.vae_scale_factor == 2
    assert dev.canvas_multiple == 4 and dev.dtype == torch.float32 and dev.judge is None
    assert dev.guidance_embeds and not schnell.guidance_embeds
    assert dev.fingerprint() != schnell.fingerprint()


def test_images_encode_to_shifted_16_channel_latents_and_decode_back(dev):
    images = torch.rand(1, 3, 16, 12)
    latents = dev.encode(images)
    z = dev.vae.encode(images * 2 - 1).latent_dist.mode()
    torch.testing.assert_close(latents, (z - 0.1159) * 0.3611)
    assert latents.shape == (1, 16, 8, 6) and dev.decode(latents).shape == images.shape


def test_a_folder_without_model_index_loads_component_by_component(dev, flux_models, tmp_path):
    folder = shutil.copytree(flux_models.dev, tmp_path / "flux")
    (folder / "model_index.json").unlink()
    model = load_model(folder)
    x, sigma = torch.randn(1, 16, 4, 4), torch.tensor([0.7])
    assert torch.equal(model.denoiser("red dots")(x, sigma), dev.denoiser("red dots")(x, sigma))


def test_prompts_are_the_pipelines_own_embeddings_with_the_guidance_value(dev, schnell):
    cond, uncond = dev.encode_prompt(["blue stripes", "red dots"], "", guidance=4.0)
    hidden, pooled, _ = dev.pipeline.encode_prompt(["blue stripes", "red dots"], device=CPU)
    empty, empty_pooled, _ = dev.pipeline.encode_prompt([""] * 2, device=CPU)
    assert cond.hidden.shape == (2, 512, 32) and cond.text_embeds.shape == (2, 32)
    torch.testing.assert_close(cond.hidden, hidden)
    torch.testing.assert_close(cond.text_embeds, pooled)
    torch.testing.assert_close(uncond.hidden, empty)
    torch.testing.assert_close(uncond.text_embeds, empty_pooled)
    assert cond.guidance.tolist() == [4.0, 4.0] and uncond.guidance.tolist() == [4.0, 4.0]
    assert schnell.encode_prompt("blue stripes", guidance=4.0)[0].guidance is None


def test_packing_round_trips_and_is_the_pipelines():
    x = torch.randn(2, 16, 6, 8)
    tokens = flux.pack_latents(x)
    assert tokens.shape == (2, 12, 64)
    torch.testing.assert_close(tokens, FluxPipeline._pack_latents(x, 2, 16, 6, 8), rtol=0, atol=0)
    assert torch.equal(flux.unpack_tokens(tokens, 6, 8), x)
    assert torch.equal(FluxPipeline._unpack_latents(tokens, 12, 16, 2), x)
    assert torch.equal(flux.image_ids(3, 4, CPU), FluxPipeline._prepare_latent_image_ids(1, 3, 4, CPU, torch.float32))


def test_an_odd_latent_is_padded_circularly_and_cropped_back(dev):
    denoiser = dev.denoiser("red dots")
    x, sigma = torch.randn(1, 16, 5, 7), torch.tensor([0.7])
    out = denoiser(x, sigma)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1), mode="circular")
    assert out.shape == x.shape
    torch.testing.assert_close(out, denoiser(padded, sigma)[:, :, :5, :7])


def pipeline_latent(model, noise, steps, guidance, negative="", cfg=1.0):
    """diffusers' own FluxPipeline loop from `noise` [1, 16, h, w], unpacked."""
    height, width = (side * model.vae_scale_factor for side in noise.shape[-2:])
    out = model.pipeline("blue stripes", height=height, width=width, num_inference_steps=steps,
                         guidance_scale=guidance, negative_prompt=negative or None, true_cfg_scale=cfg,
                         latents=flux.pack_latents(noise), output_type="latent").images
    return flux.unpack_tokens(out, *noise.shape[-2:])


@pytest.mark.parametrize("name, guidance, negative, cfg", [
    ("dev", 1.0, "", 1.0), ("dev", 4.0, "", 1.0), ("dev", 3.5, "red dots", 2.0), ("schnell", 3.5, "", 1.0),
])
def test_euler_equals_the_flux_pipeline_from_the_same_noise(request, name, guidance, negative, cfg):
    model = request.getfixturevalue(name)
    latent, steps = torch.zeros(1, 16, 8, 12), 4
    denoiser = model.denoiser("blue stripes", negative, cfg=cfg, guidance=guidance, height=16, width=24)
    sampler = KSampler(denoiser, "euler", "simple")
    ours = sampler.sample(latent, seed=3, steps=steps)
    expected = pipeline_latent(model, NoiseStream(3)(latent), steps, guidance, negative, cfg)
    torch.testing.assert_close(sampler.sigmas(steps), model.pipeline.scheduler.sigmas, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_the_guidance_value_changes_dev_and_not_schnell(dev, schnell):
    x, sigma = torch.randn(1, 16, 4, 4), torch.tensor([0.6])
    low, high = (dev.denoiser("blue stripes", guidance=g)(x, sigma) for g in (1.0, 4.0))
    assert (low - high).abs().max() > 1e-3
    assert torch.equal(*(schnell.denoiser("blue stripes", guidance=g)(x, sigma) for g in (1.0, 4.0)))


def test_samplers_with_different_guidance_share_one_forward_row_by_row(dev):
    members = [dev.denoiser("blue stripes", guidance=g) for g in (1.0, 4.0)]
    joint = JointDenoiser(members)
    x, sigma = torch.randn(1, 16, 4, 4), torch.tensor([0.5])
    assert joint.shared
    for together, alone in zip(joint(x, sigma), (d(x, sigma) for d in members)):
        torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_model_sampling_per_canvas_is_the_pipelines_shift(dev, schnell):
    config = dev.pipeline.scheduler.config
    tokens = (64 // 4) * (96 // 4)
    assert dev.model_sampling_for(64, 96).shift == pytest.approx(calculate_shift(
        tokens, config.base_image_seq_len, config.max_image_seq_len, config.base_shift, config.max_shift))
    assert dev.model_sampling.shift == pytest.approx(config.max_shift)
    # schnell's static shift 1, as ComfyUI's FluxSchnell: discrete flow, 1000 timesteps, multiplier 1 (t = sigma)
    assert schnell.model_sampling_for(64, 96) == FlowModelSampling(shift=1.0, multiplier=1.0)
    assert schnell.model_sampling.sigma_min == pytest.approx(1e-3)
    # Flux.1's 8x VAE: ComfyUI's ModelSamplingFlux node (for_size) gives the pipeline's shift for the image size.
    assert FluxModelSampling.for_size(1024, 768).shift == pytest.approx(calculate_shift((1024 // 16) * (768 // 16)))


def test_a_static_shift_samples_the_schedulers_sigmas_on_comfyuis_1000_step_flow():
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(sigmas=[1.0, 0.75, 0.5, 0.25])
    sampling = flux.scheduler_sampling({"shift": 3.0})
    torch.testing.assert_close(KSampler(lambda x, s: x, "euler", "simple", sampling).sigmas(4), scheduler.sigmas,
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("config, message", [
    ({"shift": 0.5}, "scheduler shift"), ({"shift_terminal": 0.1}, "shift_terminal"),
    ({"use_dynamic_shifting": True, "time_shift_type": "linear"}, "time_shift_type"),
])
def test_scheduler_configs_flux_cannot_sample_are_refused(config, message):
    with pytest.raises(ValueError, match=message):
        flux.scheduler_sampling(config)


def test_the_transformer_file_gives_the_folders_denoiser(dev, flux_models):
    single = load_model(flux_models.checkpoint, config=flux_models.dev)
    x, sigma = torch.randn(1, 16, 4, 6), torch.tensor([0.8])
    assert torch.equal(single.denoiser("blue stripes")(x, sigma), dev.denoiser("blue stripes")(x, sigma))
    assert "checkpoint" in single.files and "vae/diffusion_pytorch_model.safetensors" in single.files
    assert "transformer/diffusion_pytorch_model.safetensors" not in single.files
    assert single.fingerprint() != dev.fingerprint()


def test_a_transformer_file_needs_the_other_weights_in_its_config_folder(flux_models, tmp_path):
    folder = shutil.copytree(flux_models.dev, tmp_path / "configs")
    (folder / "text_encoder_2" / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="text_encoder_2"):
        flux.load_single_file(flux_models.checkpoint, inspect_folder(folder, require_weights=False), torch.float32, CPU)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_samples_finite_latents_near_float32(dev, flux_models, dtype):
    model = load_model(flux_models.dev, dtype=dtype)
    assert model.dtype == getattr(torch, dtype) and model.pipeline.text_encoder_2.dtype == model.dtype
    latent = torch.zeros(1, 16, 4, 4)
    out = KSampler(model.denoiser("red dots"), "euler", "simple").sample(latent, seed=0, steps=3)
    reference = KSampler(dev.denoiser("red dots"), "euler", "simple").sample(latent, seed=0, steps=3)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert (out - reference).abs().max() < 0.1 * reference.abs().max()


@pytest.mark.parametrize("options, message", [
    ({"guidance": -1.0}, "guidance"), ({"guidance": float("nan")}, "guidance"), ({"cfg": 101.0}, "cfg"),
    ({"height": 30, "width": 32}, "height must be a multiple of 4"), ({"height": 32}, "height and width"),
])
def test_bad_options_are_refused_before_encoding(dev, monkeypatch, options, message):
    monkeypatch.setattr(dev.pipeline, "encode_prompt", None)
    with pytest.raises(ValueError, match=message):
        dev.denoiser("blue stripes", **options)


def test_a_latent_of_another_models_channels_is_refused_naming_the_model(dev):
    sampler = KSampler(dev.denoiser("red dots"), "euler", "simple", model_sampling=dev.model_sampling)
    with pytest.raises(ValueError, match="latent has 4 channels but the KSampler's denoiser's model expects 16"):
        sampler.sample(torch.zeros(1, 4, 8, 8), seed=0, steps=2)
