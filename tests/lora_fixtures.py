"""Tiny random LoRA files, written once per test run. For the tiny SD 1.5 folder (tests/sd_fixtures.py): two UNet
LoRAs in diffusers' format (`StableDiffusionPipeline.save_lora_weights` of peft's state dicts), one that also
patches the text encoder, and that one again in the kohya/A1111 layout. For the tiny Flux.1 dev folder
(tests/flux_fixtures.py): two transformer LoRAs (`FluxPipeline.save_lora_weights`). Their B matrices are random
(peft's `init_lora_weights=False`), so each LoRA changes its network's output. Nothing is downloaded.

A test asks for the `lora_files` or `flux_lora_files` fixture (import it from here); under pytest-xdist the first
worker builds the files in the run's shared base folder under a lock, the others read them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixture_cache import built_once, shared_base
from flux_fixtures import FluxModels
from sd_fixtures import SDModels

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
FLUX_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]  # the double blocks' attention (single blocks: q, k, v)
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
RANK = 2
ALPHA = 4  # alpha != rank: the files' scaling (alpha / rank = 2) must survive loading


@dataclass(frozen=True)
class LoraFiles:
    """The LoRA files for the SD 1.5 folder `sd15`."""

    sd15: Path
    unet_a: Path  # UNet only, seed 1
    unet_b: Path  # UNet only, seed 2
    with_text: Path  # UNet and text encoder, seed 3
    kohya_text: Path  # with_text's weights in the kohya/A1111 key layout


@dataclass(frozen=True)
class FluxLoraFiles:
    """The transformer LoRA files for the Flux.1 dev folder `dev`."""

    dev: Path
    a: Path  # seed 11
    b: Path  # seed 12


def _peft_state(module, targets: list[str], seed: int, convert: bool = True) -> dict:
    """A random LoRA on `module` (rank RANK, alpha ALPHA, random A and B) as peft's state dict, or diffusers' older
    layout (`lora.down`/`lora.up`, what the SD training scripts save) with `convert`."""
    import torch
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    torch.manual_seed(seed)
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, init_lora_weights=False, target_modules=targets)
    state = get_peft_model_state_dict(inject_adapter_in_model(config, module))
    return convert_state_dict_to_diffusers(state) if convert else state


def _metadata(targets: list[str]) -> dict:
    """diffusers' adapter metadata: the LoraConfig a loader rebuilds (alpha included)."""
    return {"r": RANK, "lora_alpha": ALPHA, "target_modules": targets}


KOHYA_KEYS = (  # diffusers' key of a LoRA layer -> the kohya module prefix and its module path
    (re.compile(r"unet\.(.+)\.lora\.(down|up)\.weight"), "lora_unet_"),
    (re.compile(r"text_encoder\.(.+)\.lora_linear_layer\.(down|up)\.weight"), "lora_te_text_model_"),
)


def _kohya(diffusers_file: Path, out: Path) -> None:
    """A diffusers-format LoRA in the kohya/A1111 layout: `lora_unet_<module path with _>.lora_down/up.weight`
    (`lora_te_text_model_...` for the text encoder, whose modules sit under `text_model` in those files) and one
    `.alpha` per module."""
    import torch
    from safetensors.torch import load_file, save_file

    kohya = {}
    for key, value in load_file(diffusers_file).items():
        match, prefix = next((m, prefix) for m, prefix in ((p.fullmatch(key), prefix) for p, prefix in KOHYA_KEYS) if m)
        module = prefix + match.group(1).replace(".", "_")
        kohya[f"{module}.lora_{match.group(2)}.weight"] = value.contiguous()
        kohya[f"{module}.alpha"] = torch.tensor(float(ALPHA))
    save_file(kohya, out)


def build_lora_files(sd15: Path, folder: Path) -> LoraFiles:
    """Write the LoRA files of `sd15` into `folder`."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    folder.mkdir(parents=True, exist_ok=True)
    files = lora_files_in(sd15, folder)
    for path, seed, text in ((files.unet_a, 1, False), (files.unet_b, 2, False), (files.with_text, 3, True)):
        unet = UNet2DConditionModel.from_pretrained(sd15 / "unet").eval()
        layers = {"unet_lora_layers": _peft_state(unet, UNET_TARGETS, seed),
                  "unet_lora_adapter_metadata": _metadata(UNET_TARGETS)}
        if text:
            encoder = CLIPTextModel.from_pretrained(sd15 / "text_encoder").eval()
            layers.update(text_encoder_lora_layers=_peft_state(encoder, TEXT_TARGETS, seed + 100),
                          text_encoder_lora_adapter_metadata=_metadata(TEXT_TARGETS))
        StableDiffusionPipeline.save_lora_weights(folder, weight_name=path.name, **layers)
    _kohya(files.with_text, files.kohya_text)
    return files


def lora_files_in(sd15: Path, folder: Path) -> LoraFiles:
    return LoraFiles(sd15, folder / "unet_a.safetensors", folder / "unet_b.safetensors",
                     folder / "with_text.safetensors", folder / "kohya_text.safetensors")


def build_flux_lora_files(dev: Path, folder: Path) -> FluxLoraFiles:
    """Write the transformer LoRA files of the Flux folder `dev` into `folder`."""
    from diffusers import FluxPipeline, FluxTransformer2DModel

    folder.mkdir(parents=True, exist_ok=True)
    files = flux_lora_files_in(dev, folder)
    for path, seed in ((files.a, 11), (files.b, 12)):
        transformer = FluxTransformer2DModel.from_pretrained(dev / "transformer").eval()
        FluxPipeline.save_lora_weights(folder, weight_name=path.name,
                                       transformer_lora_layers=_peft_state(transformer, FLUX_TARGETS, seed, False),
                                       transformer_lora_adapter_metadata=_metadata(FLUX_TARGETS))
    return files


def flux_lora_files_in(dev: Path, folder: Path) -> FluxLoraFiles:
    return FluxLoraFiles(dev, folder / "flux_a.safetensors", folder / "flux_b.safetensors")


@pytest.fixture(scope="session")
def lora_files(sd_models: SDModels, tmp_path_factory) -> LoraFiles:
    """The tiny SD 1.5 LoRA files, written once per test run."""
    sd15 = sd_models.sd15
    return built_once(shared_base(tmp_path_factory), "lora_files", lambda folder: build_lora_files(sd15, folder),
                      lambda folder: lora_files_in(sd15, folder))


@pytest.fixture(scope="session")
def flux_lora_files(flux_models: FluxModels, tmp_path_factory) -> FluxLoraFiles:
    """The tiny Flux.1 dev LoRA files, written once per test run."""
    dev = flux_models.dev
    return built_once(shared_base(tmp_path_factory), "flux_lora_files",
                      lambda folder: build_flux_lora_files(dev, folder), lambda folder: flux_lora_files_in(dev, folder))
