"""A sampler as configured in `conf/sampler/`: names, prompt, CFG, its LoRAs, Flux's guidance and the optional
per-sampler steps/denoise."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from ..models.lora import LoraSpec, check_loras
from ..sampling import KSampler
from ..sampling.ksampler import check_denoise
from ..sampling.samplers import check_sampler
from ..sampling.schedules import check_scheduler, check_steps
from ..validation import check_bounded, check_text


@dataclass(frozen=True)
class SamplerSpec:
    """Everything that makes a KSampler once a model is loaded: `KSampler(model.denoiser(prompt, negative_prompt,
    cfg, loras=loras), sampler, scheduler)`. Checked when instantiated, before any model loads. `loras`: the LoRA
    files active in this sampler's forwards (`models.lora.check_loras`: paths or `{path, scale}`; left out of the
    repr, so fingerprints of specs without LoRAs stay as they were: `runner.items.inputs_fingerprint` hashes the
    files). `guidance`: Flux's distilled guidance value (None: the model's default, 3.5; a model without it refuses
    one). `steps` and `denoise` only concern the upscaler's passes (None: the upscaler's own values)."""

    sampler: str
    scheduler: str
    cfg: float
    prompt: str
    negative_prompt: str = ""
    steps: int | None = None
    denoise: float | None = None
    loras: tuple[LoraSpec, ...] = field(default=(), repr=False)
    guidance: float | None = None

    def __post_init__(self) -> None:
        check_sampler(self.sampler)
        check_scheduler(self.scheduler)
        check_bounded(self.cfg, "cfg")
        for key in ("prompt", "negative_prompt"):
            check_text(getattr(self, key), key)
        if self.steps is not None:
            object.__setattr__(self, "steps", check_steps(self.steps))
        if self.denoise is not None:
            object.__setattr__(self, "denoise", check_denoise(self.denoise))
        object.__setattr__(self, "loras", check_loras(self.loras, "loras"))
        if self.guidance is not None:
            object.__setattr__(self, "guidance", float(check_bounded(self.guidance, "guidance")))

    def check_model(self, denoiser: Callable, kind: str, where: str = "") -> None:
        """ValueError naming `<where>.loras` / `<where>.guidance` when a model's `denoiser` method (of a `kind`
        model) takes no such option; runs before the model loads (`ModelSource.check_samplers`)."""
        options = inspect.signature(denoiser).parameters
        prefix = f"{where}." if where else ""
        if self.loras and "loras" not in options:
            raise ValueError(f"{prefix}loras: the {kind} model takes no LoRA (LoRAs need a diffusers model, "
                             "model=diffusers); remove the sampler's loras")
        if self.guidance is not None and "guidance" not in options:
            raise ValueError(f"{prefix}guidance: the {kind} model has no distilled guidance (Flux.1 dev has); remove "
                             "the sampler's guidance or use cfg")

    def build(self, model, height: int | None = None, width: int | None = None) -> KSampler:
        """The KSampler of this spec on `model`'s network and model sampling (its LoRAs loaded into the model once;
        a model whose sampling depends on the canvas, Flux, samples a `height` x `width` px canvas with that
        canvas's); ValueError naming `loras` or `guidance` when the model takes none."""
        self.check_model(model.denoiser, getattr(model, "kind", type(model).__name__))
        options: dict = {"loras": self.loras} if self.loras else {}
        if self.guidance is not None:
            options["guidance"] = self.guidance
        if height is not None and callable(getattr(model, "model_sampling_for", None)):
            options.update(height=height, width=width)
        denoiser = model.denoiser(self.prompt, self.negative_prompt, self.cfg, **options)
        return KSampler(denoiser, self.sampler, self.scheduler)
