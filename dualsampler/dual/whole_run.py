"""Whole runs one after the other (SPEC §5, the Impact Pack's TwoSamplersForMask)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

from torch import Tensor

from ..sampling.ksampler import KSampler, denoise_to_steps, slice_schedule
from ..sampling.noise import Seed
from ..sampling.samplers import Callback
from .base import BASE_SCHEDULE, REGION_SCHEDULES, Region, RegionRun, RegionSampler, run_slice_x0, union_inverse
from ..validation import check_bool
from .checks import check_settings


def run_to_zero(
    sampler: KSampler,
    latent: Tensor,
    seed: Seed,
    steps: int,
    denoise: float,
    mask: Tensor,
    callback: Callback | None,
    return_x0: bool,
) -> Tensor:
    """`sampler.sample(latent, seed, steps, denoise, mask)` without its checks (see `run_slice_x0`)."""
    adv_steps, start = denoise_to_steps(steps, denoise)
    full = sampler.sigmas(adv_steps)
    return run_slice_x0(sampler, latent, seed, slice_schedule(full, start, adv_steps, False), mask, callback, return_x0,
                        full)


@dataclass
class WholeRun(RegionSampler):
    """The base sampler's whole run with `noise_mask = (union != 1)`, then each region's sampler's whole run over
    that result with its mask (each adds its own seeded noise). With `return_x0` (upstream's wrapper, the default)
    each run returns its last x0 prediction, which differs from its final x only for samplers whose last step does
    not land on the prediction (uni_pc). The two-sampler call also takes the mask sampler's own `mask_seed`,
    `mask_steps`, `mask_denoise`, and `sample_regions` each region's own `region_settings` (the upscaler's
    per-sampler hooks set them)."""

    return_x0: bool = True
    name: ClassVar[str] = "whole_run"
    consumes: ClassVar[tuple[str, ...]] = BASE_SCHEDULE + REGION_SCHEDULES  # no overlap: the masks never grow

    def __post_init__(self) -> None:
        check_bool(self.return_x0, "return_x0")

    def __call__(self, latent: Tensor, *, base_sampler: KSampler, mask_sampler: KSampler, mask: Tensor, seed: Seed,
                 steps: int, denoise: float = 1.0, callback: Callback | None = None, mask_seed: Seed | None = None,
                 mask_steps: int | None = None, mask_denoise: float | None = None) -> Tensor:
        run = self.prepare(latent, base_sampler, [Region(mask, mask_sampler)], seed, steps, denoise, callback)
        mask_seed = seed if mask_seed is None else mask_seed
        mask_steps = steps if mask_steps is None else mask_steps
        mask_denoise = denoise if mask_denoise is None else mask_denoise
        return self._run(run, [check_settings(latent, mask_seed, mask_steps, mask_denoise, prefix="mask_")])

    def sample_regions(self, latent: Tensor, *, base_sampler: KSampler, regions: Sequence[Region], seed: Seed,
                       steps: int, denoise: float = 1.0, callback: Callback | None = None,
                       region_settings: Sequence[tuple[Seed, int, float]] | None = None) -> Tensor:
        """`RegionSampler.sample_regions`; `region_settings`: each region's own `(seed, steps, denoise)` for its
        run, one per region in order (None: every region runs with the base's `seed`, `steps`, `denoise`)."""
        run = self.prepare(latent, base_sampler, regions, seed, steps, denoise, callback)
        if region_settings is None:
            return self._sample(run)
        if not isinstance(region_settings, (list, tuple)) or len(region_settings) != len(run.regions):
            raise ValueError(f"region_settings must be a list of {len(run.regions)} (seed, steps, denoise), one per "
                             f"region, got {region_settings!r}")
        checked = []
        for k, settings in enumerate(region_settings):
            if not isinstance(settings, (list, tuple)) or len(settings) != 3:
                raise ValueError(f"region_settings[{k}] must be (seed, steps, denoise), got {settings!r}")
            prefix = "mask_" if len(run.regions) == 1 else f"regions[{k}]."
            checked.append(check_settings(latent, *settings, prefix=prefix))
        return self._run(run, checked)

    def _sample(self, run: RegionRun) -> Tensor:
        return self._run(run, [(run.seed, run.steps, run.denoise)] * len(run.regions))

    def _run(self, run: RegionRun, settings: Sequence[tuple[Seed, int, float]]) -> Tensor:
        """The base run, then each region's run with its own `(seed, steps, denoise)` from `settings`."""
        inverse = union_inverse(run)
        x = run_to_zero(run.base, run.latent, run.seed, run.steps, run.denoise, inverse,
                        run.report(None, "base", inverse, run.start), self.return_x0)
        for region, role, (seed, steps, denoise) in zip(run.regions, run.roles()[1:], settings):
            m = run.at_latent(region.mask)
            offset = denoise_to_steps(steps, denoise)[1]
            x = run_to_zero(region.sampler, x, seed, steps, denoise, m, run.report(None, role, m, offset), self.return_x0)
        return x
