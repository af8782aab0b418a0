"""One sampling pass of an upscale iteration: a core KSampler plus the seed, steps, denoise and cfg it runs with."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import Tensor

from dualsampler.dual.whole_run import run_to_zero
from dualsampler.sampling import KSampler
from dualsampler.sampling.noise import Seed, check_seed
from dualsampler.sampling.sample import check_latent
from dualsampler.validation import check_bounded, check_schedule_length


def check_pass_settings(steps: int, denoise: float, cfg: float | None = None) -> None:
    """Raise ValueError unless `steps` and `denoise` can run as a KSampler's (`check_schedule_length`: the schedule
    a partial denoise cuts its steps from is bounded like `steps`) and `cfg` is None or within `BOUNDS['cfg']`."""
    check_schedule_length(steps, denoise)
    if cfg is not None:
        check_bounded(cfg, "cfg")


@dataclass(frozen=True)
class UpscaleSampler:
    """`ksampler.sample(latent, seed, steps, denoise)` with the denoiser's guidance set to `cfg` (None: keep it).

    Hooks return modified copies (`dataclasses.replace`) per iteration; the KSampler itself is never mutated.
    """

    ksampler: KSampler
    seed: Seed
    steps: int
    denoise: float
    cfg: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.ksampler, KSampler):
            raise ValueError(f"ksampler must be a dualsampler.sampling.KSampler, got {type(self.ksampler).__name__}")
        check_pass_settings(self.steps, self.denoise, self.cfg)
        seeds = self.seed if isinstance(self.seed, (list, tuple)) else None
        object.__setattr__(self, "seed", check_seed(self.seed, 1 if seeds is None else len(seeds)))
        object.__setattr__(self, "steps", int(self.steps))  # 8.0 from a config runs as 8
        object.__setattr__(self, "denoise", float(self.denoise))
        if self.cfg is not None and not hasattr(self.ksampler.denoiser, "cfg"):
            raise ValueError("cfg can only be set when the KSampler's denoiser has a `cfg` attribute (ModelDenoiser)")

    @property
    def base_cfg(self) -> float:
        """The guidance this pass runs with: `cfg`, else the denoiser's own `cfg`."""
        if self.cfg is not None:
            return self.cfg
        if not hasattr(self.ksampler.denoiser, "cfg"):
            raise ValueError("a cfg schedule needs a denoiser with a `cfg` attribute (ModelDenoiser) or an explicit cfg")
        return float(self.ksampler.denoiser.cfg)

    def resolved(self) -> KSampler:
        """The KSampler to run: the original one, or a copy whose denoiser is a shallow copy with `cfg` set."""
        if self.cfg is None or self.cfg == self.ksampler.denoiser.cfg:
            return self.ksampler
        denoiser = copy.copy(self.ksampler.denoiser)
        denoiser.cfg = self.cfg
        return KSampler(denoiser, self.ksampler.sampler, self.ksampler.scheduler, self.ksampler.model_sampling,
                        self.ksampler.upstream_compat)

    def sample(self, latent: Tensor) -> Tensor:
        """Re-noise `latent` and sample the last `steps` of the `int(steps / denoise)`-step schedule to sigma 0, as
        the Impact Pack's KSamplerWrapper does: an SDE sampler's Brownian tree spans that whole schedule (not the
        slice), and the result is the last step's x0 prediction (not the final x; they differ for samplers whose
        last step does not land on the prediction: dpm_fast, dpm_adaptive, uni_pc, uni_pc_bh2)."""
        check_latent(latent)
        seed = check_seed(self.seed, latent.shape[0])
        return run_to_zero(self.resolved(), latent, seed, self.steps, self.denoise, None, None, True)
