"""KSampler: one sampler over a slice of a schedule, with added noise and a noise mask (SPEC §4).

Upstream fidelity (SPEC §10): `denoise` maps to `int(steps / denoise)` steps; under a noise mask `ddim` noises the
held region with upstream's separate draw (`randn` seeded with seed + 1); a fractional mask value m gives
`D*m + latent*(1-m)` once. Two deliberate deviations, both switched to upstream's behaviour by
`upstream_compat=True`: the latent is held exactly where the mask is 0 (upstream's uni_pc, dpm_fast and
dpm_adaptive stop above sigma 0 and leave that residual noise there), and uni_pc over a one-step sigma list takes a first-order step (upstream's order
`min(3, len(sigmas) - 2)` is 0 there and it only rescales x).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .brownian import BrownianTreeNoise
from .flow_sampling import FlowSampling
from .model_sampling import ModelSampling, check_model_sampling
from .noise import NoiseStream, Seed, check_seed
from .noise_mask import latent_noise_mask, masked_denoiser
from .sample import check_latent, check_latent_channels, counting, integrate, with_counts
from .samplers import DISCARD_PENULTIMATE_SIGMA, Callback, Denoiser, check_sampler
from .samplers.guidance import CFG_PP_SAMPLERS, require_uncond
from .samplers.uni_pc import UNI_PC_VARIANTS, upstream_one_step_uni_pc
from .schedules import check_scheduler, check_steps, schedule_sigmas
from ..validation import (MAX_STEPS, check_bool, check_bounded, check_callback, check_int, check_real,
                          check_schedule_length, check_switch)

# Samplers whose noise-masked held region is noised with a separate draw from seed + 1 (upstream runs `ddim` as
# euler with "random" inpainting noise), whatever the run's own added noise is.
RANDOM_INPAINT_NOISE = frozenset({"ddim"})
# Upstream's KSampler treats a denoise above this as a full run.
FULL_DENOISE = 0.9999
# The samplers whose Brownian tree the Impact Pack's wrappers (`impact_sampling.ksampler`) span over the whole
# schedule a slice is cut from; every other SDE sampler (dpmpp_2m_sde_heun, its _gpu variant) goes through
# ComfyUI's own sampler object, whose tree spans the slice.
SPANNED_TREE_SAMPLERS = frozenset({"dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde",
                                   "dpmpp_3m_sde_gpu"})


def check_denoise(denoise: float) -> float:
    """A finite number in (0, 1] (`BOUNDS['denoise']`; a bool is not a number) -> float."""
    return float(check_bounded(denoise, "denoise"))


def denoise_to_steps(steps: int, denoise: float) -> tuple[int, int]:
    """`denoise < 1` runs the last `steps` of a longer schedule: `(adv_steps, start) = (int(steps/denoise),
    adv_steps - steps)`, Python's int of the float quotient as upstream (14 steps at 0.56 give 24, not 25).
    The longer schedule is bounded like `steps` (`MAX_STEPS`), so a tiny denoise is refused before any work."""
    return check_schedule_length(steps, denoise)


class SpannedNoise(NoiseStream):
    """`NoiseStream(seed)` whose Brownian tree spans `span` (a longer schedule's sigmas) instead of the run's own
    sigmas: the Impact Pack's sampler wrappers seed the SDE samplers' tree over the whole schedule a slice is cut
    from, where ComfyUI's KSamplerAdvanced uses the slice."""

    def __init__(self, seed: Seed, span: Sequence[float]) -> None:
        super().__init__(seed)
        self.span = list(span)

    def brownian(self, like: Tensor, sigmas: Sequence[float], *, on_latent_device: bool = False) -> BrownianTreeNoise:
        return super().brownian(like, self.span, on_latent_device=on_latent_device)


def inpaint_seed(seed: Seed) -> Seed:
    """The seed of upstream's separate inpainting noise: seed + 1 (per element for a list of seeds), wrapped to 0
    after the largest seed 2**64 - 1 (where upstream's generator overflows)."""
    return (seed + 1) % 2**64 if isinstance(seed, int) else [(s + 1) % 2**64 for s in seed]


def inverse_noise_scaling(model_sampling: object, sigma: float, x: Tensor) -> Tensor:
    """A run's result stopped at `sigma` as a latent (the model sampling's `inverse_noise_scaling`; identity for
    one without it): a flow model's `x / (1 - sigma)`, which `noise_scaling(sigma, 0, .)` turns back into x."""
    inverse = getattr(model_sampling, "inverse_noise_scaling", None)
    return x if inverse is None else inverse(sigma, x)


def slice_schedule(sigmas: Tensor, start_at_step: int, end_at_step: int, return_with_leftover_noise: bool) -> Tensor:
    """SPEC §4.1: keep `[:end+1]` (last set to 0 unless leftover noise is kept) when `end < steps`, then `[start:]`;
    `steps = len(sigmas) - 1`."""
    if end_at_step < len(sigmas) - 1:
        sigmas = sigmas[: end_at_step + 1].clone()
        if not return_with_leftover_noise:
            sigmas[-1] = 0
    return sigmas[start_at_step:]


class KSampler:
    """A named sampler and schedule around a denoiser; `model_sampling` defaults to the denoiser's own.

    `upstream_compat=True` reproduces upstream where this toolkit deliberately deviates (module docstring)."""

    def __init__(
        self,
        denoiser: Denoiser,
        sampler: str = "euler",
        scheduler: str = "normal",
        model_sampling: ModelSampling | FlowSampling | None = None,
        upstream_compat: bool = False,
    ) -> None:
        if not callable(denoiser):
            raise ValueError(f"denoiser must be a callable denoiser(x, sigma) -> x0, got {type(denoiser).__name__}")
        check_sampler(sampler)
        check_scheduler(scheduler)
        check_model_sampling(model_sampling)
        if sampler in CFG_PP_SAMPLERS:
            require_uncond(denoiser, sampler)
        check_bool(upstream_compat, "upstream_compat")
        self.denoiser = denoiser
        self.sampler = sampler
        self.scheduler = scheduler
        self.model_sampling = model_sampling or getattr(denoiser, "model_sampling", None) or ModelSampling()
        self.upstream_compat = upstream_compat

    def __repr__(self) -> str:
        return f"KSampler(sampler={self.sampler!r}, scheduler={self.scheduler!r})"

    def sigmas(self, steps: int) -> Tensor:
        """`steps + 1` sigmas; for dpm_2, dpm_2_ancestral and uni_pc*, those of `steps + 1` less the penultimate."""
        steps = check_steps(steps)
        if self.sampler in DISCARD_PENULTIMATE_SIGMA:
            full = schedule_sigmas(self.scheduler, steps + 1, self.model_sampling)
            return torch.cat([full[:-2], full[-1:]])
        return schedule_sigmas(self.scheduler, steps, self.model_sampling)

    def slice_sigmas(self, steps: int, start_at_step: int, end_at_step: int, return_with_leftover_noise: bool) -> Tensor:
        """SPEC §4.1 over this sampler's `steps`-step schedule (see `slice_schedule`)."""
        return slice_schedule(self.sigmas(steps), start_at_step, end_at_step, return_with_leftover_noise)

    def sample_advanced(
        self,
        add_noise: bool,
        seed: Seed,
        steps: int,
        latent: Tensor,
        start_at_step: int,
        end_at_step: int,
        return_with_leftover_noise: bool,
        noise_mask: Tensor | None = None,
        callback: Callback | None = None,
        sigma_scale: float = 1.0,
    ) -> Tensor:
        """Run steps `start_at_step .. end_at_step` of a `steps`-step schedule (SPEC §4); returns a new latent.

        `sigma_scale` multiplies the sliced sigmas (upstream's sigma factor, used by the recovery modes)."""
        add_noise = check_switch(add_noise, "add_noise")
        return_with_leftover_noise = check_switch(return_with_leftover_noise, "return_with_leftover_noise")
        steps = check_steps(steps)
        check_latent(latent)
        check_latent_channels(latent, self.denoiser, "the KSampler's denoiser")
        seed = check_seed(seed, latent.shape[0])
        start_at_step = check_int(start_at_step, "start_at_step", 0, MAX_STEPS)
        end_at_step = check_int(end_at_step, "end_at_step", 0, MAX_STEPS)
        check_real(sigma_scale, "sigma_scale", 0.0, 100.0, low_open=True)
        check_callback(callback)
        if start_at_step > end_at_step:
            raise ValueError(f"start_at_step must be <= end_at_step, got {start_at_step} and {end_at_step}")
        mask = latent_noise_mask(noise_mask, latent) if noise_mask is not None else None
        sigmas = self.slice_sigmas(steps, start_at_step, end_at_step, return_with_leftover_noise)
        return self.run_slice(add_noise, seed, latent, sigmas * sigma_scale, mask, callback)

    def run_slice(
        self,
        add_noise: bool,
        seed: Seed,
        latent: Tensor,
        sigmas: Tensor,
        mask: Tensor | None = None,
        callback: Callback | None = None,
        noise_span: Tensor | None = None,
    ) -> Tensor:
        """`sample_advanced` over an already sliced sigma list and a mask already at the latent's size, without
        checks: for inner loops (one call per step) whose public entry checked everything once.

        With a mask, every model call is masked (SPEC §4.4), so a run ending at sigma 0 returns
        `D*m + latent*(1-m)`; where m is 0 the latent is then restored exactly (unless `upstream_compat`).
        `noise_span`: the whole schedule `sigmas` was cut from, over which the Impact Pack's wrappers span the
        Brownian tree of the `SPANNED_TREE_SAMPLERS` (see `SpannedNoise`); it is ignored for every other sampler,
        and by default the tree spans `sigmas`."""
        if len(sigmas) < 2:
            return latent.clone()
        sigmas = sigmas.to(latent.device)
        noise = NoiseStream(seed)(latent) if add_noise else torch.zeros_like(latent)
        x = self.model_sampling.noise_scaling(float(sigmas[0]), noise, latent)
        denoiser = self.denoiser
        if mask is not None:
            held_noise = NoiseStream(inpaint_seed(seed))(latent) if self.sampler in RANDOM_INPAINT_NOISE else noise
            denoiser = masked_denoiser(self.denoiser, mask, latent, held_noise, self.model_sampling)
        if self.upstream_compat and self.sampler in UNI_PC_VARIANTS and len(sigmas) == 2:
            counter = counting(denoiser)
            report = None if callback is None else with_counts(callback, counter, [float(s) for s in sigmas])
            out = upstream_one_step_uni_pc(counter, x, sigmas, callback=report)
        else:
            spanned = None
            if noise_span is not None and self.sampler in SPANNED_TREE_SAMPLERS:
                spanned = SpannedNoise(seed, [float(s) for s in noise_span])
            out = integrate(denoiser, x, sigmas, self.sampler, seed, callback, spanned, self.model_sampling)
        out = inverse_noise_scaling(self.model_sampling, float(sigmas[-1]), out)
        if mask is not None and float(sigmas[-1]) == 0 and not self.upstream_compat:
            out = torch.where(mask == 0, latent, out)
        return out

    def sample(
        self,
        latent: Tensor,
        seed: Seed,
        steps: int,
        denoise: float = 1.0,
        noise_mask: Tensor | None = None,
        callback: Callback | None = None,
    ) -> Tensor:
        """Add seeded noise and sample to sigma 0 (upstream's KSampler): the whole `steps`-step schedule when
        `denoise` > 0.9999, else the last `steps + 1` sigmas of the `int(steps / denoise)`-step schedule."""
        steps, denoise = check_steps(steps), check_denoise(denoise)
        check_latent(latent)
        check_latent_channels(latent, self.denoiser, "the KSampler's denoiser")
        seed = check_seed(seed, latent.shape[0])
        check_callback(callback)
        if denoise > FULL_DENOISE:
            sigmas = self.sigmas(steps)
        else:
            sigmas = self.sigmas(denoise_to_steps(steps, denoise)[0])[-(steps + 1):]
        mask = latent_noise_mask(noise_mask, latent) if noise_mask is not None else None
        return self.run_slice(True, seed, latent, sigmas, mask, callback)
