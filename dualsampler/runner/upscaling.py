"""The iterative two-sampler upscaler as configured in `conf/upscaler/` (SPEC §8), built around a job's samplers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

from torch import Tensor

from ..upscale import TwoSamplersForMaskUpscaler, UpscaleHook, UpscaleSampler, iterative_upscale
from ..upscale.sampler_spec import check_pass_settings
from ..upscale.scale_methods import check_scale_method
from ..upscale.schedules import check_full_sample_schedule
from ..upscale.step_plan import check_upscale_args
from ..upscale.upscale_models import check_upscale_model_choice, resolve_upscale_model
from ..upscale.vae_codec import check_tile_size
from .specs import SamplerSpec


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
        check_upscale_args(self.factor, self.iterations, self.step_mode)
        check_scale_method(self.scale_method)
        check_full_sample_schedule(self.full_sample_schedule)
        check_pass_settings(self.steps, self.denoise)
        check_tile_size(self.tile_size, 8)
        check_upscale_model_choice(self.upscale_model)

    def _pass(self, spec: SamplerSpec, ksampler, seeds: list[int]) -> UpscaleSampler:
        return UpscaleSampler(ksampler, seeds, spec.steps or self.steps, spec.denoise or self.denoise)

    def build(self, world, samplers: dict[str, tuple[SamplerSpec, object]], mask: Tensor) -> Callable[[Tensor, list[int]], Tensor]:
        """`upscale(latent, seeds) -> latent` of `factor` times the size; `samplers` maps base/mask to (spec, KSampler)."""
        mask = mask.to(world.device)
        upscale_model = resolve_upscale_model(self.upscale_model, world)

        def upscale(latent: Tensor, seeds: list[int]) -> Tensor:
            upscaler = TwoSamplersForMaskUpscaler(
                self.scale_method, self.full_sample_schedule, self.use_tiled_vae,
                self._pass(*samplers["base"], seeds), self._pass(*samplers["mask"], seeds), mask, world.vae,
                upscale_model=upscale_model,
                hook_base=self.hook_base, hook_mask=self.hook_mask, hook_full=self.hook_full,
                tile_size=self.tile_size, upstream_compat=self.upstream_compat,
            )
            return iterative_upscale(latent, self.factor, self.iterations, upscaler, self.step_mode)

        return upscale
