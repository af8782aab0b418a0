"""The iterative two-sampler upscaler as configured in `conf/upscaler/` (SPEC §8), built around a job's samplers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, ClassVar

from torch import Tensor

from ..masks import as_mask_batch
from ..sampling import KSampler
from ..upscale import TwoSamplersForMaskUpscaler, UpscaleHook, UpscaleSampler, iterative_upscale, upscale_plan
from ..upscale.sampler_spec import check_pass_settings
from ..upscale.scale_methods import check_scale_method
from ..upscale.schedules import check_full_sample_schedule, is_full_sample_time
from ..upscale.step_plan import check_final_size, check_upscale_args
from ..upscale.upscale_models import check_upscale_model_choice, resolve_upscale_model
from ..upscale.vae_codec import check_tile_size
from ..validation import check_bool
from .specs import SamplerSpec

HOOKS = ("hook_base", "hook_mask", "hook_full")


class _SettingsOnly:
    """A denoiser stand-in carrying only `cfg`: the hooks' settings are checked on it before any model loads
    (it is never called)."""

    def __init__(self, cfg: float) -> None:
        self.cfg = cfg

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        raise RuntimeError("a settings-only stand-in is never sampled")


@dataclass(frozen=True)
class UpscaleSpec:
    """`iterative_upscale(latent, factor, iterations, TwoSamplersForMaskUpscaler(...), step_mode)`.

    Each pass runs `steps` steps at `denoise` unless its sampler spec sets its own; `upscale_model` (true: the
    world's Upscaler2x; a path: a model file through spandrel) runs before the final resize; hooks are UpscaleHook objects (built from `_target_` configs).
    """

    factor: float = 2.0
    iterations: int = 2
    step_mode: str = "simple"
    scale_method: str = "bilinear"
    full_sample_schedule: str = "none"
    steps: int = 8
    denoise: float = 0.5
    use_tiled_vae: bool = False
    tile_size: int = 512
    upscale_model: bool | str = False
    upstream_compat: bool = False
    hook_base: UpscaleHook | None = None
    hook_mask: UpscaleHook | None = None
    hook_full: UpscaleHook | None = None
    # Job settings its passes read (runner/identity.py): each pass is a KSampler of a job sampler's own sampler and
    # scheduler, run for that sampler's steps and denoise.
    consumes: ClassVar[tuple[str, ...]] = tuple(f"{group}.{key}" for group in ("base_sampler", "mask_sampler")
                                                for key in ("sampler", "scheduler", "steps", "denoise"))

    def __post_init__(self) -> None:
        factor, iterations, _ = check_upscale_args(self.factor, self.iterations, self.step_mode)
        object.__setattr__(self, "factor", factor)
        object.__setattr__(self, "iterations", iterations)  # 2.0 from a config runs as 2
        check_scale_method(self.scale_method)
        check_full_sample_schedule(self.full_sample_schedule)
        check_pass_settings(self.steps, self.denoise)
        object.__setattr__(self, "steps", int(self.steps))
        object.__setattr__(self, "denoise", float(self.denoise))
        check_bool(self.use_tiled_vae, "use_tiled_vae")
        check_bool(self.upstream_compat, "upstream_compat")
        check_tile_size(self.tile_size, 8)
        check_upscale_model_choice(self.upscale_model)
        for name in HOOKS:
            hook = getattr(self, name)
            if hook is not None and not isinstance(hook, UpscaleHook):
                raise ValueError(f"{name} must be an upscaler hook (a config with a _target_) or null, got {hook!r}")

    def check(self, height: int, width: int, samplers: dict[str, SamplerSpec],
              extra_regions: Sequence[SamplerSpec] = ()) -> None:
        """Before any model loads: the final size of a `height x width` px canvas, and every pass of every iteration
        as the hooks set it (a hook's steps, denoise or cfg target the passes cannot run with is refused, naming
        the hook and, with extra regions, the region); `samplers` maps base/mask (the first region) to their
        SamplerSpec, `extra_regions` holds the 2nd..Nth regions' (none under `upstream_compat`)."""
        check_final_size(height, width, self.factor)
        if extra_regions and self.upstream_compat:
            raise ValueError(f"upstream's two-sampler upscaler takes one region; upstream_compat=true takes no more, "
                             f"got {1 + len(extra_regions)} regions")
        passes = {key: self._settings_pass(spec) for key, spec in samplers.items()}
        regions = [("", passes["mask"])] if not extra_regions else [
            (f" (region {k})", self._settings_pass(spec)) for k, spec in enumerate([samplers["mask"], *extra_regions])]
        for step_info, _ in upscale_plan(self.factor, self.iterations, self.step_mode):
            full = is_full_sample_time(step_info, self.full_sample_schedule, self.upstream_compat)
            checks = [("hook_base", "", passes["base"])]
            checks += [("hook_full", "", passes["base"])] if full else [("hook_mask", r, p) for r, p in regions]
            for name, region, sampler_pass in checks:
                hook = getattr(self, name)
                if hook is None:
                    continue
                hook.set_steps(step_info)
                try:
                    hook.pre_sample(sampler_pass)
                except ValueError as error:
                    raise ValueError(f"{name} at iteration {step_info[0] + 1} of {step_info[1]}{region}: {error}"
                                     ) from None

    def _settings_pass(self, spec: SamplerSpec) -> UpscaleSampler:
        """A pass with `spec`'s settings on a settings-only denoiser (for `check`)."""
        return UpscaleSampler(KSampler(_SettingsOnly(spec.cfg), "euler", spec.scheduler), 0,
                              spec.steps or self.steps, spec.denoise or self.denoise)

    def _pass(self, spec: SamplerSpec, ksampler, seeds: list[int]) -> UpscaleSampler:
        return UpscaleSampler(ksampler, seeds, spec.steps or self.steps, spec.denoise or self.denoise)

    def build(
        self, world, samplers: dict[str, tuple[SamplerSpec, object]], mask: Tensor,
        extra_regions: Sequence[tuple[SamplerSpec, object, Tensor]] = (),
    ) -> Callable[[Tensor, list[int]], Tensor]:
        """`upscale(latent, seeds) -> latent` of `factor` times the size; `samplers` maps base/mask to (spec, KSampler)
        (`mask` is the first region's), `extra_regions` the 2nd..Nth regions as (spec, KSampler, mask): every mask
        is checked here, before any sampling."""
        mask = as_mask_batch(mask, "mask").to(world.device)
        if extra_regions and self.upstream_compat:
            raise ValueError("upstream's two-sampler upscaler takes one region; upstream_compat=true takes no more")
        extra = [(spec, ksampler, as_mask_batch(m, f"extra_regions[{k}] mask").to(world.device))
                 for k, (spec, ksampler, m) in enumerate(extra_regions)]
        upscale_model = resolve_upscale_model(self.upscale_model, world)

        def upscale(latent: Tensor, seeds: list[int]) -> Tensor:
            upscaler = TwoSamplersForMaskUpscaler(
                self.scale_method, self.full_sample_schedule, self.use_tiled_vae,
                self._pass(*samplers["base"], seeds), self._pass(*samplers["mask"], seeds), mask, world.vae,
                upscale_model=upscale_model,
                hook_base=self.hook_base, hook_mask=self.hook_mask, hook_full=self.hook_full,
                tile_size=self.tile_size, upstream_compat=self.upstream_compat,
                extra_regions=[(self._pass(spec, ksampler, seeds), m) for spec, ksampler, m in extra],
            )
            return iterative_upscale(latent, self.factor, self.iterations, upscaler, self.step_mode)

        return upscale
