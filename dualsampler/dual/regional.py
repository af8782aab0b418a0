"""The regional route (SPEC §6, the Impact Pack's RegionalSampler, which today's TwoAdvancedSamplersForMask calls)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor

from ..masks import grow_mask
from ..sampling.ksampler import KSampler, slice_schedule
from ..sampling.noise import Seed
from ..sampling.recovery import Recovery, recovered_step
from .base import RegionRun, RegionSampler, run_slice_x0, union_mask, warn_if_covering
from ..validation import MAX_STEPS, check_bool, check_bounded, check_choice, check_int

SECOND_SEED_MODES = ("none", "fixed", "add", "subtract")
SEED_WRAP = 1125899906842624  # 2**50, where upstream wraps seed +/- second seed (once)
SEED_LIMIT = 2**64


def second_seed(seed: Seed, value: int, mode: str) -> Seed:
    """The seed of the steps after the base-only ones, per element of a seed list: unchanged (`none`), `value`
    (`fixed`), `seed + value` less 2^50 when that exceeds 2^50 (`add`), or `seed - value` plus 2^50 when that is
    below 0 (`subtract`): upstream's arithmetic, which wraps once (2^50 + 1 stays 2^50 + 1; 2^50 + 5 gives 5).
    A result outside [0, 2^64), which no generator takes, raises ValueError naming second_seed."""
    seeds = [seed] if isinstance(seed, int) else list(seed)
    if mode == "none":
        out = seeds
    elif mode == "fixed":
        out = [value] * len(seeds)
    else:
        out = [wrap_once(s + value if mode == "add" else s - value) for s in seeds]
        bad = [s for s in out if not 0 <= s < SEED_LIMIT]
        if bad:
            raise ValueError(f"second_seed: seed {'+' if mode == 'add' else '-'} second_seed wrapped once at 2**50 "
                             f"must be in [0, 2**64), got {bad[0]} (second_seed={value})")
    return out[0] if isinstance(seed, int) else out


def wrap_once(value: int) -> int:
    """Upstream's single wrap: `value - 2^50` above 2^50, `value + 2^50` below 0, else `value`."""
    if value > SEED_WRAP:
        return value - SEED_WRAP
    if value < 0:
        return value + SEED_WRAP
    return value


class StepSchedule:
    """A sampler's schedule and its recovery sampler's, computed once per run and sliced per step."""

    def __init__(self, sampler: KSampler, recovery: Recovery, adv_steps: int) -> None:
        self.sampler = sampler
        self.recovery = recovery
        self.sigmas = sampler.sigmas(adv_steps)
        self.recovery_sampler = recovery.recovery_sampler(sampler)
        self.recovery_sigmas = None if self.recovery_sampler is None else self.recovery_sampler.sigmas(adv_steps)

    def step(self, add_noise: bool, seed: Seed, x: Tensor, i: int, mask: Tensor, callback,
             recovery_add_noise: bool | None = None) -> Tensor:
        """Step `i -> i+1` (leftover noise kept) under `mask`, with the recovery pass where it applies
        (`recovery_add_noise`: its own add_noise, default `add_noise`)."""
        recovery_sigmas = None if self.recovery_sigmas is None else slice_schedule(self.recovery_sigmas, i, i + 1, True)
        return recovered_step(self.sampler, self.recovery, self.recovery_sampler, add_noise, seed, x,
                              slice_schedule(self.sigmas, i, i + 1, True), recovery_sigmas, mask, callback,
                              self.sigmas, self.recovery_sigmas, recovery_add_noise)


@dataclass
class Regional(RegionSampler):
    """1. `base_only_steps` steps of the base sampler over the whole latent (leftover noise kept when
    `second_seed_mode` is `none`; otherwise they finish to sigma 0, returning their last x0 as upstream's
    wrapper does, and noise is added again with the second seed).
    2. Each remaining step: the base sampler where the union of the ceiled region masks is 0, then each region's
    sampler inside its mask grown by `overlap_factor` latent pixels (the unit of every algorithm), extended by the
    mask's soft resize to the latent; with `overlap_at_mask_resolution` (upstream's RegionalSampler) the mask grows
    by `overlap_factor` pixels at its own resolution instead, 4x fewer latent pixels for a mask at image size on a
    4x VAE. Masks reach the latent by a bilinear (soft) resize, so every latent pixel is denoised by some sampler
    at every step. With
    `restore_latent` each region's result is composited into the running latent with its grown mask.
    Samplers that lose state between per-step calls (SDE, UniPC) get the `recovery` pass.
    `base_only_steps == steps` is a base-only run (as upstream). Noise is added once, at the first step after the
    base-only ones; with the base sampler's `upstream_compat` the base sampler re-adds that same noise at every
    step when it was added there (`base_only_steps == 0` or a second seed), as upstream's RegionalSampler does
    (it hands its custom noise to every base step, a bug)."""

    overlap_factor: int = 10
    base_only_steps: int = 1
    restore_latent: bool = True
    recovery: Recovery = field(default_factory=Recovery)
    second_seed: int = 0
    second_seed_mode: str = "none"
    overlap_at_mask_resolution: bool = False
    name: ClassVar[str] = "regional"

    def __post_init__(self) -> None:
        self.overlap_factor = check_bounded(self.overlap_factor, "overlap_factor")
        self.base_only_steps = check_int(self.base_only_steps, "base_only_steps", 0, MAX_STEPS)
        self.restore_latent = check_bool(self.restore_latent, "restore_latent")
        if isinstance(self.recovery, dict):
            unknown = [key for key in self.recovery if key not in Recovery.__dataclass_fields__]
            if unknown:
                raise ValueError(f"recovery: unknown key {unknown[0]!r}; its keys are "
                                 f"{', '.join(Recovery.__dataclass_fields__)}")
            self.recovery = Recovery(**self.recovery)
        if not isinstance(self.recovery, Recovery):
            raise ValueError(f"recovery must be a Recovery or its settings as a dict, got {self.recovery!r}")
        check_choice(self.second_seed_mode, "second_seed_mode", SECOND_SEED_MODES)
        self.second_seed = check_int(self.second_seed, "second_seed", 0, 2**64 - 1)
        if not isinstance(self.overlap_at_mask_resolution, bool):
            raise ValueError(f"overlap_at_mask_resolution must be true or false, got {self.overlap_at_mask_resolution!r}")

    @classmethod
    def inert(cls, settings: Mapping[str, Any]) -> frozenset[str]:
        """`second_seed` when `second_seed_mode` is `none` (the later steps keep the run's seed)."""
        return frozenset({"second_seed"}) if settings.get("second_seed_mode", "none") == "none" else frozenset()

    def check_schedule(self, steps: int) -> None:
        if self.base_only_steps > steps:
            raise ValueError(f"base_only_steps must be in [0, steps] = [0, {steps}] (steps a base-only run), "
                             f"got {self.base_only_steps}")

    def _sample(self, run: RegionRun) -> Tensor:
        self.check_schedule(run.steps)
        covered = union_mask(run).ceil()
        inverse = run.at_latent((covered == 0).to(run.latent.dtype))
        grown = [self.grown(run, region.mask) for region in run.regions]
        for g in grown:
            warn_if_covering(g, "overlap_factor")
        base = StepSchedule(run.base, self.recovery, run.adv_steps)
        regions = [StepSchedule(r.sampler, self.recovery, run.adv_steps) for r in run.regions]
        later_seed = second_seed(run.seed, self.second_seed, self.second_seed_mode)

        x = run.latent
        leftover = self.second_seed_mode == "none"
        if self.base_only_steps > 0:
            x = self._base_only(run, x, leftover, base.sigmas)
        add_noise = not (self.base_only_steps > 0 and leftover)
        renoise = add_noise and run.base.upstream_compat
        for i in range(run.start + self.base_only_steps, run.adv_steps):
            x = base.step(add_noise or renoise, later_seed, x, i, inverse, run.report(i, "base", inverse), add_noise)
            for region, g, role in zip(regions, grown, run.roles()[1:]):
                out = region.step(False, later_seed, x, i, g, run.report(i, role, g))
                x = x * (1 - g) + out * g if self.restore_latent else out
            add_noise = False
        return x

    def grown(self, run: RegionRun, mask: Tensor) -> Tensor:
        """A region's mask for its sampler at the latent's size: grown by `overlap_factor` latent pixels and
        extended by its soft resize (so it and the base's mask cover every pixel), or grown at the mask's own
        resolution and then resized (`overlap_at_mask_resolution`, upstream)."""
        if self.overlap_at_mask_resolution:
            return run.at_latent(grow_mask(mask, *mask.shape[-2:], self.overlap_factor))
        grown = grow_mask(mask, *run.size, self.overlap_factor).to(device=run.latent.device, dtype=run.latent.dtype)
        soft = run.at_latent(mask)
        return torch.maximum(soft, grown.expand_as(soft))

    def _base_only(self, run: RegionRun, x: Tensor, leftover: bool, full: Tensor) -> Tensor:
        """The first `base_only_steps` steps of the base sampler alone, over the whole latent (`full`: its schedule)."""
        sigmas = slice_schedule(full, run.start, run.start + self.base_only_steps, leftover)
        return run_slice_x0(run.base, x, run.seed, sigmas, None, run.report(None, "base", None, run.start), not leftover,
                            full)
