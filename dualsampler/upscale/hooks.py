"""Per-iteration hooks of the iterative upscaler (SPEC §8): cfg, denoise and steps schedules, noise injection,
and a combinator. `set_steps((i, n))` is called before iteration `i` of `n`."""

from __future__ import annotations

import dataclasses
import math

from torch import Tensor

from dualsampler.sampling import NoiseStream, latent_noise_mask
from dualsampler.sampling.noise import Seed, check_seed
from dualsampler.sampling.streams import stream_seeds
from dualsampler.validation import check_bool, check_bounded
from dualsampler.upscale.sampler_spec import UpscaleSampler


def schedule_progress(cur_step: int, total_steps: int) -> float:
    """`i / (n - 1)`: 0 at the first iteration, 1 at the last; 1 when there is a single iteration."""
    return cur_step / (total_steps - 1) if total_steps > 1 else 1.0


class UpscaleHook:
    """The identity hook; subclasses override the stages they change."""

    def __init__(self) -> None:
        self.cur_step = 0
        self.total_steps = 1
        self.batch_seed: Seed | None = None

    def set_steps(self, step_info: tuple[int, int]) -> None:
        """Remember the iteration `(i, n)` that the next calls belong to (integers, 0 <= i < n)."""
        if not (isinstance(step_info, tuple) and len(step_info) == 2 and all(
                isinstance(k, int) and not isinstance(k, bool) for k in step_info) and 0 <= step_info[0] < step_info[1]):
            raise ValueError(f"step_info must be (i, n) with integers 0 <= i < n; got {step_info!r}")
        self.cur_step, self.total_steps = step_info

    def set_seed(self, seed: Seed) -> None:
        """Remember the seed of the batch the next calls belong to: an int, or one seed per element."""
        self.batch_seed = seed

    def post_decode(self, images: Tensor) -> Tensor:
        return images

    def post_upscale(self, images: Tensor) -> Tensor:
        return images

    def post_encode(self, latent: Tensor, noise_mask: Tensor | None = None) -> Tensor:
        return latent

    def pre_sample(self, sampler: UpscaleSampler) -> UpscaleSampler:
        return sampler


class CombinedHook(UpscaleHook):
    """`hook2` applied after `hook1` at every stage."""

    def __init__(self, hook1: UpscaleHook, hook2: UpscaleHook) -> None:
        super().__init__()
        for name, hook in (("hook1", hook1), ("hook2", hook2)):
            if not isinstance(hook, UpscaleHook):
                raise ValueError(f"{name} must be an UpscaleHook, got {type(hook).__name__}")
        self.hook1 = hook1
        self.hook2 = hook2

    def set_steps(self, step_info: tuple[int, int]) -> None:
        super().set_steps(step_info)
        self.hook1.set_steps(step_info)
        self.hook2.set_steps(step_info)

    def set_seed(self, seed: Seed) -> None:
        super().set_seed(seed)
        self.hook1.set_seed(seed)
        self.hook2.set_seed(seed)

    def post_decode(self, images: Tensor) -> Tensor:
        return self.hook2.post_decode(self.hook1.post_decode(images))

    def post_upscale(self, images: Tensor) -> Tensor:
        return self.hook2.post_upscale(self.hook1.post_upscale(images))

    def post_encode(self, latent: Tensor, noise_mask: Tensor | None = None) -> Tensor:
        return self.hook2.post_encode(self.hook1.post_encode(latent, noise_mask), noise_mask)

    def pre_sample(self, sampler: UpscaleSampler) -> UpscaleSampler:
        return self.hook2.pre_sample(self.hook1.pre_sample(sampler))


class CfgScheduleHook(UpscaleHook):
    """cfg = `c0 + (target - c0) * i / (n - 1)`, `c0` the sampler's cfg; floored when `round_down` (upstream's `int()`)."""

    def __init__(self, target_cfg: float, round_down: bool = False) -> None:
        super().__init__()
        self.target_cfg = check_bounded(target_cfg, "cfg", "target_cfg")
        self.round_down = check_bool(round_down, "round_down")

    def pre_sample(self, sampler: UpscaleSampler) -> UpscaleSampler:
        start = sampler.base_cfg
        cfg = start + (self.target_cfg - start) * schedule_progress(self.cur_step, self.total_steps)
        return dataclasses.replace(sampler, cfg=float(math.floor(cfg + 1e-9)) if self.round_down else cfg)


class DenoiseScheduleHook(UpscaleHook):
    """denoise = `d0 + (target - d0) * i / (n - 1)`, `d0` the sampler's denoise."""

    def __init__(self, target_denoise: float) -> None:
        super().__init__()
        self.target_denoise = check_bounded(target_denoise, "denoise", "target_denoise")

    def pre_sample(self, sampler: UpscaleSampler) -> UpscaleSampler:
        start = sampler.denoise
        denoise = start + (self.target_denoise - start) * schedule_progress(self.cur_step, self.total_steps)
        return dataclasses.replace(sampler, denoise=denoise)


class StepsScheduleHook(UpscaleHook):
    """steps = `floor(s0 + (target - s0) * i / (n - 1))`, `s0` the sampler's steps (upstream's `int()`)."""

    def __init__(self, target_steps: int) -> None:
        super().__init__()
        self.target_steps = int(check_bounded(target_steps, "steps", "target_steps"))

    def pre_sample(self, sampler: UpscaleSampler) -> UpscaleSampler:
        start = sampler.steps
        steps = start + (self.target_steps - start) * schedule_progress(self.cur_step, self.total_steps)
        return dataclasses.replace(sampler, steps=max(1, math.floor(steps + 1e-9)))


class NoiseInjectionHook(UpscaleHook):
    """After encode: `z + m * strength * eps`, `m` the noise mask resized to the latent (1 without one), strength
    linear from `start_strength` at the first iteration to `end_strength` at the last; `upstream_compat` uses
    upstream's `i / n`, which never reaches `end_strength`. eps ~ N(0, 1) at iteration i: for a batch with one
    seed per element (`set_seed` with a list, as the runner's jobs), each element's own stream
    `stream_seed(element seed, "noise_injection", seed + 2 * i)`, so an image gets the same noise in any batch;
    otherwise one batch-shaped draw from `seed + 2 * i` (upstream's seed rule)."""

    def __init__(self, seed: int, start_strength: float, end_strength: float, upstream_compat: bool = False) -> None:
        super().__init__()
        self.seed = check_seed(seed, 1)
        self.start_strength = check_bounded(start_strength, "strength", "start_strength")
        self.end_strength = check_bounded(end_strength, "strength", "end_strength")
        self.upstream_compat = check_bool(upstream_compat, "upstream_compat")

    def strength(self) -> float:
        """The strength at the current iteration."""
        if self.upstream_compat:
            progress = self.cur_step / self.total_steps
        else:
            progress = schedule_progress(self.cur_step, self.total_steps)
        return self.start_strength + (self.end_strength - self.start_strength) * progress

    def post_encode(self, latent: Tensor, noise_mask: Tensor | None = None) -> Tensor:
        index = self.seed + 2 * self.cur_step
        per_element = self.batch_seed is not None and not isinstance(self.batch_seed, int)
        noise = NoiseStream(stream_seeds(self.batch_seed, "noise_injection", index) if per_element else index)(latent)
        injected = noise * self.strength()
        if noise_mask is not None:
            injected = injected * latent_noise_mask(noise_mask, latent)
        return latent + injected
