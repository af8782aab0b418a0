"""TwoSamplersForMaskUpscaler (SPEC §8): each iteration upscales through pixel space, then re-samples the
latent with the base sampler outside the mask(s) and each region's sampler inside its mask, or, on full-sample
iterations, with the base sampler and then the full sampler over the whole latent."""

from __future__ import annotations

from collections.abc import Sequence
from time import perf_counter

import torch
import torch.nn.functional as F
from torch import Tensor

from dualsampler.dual import Region, WholeRun, two_samplers_for_mask
from dualsampler.masks import as_mask_batch
from dualsampler.upscale.hooks import UpscaleHook
from dualsampler.validation import MAX_FACTOR, check_bool, check_real
from dualsampler.upscale.pixel_upscale import PixelUpscaler
from dualsampler.upscale.sampler_spec import UpscaleSampler
from dualsampler.upscale.schedules import check_full_sample_schedule, is_full_sample_time
from dualsampler.upscale.upscale_models import UpscaleModel
from dualsampler.upscale.vae_codec import check_tile_size, vae_factor


def _check_hook(name: str, hook: UpscaleHook | None) -> UpscaleHook:
    if hook is None:
        return UpscaleHook()
    if not isinstance(hook, UpscaleHook):
        raise ValueError(f"{name} must be an UpscaleHook or None, got {type(hook).__name__}")
    return hook


def _check_sampler(name: str, sampler: UpscaleSampler | None, optional: bool = False) -> None:
    if sampler is None and optional:
        return
    if not isinstance(sampler, UpscaleSampler):
        raise ValueError(f"{name} must be an UpscaleSampler, got {type(sampler).__name__}")


def _check_extra_regions(extra_regions: Sequence[tuple[UpscaleSampler, Tensor]],
                         upstream_compat: bool) -> list[tuple[UpscaleSampler, Tensor]]:
    """Each further region as (its UpscaleSampler, its mask as `[B, 1, H, W]`); none under `upstream_compat`."""
    if not isinstance(extra_regions, (list, tuple)):
        raise ValueError(f"extra_regions must be a list of (UpscaleSampler, mask) pairs, "
                         f"got {type(extra_regions).__name__}")
    if extra_regions and upstream_compat:
        raise ValueError("extra_regions: upstream's two-sampler upscaler takes one region; upstream_compat=True "
                         f"takes no extra region, got {len(extra_regions)}")
    checked = []
    for k, region in enumerate(extra_regions):
        if not isinstance(region, (list, tuple)) or len(region) != 2:
            raise ValueError(f"extra_regions[{k}] must be a pair (UpscaleSampler, mask), got {region!r}")
        _check_sampler(f"extra_regions[{k}] sampler", region[0])
        checked.append((region[0], as_mask_batch(region[1], f"extra_regions[{k}] mask")))
    return checked


def mask_for_latent(mask: Tensor, latent: Tensor) -> Tensor:
    """The mask resized bilinearly with aligned corners (as upstream) to the latent's H x W, `[B, 1, h, w]`."""
    return F.interpolate(mask.to(latent), size=tuple(latent.shape[-2:]), mode="bilinear", align_corners=True)


def upstream_mask_for_latent(mask: Tensor, latent: Tensor) -> Tensor:
    """What upstream's core samples with: the first mask `[H, W]` viewed as `[1, H, W, 1]` and resized (aligned
    corners) to the latent's `h x w`, so its channel r is row r of the mask (W values stretched along the
    latent's height, constant along its width); batch element b gets channel `b mod H`. `[B, 1, h, w]`."""
    rows = mask[0, 0].to(latent)
    stretched = F.interpolate(rows[None, :, :, None], size=tuple(latent.shape[-2:]), mode="bilinear",
                              align_corners=True)[0]
    index = torch.arange(latent.shape[0]) % rows.shape[0]
    return stretched[index, None]


class TwoSamplersForMaskUpscaler:
    """Upscaler for `iterative_upscale`: pixel-space upscale, then two-sampler (or full) re-sampling.

    Regions: (`mask_sampler`, `mask`) is the first region, `extra_regions` the 2nd..Nth as (UpscaleSampler, mask)
    pairs (an extension of upstream's node, which takes one; without them it is that node). A masked iteration
    runs the base pass with the noise mask `(union of the masks != 1)`, then each region's pass over its own mask
    in region order, each with its own hooked seed, steps, denoise and cfg (`WholeRun.sample_regions`); `hook_mask`
    sets every region's pass. Full-sample iterations ignore the regions (base pass, then the full sampler).

    `upstream_compat=True` reproduces upstream's `full_sample_schedule` arithmetic (see `schedules`), its
    choice of the pixel-stage hook (`hook_mask` when an upscale model is given; by default the pixel stages
    post_decode, post_upscale, post_encode: noise injection always use `hook_base`), its resize to the floored
    size and crop (`PixelUpscaler`), ComfyUI's 8-bit lanczos and unclamped bicubic (`resize_images`) and the mask
    its masked iterations use (`upstream_mask_for_latent`: the mask's first row); upstream's hooks never see the
    iterations' `noise_mask` (the encoder's fresh latent carries none), so with the flag it masks no injected noise.
    Every sampling pass runs as the Impact Pack's wrapper does (`UpscaleSampler.sample`, `WholeRun`).
    """

    def __init__(
        self,
        scale_method: str,
        full_sample_schedule: str,
        use_tiled_vae: bool,
        base_sampler: UpscaleSampler,
        mask_sampler: UpscaleSampler,
        mask: Tensor,
        vae,
        full_sampler: UpscaleSampler | None = None,
        upscale_model: UpscaleModel | None = None,
        hook_base: UpscaleHook | None = None,
        hook_mask: UpscaleHook | None = None,
        hook_full: UpscaleHook | None = None,
        tile_size: int = 512,
        upstream_compat: bool = False,
        extra_regions: Sequence[tuple[UpscaleSampler, Tensor]] = (),
    ) -> None:
        check_full_sample_schedule(full_sample_schedule)
        check_bool(use_tiled_vae, "use_tiled_vae")
        check_bool(upstream_compat, "upstream_compat")
        _check_sampler("base_sampler", base_sampler)
        _check_sampler("mask_sampler", mask_sampler)
        _check_sampler("full_sampler", full_sampler, optional=True)
        if upscale_model is not None and not callable(upscale_model):
            raise ValueError(f"upscale_model must be callable on images or None, got {type(upscale_model).__name__}")
        extra = _check_extra_regions(extra_regions, upstream_compat)
        check_tile_size(tile_size, vae_factor(vae))
        self.pixels = PixelUpscaler(vae, scale_method, upscale_model, tile_size if use_tiled_vae else None,
                                    upstream_compat)
        self.full_sample_schedule = full_sample_schedule
        self.use_tiled_vae = use_tiled_vae
        self.tile_size = tile_size
        self.base_sampler = base_sampler
        self.mask_sampler = mask_sampler
        self.full_sampler = full_sampler
        self.mask = as_mask_batch(mask, "mask")
        self.regions: tuple[tuple[UpscaleSampler, Tensor], ...] = ((mask_sampler, self.mask), *extra)
        self.vae = vae
        self.upscale_model = upscale_model
        self.hook_base = _check_hook("hook_base", hook_base)
        self.hook_mask = _check_hook("hook_mask", hook_mask)
        self.hook_full = _check_hook("hook_full", hook_full)
        self.upstream_compat = upstream_compat
        self.timings: dict[str, float] = {}

    @property
    def vae_factor(self) -> int:
        """Pixels per latent cell."""
        return self.pixels.factor

    def is_full_sample_time(self, step_info: tuple[int, int]) -> bool:
        """Whether iteration `step_info` samples the whole latent (see `schedules.is_full_sample_time`)."""
        return is_full_sample_time(step_info, self.full_sample_schedule, self.upstream_compat)

    def _pixel_hook(self) -> UpscaleHook:
        if self.upstream_compat and self.upscale_model is not None:
            return self.hook_mask
        return self.hook_base

    def upscale(self, step_info: tuple[int, int], latent: Tensor, factor: float, noise_mask: Tensor | None = None) -> Tensor:
        """One iteration to `factor` times the latent's pixel size."""
        check_real(factor, "factor", 1.0, MAX_FACTOR)
        f = self.vae_factor
        return self.upscale_shape(step_info, latent, latent.shape[-1] * f * factor, latent.shape[-2] * f * factor, noise_mask)

    def upscale_shape(
        self, step_info: tuple[int, int], latent: Tensor, w: float, h: float, noise_mask: Tensor | None = None
    ) -> Tensor:
        """One iteration to an image of `w x h` pixels (each rounded down to a multiple of the VAE factor).

        `timings` then holds the seconds spent in decode, upscale, encode and the sampling passes
        (`base` and `mask`, or `base` and `region0`..`region<N-1>` with extra regions, or `base` and `full`).
        """
        full, base, others = self._hooked_samplers(step_info)
        upscaled = self.pixels(latent, h, w, self._pixel_hook(), None if self.upstream_compat else noise_mask)
        self.timings = dict(self.pixels.timings)
        if full:
            return self._sample_full(upscaled, base, others[0])
        return self._sample_masked(upscaled, base, others)

    def _hooked_samplers(self, step_info: tuple[int, int]) -> tuple[bool, UpscaleSampler, list[UpscaleSampler]]:
        """Set the hooks to `step_info` and the batch's seed (the base pass's); return (full?, hooked base sampler,
        [hooked full sampler] or every region's hooked sampler in region order)."""
        full = self.is_full_sample_time(step_info)
        for hook in (self.hook_base, self.hook_mask, self.hook_full):
            hook.set_steps(step_info)
            hook.set_seed(self.base_sampler.seed)
        base = self.hook_base.pre_sample(self.base_sampler)
        if full:
            return full, base, [self.hook_full.pre_sample(self.full_sampler or self.base_sampler)]
        return full, base, [self.hook_mask.pre_sample(sampler) for sampler, _ in self.regions]

    def check_iterations(self, step_infos: list[tuple[int, int]]) -> None:
        """Raise ValueError before any work if a hook makes some iteration's sampler settings invalid."""
        for step_info in step_infos:
            self._hooked_samplers(step_info)

    def _sample_full(self, latent: Tensor, base: UpscaleSampler, full: UpscaleSampler) -> Tensor:
        clock = perf_counter()
        latent = base.sample(latent)
        self.timings["base"], clock = perf_counter() - clock, perf_counter()
        latent = full.sample(latent)
        self.timings["full"] = perf_counter() - clock
        return latent

    def _sample_masked(self, latent: Tensor, base: UpscaleSampler, masked: list[UpscaleSampler]) -> Tensor:
        """The base pass, then each region's pass: upstream's `two_samplers_for_mask` for one region, else
        `WholeRun.sample_regions` with each region's own settings (the same runs, one more per region)."""
        resize = upstream_mask_for_latent if self.upstream_compat else mask_for_latent
        masks = [resize(mask, latent) for _, mask in self.regions]
        start = perf_counter()
        last_report: dict[str, float] = {}

        def clock(info: dict) -> None:
            last_report[info["sampler"]] = perf_counter()

        if len(masked) == 1:
            out = two_samplers_for_mask(
                latent, base.resolved(), masked[0].resolved(), masks[0], base.seed, base.steps, base.denoise,
                callback=clock, mask_seed=masked[0].seed, mask_steps=masked[0].steps, mask_denoise=masked[0].denoise,
            )
            roles = ["base", "mask"]
        else:
            out = WholeRun().sample_regions(
                latent, base_sampler=base.resolved(), regions=[Region(m, s.resolved()) for m, s in zip(masks, masked)],
                seed=base.seed, steps=base.steps, denoise=base.denoise, callback=clock,
                region_settings=[(s.seed, s.steps, s.denoise) for s in masked],
            )
            roles = ["base"] + [f"region{k}" for k in range(len(masked))]
        done = [start]
        for role in roles[:-1]:
            done.append(last_report.get(role, done[-1]))
        done.append(perf_counter())
        self.timings.update({role: done[k + 1] - done[k] for k, role in enumerate(roles)})
        return out

    def encode(self, images: Tensor) -> Tensor:
        """Images -> latents with this upscaler's VAE (tiled when `use_tiled_vae`)."""
        return self.pixels.encode(images)

    def decode(self, latent: Tensor) -> Tensor:
        """Latents -> images with this upscaler's VAE (tiled when `use_tiled_vae`)."""
        return self.pixels.decode(latent)
