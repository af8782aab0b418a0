"""A sampler as configured in `conf/sampler/`: names, prompt, CFG and the optional per-sampler steps/denoise."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..sampling import KSampler
from ..sampling.ksampler import check_denoise
from ..sampling.samplers import check_sampler
from ..sampling.schedules import check_scheduler, check_steps

MAX_CFG = 100.0  # upstream's widget range for cfg


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
        if isinstance(self.cfg, bool) or not isinstance(self.cfg, (int, float)) or not (
                math.isfinite(self.cfg) and 0 <= self.cfg <= MAX_CFG):
            raise ValueError(f"cfg must be a finite number in [0, {MAX_CFG:g}], got {self.cfg!r}")
        for key in ("prompt", "negative_prompt"):
            if not isinstance(getattr(self, key), str):
                raise ValueError(f"{key} must be a string, got {getattr(self, key)!r}")
        if self.steps is not None:
            check_steps(self.steps)
        if self.denoise is not None:
            check_denoise(self.denoise)

    def build(self, model) -> KSampler:
        """The KSampler of this spec on `model`'s UNet and model sampling."""
        denoiser = model.denoiser(self.prompt, self.negative_prompt, self.cfg)
        return KSampler(denoiser, self.sampler, self.scheduler, model_sampling=model.model_sampling)
