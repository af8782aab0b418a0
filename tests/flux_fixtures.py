"""Tiny random-weight Flux.1 folders of the real architecture (FluxPipeline: a FluxTransformer2DModel over 2x2-packed
16-channel latents, a 16-channel AutoencoderKL with Flux's scaling and shift factors, CLIP for the pooled prompt,
T5 for the prompt states, a FlowMatchEulerDiscreteScheduler with Flux's dynamic shifting), saved with
`save_pretrained` once per test run with hand-written tiny tokenizers; nothing is downloaded.

`dev` has the distilled-guidance embedding (Flux.1 dev); `schnell` has none and a static shift of 1 (Flux.1
schnell's scheduler config). `checkpoint` is the dev transformer alone as one `.safetensors` file, the form Flux
ships (every other component comes from `config=` a diffusers folder); its keys are diffusers' names: diffusers'
converter of BFL's original names hard-codes Flux's full width (3072) and cannot read a tiny transformer.

tests/conftest.py imports the `flux_models` fixture from here; the folders are built at most once per test run and
shared by the run's xdist workers (the first builds them under a lock). Tests treat them as read-only.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixture_cache import built_once, shared_base
from sd_fixtures import TEXT_WIDTH, text_encoder, write_tokenizer
from t5_fixtures import T5_WIDTH, tiny_t5_encoder, write_t5_tokenizer

LATENT_CHANNELS = 16
# Flux.1's VAE config: latents = (z - shift) * scaling.
FLUX_SCALING, FLUX_SHIFT = 0.3611, 0.1159
# Flux.1 dev's scheduler config (schnell: no dynamic shifting, shift 1).
DEV_SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5,
                 "max_shift": 1.15, "base_image_seq_len": 256, "max_image_seq_len": 4096}
SCHNELL_SCHEDULER = {"num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": False}


@dataclass(frozen=True)
class FluxModels:
    """Paths of the built folders and the transformer-only checkpoint of `dev`."""

    dev: Path
    schnell: Path
    checkpoint: Path


def tiny_flux_transformer(guidance_embeds: bool):
    """A FluxTransformer2DModel of one double and one single block, 2 heads of 16, over 2x2-packed 16-channel
    latents, T5-wide text states and a CLIP-wide pooled prompt."""
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(
        patch_size=1, in_channels=4 * LATENT_CHANNELS, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=T5_WIDTH, pooled_projection_dim=TEXT_WIDTH,
        guidance_embeds=guidance_embeds, axes_dims_rope=(4, 6, 6),
    ).eval()


def tiny_flux_vae():
    """A two-level (2 pixels per latent cell) AutoencoderKL with 16 latent channels, no quant convs (as Flux's)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
        latent_channels=LATENT_CHANNELS, norm_num_groups=4, sample_size=32, scaling_factor=FLUX_SCALING,
        shift_factor=FLUX_SHIFT, use_quant_conv=False, use_post_quant_conv=False,
    ).eval()


def build_dev(folder: Path) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    from transformers import CLIPTokenizer, T5TokenizerFast

    import torch

    torch.manual_seed(1)
    clip_vocab = write_tokenizer(folder / "tokenizer")
    t5_vocab = write_t5_tokenizer(folder / "tokenizer_2")
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**DEV_SCHEDULER), vae=tiny_flux_vae(),
        text_encoder=text_encoder(clip_vocab, "quick_gelu"),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        text_encoder_2=tiny_t5_encoder(t5_vocab),
        tokenizer_2=T5TokenizerFast.from_pretrained(folder / "tokenizer_2"),
        transformer=tiny_flux_transformer(guidance_embeds=True),
    )
    pipe.save_pretrained(folder)


def build_schnell(dev: Path, folder: Path) -> None:
    """The dev folder with a transformer without the guidance embedding and schnell's static-shift scheduler."""
    import torch

    shutil.copytree(dev, folder)
    shutil.rmtree(folder / "transformer")
    torch.manual_seed(2)
    tiny_flux_transformer(guidance_embeds=False).save_pretrained(folder / "transformer")
    config_file = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_file.read_text())
    config.update(SCHNELL_SCHEDULER)
    config_file.write_text(json.dumps(config))


def save_transformer_checkpoint(folder: Path, path: Path) -> None:
    """The folder's transformer weights alone as one `.safetensors` file (diffusers' parameter names)."""
    from safetensors.torch import load_file, save_file

    save_file(load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors"), path)


def models_in(root: Path) -> FluxModels:
    return FluxModels(root / "flux_dev", root / "flux_schnell", root / "flux_dev_transformer.safetensors")


def build_all(root: Path) -> FluxModels:
    root.mkdir(parents=True, exist_ok=True)
    models = models_in(root)
    build_dev(models.dev)
    build_schnell(models.dev, models.schnell)
    save_transformer_checkpoint(models.dev, models.checkpoint)
    return models


@pytest.fixture(scope="session")
def flux_models(tmp_path_factory) -> FluxModels:
    """The tiny Flux folders, built once per test run: under pytest-xdist in the run's shared base folder (the
    parent of each worker's), so one worker builds them and the others read them."""
    return built_once(shared_base(tmp_path_factory), "flux_models", build_all, models_in)
