"""KSampler: one sampler over a slice of a schedule, with added noise and a noise mask (SPEC §4)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .model_sampling import ModelSampling
from .noise import NoiseStream, Seed, check_seed
from .noise_mask import MaskedDenoiser, latent_noise_mask
from .sample import check_latent, integrate
from .samplers import DISCARD_PENULTIMATE_SIGMA, Callback, Denoiser, check_sampler
from .schedules import check_scheduler, check_steps, get_sigmas


def as_flag(value: bool | str, name: str) -> bool:
    """A boolean, or upstream's widget strings `enable` / `disable`."""
    if isinstance(value, str):
        if value not in ("enable", "disable"):
            raise ValueError(f"{name} must be a bool or 'enable'/'disable', got {value!r}")
        return value == "enable"
    return bool(value)


def check_denoise(denoise: float) -> None:
    if not (isinstance(denoise, (int, float)) and 0 < denoise <= 1):
        raise ValueError(f"denoise must be in (0, 1], got {denoise!r}")


def denoise_to_steps(steps: int, denoise: float) -> tuple[int, int]:
    """`denoise < 1` runs the last `steps` of a longer schedule: `(adv_steps, start) = (floor(steps/denoise), adv_steps - steps)`."""
    check_steps(steps)
    check_denoise(denoise)
    adv_steps = math.floor(steps / denoise + 1e-9)
    return adv_steps, adv_steps - steps


def slice_schedule(sigmas: Tensor, start_at_step: int, end_at_step: int, return_with_leftover_noise: bool) -> Tensor:
    """SPEC §4.1: keep `[:end+1]` (last set to 0 unless leftover noise is kept) when `end < steps`, then `[start:]`;
    `steps = len(sigmas) - 1`."""
    if end_at_step < len(sigmas) - 1:
        sigmas = sigmas[: end_at_step + 1].clone()
        if not return_with_leftover_noise:
            sigmas[-1] = 0
    return sigmas[start_at_step:]


class KSampler:
    """A named sampler and schedule around a denoiser; `model_sampling` defaults to the denoiser's own."""

    def __init__(
        self,
        denoiser: Denoiser,
        sampler: str = "euler",
        scheduler: str = "normal",
        model_sampling: ModelSampling | None = None,
    ) -> None:
        check_sampler(sampler)
        check_scheduler(scheduler)
        self.denoiser = denoiser
        self.sampler = sampler
        self.scheduler = scheduler
        self.model_sampling = model_sampling or getattr(denoiser, "model_sampling", None) or ModelSampling()

    def __repr__(self) -> str:
        return f"KSampler(sampler={self.sampler!r}, scheduler={self.scheduler!r})"

    def sigmas(self, steps: int) -> Tensor:
        """`steps + 1` sigmas; for dpm_2, dpm_2_ancestral and uni_pc*, those of `steps + 1` less the penultimate."""
        if self.sampler in DISCARD_PENULTIMATE_SIGMA:
            full = get_sigmas(self.scheduler, steps + 1, self.model_sampling)
            return torch.cat([full[:-2], full[-1:]])
        return get_sigmas(self.scheduler, steps, self.model_sampling)

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
        add_noise = as_flag(add_noise, "add_noise")
        return_with_leftover_noise = as_flag(return_with_leftover_noise, "return_with_leftover_noise")
        check_steps(steps)
        check_latent(latent)
        check_seed(seed, latent.shape[0])
        if start_at_step < 0 or start_at_step >= end_at_step:
            raise ValueError(
                f"start_at_step must satisfy 0 <= start_at_step < end_at_step, got {start_at_step} and {end_at_step}"
            )
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
    ) -> Tensor:
        """`sample_advanced` over an already sliced sigma list and a mask already at the latent's size, without
        checks: for inner loops (one call per step) whose public entry checked everything once."""
        if len(sigmas) < 2:
            return latent.clone()
        sigmas = sigmas.to(latent.device)
        noise = NoiseStream(seed)(latent) if add_noise else torch.zeros_like(latent)
        x = self.model_sampling.noise_scaling(float(sigmas[0]), noise, latent)
        denoiser = self.denoiser if mask is None else MaskedDenoiser(self.denoiser, mask, latent, noise)
        out = integrate(denoiser, x, sigmas, self.sampler, seed, callback)
        if mask is not None and float(sigmas[-1]) == 0:
            out = out * mask + latent * (1 - mask)
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
        """Add seeded noise and sample the last `steps` of `floor(steps / denoise)` steps to sigma 0."""
        adv_steps, start = denoise_to_steps(steps, denoise)
        return self.sample_advanced(True, seed, adv_steps, latent, start, adv_steps, False, noise_mask, callback)
