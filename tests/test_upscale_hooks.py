"""Hook values per iteration: cfg, denoise and steps schedules, noise injection, the combinator."""

import dataclasses

import pytest
import torch

from dualsampler.sampling import KSampler
from dualsampler.upscale import (
    CfgScheduleHook,
    CombinedHook,
    DenoiseScheduleHook,
    NoiseInjectionHook,
    StepsScheduleHook,
    UpscaleHook,
    UpscaleSampler,
)


class GuidedZero:
    """A denoiser with a `cfg` attribute, like UNetDenoiser."""

    def __init__(self, cfg: float) -> None:
        self.cfg = cfg

    def __call__(self, x, sigma):
        return torch.zeros_like(x)


def spec(cfg=8.0, steps=20, denoise=0.5):
    return UpscaleSampler(KSampler(GuidedZero(cfg)), seed=0, steps=steps, denoise=denoise)


def per_iteration(hook, sampler, n):
    values = []
    for i in range(n):
        hook.set_steps((i, n))
        values.append(hook.pre_sample(sampler))
    return values


def test_cfg_goes_linearly_from_the_samplers_cfg_to_the_target():
    out = per_iteration(CfgScheduleHook(4.0), spec(cfg=8.0), 5)
    assert [s.cfg for s in out] == pytest.approx([8.0, 7.0, 6.0, 5.0, 4.0])


def test_cfg_round_down_floors_like_upstream_int():
    out = per_iteration(CfgScheduleHook(3.0, round_down=True), spec(cfg=7.5), 5)
    assert [s.cfg for s in out] == [7.0, 6.0, 5.0, 4.0, 3.0]  # unrounded: 7.5, 6.375, 5.25, 4.125, 3.0


def test_an_explicit_cfg_is_the_schedules_start():
    sampler = dataclasses.replace(spec(cfg=8.0), cfg=2.0)
    assert [s.cfg for s in per_iteration(CfgScheduleHook(4.0), sampler, 3)] == pytest.approx([2.0, 3.0, 4.0])


def test_denoise_goes_linearly_to_the_target():
    out = per_iteration(DenoiseScheduleHook(0.2), spec(denoise=0.5), 4)
    assert [s.denoise for s in out] == pytest.approx([0.5, 0.4, 0.3, 0.2])


def test_steps_go_linearly_to_the_target_rounded_down():
    out = per_iteration(StepsScheduleHook(10), spec(steps=20), 4)
    assert [s.steps for s in out] == [20, 16, 13, 10]


def test_a_single_iteration_takes_the_target():
    (s,) = per_iteration(StepsScheduleHook(7), spec(steps=20), 1)
    assert s.steps == 7


def test_hooks_do_not_touch_the_original_sampler_or_denoiser():
    sampler = spec(cfg=8.0)
    hooked = per_iteration(CfgScheduleHook(2.0), sampler, 2)[-1]
    assert sampler.cfg is None and sampler.ksampler.denoiser.cfg == 8.0
    assert hooked.resolved().denoiser.cfg == 2.0
    assert hooked.resolved().denoiser is not sampler.ksampler.denoiser


def test_a_cfg_hook_keeps_the_samplers_upstream_compat():
    sampler = UpscaleSampler(KSampler(GuidedZero(8.0), upstream_compat=True), seed=0, steps=20, denoise=0.5)
    hooked = per_iteration(CfgScheduleHook(2.0), sampler, 2)[-1]
    assert hooked.resolved().denoiser.cfg == 2.0 and hooked.resolved().upstream_compat


def test_combined_hook_applies_both_in_order():
    calls = []

    class Tag(UpscaleHook):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def post_decode(self, images):
            calls.append(self.name)
            return images + 1

    hook = CombinedHook(CombinedHook(StepsScheduleHook(10), DenoiseScheduleHook(0.2)), CombinedHook(Tag("a"), Tag("b")))
    (first, last) = per_iteration(hook, spec(steps=20, denoise=0.5), 2)
    assert (first.steps, first.denoise) == (20, 0.5)
    assert (last.steps, last.denoise) == (10, pytest.approx(0.2))
    assert torch.equal(hook.post_decode(torch.zeros(1)), torch.full((1,), 2.0))
    assert calls == ["a", "b"]


def injected(hook, i, n, latent, noise_mask=None):
    hook.set_steps((i, n))
    return hook.post_encode(latent, noise_mask) - latent


def test_noise_injection_is_seeded_per_iteration():
    latent = torch.zeros(1, 4, 32, 32)
    hook = NoiseInjectionHook(seed=5, start_strength=1.0, end_strength=1.0)
    assert torch.equal(injected(hook, 1, 3, latent), injected(hook, 1, 3, latent))
    assert not torch.equal(injected(hook, 0, 3, latent), injected(hook, 1, 3, latent))
    gen = torch.Generator().manual_seed(5 + 2 * 1)
    assert torch.equal(injected(hook, 1, 3, latent), torch.randn(latent.shape, generator=gen))


def test_noise_strength_goes_from_start_to_end():
    latent = torch.zeros(1, 4, 64, 64)
    hook = NoiseInjectionHook(seed=0, start_strength=0.0, end_strength=2.0)
    stds = [injected(hook, i, 3, latent).std().item() for i in range(3)]
    assert stds == pytest.approx([0.0, 1.0, 2.0], abs=0.05)


def test_upstream_noise_strength_never_reaches_the_end():
    hook = NoiseInjectionHook(seed=0, start_strength=0.0, end_strength=3.0, upstream_compat=True)
    hook.set_steps((2, 3))
    assert hook.strength() == pytest.approx(2.0)


def test_noise_injection_respects_the_noise_mask():
    latent = torch.zeros(1, 4, 8, 8)
    noise_mask = torch.zeros(16, 16)
    noise_mask[:, 8:] = 1
    delta = injected(NoiseInjectionHook(0, 1.0, 1.0), 0, 2, latent, noise_mask)
    assert torch.all(delta[..., :3] == 0)
    assert torch.all(delta[..., 5:] != 0)


@pytest.mark.parametrize(
    "make, message",
    [(lambda: CfgScheduleHook(-1.0), "target_cfg"), (lambda: DenoiseScheduleHook(1.5), "target_denoise"),
     (lambda: StepsScheduleHook(0), "target_steps"), (lambda: NoiseInjectionHook(0, -1.0, 0.0), "strength")],
)
def test_bad_hook_arguments_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_upscale_sampler_validates_its_settings():
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 10000\]"):
        spec(steps=0)
    with pytest.raises(ValueError, match="denoise must be a finite number in"):
        spec(denoise=0.0)
    with pytest.raises(ValueError, match="cfg can only be set"):
        UpscaleSampler(KSampler(lambda x, s: x), seed=0, steps=2, denoise=1.0, cfg=3.0)
