"""A tiny random-weight Stable Diffusion 3 folder of the real architecture (MMDiT transformer, 16-channel VAE with
SD3's scaling and shift factors, CLIP-L, CLIP-G and T5 text encoders with hand-written tiny tokenizers, a
FlowMatchEulerDiscreteScheduler with shift 3), saved with `StableDiffusion3Pipeline.save_pretrained` once per test
run, plus the same weights as one single-file checkpoint in the original SD3 layout (transformer, VAE and all three
text encoders, what `StableDiffusion3Pipeline.from_single_file(path, config=folder)` reads offline). Nothing is
downloaded.

tests/conftest.py imports the `sd3_model` fixture from here; the folder is built at most once per test run, on first
use, and shared by the run's xdist workers (the first builds it under a lock). Tests treat it as read-only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fixture_cache import built_once, shared_base
from sd_fixtures import MAX_TOKENS, to_ldm, vae_ldm_names, write_tokenizer
from t5_fixtures import T5_WIDTH, tiny_t5_encoder, write_t5_tokenizer

if TYPE_CHECKING:  # torch is imported where used: conftest imports this module (see helpers.py)
    import torch

# CLIP-L and CLIP-G must differ in width: diffusers' single-file loader tells them apart by it. Their hidden states,
# concatenated, are zero-padded to T5's width as in SD3 (768 + 1280 padded to 4096).
CLIP_L_WIDTH = 12
CLIP_G_WIDTH = 16
HEADS = 2
HEAD_DIM = 8
SHIFT = 3.0
SCALING_FACTOR = 1.5305  # SD3's VAE
SHIFT_FACTOR = 0.0609


@dataclass(frozen=True)
class SD3Model:
    """Paths of the built folder and of its single-file checkpoint."""

    folder: Path
    checkpoint: Path


def clip_encoder(vocab: int, width: int, hidden_act: str):
    """A random CLIPTextModelWithProjection of `width` (projection to the same width), eval mode."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab, hidden_size=width, intermediate_size=2 * width + 5, num_hidden_layers=2,
        num_attention_heads=HEADS, max_position_embeddings=MAX_TOKENS, hidden_act=hidden_act, projection_dim=width,
        bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
    )
    return CLIPTextModelWithProjection(config).eval()


def sd3_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1, latent_channels=16,
        norm_num_groups=4, sample_size=32, scaling_factor=SCALING_FACTOR, shift_factor=SHIFT_FACTOR,
        use_quant_conv=False, use_post_quant_conv=False, force_upcast=True,
    ).eval()


def sd3_transformer():
    from diffusers import SD3Transformer2DModel

    return SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=16, num_layers=2, attention_head_dim=HEAD_DIM,
        num_attention_heads=HEADS, joint_attention_dim=T5_WIDTH, caption_projection_dim=HEADS * HEAD_DIM,
        pooled_projection_dim=CLIP_L_WIDTH + CLIP_G_WIDTH, out_channels=16, pos_embed_max_size=32,
    ).eval()


def build_sd3(folder: Path, scratch: Path) -> None:
    """The pipeline saved to `folder`; its tokenizers are first written to `scratch`, so `folder` holds what
    `save_pretrained` writes (transformers 5: `tokenizer.json`, no vocab.json / merges.txt)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline
    from transformers import CLIPTokenizer, T5TokenizerFast

    torch.manual_seed(3)
    vocab = write_tokenizer(scratch / "tokenizer")
    write_tokenizer(scratch / "tokenizer_2", pad_token="!")
    t5_vocab = write_t5_tokenizer(scratch / "tokenizer_3")
    clip_l = clip_encoder(vocab, CLIP_L_WIDTH, "quick_gelu")
    with torch.no_grad():  # SD3's CLIP-L projection is the identity (diffusers' single-file loader sets it so)
        clip_l.text_projection.weight.copy_(torch.eye(CLIP_L_WIDTH))
    pipe = StableDiffusion3Pipeline(
        transformer=sd3_transformer(), scheduler=FlowMatchEulerDiscreteScheduler(shift=SHIFT), vae=sd3_vae(),
        text_encoder=clip_l, tokenizer=CLIPTokenizer.from_pretrained(scratch / "tokenizer"),
        text_encoder_2=clip_encoder(vocab, CLIP_G_WIDTH, "gelu"),
        tokenizer_2=CLIPTokenizer.from_pretrained(scratch / "tokenizer_2"),
        text_encoder_3=tiny_t5_encoder(t5_vocab), tokenizer_3=T5TokenizerFast.from_pretrained(scratch / "tokenizer_3"),
    )
    pipe.save_pretrained(folder)


def _swap_halves(weight: torch.Tensor) -> torch.Tensor:
    """diffusers' AdaLayerNormContinuous order (scale, shift) <-> the original SD3 order (shift, scale)."""
    import torch

    first, second = weight.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def transformer_sd3_names(state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """A diffusers SD3Transformer2DModel state dict in the original SD3 layout (no prefix): the inverse of
    diffusers' `convert_sd3_transformer_checkpoint_to_diffusers` for SD3 without qk norms or dual attention."""
    import torch

    s = dict(state)
    out = {
        "pos_embed": s.pop("pos_embed.pos_embed"),
        "x_embedder.proj.weight": s.pop("pos_embed.proj.weight"), "x_embedder.proj.bias": s.pop("pos_embed.proj.bias"),
        "context_embedder.weight": s.pop("context_embedder.weight"),
        "context_embedder.bias": s.pop("context_embedder.bias"),
        "final_layer.linear.weight": s.pop("proj_out.weight"), "final_layer.linear.bias": s.pop("proj_out.bias"),
        "final_layer.adaLN_modulation.1.weight": _swap_halves(s.pop("norm_out.linear.weight")),
        "final_layer.adaLN_modulation.1.bias": _swap_halves(s.pop("norm_out.linear.bias")),
    }
    for ours, theirs in (("timestep_embedder", "t_embedder"), ("text_embedder", "y_embedder")):
        for a, b in (("linear_1", "mlp.0"), ("linear_2", "mlp.2")):
            for p in ("weight", "bias"):
                out[f"{theirs}.{b}.{p}"] = s.pop(f"time_text_embed.{ours}.{a}.{p}")
    for i in range(num_layers):
        ours, theirs, last = f"transformer_blocks.{i}", f"joint_blocks.{i}", i == num_layers - 1
        for p in ("weight", "bias"):
            out[f"{theirs}.x_block.attn.qkv.{p}"] = torch.cat([s.pop(f"{ours}.attn.to_{n}.{p}") for n in "qkv"])
            out[f"{theirs}.context_block.attn.qkv.{p}"] = torch.cat(
                [s.pop(f"{ours}.attn.add_{n}_proj.{p}") for n in "qkv"])
            out[f"{theirs}.x_block.attn.proj.{p}"] = s.pop(f"{ours}.attn.to_out.0.{p}")
            out[f"{theirs}.x_block.adaLN_modulation.1.{p}"] = s.pop(f"{ours}.norm1.linear.{p}")
            context_norm = s.pop(f"{ours}.norm1_context.linear.{p}")
            out[f"{theirs}.context_block.adaLN_modulation.1.{p}"] = _swap_halves(context_norm) if last else context_norm
            out[f"{theirs}.x_block.mlp.fc1.{p}"] = s.pop(f"{ours}.ff.net.0.proj.{p}")
            out[f"{theirs}.x_block.mlp.fc2.{p}"] = s.pop(f"{ours}.ff.net.2.{p}")
            if not last:
                out[f"{theirs}.context_block.attn.proj.{p}"] = s.pop(f"{ours}.attn.to_add_out.{p}")
                out[f"{theirs}.context_block.mlp.fc1.{p}"] = s.pop(f"{ours}.ff_context.net.0.proj.{p}")
                out[f"{theirs}.context_block.mlp.fc2.{p}"] = s.pop(f"{ours}.ff_context.net.2.{p}")
    if s:
        raise ValueError(f"transformer weights without an SD3 name: {sorted(s)}")
    return out


def save_sd3_checkpoint(folder: Path, path: Path) -> None:
    """The SD3 folder as one original-layout `.safetensors` checkpoint: `model.diffusion_model.` (MMDiT),
    `first_stage_model.` (VAE), `text_encoders.{clip_l,clip_g,t5xxl}.transformer.` (the text encoders)."""
    from diffusers import SD3Transformer2DModel
    from safetensors.torch import load_file, save_file

    transformer = SD3Transformer2DModel.from_pretrained(folder / "transformer", local_files_only=True)
    state = transformer.state_dict()
    state.setdefault("pos_embed.pos_embed", transformer.pos_embed.pos_embed)
    checkpoint = {"model.diffusion_model." + k: v
                  for k, v in transformer_sd3_names(state, transformer.config.num_layers).items()}
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    checkpoint.update(to_ldm(load_file(folder / "vae" / "diffusion_pytorch_model.safetensors"),
                             vae_ldm_names(vae_config), "first_stage_model."))
    for sub, name in (("text_encoder", "clip_l"), ("text_encoder_2", "clip_g"), ("text_encoder_3", "t5xxl")):
        weights = load_file(folder / sub / "model.safetensors")
        if name == "t5xxl":  # the tied input embedding under both names, as the original checkpoints store it
            weights.setdefault("encoder.embed_tokens.weight", weights["shared.weight"].clone())
        checkpoint.update({f"text_encoders.{name}.transformer.{k}": v for k, v in weights.items()})
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, path)


def model_in(root: Path) -> SD3Model:
    return SD3Model(root / "sd3", root / "sd3.safetensors")


def build_all(root: Path) -> SD3Model:
    root.mkdir(parents=True, exist_ok=True)
    model = model_in(root)
    build_sd3(model.folder, root / "tokenizers")
    save_sd3_checkpoint(model.folder, model.checkpoint)
    return model


@pytest.fixture(scope="session")
def sd3_model(tmp_path_factory) -> SD3Model:
    """The tiny SD3 folder and checkpoint, built once per test run: under pytest-xdist in the run's shared base
    folder (the parent of each worker's), so one worker builds it and the others read it."""
    return built_once(shared_base(tmp_path_factory), "sd3_model", build_all, model_in)
