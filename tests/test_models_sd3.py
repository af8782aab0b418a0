"""Stable Diffusion 3 as a model family, on a tiny random-weight SD3 folder of the real architecture and its
original-layout single file (tests/sd3_fixtures.py): detection, prompts through the pipeline's own encode_prompt,
our KSampler against diffusers' own StableDiffusion3Pipeline, single files, dtypes and refused folders."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from dualsampler.models import load_model, sd3
from dualsampler.models.detect import inspect_folder
from dualsampler.models.interface import Model
from dualsampler.sampling import FlowModelSampling, JointDenoiser, KSampler, ModelDenoiser
from dualsampler.sampling.unet_denoiser import shares_one_forward
from sd3_fixtures import CLIP_G_WIDTH, CLIP_L_WIDTH, SCALING_FACTOR, SHIFT_FACTOR
from t5_fixtures import T5_WIDTH

CPU = torch.device("cpu")


def load(folder, dtype=torch.float32):
    return sd3.load_folder(inspect_folder(folder), dtype, CPU)


@pytest.fixture(scope="module")
def model(sd3_model):
    return load(sd3_model.folder)


def test_folder_is_an_sd3_model(sd3_model, model):
    info = inspect_folder(sd3_model.folder)
    assert info.kind == "sd3" and info.scheduler_config["shift"] == 3.0
    assert isinstance(model, Model) and model.kind == "sd3"
    assert model.latent_channels == 16 and model.vae_scale_factor == 2
    assert model.canvas_multiple == 4  # VAE factor 2 times the transformer's 2x2 patches
    assert model.model_sampling == FlowModelSampling(shift=3.0)
    assert model.judge is None and model.upscaler is None
    assert model.device == CPU and model.dtype == torch.float32


def test_load_model_detects_the_sd3_folder_and_single_file(sd3_model, model):
    loaded = load_model(sd3_model.folder)
    assert isinstance(loaded, sd3.StableDiffusion3) and loaded.fingerprint() == model.fingerprint()
    single = load_model(sd3_model.checkpoint, config=sd3_model.folder, dtype="bfloat16")
    assert isinstance(single, sd3.StableDiffusion3) and single.dtype == torch.bfloat16


def test_tokenizers_saved_by_transformers_5_load(sd3_model, model):
    tokenizer = sd3_model.folder / "tokenizer"
    assert (tokenizer / "tokenizer.json").is_file() and not (tokenizer / "vocab.json").exists()
    clip = model.pipeline.tokenizer
    words = clip.convert_tokens_to_ids(["red</w>", "dots</w>"])  # merged by the BPE merges of tokenizer.json
    assert clip("red dots").input_ids == [clip.bos_token_id, *words, clip.eos_token_id]


def test_prompts_are_the_pipelines_own_embeddings(model):
    cond, uncond = model.encode_prompt(["red dots", "blue stripes"], "green")
    hidden, negative, pooled, negative_pooled = model.pipeline.encode_prompt(
        prompt=["red dots", "blue stripes"], prompt_2=None, prompt_3=None, device=CPU,
        do_classifier_free_guidance=True, negative_prompt="green")
    # CLIP-L and CLIP-G states side by side, zero-padded to T5's width, then T5's 256 tokens; both pooled outputs
    assert cond.hidden.shape == (2, 77 + 256, T5_WIDTH) and cond.text_embeds.shape == (2, CLIP_L_WIDTH + CLIP_G_WIDTH)
    torch.testing.assert_close(cond.hidden, hidden, rtol=0, atol=0)
    torch.testing.assert_close(cond.text_embeds, pooled, rtol=0, atol=0)
    torch.testing.assert_close(uncond.hidden, negative, rtol=0, atol=0)
    torch.testing.assert_close(uncond.text_embeds, negative_pooled, rtol=0, atol=0)
    assert cond.time_ids is None and cond.guidance is None
    assert torch.count_nonzero(cond.hidden[:, :77, CLIP_L_WIDTH + CLIP_G_WIDTH:]) == 0
    tokens = model.pipeline.tokenizer_3(["red dots", "blue stripes"], padding="max_length", max_length=256,
                                        return_tensors="pt").input_ids
    torch.testing.assert_close(cond.hidden[:, 77:], model.pipeline.text_encoder_3(tokens)[0])


def test_empty_negative_prompt_is_the_pipelines_default(model):
    _, uncond = model.encode_prompt("red dots")
    _, negative, _, negative_pooled = model.pipeline.encode_prompt(
        prompt="red dots", prompt_2=None, prompt_3=None, device=CPU, do_classifier_free_guidance=True)
    torch.testing.assert_close(uncond.hidden, negative, rtol=0, atol=0)
    torch.testing.assert_close(uncond.text_embeds, negative_pooled, rtol=0, atol=0)


@pytest.mark.parametrize("cfg", [1.0, 4.5])
def test_euler_matches_the_diffusers_sd3_pipeline(model, cfg):
    """The `normal` schedule of SD3's model sampling is the pipeline's FlowMatchEulerDiscreteScheduler sigmas, and
    our Euler over them is the pipeline's loop, from the same noise."""
    steps, seed = 5, 7
    noise = torch.randn(1, 16, 8, 12, generator=torch.Generator().manual_seed(seed))
    expected = model.pipeline("red dots", negative_prompt="blue", height=16, width=24, num_inference_steps=steps,
                              guidance_scale=cfg, latents=noise.clone(), output_type="latent").images
    sampler = KSampler(model.denoiser("red dots", "blue", cfg=cfg), "euler", "normal")
    torch.testing.assert_close(sampler.sigmas(steps), model.pipeline.scheduler.sigmas, rtol=1e-6, atol=1e-6)
    ours = sampler.sample(torch.zeros(1, 16, 8, 12), seed, steps)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


def test_transformer_sees_timestep_1000_sigma_and_one_batched_forward(model):
    calls = []
    hook = model.transformer.register_forward_hook(
        lambda module, args, kwargs, out: calls.append(kwargs), with_kwargs=True)
    try:
        x0 = model.denoiser("red dots", cfg=3.0)(torch.randn(2, 16, 4, 4), torch.tensor([0.25, 0.5]))
    finally:
        hook.remove()
    assert len(calls) == 1 and x0.shape == (2, 16, 4, 4) and x0.dtype == torch.float32
    assert calls[0]["timestep"].tolist() == [250.0, 500.0, 250.0, 500.0]  # cond rows, then uncond rows
    assert calls[0]["pooled_projections"].shape == (4, 28) and calls[0]["encoder_hidden_states"].shape == (4, 333, 32)


def test_prompts_of_one_transformer_share_one_forward(model):
    first, second = model.denoiser("red dots", cfg=3.0), model.denoiser("blue stripes", cfg=3.0)
    assert first.backbone.key == second.backbone.key and shares_one_forward([first, second])
    x, sigma = torch.randn(1, 16, 4, 4), torch.tensor([0.4])
    together = JointDenoiser([first, second])(x, sigma)
    torch.testing.assert_close(together[0], first(x, sigma), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(together[1], second(x, sigma), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def transformer_lora(sd3_model, tmp_path_factory):
    """A random rank-2 LoRA on the transformer's attention projections, saved in diffusers' SD3 LoRA format."""
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    torch.manual_seed(1)
    targets = ["to_q", "to_k", "to_v", "to_out.0"]
    config = LoraConfig(r=2, lora_alpha=4, init_lora_weights=False, target_modules=targets)
    transformer = SD3Transformer2DModel.from_pretrained(sd3_model.folder / "transformer", local_files_only=True)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(inject_adapter_in_model(config, transformer)))
    folder = tmp_path_factory.mktemp("sd3_lora")
    StableDiffusion3Pipeline.save_lora_weights(folder, weight_name="lora.safetensors", transformer_lora_layers=layers,
                                               transformer_lora_adapter_metadata={"r": 2, "lora_alpha": 4,
                                                                                  "target_modules": targets})
    return folder / "lora.safetensors"


def test_a_lora_changes_only_its_own_denoisers_forwards(sd3_model, transformer_lora):
    model = load(sd3_model.folder)  # its own copy: the LoRA is loaded into the pipeline
    plain = model.denoiser("red dots", cfg=3.0)
    with_lora = model.denoiser("red dots", cfg=3.0, loras=[{"path": str(transformer_lora), "scale": 0.8}])
    off = model.denoiser("red dots", cfg=3.0, loras=[{"path": str(transformer_lora), "scale": 0.0}])
    assert plain.backbone.key != with_lora.backbone.key and not shares_one_forward([plain, with_lora])
    x, sigma = torch.randn(1, 16, 4, 4), torch.tensor([0.5])
    before = plain(x, sigma)
    assert (with_lora(x, sigma) - before).abs().max() > 1e-3
    torch.testing.assert_close(off(x, sigma), before, rtol=0, atol=0)
    torch.testing.assert_close(plain(x, sigma), before, rtol=0, atol=0)  # its adapter set (none) active again
    with pytest.raises(ValueError, match="loras"):
        model.denoiser("red dots", loras="lora.safetensors")


def test_denoiser_is_x_minus_sigma_times_the_velocity(model):
    denoiser = model.denoiser("red dots", cfg=1.0)
    assert isinstance(denoiser, ModelDenoiser) and isinstance(denoiser.backbone, sd3.SD3Backbone)
    x, sigma = torch.randn(1, 16, 4, 4), torch.tensor([0.6])
    velocity = model.transformer(hidden_states=x, timestep=sigma * 1000, encoder_hidden_states=denoiser.cond.hidden,
                                 pooled_projections=denoiser.cond.text_embeds).sample
    torch.testing.assert_close(denoiser(x, sigma), x - 0.6 * velocity)


def test_whole_pipeline_single_file_gives_the_folders_denoiser(sd3_model, model):
    info = inspect_folder(sd3_model.folder, require_weights=False)
    single = sd3.load_single_file(sd3_model.checkpoint, info, torch.float32, CPU)
    x, sigma = torch.randn(1, 16, 4, 4, generator=torch.Generator().manual_seed(1)), torch.tensor([0.7])
    torch.testing.assert_close(single.denoiser("red dots", "blue", cfg=3.0)(x, sigma),
                               model.denoiser("red dots", "blue", cfg=3.0)(x, sigma), rtol=1e-5, atol=1e-5)
    assert single.model_sampling == model.model_sampling
    assert single.fingerprint() != model.fingerprint() and single.files["checkpoint"] == sd3_model.checkpoint


def test_transformer_only_file_takes_the_other_weights_from_the_config_folder(sd3_model, model, tmp_path):
    transformer = tmp_path / "sd3_transformer.safetensors"
    save_file({k: v for k, v in load_file(sd3_model.checkpoint).items() if k.startswith("model.diffusion_model.")},
              transformer)
    single = sd3.load_single_file(transformer, inspect_folder(sd3_model.folder, require_weights=False),
                                  torch.float32, CPU)
    x, sigma = torch.randn(1, 16, 4, 4), torch.tensor([0.3])
    torch.testing.assert_close(single.denoiser("red dots")(x, sigma), model.denoiser("red dots")(x, sigma),
                               rtol=1e-5, atol=1e-5)
    assert "text_encoder_3/model.safetensors" in single.files and single.files["checkpoint"] == transformer


def test_single_file_without_a_component_anywhere_is_refused(sd3_model, tmp_path):
    config = tmp_path / "config"
    shutil.copytree(sd3_model.folder, config)
    (config / "text_encoder_3" / "model.safetensors").unlink()
    transformer = tmp_path / "sd3_transformer.safetensors"
    save_file({k: v for k, v in load_file(sd3_model.checkpoint).items() if k.startswith("model.diffusion_model.")},
              transformer)
    refusal = "sd3_transformer.safetensors' has no text_encoder_3 .*text_encoder_3' has no weights file"
    with pytest.raises(ValueError, match=refusal):
        sd3.load_single_file(transformer, inspect_folder(config, require_weights=False), torch.float32, CPU)


def test_file_without_an_sd3_transformer_is_refused(sd3_model, tmp_path):
    vae = tmp_path / "vae.safetensors"
    save_file({k: v for k, v in load_file(sd3_model.checkpoint).items() if k.startswith("first_stage_model.")}, vae)
    with pytest.raises(ValueError, match="vae.safetensors' holds no SD3 transformer"):
        sd3.load_single_file(vae, inspect_folder(sd3_model.folder, require_weights=False), torch.float32, CPU)


def test_folder_without_model_index_loads_its_components(sd3_model, model, tmp_path):
    folder = tmp_path / "no_index"
    shutil.copytree(sd3_model.folder, folder)
    (folder / "model_index.json").unlink()
    info = inspect_folder(folder)
    assert info.kind == "sd3"
    loaded = sd3.load_folder(info, torch.float32, CPU)
    x, sigma = torch.randn(1, 16, 4, 4), torch.tensor([0.5])
    torch.testing.assert_close(loaded.denoiser("red dots", cfg=2.0)(x, sigma),
                               model.denoiser("red dots", cfg=2.0)(x, sigma), rtol=0, atol=0)


def test_model_sampling_is_the_scheduler_configs_shift(sd3_model, tmp_path):
    folder = tmp_path / "shift"
    shutil.copytree(sd3_model.folder, folder)
    config_file = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "shift": 1.5}))
    assert load(folder).model_sampling == FlowModelSampling(shift=1.5)
    config_file.write_text(json.dumps({**config, "use_dynamic_shifting": True}))
    with pytest.raises(ValueError, match="use_dynamic_shifting must be false"):
        load(folder)


def test_bfloat16_runs_the_transformer_in_bfloat16_and_samples_finite_float32(sd3_model, model):
    half = load(sd3_model.folder, torch.bfloat16)
    assert half.dtype == torch.bfloat16 and half.pipeline.text_encoder_3.dtype == torch.bfloat16
    x = KSampler(half.denoiser("red dots", cfg=3.0), "euler", "normal").sample(torch.zeros(1, 16, 4, 4), 0, 3)
    ref = KSampler(model.denoiser("red dots", cfg=3.0), "euler", "normal").sample(torch.zeros(1, 16, 4, 4), 0, 3)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    assert (x - ref).abs().max() < 0.1 * ref.abs().max()  # half precision, same trajectory
    images = half.decode(x)
    assert images.dtype == torch.float32 and images.shape == (1, 3, 8, 8)


def test_float16_keeps_the_vae_in_float32_as_its_config_says(sd3_model):
    half = load(sd3_model.folder, torch.float16)
    assert half.transformer.dtype == torch.float16 and half.vae.dtype == torch.float32  # force_upcast: true


def test_codec_applies_sd3s_scaling_and_shift(model):
    images = torch.rand(1, 3, 8, 12)
    raw = model.vae.encode(images * 2 - 1).latent_dist.mode()
    latents = model.encode(images)
    torch.testing.assert_close(latents, (raw - SHIFT_FACTOR) * SCALING_FACTOR)
    expected = ((model.vae.decode(latents / SCALING_FACTOR + SHIFT_FACTOR).sample + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(model.decode(latents), expected)


@pytest.mark.parametrize("component, file", [
    ("transformer", "diffusion_pytorch_model.safetensors"), ("text_encoder_3", "model.safetensors"),
    ("tokenizer_3", "tokenizer.json"),
])
def test_broken_or_missing_component_is_refused_naming_the_file(sd3_model, tmp_path, component, file):
    folder = tmp_path / "broken"
    shutil.copytree(sd3_model.folder, folder)
    path = folder / component / file
    if file.endswith(".safetensors"):
        path.write_bytes(path.read_bytes()[:-100])
        match = f"{path}.*truncated"
    else:
        path.unlink()
        match = f"{folder / component}"
    with pytest.raises(ValueError, match=match):
        inspect_folder(folder)


def test_bad_arguments_are_refused_before_any_encoding(model):
    with pytest.raises(ValueError, match="cfg"):
        model.denoiser("red dots", cfg=float("nan"))
    with pytest.raises(ValueError, match="negative_prompt must be one string or 2 strings"):
        model.denoiser(["red dots", "blue"], ["green"])
    with pytest.raises(ValueError, match="prompt must be a string"):
        model.denoiser(3)
    with pytest.raises(ValueError, match="multiples of the transformer's patch size 2"):
        model.denoiser("red dots")(torch.randn(1, 16, 5, 4), torch.tensor([0.5]))


def test_a_folder_without_its_t5_encoder_loads_as_diffusers_does(sd3_model, tmp_path):
    folder = tmp_path / "sd3_no_t5"
    shutil.copytree(sd3_model.folder, folder)
    for name in ("text_encoder_3", "tokenizer_3"):
        shutil.rmtree(folder / name)
    index = json.loads((folder / "model_index.json").read_text())
    index.update(text_encoder_3=[None, None], tokenizer_3=[None, None])
    (folder / "model_index.json").write_text(json.dumps(index))
    model = load_model(folder)
    assert model.pipeline.text_encoder_3 is None
    cond, _ = model.encode_prompt("red dots")
    t5_part = cond.hidden[:, 77:]
    assert torch.count_nonzero(t5_part) == 0  # the pipeline's zeros stand in for T5's states
    out = KSampler(model.denoiser("red dots", cfg=1.0), "euler", "normal").sample(
        torch.zeros(1, 16, 8, 8), seed=0, steps=2)
    assert torch.isfinite(out).all()
