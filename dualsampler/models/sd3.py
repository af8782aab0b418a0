"""Stable Diffusion 3 / 3.5 (`SD3Transformer2DModel`, CLIP-L + CLIP-G + T5) as a model family (SPEC §9): prompts
encoded by the diffusers pipeline's own `encode_prompt`, the transformer run through a `ModelDenoiser` over an
`SD3Backbone` with SD3's flow model sampling (`FlowModelSampling` at the scheduler config's shift)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..sampling import FlowModelSampling, ModelDenoiser
from ..sampling.backbone import Adapters, activate, network_dtype
from ..sampling.conditioning import Cond, Conditioning, stack_conditionings
from ..validation import check_bounded
from .checks import check_config_file, weights_files
from .detect import DIFFUSERS_WEIGHTS, TRANSFORMERS_WEIGHTS, FolderInfo
from .lora import LoraSpec, activate_pipeline, check_loras
from .pipeline_model import PipelineModel
from .pipelines import (
    absent_components,
    load_network,
    no_loading_bars,
    pipeline_from_components,
    prepare_pipeline,
    prompt_lists,
    silence_library_notices,
)

KIND = "sd3"
COMPONENTS: dict[str, tuple[str, ...] | None] = {
    "transformer": DIFFUSERS_WEIGHTS, "vae": DIFFUSERS_WEIGHTS, "text_encoder": TRANSFORMERS_WEIGHTS,
    "text_encoder_2": TRANSFORMERS_WEIGHTS, "text_encoder_3": TRANSFORMERS_WEIGHTS, "tokenizer": None,
    "tokenizer_2": None, "tokenizer_3": None, "scheduler": None,
}
PIPELINE_PREFIX = "StableDiffusion3"
TRANSFORMER_CLASS = "SD3Transformer2DModel"
# The T5 prompt length of diffusers' StableDiffusion3Pipeline (its `max_sequence_length` default).
T5_TOKENS = 256


def matches(model_index: dict, folder: Path) -> bool:
    """An SD3 folder: model_index.json names a StableDiffusion3 pipeline, or (without model_index.json) the
    transformer's config names `SD3Transformer2DModel`."""
    if model_index:
        return str(model_index.get("_class_name", "")).startswith(PIPELINE_PREFIX)
    config = folder / "transformer" / "config.json"
    return config.is_file() and check_config_file(config).get("_class_name") == TRANSFORMER_CLASS


class SD3Backbone:
    """An `SD3Transformer2DModel` behind the `Backbone` protocol: conditionings are `Conditioning(hidden=joint
    CLIP + T5 states, text_embeds=pooled CLIP embeddings)`; the transformer predicts the flow velocity at timestep
    `t = 1000 sigma`, as diffusers' pipeline calls it. `adapters`: the LoRAs active in its forward."""

    def __init__(self, transformer: nn.Module, adapters: Adapters = ()) -> None:
        self.transformer = transformer
        self.adapters = tuple(adapters)
        self.key = (id(transformer), self.adapters)
        self.patch_size = int(transformer.config.patch_size)

    @property
    def dtype(self) -> torch.dtype:
        return network_dtype(self.transformer)

    @property
    def latent_channels(self) -> int:
        return int(self.transformer.config.in_channels)

    def stack(self, conds: Sequence[Cond], x: Tensor) -> Conditioning:
        if not all(isinstance(c, Conditioning) and c.text_embeds is not None for c in conds):
            raise ValueError("an SD3 denoiser's conditionings must be Conditioning(hidden, text_embeds) with the "
                             "pooled text embeddings set")
        return stack_conditionings(list(conds), x.shape[0], x.device)

    def __call__(self, x: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        if x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
            raise ValueError(f"latent height and width must be multiples of the transformer's patch size "
                             f"{self.patch_size}, got {tuple(x.shape[-2:])}")
        activate(self.transformer, self.adapters)
        dtype = self.dtype
        return self.transformer(hidden_states=x.to(dtype), timestep=t, encoder_hidden_states=cond.hidden.to(dtype),
                                pooled_projections=cond.text_embeds.to(dtype)).sample.float()


@dataclass
class StableDiffusion3(PipelineModel):
    """A loaded SD3 pipeline with the `Model` interface (`models.interface`): `denoiser`, `encode`, `decode`,
    `model_sampling`, `latent_channels`, `vae_scale_factor`, `canvas_multiple`, `fingerprint()`. No judge and no
    embedded upscaler."""

    NETWORK: ClassVar[str] = "transformer"

    pipeline: object
    model_sampling: FlowModelSampling
    files: dict[str, Path] = field(default_factory=dict)
    kind: ClassVar[str] = KIND

    @property
    def transformer(self) -> nn.Module:
        return self.network

    @property
    def latent_channels(self) -> int:
        return int(self.transformer.config.in_channels)

    @property
    def canvas_multiple(self) -> int:
        """Pixels a canvas side must be a multiple of: the VAE factor times the transformer's patch size."""
        return self.vae_scale_factor * int(self.transformer.config.patch_size)

    @torch.no_grad()
    def encode_prompt(self, prompt: str | list[str],
                      negative_prompt: str | list[str] = "") -> tuple[Conditioning, Conditioning]:
        """(cond, uncond) through the pipeline's own `encode_prompt` (CLIP-L, CLIP-G and T5 at the pipeline's
        default 256 T5 tokens) with guidance on: `Conditioning(hidden=prompt_embeds, text_embeds=pooled)`. An empty
        negative prompt is encoded as "", what the pipeline does without one."""
        prompts, negatives = prompt_lists(prompt, negative_prompt)
        cond, uncond, pooled, pooled_uncond = self.pipeline.encode_prompt(
            prompt=prompts, prompt_2=None, prompt_3=None, device=self.device, num_images_per_prompt=1,
            do_classifier_free_guidance=True, negative_prompt=negatives, max_sequence_length=T5_TOKENS,
        )
        return Conditioning(cond, text_embeds=pooled), Conditioning(uncond, text_embeds=pooled_uncond)

    def denoiser(self, prompt: str | list[str], negative_prompt: str | list[str] = "", cfg: float = 5.0,
                 loras: Sequence[LoraSpec] = ()) -> ModelDenoiser:
        """A `ModelDenoiser` over an `SD3Backbone` for `prompt` with `negative_prompt` as the CFG unconditional
        branch and `loras` (LoraSpecs or a config's list, `models.lora.check_loras`) active in its forwards and in
        the prompts' encoding; `cfg`, the prompts and `loras` are checked before anything loads."""
        check_bounded(cfg, "cfg")
        prompt_lists(prompt, negative_prompt)
        adapters = self.load_loras(check_loras(loras, "loras"))
        activate_pipeline(self.pipeline, adapters)
        cond, uncond = self.encode_prompt(prompt, negative_prompt)
        return ModelDenoiser(SD3Backbone(self.transformer, adapters), self.model_sampling, cond, uncond, cfg)


def model_sampling_of(scheduler_config: dict) -> FlowModelSampling:
    """SD3's flow model sampling at the FlowMatchEulerDiscreteScheduler config's static `shift` (diffusers' default
    1); a config with `use_dynamic_shifting` (a shift per image size, which SD3's releases do not use) is refused."""
    if scheduler_config.get("use_dynamic_shifting"):
        raise ValueError("scheduler config: use_dynamic_shifting must be false for an SD3 model (its model sampling "
                         "is FlowModelSampling at the config's fixed shift)")
    return FlowModelSampling(shift=scheduler_config.get("shift", 1.0))


def finish(pipeline, model_sampling: FlowModelSampling, dtype: torch.dtype, device: torch.device, compile: bool,
           files: dict[str, Path]) -> StableDiffusion3:
    """Eval mode and no gradients, the VAE in float32 under float16 where its config says float16 overflows
    (`force_upcast`), no progress bars, moved to `device`, the transformer optionally `torch.compile`d."""
    prepare_pipeline(pipeline, "transformer", dtype, device, compile)
    return StableDiffusion3(pipeline, model_sampling, files)


# Each network component's (library, class), as in an SD3 folder's model_index.json.
NETWORK_CLASSES = {
    "transformer": ("diffusers", TRANSFORMER_CLASS), "vae": ("diffusers", "AutoencoderKL"),
    "text_encoder": ("transformers", "CLIPTextModelWithProjection"),
    "text_encoder_2": ("transformers", "CLIPTextModelWithProjection"),
    "text_encoder_3": ("transformers", "T5EncoderModel"),
}
# How a single-file checkpoint in the original SD3 layout shows each component (a key containing the marker).
CHECKPOINT_MARKERS = {
    "transformer": "joint_blocks.0.x_block.", "vae": "first_stage_model.decoder.",
    "text_encoder": "text_encoders.clip_l.transformer.", "text_encoder_2": "text_encoders.clip_g.transformer.",
    "text_encoder_3": "text_encoders.t5xxl.transformer.",
}


def load_folder(info: FolderInfo, dtype: torch.dtype, device: torch.device, compile: bool = False) -> StableDiffusion3:
    """A checked SD3 folder (`detect.inspect_folder`) loaded offline as diffusers' StableDiffusion3Pipeline."""
    model_sampling = model_sampling_of(info.scheduler_config)
    silence_library_notices()
    from diffusers import StableDiffusion3Pipeline

    with no_loading_bars():
        if (info.folder / "model_index.json").is_file():
            kwargs = {"dtype": dtype, "local_files_only": True, **absent_components(info.folder)}
            if info.variant:
                kwargs["variant"] = info.variant
            pipeline = StableDiffusion3Pipeline.from_pretrained(info.folder, **kwargs)
        else:
            pipeline = pipeline_from_components(StableDiffusion3Pipeline, info.folder, COMPONENTS, NETWORK_CLASSES,
                                                dtype, info.variant)
    return finish(pipeline, model_sampling, dtype, device, compile, info.files)


def checkpoint_components(path: Path) -> set[str]:
    """The network components a single-file checkpoint holds in the original SD3 layout (read from its keys; a
    `.ckpt` is read on the meta device: names and shapes only)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    else:
        checkpoint = torch.load(path, map_location="meta", weights_only=True)  # names and shapes, no data
        keys = list(checkpoint.get("state_dict", checkpoint))
    return {component for component, marker in CHECKPOINT_MARKERS.items() if any(marker in key for key in keys)}


def load_single_file(path: Path, info: FolderInfo, dtype: torch.dtype, device: torch.device,
                     compile: bool = False) -> StableDiffusion3:
    """A single checkpoint in the original SD3 layout through diffusers' single-file loader: the transformer, and
    the VAE and text encoders where it holds them (SD3's "incl. clips / t5" files); every config, the tokenizers and
    each network the checkpoint lacks come from the local folder `info.folder` (ValueError naming the component
    when the folder lacks its weights too). Nothing is downloaded."""
    model_sampling = model_sampling_of(info.scheduler_config)
    held = checkpoint_components(path)
    if "transformer" not in held:
        raise ValueError(f"single-file checkpoint {str(path)!r} holds no SD3 transformer (no "
                         f"'{CHECKPOINT_MARKERS['transformer']}' weights)")
    files = {**info.files, "checkpoint": path}
    variants: dict[str, str | None] = {}
    for component in NETWORK_CLASSES:
        if component not in held:
            try:
                weights = weights_files(info.folder / component, COMPONENTS[component])
            except ValueError as err:
                raise ValueError(f"single-file checkpoint {str(path)!r} has no {component} and the config folder "
                                 f"has none either: {err}") from None
            files.update({f"{component}/{file.name}": file for file in weights})
            variants[component] = "fp16" if ".fp16." in weights[-1].name else None
    silence_library_notices()
    from diffusers import StableDiffusion3Pipeline

    with no_loading_bars():
        from_folder = {component: load_network(info.folder, component, NETWORK_CLASSES, dtype, variant)
                       for component, variant in variants.items()}
        pipeline = StableDiffusion3Pipeline.from_single_file(str(path), config=str(info.folder), dtype=dtype,
                                                             local_files_only=True, **from_folder)
    return finish(pipeline, model_sampling, dtype, device, compile, files)


MODEL_CLASS = StableDiffusion3
