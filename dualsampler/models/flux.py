"""Flux.1 (dev and schnell) as a model family: diffusers' FluxPipeline folders, or one transformer file with
`config=` a folder holding the other components; prompts encoded by the pipeline's own `encode_prompt` (CLIP's
pooled output and T5's states), the transformer run through a `FluxBackbone` that packs latents into 2x2 tokens
with the pipeline's image and text ids, and Flux's model sampling from the scheduler config (SPEC §1, §9).

Flux.1 dev is guidance-distilled: its transformer embeds a guidance value (`Conditioning.guidance`, default 3.5)
and classifier-free guidance is off by default (cfg 1); cfg > 1 runs true CFG against the negative prompt as
ComfyUI does. Flux.1 schnell's transformer has no guidance embedding: its conditionings carry no guidance value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..sampling import FlowModelSampling, FluxModelSampling
from ..sampling.backbone import Adapters, activate, network_dtype
from ..sampling.conditioning import Cond, Conditioning, stack_conditionings
from ..sampling.flow_sampling import MAX_SHIFT, flux_shift
from ..sampling.unet_denoiser import ModelDenoiser
from ..validation import check_bounded, check_int, check_real
from .checks import check_config_file, weights_files
from .detect import DIFFUSERS_WEIGHTS, TRANSFORMERS_WEIGHTS, FolderInfo
from .lora import LoraSpec, activate_pipeline, check_loras
from .pipeline_model import PipelineModel
from .pipelines import (
    no_loading_bars,
    pipeline_from_components,
    prepare_pipeline,
    prompt_lists,
    silence_library_notices,
)

KIND = "flux"
COMPONENTS: dict[str, tuple[str, ...] | None] = {
    "transformer": DIFFUSERS_WEIGHTS,
    "vae": DIFFUSERS_WEIGHTS,
    "text_encoder": TRANSFORMERS_WEIGHTS,
    "text_encoder_2": TRANSFORMERS_WEIGHTS,
    "tokenizer": None,
    "tokenizer_2": None,
    "scheduler": None,
}
# The components a single file replaces: Flux ships its transformer alone; the others load from `config=`.
SINGLE_FILE_COMPONENTS = ("transformer",)
PIPELINE_CLASSES = ("FluxPipeline",)
TRANSFORMER_CLASS = "FluxTransformer2DModel"
# The pipeline's default T5 length (Flux.1 dev's; the diffusers pipeline pads every prompt to it).
T5_TOKENS = 512
DEFAULT_GUIDANCE = 3.5
MAX_SIDE = 16384
# diffusers' FlowMatchEulerDiscreteScheduler defaults for the dynamic shift (Flux.1 dev's config sets the same).
SHIFT_DEFAULTS = {"base_image_seq_len": 256, "max_image_seq_len": 4096, "base_shift": 0.5, "max_shift": 1.15,
                  "shift": 1.0}


def matches(model_index: dict, folder: Path) -> bool:
    """A FluxPipeline folder (model_index.json's `_class_name`), or without model_index.json a folder whose
    transformer config is a FluxTransformer2DModel's."""
    if model_index:
        return model_index.get("_class_name") in PIPELINE_CLASSES
    config = folder / "transformer" / "config.json"
    return config.is_file() and check_config_file(config).get("_class_name") == TRANSFORMER_CLASS


def pack_latents(x: Tensor) -> Tensor:
    """Latents [N, C, h, w] (h, w even) -> tokens [N, h/2 * w/2, 4C], each token a 2x2 patch ordered (c, dy, dx),
    row-major over patches: the pipeline's `_pack_latents`."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(n, (h // 2) * (w // 2), c * 4)


def unpack_tokens(tokens: Tensor, height: int, width: int) -> Tensor:
    """The inverse of `pack_latents` for a latent of `height` x `width` cells (both even)."""
    n, _, d = tokens.shape
    x = tokens.reshape(n, height // 2, width // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(n, d // 4, height, width)


def image_ids(rows: int, cols: int, device: torch.device) -> Tensor:
    """The position ids [rows * cols, 3] of a grid of tokens: (0, row, col), row-major (the pipeline's
    `_prepare_latent_image_ids`), float32."""
    ids = torch.zeros(rows, cols, 3, device=device)
    ids[..., 1] = torch.arange(rows, device=device)[:, None]
    ids[..., 2] = torch.arange(cols, device=device)[None, :]
    return ids.reshape(rows * cols, 3)


def pad_to_pairs(x: Tensor) -> Tensor:
    """A latent with an odd side padded circularly to even sides (ComfyUI's `pad_to_patch_size`); even as is."""
    pad_h, pad_w = x.shape[-2] % 2, x.shape[-1] % 2
    if not (pad_h or pad_w):
        return x
    return nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="circular")


class FluxBackbone:
    """A diffusers `FluxTransformer2DModel` behind the `Backbone` protocol: `x` [N, C, h, w] is packed into 2x2
    tokens (an odd side padded circularly and cropped off again, as ComfyUI does) with the pipeline's image ids
    and zero text ids; `t` is passed as the transformer's timestep (sigma: the transformer scales by 1000 itself,
    where the pipeline passes `timestep / 1000`); the stacked `Conditioning.guidance` is passed when the
    transformer embeds guidance (and then required), ignored otherwise. `adapters`: the LoRAs active in its
    forward."""

    def __init__(self, transformer: nn.Module, adapters: Adapters = ()) -> None:
        self.transformer = transformer
        self.adapters = tuple(adapters)
        self.key = (id(transformer), self.adapters)

    @property
    def guidance_embeds(self) -> bool:
        return bool(self.transformer.config.guidance_embeds)

    @property
    def dtype(self) -> torch.dtype:
        return network_dtype(self.transformer)

    @property
    def latent_channels(self) -> int:
        """The transformer's input is 2x2 latent cells packed into one token."""
        return int(self.transformer.config.in_channels) // 4

    def stack(self, conds: Sequence[Cond], x: Tensor) -> Conditioning:
        """`conds` (Conditionings with pooled `text_embeds`) stacked to `len(conds) * x.shape[0]` rows; the guidance
        of rows without one is refused when the transformer embeds guidance."""
        if not all(isinstance(c, Conditioning) and c.text_embeds is not None for c in conds):
            raise ValueError("a Flux transformer needs Conditionings with T5 states (hidden) and CLIP's pooled "
                             "prompt (text_embeds)")
        if not self.guidance_embeds:
            conds = [replace(c, guidance=None) for c in conds]
        elif any(c.guidance is None for c in conds):
            raise ValueError("this Flux transformer embeds guidance: every Conditioning needs a guidance value")
        return stack_conditionings(list(conds), x.shape[0], x.device)

    def __call__(self, x: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        activate(self.transformer, self.adapters)
        dtype, (height, width) = self.dtype, x.shape[-2:]
        padded = pad_to_pairs(x)
        rows, cols = padded.shape[-2] // 2, padded.shape[-1] // 2
        out = self.transformer(
            hidden_states=pack_latents(padded).to(dtype), timestep=t.to(dtype),
            guidance=None if cond.guidance is None else cond.guidance.float(),
            pooled_projections=cond.text_embeds.to(dtype), encoder_hidden_states=cond.hidden.to(dtype),
            txt_ids=torch.zeros(cond.hidden.shape[1], 3, device=x.device), img_ids=image_ids(rows, cols, x.device),
            return_dict=False,
        )[0]
        return unpack_tokens(out.float(), 2 * rows, 2 * cols)[:, :, :height, :width]


def flux_mu(tokens: int, config: dict) -> float:
    """Flux's shift (mu) for `tokens` image tokens under a scheduler config: linear through `base_shift` at
    `base_image_seq_len` tokens and `max_shift` at `max_image_seq_len` (the pipeline's `calculate_shift`)."""
    c = {**SHIFT_DEFAULTS, **{k: v for k, v in config.items() if k in SHIFT_DEFAULTS and v is not None}}
    return flux_shift(tokens, c["base_shift"], c["max_shift"], (c["base_image_seq_len"], c["max_image_seq_len"]))


def scheduler_sampling(config: dict, tokens: int | None = None) -> FluxModelSampling | FlowModelSampling:
    """The model sampling a FlowMatchEulerDiscreteScheduler config gives, as ComfyUI samples the checkpoint: with
    `use_dynamic_shifting` (Flux.1 dev) Flux's shift for `tokens` image tokens (`max_image_seq_len` when None: mu =
    max_shift, ComfyUI's default for Flux.1 dev); else (Flux.1 schnell) ComfyUI's discrete flow over 1000 timesteps
    with multiplier 1 and the static shift s (`FlowModelSampling(s, 1.0)`, ComfyUI's FluxSchnell: the transformer
    sees t = sigma, the same curve as Flux's shift log(s) on a 1000-step grid)."""
    if config.get("time_shift_type", "exponential") != "exponential" or config.get("shift_terminal"):
        raise ValueError("scheduler config: Flux's model sampling needs time_shift_type 'exponential' and no "
                         f"shift_terminal, got {config.get('time_shift_type')!r} and {config.get('shift_terminal')!r}")
    if config.get("use_dynamic_shifting"):
        seq = tokens if tokens is not None else config.get("max_image_seq_len", SHIFT_DEFAULTS["max_image_seq_len"])
        return FluxModelSampling(flux_mu(seq, config))
    shift = check_real(config.get("shift", SHIFT_DEFAULTS["shift"]), "scheduler shift", 1.0, math.exp(MAX_SHIFT))
    return FlowModelSampling(shift=shift, multiplier=1.0)


@dataclass
class Flux(PipelineModel):
    """A loaded FluxPipeline with the model interface: `denoiser`, `encode`, `decode`, `model_sampling` (the
    default canvas's) and `model_sampling_for(height, width)` (a canvas's), `latent_channels`, `vae_scale_factor`,
    `canvas_multiple`, `fingerprint()`. No judge and no embedded upscaler. `model_sampling` is the scheduler
    config's for its default canvas (`scheduler_sampling`: with dynamic shifting the shift at the config's largest
    token count, 4096 tokens = 1024 x 1024 px for Flux.1, ComfyUI's default for Flux.1 dev)."""

    NETWORK: ClassVar[str] = "transformer"

    pipeline: object
    model_sampling: FluxModelSampling | FlowModelSampling
    scheduler_config: dict
    files: dict[str, Path] = field(default_factory=dict)
    kind: ClassVar[str] = KIND

    @property
    def transformer(self) -> nn.Module:
        return self.network

    @property
    def guidance_embeds(self) -> bool:
        """Whether the transformer embeds a distilled guidance value (Flux.1 dev: yes; schnell: no)."""
        return bool(self.transformer.config.guidance_embeds)

    @property
    def latent_channels(self) -> int:
        return int(self.transformer.config.in_channels) // 4

    @property
    def canvas_multiple(self) -> int:
        """Pixels a canvas side must be a multiple of: one 2x2 token of latent cells."""
        return 2 * self.vae_scale_factor

    def model_sampling_for(self, height: int, width: int) -> FluxModelSampling | FlowModelSampling:
        """The sampling of a `height` x `width` pixel canvas (multiples of `canvas_multiple`): with dynamic shifting
        the shift the diffusers pipeline computes from the canvas's token count (for Flux.1's 8x VAE the shift of
        `FluxModelSampling.for_size`, ComfyUI's ModelSamplingFlux node); else the static one."""
        multiple = self.canvas_multiple
        sides = [check_int(side, name, multiple, MAX_SIDE) for name, side in (("height", height), ("width", width))]
        for name, side in zip(("height", "width"), sides):
            if side % multiple:
                raise ValueError(f"{name} must be a multiple of {multiple} pixels (2x2 latent cells of "
                                 f"{self.vae_scale_factor} px), got {side}")
        return scheduler_sampling(self.scheduler_config, (sides[0] // multiple) * (sides[1] // multiple))

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str], guidance: float) -> Conditioning:
        """One Conditioning of `prompts` through the pipeline's `encode_prompt` (T5 states, CLIP's pooled output),
        with `guidance` per row when the transformer embeds guidance (else None: the value is ignored)."""
        hidden, pooled, _ = self.pipeline.encode_prompt(prompt=prompts, prompt_2=None, device=self.device,
                                                        num_images_per_prompt=1, max_sequence_length=T5_TOKENS)
        rows = None
        if self.guidance_embeds:
            rows = torch.full((hidden.shape[0],), float(guidance), dtype=torch.float32, device=hidden.device)
        return Conditioning(hidden, text_embeds=pooled, guidance=rows)

    def encode_prompt(self, prompt: str | list[str], negative_prompt: str | list[str] = "",
                      guidance: float = DEFAULT_GUIDANCE) -> tuple[Conditioning, Conditioning]:
        """(cond, uncond): the prompts and the negative prompts (an empty one encoded as "", as ComfyUI does), both
        with the distilled `guidance` value (the diffusers pipeline's true CFG passes it to both)."""
        prompts, negatives = prompt_lists(prompt, negative_prompt)
        guidance = check_bounded(guidance, "guidance")
        return self.encode_prompts(prompts, guidance), self.encode_prompts(negatives, guidance)

    def denoiser(self, prompt: str | list[str], negative_prompt: str | list[str] = "", cfg: float = 1.0,
                 guidance: float = DEFAULT_GUIDANCE, height: int | None = None, width: int | None = None,
                 loras: Sequence[LoraSpec] = ()) -> ModelDenoiser:
        """A `ModelDenoiser` over a `FluxBackbone` for `prompt` at the distilled `guidance` (ignored by a transformer
        without guidance embedding), true CFG against `negative_prompt` when `cfg` != 1 (default off), `loras`
        active in its forwards and in the prompts' encoding; the model sampling of a `height` x `width` px canvas
        when both are given, else the default `model_sampling`. Everything is checked before anything loads."""
        check_bounded(cfg, "cfg")
        check_bounded(guidance, "guidance")
        prompt_lists(prompt, negative_prompt)
        if (height is None) != (width is None):
            raise ValueError(f"height and width must be given together or not at all, got {height!r} and {width!r}")
        model_sampling = self.model_sampling if height is None else self.model_sampling_for(height, width)
        adapters = self.load_loras(check_loras(loras, "loras"))
        activate_pipeline(self.pipeline, adapters)
        cond, uncond = self.encode_prompt(prompt, negative_prompt, guidance)
        return ModelDenoiser(FluxBackbone(self.transformer, adapters), model_sampling, cond, uncond, cfg)


# Each network component's (library, class), as in a Flux folder's model_index.json.
NETWORK_CLASSES = {
    "transformer": ("diffusers", TRANSFORMER_CLASS), "vae": ("diffusers", "AutoencoderKL"),
    "text_encoder": ("transformers", "CLIPTextModel"), "text_encoder_2": ("transformers", "T5EncoderModel"),
}


def load_pipeline(folder: Path, dtype: torch.dtype, variant: str | None, transformer=None):
    """The folder's FluxPipeline offline (diffusers' `from_pretrained` where model_index.json is, else component by
    component), with `transformer` in place of the folder's when given."""
    silence_library_notices()
    from diffusers import FluxPipeline

    with no_loading_bars():
        if not (folder / "model_index.json").is_file():
            given = {} if transformer is None else {"transformer": transformer}
            return pipeline_from_components(FluxPipeline, folder, COMPONENTS, NETWORK_CLASSES, dtype, variant, **given)
        kwargs: dict = {"dtype": dtype, "local_files_only": True}
        if variant:
            kwargs["variant"] = variant
        if transformer is not None:
            kwargs["transformer"] = transformer
        return FluxPipeline.from_pretrained(folder, **kwargs)


def finish(pipeline, info: FolderInfo, model_sampling: FluxModelSampling | FlowModelSampling, device: torch.device, compile: bool,
           files: dict[str, Path]) -> Flux:
    """Eval mode, no gradients, the VAE in float32 where its config says float16 overflows (`force_upcast`),
    moved to `device`, the transformer optionally `torch.compile`d."""
    prepare_pipeline(pipeline, "transformer", pipeline.transformer.dtype, device, compile)
    return Flux(pipeline, model_sampling, dict(info.scheduler_config), files)


def load_folder(info: FolderInfo, dtype: torch.dtype, device: torch.device, compile: bool = False) -> Flux:
    """A checked Flux folder (`detect.inspect_folder`) loaded offline."""
    model_sampling = scheduler_sampling(info.scheduler_config)
    return finish(load_pipeline(info.folder, dtype, info.variant), info, model_sampling, device, compile, info.files)


def config_folder_weights(folder: Path) -> dict[str, Path]:
    """The weights files of every component but the transformer in a single file's config folder, labelled as in a
    folder's `files`; ValueError naming the folder and the files looked for when one is missing."""
    found: dict[str, Path] = {}
    for component, stems in COMPONENTS.items():
        if stems is not None and component not in SINGLE_FILE_COMPONENTS:
            found.update({f"{component}/{file.name}": file for file in weights_files(folder / component, stems)})
    return found


def load_single_file(path: Path, info: FolderInfo, dtype: torch.dtype, device: torch.device,
                     compile: bool = False) -> Flux:
    """One transformer `.safetensors` (diffusers' parameter names, or BFL's original ones, which diffusers converts
    for the full-size Flux.1) with the transformer's config and every other component from the local folder
    `info.folder`, whose weights are checked before anything loads; nothing is downloaded."""
    model_sampling = scheduler_sampling(info.scheduler_config)
    weights = config_folder_weights(info.folder)
    variant = "fp16" if any(".fp16." in file.name for file in weights.values()) else None
    silence_library_notices()
    from diffusers import FluxTransformer2DModel

    with no_loading_bars():
        transformer = FluxTransformer2DModel.from_single_file(str(path), config=str(info.folder),
                                                              subfolder="transformer", dtype=dtype,
                                                              local_files_only=True)
    pipeline = load_pipeline(info.folder, dtype, variant, transformer)
    files = {label: file for label, file in info.files.items() if not label.startswith("transformer/")}
    files.update(weights)
    files.update({"transformer/config.json": info.folder / "transformer" / "config.json", "checkpoint": path})
    return finish(pipeline, info, model_sampling, device, compile, files)


MODEL_CLASS = Flux
