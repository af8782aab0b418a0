"""Tiny random-weight Stable Diffusion folders of the real architectures (SD 1.5, SD 2 v-prediction and its
zero-SNR scheduler, SDXL base) with hand-written tiny CLIP tokenizer files, saved as diffusers folders once per
test run, plus a single-file checkpoint of the SD 1.5 one. Nothing is downloaded.

tests/conftest.py imports the `sd_models` fixture from here, so any test can ask for it; the folders are built at
most once per test run, on first use, and shared by the run's xdist workers (the first builds them under a lock).
Tests treat them as read-only (a test that changes a folder copies it first).
"""

from __future__ import annotations

import json
import shutil
import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fixture_cache import built_once, shared_base

if TYPE_CHECKING:  # torch is imported where used: conftest imports this module (see helpers.py)
    import torch

TEXT_WIDTH = 32
MAX_TOKENS = 77


@dataclass(frozen=True)
class SDModels:
    """Paths of the built folders and checkpoint."""

    sd15: Path
    sd2v: Path
    sd2v_zero_snr: Path
    sdxl: Path
    sd15_checkpoint: Path


def write_tokenizer(folder: Path, pad_token: str = "<|endoftext|>") -> int:
    """A CLIP BPE tokenizer over single characters (every letter, digit and '!' alone and word-final) and a few
    merges; returns the vocabulary size. The special tokens come last, as in CLIP's own vocabulary."""
    from transformers import CLIPTokenizer

    chars = list(string.ascii_lowercase + string.digits + "!")
    merges = [("r", "e"), ("re", "d</w>"), ("d", "o"), ("do", "t"), ("dot", "s</w>")]
    tokens = chars + [c + "</w>" for c in chars] + [a + b for a, b in merges] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    merges_file.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    tokenizer = CLIPTokenizer(str(vocab_file), str(merges_file), pad_token=pad_token, model_max_length=MAX_TOKENS)
    tokenizer.save_pretrained(folder)
    return len(tokens)


def text_encoder(vocab: int, hidden_act: str, projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab, hidden_size=TEXT_WIDTH, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS, hidden_act=hidden_act, projection_dim=TEXT_WIDTH,
        bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()


def tiny_vae(force_upcast: bool):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1, latent_channels=4,
        norm_num_groups=4, sample_size=32, scaling_factor=0.5, force_upcast=force_upcast,
    ).eval()


def tiny_unet(cross_attention_dim: int, **kwargs):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim, norm_num_groups=4, **kwargs,
    ).eval()


SD_SCHEDULE = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "steps_offset": 1}


def build_sd15(folder: Path) -> None:
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    import torch

    torch.manual_seed(15)
    vocab = write_tokenizer(folder / "tokenizer")
    pipe = StableDiffusionPipeline(
        vae=tiny_vae(False), text_encoder=text_encoder(vocab, "quick_gelu"),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"), unet=tiny_unet(TEXT_WIDTH, attention_head_dim=2),
        scheduler=PNDMScheduler(skip_prk_steps=True, set_alpha_to_one=False, **SD_SCHEDULE),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)


def build_sd2v(folder: Path) -> None:
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    import torch

    torch.manual_seed(2)
    vocab = write_tokenizer(folder / "tokenizer", pad_token="!")
    pipe = StableDiffusionPipeline(
        vae=tiny_vae(False), text_encoder=text_encoder(vocab, "gelu"),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        unet=tiny_unet(TEXT_WIDTH, attention_head_dim=(2, 4), use_linear_projection=True),
        scheduler=EulerDiscreteScheduler(prediction_type="v_prediction", **SD_SCHEDULE),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)


def build_zero_snr(source: Path, folder: Path) -> None:
    """The SD 2 v folder with a zero-terminal-SNR scheduler (trailing timesteps), as v-prediction fine-tunes ship."""
    shutil.copytree(source, folder)
    config_file = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_file.read_text())
    config.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
    config_file.write_text(json.dumps(config))


def build_sdxl(folder: Path) -> None:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTokenizer

    import torch

    torch.manual_seed(10)
    vocab = write_tokenizer(folder / "tokenizer")
    write_tokenizer(folder / "tokenizer_2", pad_token="!")
    time_dim = 8
    pipe = StableDiffusionXLPipeline(
        vae=tiny_vae(True), text_encoder=text_encoder(vocab, "quick_gelu"),
        text_encoder_2=text_encoder(vocab, "gelu", projection=True),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2"),
        unet=tiny_unet(2 * TEXT_WIDTH, attention_head_dim=(2, 4), use_linear_projection=True,
                       addition_embed_type="text_time", addition_time_embed_dim=time_dim,
                       projection_class_embeddings_input_dim=TEXT_WIDTH + 6 * time_dim),
        scheduler=EulerDiscreteScheduler(timestep_spacing="leading", **SD_SCHEDULE),
    )
    pipe.save_pretrained(folder)


def _resnet_keys(ldm: str, ours: str, unet: bool) -> dict[str, str]:
    """LDM names of one ResNet block's layers (original Stable Diffusion checkpoints) -> diffusers names."""
    pairs = (
        [("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("emb_layers.1", "time_emb_proj"),
         ("out_layers.0", "norm2"), ("out_layers.3", "conv2"), ("skip_connection", "conv_shortcut")]
        if unet else
        [("norm1", "norm1"), ("conv1", "conv1"), ("norm2", "norm2"), ("conv2", "conv2"), ("nin_shortcut", "conv_shortcut")]
    )
    return {f"{ldm}.{a}": f"{ours}.{b}" for a, b in pairs}


def unet_ldm_names(config: dict) -> dict[str, str]:
    """Module-name map, LDM UNet (`model.diffusion_model.`) -> diffusers UNet2DConditionModel, for SD 1.x layouts."""
    per = config["layers_per_block"]
    levels = len(config["block_out_channels"])
    names = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
             "input_blocks.0.0": "conv_in", "out.0": "conv_norm_out", "out.2": "conv_out",
             "middle_block.1": "mid_block.attentions.0"}
    names.update(_resnet_keys("middle_block.0", "mid_block.resnets.0", True))
    names.update(_resnet_keys("middle_block.2", "mid_block.resnets.1", True))
    for i, kind in enumerate(config["down_block_types"]):
        for j in range(per):
            block = 1 + i * (per + 1) + j
            names.update(_resnet_keys(f"input_blocks.{block}.0", f"down_blocks.{i}.resnets.{j}", True))
            if kind.startswith("CrossAttn"):
                names[f"input_blocks.{block}.1"] = f"down_blocks.{i}.attentions.{j}"
        if i < levels - 1:
            names[f"input_blocks.{(i + 1) * (per + 1)}.0.op"] = f"down_blocks.{i}.downsamplers.0.conv"
    for i, kind in enumerate(config["up_block_types"]):
        attention = kind.startswith("CrossAttn")
        for j in range(per + 1):
            block = i * (per + 1) + j
            names.update(_resnet_keys(f"output_blocks.{block}.0", f"up_blocks.{i}.resnets.{j}", True))
            if attention:
                names[f"output_blocks.{block}.1"] = f"up_blocks.{i}.attentions.{j}"
        if i < levels - 1:
            names[f"output_blocks.{i * (per + 1) + per}.{2 if attention else 1}.conv"] = f"up_blocks.{i}.upsamplers.0.conv"
    return names


def vae_ldm_names(config: dict) -> dict[str, str]:
    """Module-name map, LDM autoencoder (`first_stage_model.`) -> diffusers AutoencoderKL."""
    per = config["layers_per_block"]
    levels = len(config["block_out_channels"])
    names = {"quant_conv": "quant_conv", "post_quant_conv": "post_quant_conv"}
    for part in ("encoder", "decoder"):
        names.update({f"{part}.conv_in": f"{part}.conv_in", f"{part}.norm_out": f"{part}.conv_norm_out",
                      f"{part}.conv_out": f"{part}.conv_out"})
        names.update(_resnet_keys(f"{part}.mid.block_1", f"{part}.mid_block.resnets.0", False))
        names.update(_resnet_keys(f"{part}.mid.block_2", f"{part}.mid_block.resnets.1", False))
        for a, b in (("norm", "group_norm"), ("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("proj_out", "to_out.0")):
            names[f"{part}.mid.attn_1.{a}"] = f"{part}.mid_block.attentions.0.{b}"
    for i in range(levels):
        for j in range(per):
            names.update(_resnet_keys(f"encoder.down.{i}.block.{j}", f"encoder.down_blocks.{i}.resnets.{j}", False))
        if i < levels - 1:
            names[f"encoder.down.{i}.downsample.conv"] = f"encoder.down_blocks.{i}.downsamplers.0.conv"
        for j in range(per + 1):
            names.update(_resnet_keys(f"decoder.up.{levels - 1 - i}.block.{j}", f"decoder.up_blocks.{i}.resnets.{j}", False))
        if i < levels - 1:
            names[f"decoder.up.{levels - 1 - i}.upsample.conv"] = f"decoder.up_blocks.{i}.upsamplers.0.conv"
    return names


def to_ldm(state: dict[str, torch.Tensor], names: dict[str, str], prefix: str) -> dict[str, torch.Tensor]:
    """Rename a diffusers state dict by the longest matching module name; the VAE's attention projections become
    the 1x1 convolutions of the original checkpoints."""
    inverse = sorted(((ours, ldm) for ldm, ours in names.items()), key=lambda pair: -len(pair[0]))
    out = {}
    for key, value in state.items():
        ours, ldm = next((o, l) for o, l in inverse if key.startswith(o + "."))
        new = ldm + key[len(ours):]
        if ".mid.attn_1." in new and new.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]
        out[prefix + new] = value.contiguous()
    return out


def save_ldm_checkpoint(folder: Path, path: Path) -> None:
    """The SD 1.x folder as one original-layout `.safetensors` checkpoint (what users download as a single file)."""
    from safetensors.torch import load_file, save_file

    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    checkpoint = {}
    checkpoint.update(to_ldm(load_file(folder / "unet" / "diffusion_pytorch_model.safetensors"),
                             unet_ldm_names(unet_config), "model.diffusion_model."))
    checkpoint.update(to_ldm(load_file(folder / "vae" / "diffusion_pytorch_model.safetensors"),
                             vae_ldm_names(vae_config), "first_stage_model."))
    text = load_file(folder / "text_encoder" / "model.safetensors")
    checkpoint.update({"cond_stage_model.transformer." + (k if k.startswith("text_model.") else f"text_model.{k}"): v
                       for k, v in text.items()})
    save_file(checkpoint, path)


def models_in(root: Path) -> SDModels:
    return SDModels(root / "sd15", root / "sd2v", root / "sd2v_zero_snr", root / "sdxl", root / "sd15.safetensors")


def build_all(root: Path) -> SDModels:
    root.mkdir(parents=True, exist_ok=True)
    models = models_in(root)
    build_sd15(models.sd15)
    build_sd2v(models.sd2v)
    build_zero_snr(models.sd2v, models.sd2v_zero_snr)
    build_sdxl(models.sdxl)
    save_ldm_checkpoint(models.sd15, models.sd15_checkpoint)
    return models


@pytest.fixture(scope="session")
def sd_models(tmp_path_factory) -> SDModels:
    """The tiny Stable Diffusion folders, built once per test run: under pytest-xdist in the run's shared base
    folder (the parent of each worker's), so one worker builds them and the others read them."""
    return built_once(shared_base(tmp_path_factory), "sd_models", build_all, models_in)
