"""A sampler as configured in `conf/sampler/`: names, prompt, CFG and the optional per-sampler steps/denoise."""

from __future__ import annotations

from dataclasses import dataclass

from ..sampling import KSampler


@dataclass(frozen=True)
class SamplerSpec:
    """Everything that makes a KSampler once a model is loaded: `KSampler(world.denoiser(prompt, negative_prompt, cfg), ...)`.

    `steps` and `denoise` only concern the upscaler's passes (None: the upscaler's own values).
    """

    sampler: str
    scheduler: str
    cfg: float
    prompt: str
    negative_prompt: str = ""
    steps: int | None = None
    denoise: float | None = None

    def build(self, world) -> KSampler:
        """The KSampler of this spec on `world`'s UNet and model sampling."""
        denoiser = world.denoiser(self.prompt, self.negative_prompt, self.cfg)
        return KSampler(denoiser, self.sampler, self.scheduler, model_sampling=world.model_sampling)
