"""A sampler as configured in `conf/sampler/`: names, prompt, CFG, its LoRAs and the optional per-sampler
steps/denoise."""

from __future__ import annotations

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
    files). `steps` and `denoise` only concern the upscaler's passes (None: the upscaler's own values)."""

    sampler: str
    scheduler: str
    cfg: float
    prompt: str
    negative_prompt: str = ""
    steps: int | None = None
    denoise: float | None = None
    loras: tuple[LoraSpec, ...] = field(default=(), repr=False)

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

    def build(self, model) -> KSampler:
        """The KSampler of this spec on `model`'s network and model sampling (its LoRAs loaded into the model once);
        ValueError naming `loras` when the model takes none (the world: no LoRA-capable network)."""
        if self.loras and not callable(getattr(model, "load_loras", None)):
            raise ValueError(f"loras: the {getattr(model, 'kind', type(model).__name__)} model takes no LoRA (LoRAs "
                             "need a diffusers model, model=diffusers); remove the sampler's loras")
        options = {"loras": self.loras} if self.loras else {}
        denoiser = model.denoiser(self.prompt, self.negative_prompt, self.cfg, **options)
        return KSampler(denoiser, self.sampler, self.scheduler, model_sampling=model.model_sampling)
