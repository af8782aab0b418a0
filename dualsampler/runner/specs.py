"""A sampler as configured in `conf/sampler/`: names, prompt, CFG and the optional per-sampler steps/denoise."""

from __future__ import annotations

from dataclasses import dataclass

from ..sampling import KSampler
from ..sampling.ksampler import check_denoise
from ..sampling.samplers import check_sampler
from ..sampling.schedules import check_scheduler, check_steps
from ..validation import check_bounded, check_text


@dataclass(frozen=True)
class SamplerSpec:
    """Everything that makes a KSampler once a model is loaded: `KSampler(model.denoiser(prompt, negative_prompt,
    cfg), sampler, scheduler)`. Checked when instantiated, before any model loads. `steps` and `denoise` only
    concern the upscaler's passes (None: the upscaler's own values)."""

    sampler: str
    scheduler: str
    cfg: float
    prompt: str
    negative_prompt: str = ""
    steps: int | None = None
    denoise: float | None = None

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

    def build(self, model) -> KSampler:
        """The KSampler of this spec on `model`'s UNet and model sampling."""
        denoiser = model.denoiser(self.prompt, self.negative_prompt, self.cfg)
        return KSampler(denoiser, self.sampler, self.scheduler, model_sampling=model.model_sampling)
