"""Stable Diffusion 1.x / 2.x / XL behind the world's interface: prompts encoded by diffusers' own pipeline code,
the UNet run through a `ModelDenoiser` over its `UNetBackbone` with the model sampling of the model's own scheduler config (SPEC §1, §9)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Sequence

import torch
from torch import nn

from ..sampling import ModelSampling
from ..sampling.backbone import UNetBackbone
from ..sampling.conditioning import Conditioning
from ..sampling.unet_denoiser import ModelDenoiser
from ..validation import check_bounded
from .detect import FolderInfo
from .lora import LoraSpec, activate_pipeline, check_loras
from .pipeline_model import PipelineModel
from .pipelines import no_loading_bars, prepare_pipeline, prompt_lists, silence_library_notices


@dataclass
class StableDiffusion(PipelineModel):
    """A loaded Stable Diffusion pipeline (`kind` sd1 | sd2 | sdxl) with the surface of `World`: `denoiser`,
    `encode`, `decode`, `model_sampling`, `latent_channels`, `vae_scale_factor`, `fingerprint()`. No judge and no
    embedded upscaler (`judge` and `upscaler` are None)."""

    NETWORK: ClassVar[str] = "unet"

    pipeline: object
    kind: str
    model_sampling: ModelSampling
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def unet(self) -> nn.Module:
        return self.network

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def canvas_multiple(self) -> int:
        """A canvas side is a multiple of the VAE factor."""
        return self.vae_scale_factor

    @torch.no_grad()
    def encode_prompt(self, prompt: str | list[str], negative_prompt: str | list[str] = "") -> tuple[Conditioning, Conditioning]:
        """(cond, uncond) through the pipeline's own `encode_prompt` with guidance on; an empty negative prompt is
        passed as None, the pipelines' default (SDXL base then uses zeros, `force_zeros_for_empty_prompt`)."""
        prompts, negatives = prompt_lists(prompt, negative_prompt)
        negative = None if all(n == "" for n in negatives) else negatives
        if self.kind == "sdxl":
            cond, uncond, pooled, pooled_uncond = self.pipeline.encode_prompt(
                prompt=prompts, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=True,
                negative_prompt=negative,
            )
            return Conditioning(cond, text_embeds=pooled), Conditioning(uncond, text_embeds=pooled_uncond)
        cond, uncond = self.pipeline.encode_prompt(prompts, self.device, 1, True, negative_prompt=negative)
        return Conditioning(cond), Conditioning(uncond)

    def denoiser(self, prompt: str | list[str], negative_prompt: str | list[str] = "", cfg: float = 5.0,
                 loras: Sequence[LoraSpec] = ()) -> ModelDenoiser:
        """A `ModelDenoiser` over the UNet for `prompt` with `negative_prompt` as the CFG unconditional branch and
        `loras` (LoraSpecs or a config's list, `models.lora.check_loras`) active in its forwards and in the prompts'
        encoding (LoRAs that patch the text encoders); `cfg` and `loras` are checked before anything loads."""
        check_bounded(cfg, "cfg")
        adapters = self.load_loras(check_loras(loras, "loras"))
        activate_pipeline(self.pipeline, adapters)
        cond, uncond = self.encode_prompt(prompt, negative_prompt)
        backbone = UNetBackbone(self.unet, self.vae_scale_factor, adapters=adapters)
        return ModelDenoiser(backbone, self.model_sampling, cond, uncond, cfg)


def pipeline_class(kind: str):
    silence_library_notices()
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    return StableDiffusionXLPipeline if kind == "sdxl" else StableDiffusionPipeline


def _pipeline_kwargs(kind: str, dtype: torch.dtype) -> dict:
    kwargs: dict = {"dtype": dtype, "local_files_only": True}
    if kind != "sdxl":
        kwargs.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return kwargs


def finish(pipeline, info: FolderInfo, dtype: torch.dtype, device: torch.device, compile_unet: bool,
           files: dict[str, Path]) -> StableDiffusion:
    """Eval mode, no gradients, SDPA attention, the VAE in float32 where its config says float16 overflows
    (`force_upcast`, SDXL's), moved to `device`, the UNet optionally `torch.compile`d."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    pipeline.unet.set_attn_processor(AttnProcessor2_0())
    prepare_pipeline(pipeline, "unet", dtype, device, compile_unet)
    model_sampling = ModelSampling.from_config(info.scheduler_config)
    return StableDiffusion(pipeline, info.kind, model_sampling, files)


def load_sd_folder(info: FolderInfo, dtype: torch.dtype, device: torch.device, compile_unet: bool = False) -> StableDiffusion:
    """A checked diffusers folder (see `detect.inspect_sd_folder`) loaded offline as its pipeline class."""
    kwargs = _pipeline_kwargs(info.kind, dtype)
    if info.variant:
        kwargs["variant"] = info.variant
    with no_loading_bars():
        pipeline = pipeline_class(info.kind).from_pretrained(info.folder, **kwargs)
    return finish(pipeline, info, dtype, device, compile_unet, info.files)


def load_sd_single_file(path: Path, info: FolderInfo, dtype: torch.dtype, device: torch.device,
                        compile_unet: bool = False) -> StableDiffusion:
    """A single `.safetensors`/`.ckpt` checkpoint through diffusers' single-file loader, every config (and the
    tokenizers) from the local folder `info.folder`; nothing is downloaded."""
    kwargs = _pipeline_kwargs(info.kind, dtype)
    with no_loading_bars():
        pipeline = pipeline_class(info.kind).from_single_file(str(path), config=str(info.folder), **kwargs)
    return finish(pipeline, info, dtype, device, compile_unet, {**info.files, "checkpoint": path})
