"""Recovery sampling for SDE and UniPC samplers run one step per call (the Impact Pack's regional route).

Those samplers lose their Brownian path or multistep history when every step is a fresh call, which leaves
regions under-denoised. A recovered step runs the sampler with its step's sigmas scaled by `1 - ratio`
(`ratio between`) or `1` (`ratio additional`), restores the latent outside the noise mask, then runs the
recovery sampler over the same step of its own schedule with sigmas scaled by `ratio`. `ratio additional` thus
denoises more than the schedule asks (by `ratio`); `ratio between` splits the step between the two samplers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from .ksampler import KSampler
from .noise import Seed
from .samplers import SAMPLERS, Callback

RECOVERY_MODES = ("none", "ratio additional", "ratio between")
NEEDS_RECOVERY = frozenset({"uni_pc", "uni_pc_bh2", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
                            "dpmpp_3m_sde", "dpmpp_3m_sde_gpu"})
# `auto`, as upstream: dpm_fast after UniPC and dpmpp_sde, dpmpp_2m after the multistep SDE samplers.
AUTO_AFTER_DPM_FAST = frozenset({"uni_pc", "uni_pc_bh2", "dpmpp_sde", "dpmpp_sde_gpu"})


@dataclass(frozen=True)
class Recovery:
    """`mode` in none | ratio additional | ratio between; `sampler` a sampler name or `auto`; `ratio` in [0, 1]."""

    mode: str = "ratio between"
    sampler: str = "auto"
    ratio: float = 0.3

    def __post_init__(self) -> None:
        if self.mode not in RECOVERY_MODES:
            raise ValueError(f"recovery mode must be one of {', '.join(RECOVERY_MODES)}; got {self.mode!r}")
        if self.sampler != "auto" and self.sampler not in SAMPLERS:
            raise ValueError(f"recovery sampler must be auto or one of {', '.join(SAMPLERS)}; got {self.sampler!r}")
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) or not (
                math.isfinite(self.ratio) and 0 <= self.ratio <= 1):
            raise ValueError(f"recovery ratio must be in [0, 1], got {self.ratio!r}")

    def recovery_sampler(self, sampler: KSampler) -> KSampler | None:
        """The sampler of the recovery pass after `sampler` (its denoiser, schedule, model sampling and
        `upstream_compat`), or None when it gets none."""
        if self.mode == "none" or sampler.sampler not in NEEDS_RECOVERY or self.ratio <= 0:
            return None
        name = self.sampler
        if name == "auto":
            name = "dpm_fast" if sampler.sampler in AUTO_AFTER_DPM_FAST and "dpm_fast" in SAMPLERS else "dpmpp_2m"
        return KSampler(sampler.denoiser, name, sampler.scheduler, sampler.model_sampling, sampler.upstream_compat)

    def first_scale(self, sampler: KSampler) -> float:
        """The scale of the sampler's own pass: `1 - ratio` in `ratio between` for samplers that get recovery."""
        if self.mode == "ratio between" and sampler.sampler in NEEDS_RECOVERY:
            return 1.0 - self.ratio
        return 1.0


def recovered_step(
    sampler: KSampler,
    recovery: Recovery,
    recovery_sampler: KSampler | None,
    add_noise: bool,
    seed: Seed,
    latent: Tensor,
    sigmas: Tensor,
    recovery_sigmas: Tensor | None,
    mask: Tensor,
    callback: Callback | None = None,
    noise_span: Tensor | None = None,
    recovery_noise_span: Tensor | None = None,
    recovery_add_noise: bool | None = None,
) -> Tensor:
    """One step (sliced `sigmas` of the sampler's schedule, `recovery_sigmas` of the recovery sampler's) under `mask`
    (at the latent's size), followed by the recovery pass when `recovery_sampler` is given. The spans are the
    whole (unscaled) schedules the slices come from, over which the Impact Pack seeds an SDE sampler's Brownian
    tree (`KSampler.run_slice`). `recovery_add_noise` (default: `add_noise`) adds seeded noise to the recovery
    pass's start."""
    scale = recovery.first_scale(sampler)
    if scale > 0:
        out = sampler.run_slice(add_noise, seed, latent, sigmas * scale, mask, callback, noise_span)
    else:
        out = latent
    if recovery_sampler is None or recovery_sigmas is None:
        return out
    restored = latent * (1 - mask) + out * mask
    noisy = add_noise if recovery_add_noise is None else recovery_add_noise
    return recovery_sampler.run_slice(noisy, seed, restored, recovery_sigmas * recovery.ratio, mask, callback,
                                      recovery_noise_span)
