"""Stable Diffusion folders and single files through `load_model`, on tiny random-weight models of the real
architectures (tests/sd_fixtures.py): detection, prompt encoding by the pipelines' own code, SDXL's added
conditioning, model sampling from the scheduler, parity with diffusers' own Euler loop, dtypes, fingerprints."""

import json
import shutil

import pytest
import torch
from diffusers import EulerDiscreteScheduler

from dualsampler.models import ModelSource, StableDiffusion, World, load_model
from dualsampler.sampling import KSampler, ModelSampling, sample
from dualsampler.sampling.conditioning import Conditioning


@pytest.fixture(scope="module")
def sd15(sd_models):
    return load_model(sd_models.sd15)


@pytest.fixture(scope="module")
def sdxl(sd_models):
    return load_model(sd_models.sdxl)


@pytest.mark.parametrize("name, kind, prediction", [
    ("sd15", "sd1", "epsilon"), ("sd2v", "sd2", "v_prediction"), ("sd2v_zero_snr", "sd2", "v_prediction"),
    ("sdxl", "sdxl", "epsilon"),
])
def test_each_folder_is_detected_from_its_own_files(sd_models, name, kind, prediction):
    model = load_model(getattr(sd_models, name))
    assert isinstance(model, StableDiffusion) and model.kind == kind
    assert model.model_sampling.prediction_type == prediction
    assert model.latent_channels == 4 and model.vae_scale_factor == 2
    assert model.judge is None and model.device == torch.device("cpu") and model.dtype == torch.float32


def test_none_and_world_are_the_embedded_world():
    assert isinstance(load_model(), World) and isinstance(load_model("world"), World)
    assert load_model().fingerprint() == ModelSource().fingerprint()


def test_sd_prompts_are_the_pipelines_own_embeddings(sd15):
    cond, uncond = sd15.encode_prompt("red dots")
    expected, expected_uncond = sd15.pipeline.encode_prompt("red dots", "cpu", 1, True)
    assert cond.hidden.shape == (1, 77, 32) and cond.text_embeds is None
    torch.testing.assert_close(cond.hidden, expected)
    torch.testing.assert_close(uncond.hidden, expected_uncond)
    assert not torch.equal(cond.hidden, uncond.hidden)


def test_sdxl_prompts_carry_pooled_embeddings_and_empty_negatives_are_zeros(sdxl):
    cond, uncond = sdxl.encode_prompt(["red dots", "blue"], "")
    assert cond.hidden.shape == (2, 77, 64) and cond.text_embeds.shape == (2, 32)
    assert torch.count_nonzero(uncond.hidden) == 0 and torch.count_nonzero(uncond.text_embeds) == 0


def test_sdxl_unet_receives_pooled_text_and_size_time_ids(sdxl):
    seen = {}
    hook = sdxl.unet.register_forward_hook(lambda m, a, kw, out: seen.update(kw["added_cond_kwargs"]), with_kwargs=True)
    try:
        sdxl.denoiser("red dots", cfg=4.0)(torch.randn(1, 4, 12, 20), torch.tensor([2.0]))
    finally:
        hook.remove()
    assert seen["text_embeds"].shape == (2, 32)
    assert seen["time_ids"].tolist() == [[24, 40, 0, 0, 24, 40]] * 2  # (H, W, crop 0 0, H, W) in pixels, cond and uncond


def test_zero_snr_top_sigma_is_finite_like_upstream(sd_models):
    ms = load_model(sd_models.sd2v_zero_snr).model_sampling
    assert ms.sigma_max == pytest.approx(((1 - 4.8973451890853435e-08) / 4.8973451890853435e-08) ** 0.5, rel=1e-5)
    assert ms.sigma_min == pytest.approx(ModelSampling().sigma_min, rel=1e-6)  # the rescale keeps the first step


def test_model_sampling_is_the_schedulers_own(sd_models):
    from diffusers import DDPMScheduler

    config = json.loads((sd_models.sd2v_zero_snr / "scheduler" / "scheduler_config.json").read_text())
    acp = DDPMScheduler.from_config(config).alphas_cumprod.double()
    expected = ((1 - acp[:-1]) / acp[:-1]).sqrt()
    torch.testing.assert_close(ModelSampling.from_config(config).sigmas[:-1].double(), expected, rtol=1e-4, atol=0)


def test_trained_betas_replace_the_named_schedule():
    betas = torch.linspace(1e-4, 2e-2, 1000).tolist()
    ms = ModelSampling.from_config({"trained_betas": betas, "beta_schedule": "scaled_linear"})
    acp = torch.cumprod(1 - torch.tensor(betas, dtype=torch.float64), 0)
    assert ms.sigma_max == pytest.approx(float(((1 - acp[-1]) / acp[-1]).sqrt()), rel=1e-6)
    assert ms != ModelSampling()


@pytest.mark.parametrize("name, atol", [("sd15", 1e-4), ("sd2v", 1e-4), ("sdxl", 1e-4)])
def test_euler_matches_diffusers_own_euler_loop(sd_models, name, atol):
    model = load_model(getattr(sd_models, name))
    pipe = model.pipeline
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    noise = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    expected = pipe("red dots", height=32, width=32, num_inference_steps=4, guidance_scale=5.0, latents=noise,
                    output_type="latent").images
    pipe.scheduler.set_timesteps(4)
    sigmas = pipe.scheduler.sigmas.float()
    ours = sample(model.denoiser("red dots", cfg=5.0), noise * pipe.scheduler.init_noise_sigma, sigmas, "euler")
    torch.testing.assert_close(ours, expected, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_runs_the_unet_in_dtype_and_samples_in_float32(sd_models, dtype):
    model = load_model(sd_models.sd15, dtype=dtype)
    reference = load_model(sd_models.sd15)
    assert model.unet.dtype == getattr(torch, dtype)
    x = KSampler(model.denoiser("red dots", cfg=3.0), "euler", "karras").sample(torch.zeros(1, 4, 16, 16), 0, 3)
    ref = KSampler(reference.denoiser("red dots", cfg=3.0), "euler", "karras").sample(torch.zeros(1, 4, 16, 16), 0, 3)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    assert (x - ref).abs().max() < 0.1 * ref.abs().max()  # half precision, same trajectory
    images = model.decode(x)
    assert images.dtype == torch.float32 and images.shape == (1, 3, 32, 32)


def test_float16_decodes_in_float32_where_the_vae_config_says_so(sd_models):
    assert load_model(sd_models.sdxl, dtype="float16").vae.dtype == torch.float32  # force_upcast: true
    assert load_model(sd_models.sd15, dtype="float16").vae.dtype == torch.float16  # force_upcast: false


def test_codec_applies_scaling_and_shift_factors(sd15):
    images = torch.rand(2, 3, 16, 24)
    latents = sd15.encode(images)
    raw = sd15.vae.encode(images * 2 - 1).latent_dist.mode()
    torch.testing.assert_close(latents, raw * 0.5)  # the fixture's scaling_factor
    sd15.vae.register_to_config(shift_factor=0.25)
    try:
        torch.testing.assert_close(sd15.encode(images), (raw - 0.25) * 0.5)
        decoded = sd15.decode(latents)
        expected = ((sd15.vae.decode(latents / 0.5 + 0.25).sample + 1) / 2).clamp(0, 1)
        torch.testing.assert_close(decoded, expected)
    finally:
        sd15.vae.register_to_config(shift_factor=None)


def test_single_file_checkpoint_loads_the_same_weights(sd_models, sd15):
    single = load_model(sd_models.sd15_checkpoint, config=sd_models.sd15)
    assert single.kind == "sd1"
    for name in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(single.pipeline, name).state_dict(), getattr(sd15.pipeline, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k].reshape(theirs[k].shape), theirs[k]) for k in theirs)


def test_compile_flag_wraps_the_unet_forward_in_torch_compile(sd_models):
    assert load_model(sd_models.sd15, compile=True).unet._compiled_call_impl is not None
    assert load_model(sd_models.sd15).unet._compiled_call_impl is None


def test_single_file_without_config_asks_for_config(sd_models):
    with pytest.raises(ValueError, match="needs config="):
        load_model(sd_models.sd15_checkpoint)


def test_fingerprint_changes_when_the_weights_change(sd_models, tmp_path):
    folder = tmp_path / "sd15"
    shutil.copytree(sd_models.sd15, folder)
    before = ModelSource(str(folder)).fingerprint()
    assert load_model(folder).fingerprint() == before
    model = load_model(folder)
    with torch.no_grad():
        model.unet.conv_out.bias.add_(0.1)
    model.unet.save_pretrained(folder / "unet")
    assert ModelSource(str(folder)).fingerprint() != before


def test_errors_name_the_missing_or_broken_file(sd_models, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_model(tmp_path / "absent")
    folder = tmp_path / "sd15"
    shutil.copytree(sd_models.sd15, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"unet/diffusion_pytorch_model.safetensors.*truncated"):
        load_model(folder)
    weights.unlink()
    with pytest.raises(ValueError, match=r"unet.*has no weights file"):
        load_model(folder)
    other = tmp_path / "no_tokenizer"
    shutil.copytree(sd_models.sd15, other)
    for name in ("vocab.json", "tokenizer.json"):
        (other / "tokenizer" / name).unlink()
    with pytest.raises(ValueError, match=r"missing the tokenizer files in .*tokenizer'.*tokenizer.json, vocab.json and merges.txt, or spiece.model"):
        ModelSource(str(other)).check()


def test_a_folder_whose_tokenizers_are_tokenizer_json_only_loads(sd_models, sd15, tmp_path):
    """transformers 5's `save_pretrained` writes a CLIP tokenizer as tokenizer.json alone; diffusers loads it."""
    folder = tmp_path / "fast_tokenizer"
    shutil.copytree(sd_models.sd15, folder)
    for name in ("vocab.json", "merges.txt"):
        (folder / "tokenizer" / name).unlink()
    loaded = load_model(folder)
    assert loaded.encode_prompt("red dots")[0].hidden.shape == sd15.encode_prompt("red dots")[0].hidden.shape
    torch.testing.assert_close(loaded.encode_prompt("red dots")[0].hidden, sd15.encode_prompt("red dots")[0].hidden)


def test_sharded_weights_load_and_a_missing_shard_is_named(sd_models, sd15, tmp_path):
    folder = tmp_path / "sharded"
    shutil.copytree(sd_models.sd15, folder)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    sd15.unet.save_pretrained(folder / "unet", max_shard_size="100KB")
    shards = sorted((folder / "unet").glob("diffusion_pytorch_model-*.safetensors"))
    assert len(shards) > 1
    loaded = load_model(folder)
    torch.testing.assert_close(loaded.unet.conv_in.weight, sd15.unet.conv_in.weight)
    assert ModelSource(str(folder)).fingerprint() == loaded.fingerprint()
    shards[-1].unlink()
    with pytest.raises(ValueError, match=f"lists missing shards: {shards[-1].name}"):
        load_model(folder)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu"])
def test_unknown_devices_are_rejected_before_loading(sd_models, device):
    with pytest.raises(ValueError, match=r"device must be one of cpu, cuda, cuda:N \(N a GPU index\), mps"):
        load_model(sd_models.sd15, device=device)


def test_unknown_dtypes_are_rejected(sd_models):
    with pytest.raises(ValueError, match=r"dtype must be one of float32 \| float16 \| bfloat16"):
        load_model(sd_models.sd15, dtype="float64")
    with pytest.raises(ValueError, match="dtype must be one of"):
        ModelSource(str(sd_models.sd15), dtype="int8").check()


def test_model_source_loads_what_it_fingerprints(sd_models):
    source = ModelSource(str(sd_models.sd15_checkpoint), config=str(sd_models.sd15))
    source.check()
    model = source.load("cpu")
    assert model.fingerprint() == source.fingerprint()
    assert ModelSource(random_seed=3).load("cpu").fingerprint() == ModelSource(random_seed=3).fingerprint() == "random-3"


def test_sdxl_cond_is_a_conditioning(sdxl):
    den = sdxl.denoiser("red dots", "blue", cfg=2.0)
    assert isinstance(den.cond, Conditioning) and den.cond.text_embeds is not None
    x0, x0_uncond = den.with_uncond(torch.randn(1, 4, 8, 8), torch.tensor([1.0]))
    assert x0.shape == x0_uncond.shape == (1, 4, 8, 8) and not torch.equal(x0, x0_uncond)
