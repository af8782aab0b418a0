"""The region-sampler seam: every algorithm is a small object configured with its own hyper-parameters and called
on a latent, a base sampler and N regions (a mask and a sampler each). Inputs are checked once, here; the
algorithms' inner loops call unchecked sampler paths with schedules computed once."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import Tensor

from ..masks import resize_mask
from ..sampling.ksampler import KSampler, denoise_to_steps
from ..sampling.noise import Seed
from ..sampling.samplers import Callback
from ..validation import check_callback
from ..sampling.sample import check_latent_channels
from .checks import check_common, check_region_list, check_region_mask, check_sampler_object


@dataclass(frozen=True)
class Region:
    """A region: its mask (1 inside; at the latent's size or an integer multiple of it) and its sampler."""

    mask: Tensor
    sampler: KSampler


@dataclass(frozen=True)
class RegionRun:
    """One checked call: masks as `[B,1,h,w]` at their own resolution, `adv_steps`/`start` from SPEC §4.5."""

    latent: Tensor
    base: KSampler
    regions: tuple[Region, ...]
    seed: Seed
    steps: int
    denoise: float
    adv_steps: int
    start: int
    callback: Callback | None

    @property
    def size(self) -> tuple[int, int]:
        return self.latent.shape[-2], self.latent.shape[-1]

    def roles(self) -> list[str]:
        """The roles reports name: `base`, then `mask` (one region) or `region<k>`."""
        return ["base"] + (["mask"] if len(self.regions) == 1 else [f"region{k}" for k in range(len(self.regions))])

    def at_latent(self, mask: Tensor) -> Tensor:
        """A mask resized bilinearly to the latent's H x W, `[B,1,H,W]` on the latent's device and dtype."""
        m = resize_mask(mask, *self.size).to(device=self.latent.device, dtype=self.latent.dtype)
        return m.expand(self.latent.shape[0], 1, *self.size)

    def report(self, step: int | None, role: str, weight: Tensor | None, offset: int = 0) -> Callback | None:
        """The run's callback with `step` (`offset` + the sampler's own `i` when None), `sampler` (the role) and
        `mask` (the latent-resolution weight this call may change, None for the whole latent) added to every report."""
        callback = self.callback
        if callback is None:
            return None
        return lambda info: callback({**info, "step": offset + info["i"] if step is None else step, "sampler": role,
                                      "mask": weight})


# A mask value this close to 1 counts as fully on: a constant-1 mask resized bilinearly with aligned corners
# comes back as 0.99999994 (1 - 2^-24) at some pixels, which upstream's exact `mask != 1` hands to the base sampler.
MASK_ON_TOLERANCE = 1e-6


def inverse_mask(mask: Tensor) -> Tensor:
    """`(mask < 1 - MASK_ON_TOLERANCE)`: 1 wherever the mask is not fully on (upstream's `mask != 1`, with float
    rounding of a resized 1 counted as on)."""
    return (mask < 1 - MASK_ON_TOLERANCE).to(mask.dtype)


def warn_if_covering(grown: Tensor, name: str) -> None:
    """Warn when a grown mask covers the whole canvas (the base sampler then keeps nothing of its own)."""
    if bool((grown >= 1).all()):
        warnings.warn(f"{name}: the grown mask covers the whole canvas; lower the overlap", stacklevel=3)


# The job settings an algorithm consumes (`RegionSampler.consumes`), beyond the prompts and cfg of the denoisers that
# every algorithm calls: a sampler's own sampler and scheduler act when it makes its own sampler calls; one
# trajectory over every denoiser integrates with the base sampler's alone; `overlap_factor` acts where masks grow.
BASE_SCHEDULE = ("base_sampler.sampler", "base_sampler.scheduler")
REGION_SCHEDULES = ("mask_sampler.sampler", "mask_sampler.scheduler")
ONE_TRAJECTORY = BASE_SCHEDULE + ("overlap_factor",)


class RegionSampler:
    """Base class: `algorithm(latent, *, base_sampler, mask_sampler, mask, seed, steps, denoise=1.0)` is the
    two-sampler form of `sample_regions(latent, *, base_sampler, regions, seed, steps, denoise=1.0)`.
    Subclasses are dataclasses whose fields are their hyper-parameters and implement `_sample(run)`."""

    name: ClassVar[str] = ""
    max_regions: ClassVar[int | None] = None
    consumes: ClassVar[tuple[str, ...]] = BASE_SCHEDULE + REGION_SCHEDULES + ("overlap_factor",)

    def __call__(
        self,
        latent: Tensor,
        *,
        base_sampler: KSampler,
        mask_sampler: KSampler,
        mask: Tensor,
        seed: Seed,
        steps: int,
        denoise: float = 1.0,
        callback: Callback | None = None,
    ) -> Tensor:
        check_sampler_object(mask_sampler, "mask_sampler")
        return self.sample_regions(latent, base_sampler=base_sampler, regions=[Region(mask, mask_sampler)],
                                   seed=seed, steps=steps, denoise=denoise, callback=callback)

    def sample_regions(
        self,
        latent: Tensor,
        *,
        base_sampler: KSampler,
        regions: Sequence[Region],
        seed: Seed,
        steps: int,
        denoise: float = 1.0,
        callback: Callback | None = None,
    ) -> Tensor:
        """Check everything once, then run the algorithm; returns a new latent."""
        return self._sample(self.prepare(latent, base_sampler, regions, seed, steps, denoise, callback))

    def prepare(
        self,
        latent: Tensor,
        base_sampler: KSampler,
        regions: Sequence[Region],
        seed: Seed,
        steps: int,
        denoise: float,
        callback: Callback | None,
    ) -> RegionRun:
        seed, steps, denoise = check_common(latent, seed, steps, denoise)
        check_callback(callback)
        check_sampler_object(base_sampler, "base_sampler")
        check_latent_channels(latent, base_sampler.denoiser, "base_sampler")
        regions = check_region_list(regions)
        if self.max_regions is not None and len(regions) > self.max_regions:
            raise ValueError(f"{type(self).__name__} takes at most {self.max_regions} region(s), got {len(regions)}")
        checked = []
        for k, region in enumerate(regions):
            name = "mask" if len(regions) == 1 else f"regions[{k}].mask"
            sampler_name = "mask_sampler" if len(regions) == 1 else f"regions[{k}].sampler"
            if not isinstance(region, Region):
                raise ValueError(f"regions[{k}] must be a dualsampler.dual.Region(mask, sampler), got {region!r}")
            check_sampler_object(region.sampler, sampler_name)
            check_latent_channels(latent, region.sampler.denoiser, sampler_name)
            checked.append(Region(check_region_mask(region.mask, latent, name).to(latent.device), region.sampler))
        adv_steps, start = denoise_to_steps(steps, denoise)
        return RegionRun(latent, base_sampler, tuple(checked), seed, steps, denoise, adv_steps, start, callback)

    def check_schedule(self, steps: int) -> None:
        """Raise ValueError when the algorithm's settings cannot run a `steps`-step schedule (none by default)."""

    def _sample(self, run: RegionRun) -> Tensor:
        raise NotImplementedError

    @classmethod
    def inert(cls, settings: Mapping[str, Any]) -> frozenset[str]:
        """Its hyper-parameters that do not act given the others' values in `settings` (its fields, as the config
        or `asdict` holds them): left out of the job's identity and of `settings()`. None by default."""
        return frozenset()

    def settings(self) -> dict[str, Any]:
        """The algorithm's name and the hyper-parameters that act (what results record)."""
        fields = asdict(self)  # type: ignore[call-overload]
        return {"algorithm": self.name, **{k: v for k, v in fields.items() if k not in self.inert(fields)}}


def union_mask(run: RegionRun) -> Tensor:
    """The pixelwise maximum of the region masks, at the first region mask's resolution."""
    height, width = run.regions[0].mask.shape[-2:]
    masks = [resize_mask(r.mask, height, width).expand(run.latent.shape[0], -1, -1, -1) for r in run.regions]
    return torch.stack(masks).amax(0)


def union_inverse(run: RegionRun) -> Tensor:
    """`(union of the region masks != 1)` at the latent's size: where the base sampler works."""
    return run.at_latent(inverse_mask(union_mask(run)))


def run_slice_x0(
    sampler: KSampler,
    latent: Tensor,
    seed: Seed,
    sigmas: Tensor,
    mask: Tensor | None,
    callback: Callback | None,
    return_x0: bool,
    noise_span: Tensor | None = None,
) -> Tensor:
    """`sampler.run_slice` with seeded noise added; with `return_x0` the last step's (masked) x0 prediction instead
    of the final x, as the Impact Pack's sampler wrapper returns from a call that ends at sigma 0. `noise_span`:
    the whole schedule `sigmas` was cut from (the wrapper's SDE Brownian tree spans it)."""
    if not return_x0:
        return sampler.run_slice(True, seed, latent, sigmas, mask, callback, noise_span)
    last: dict[str, Tensor] = {}

    def keep(info: dict[str, Any]) -> None:
        last["x0"] = info["denoised"]
        if callback is not None:
            callback(info)

    out = sampler.run_slice(True, seed, latent, sigmas, mask, keep, noise_span)
    return last.get("x0", out)
