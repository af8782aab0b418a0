"""TwoSamplersForMaskUpscaler with analytic denoisers and a tiny random VAE: shapes, masks, full iterations."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

import dualsampler.upscale.two_samplers_upscaler as upscaler_module
from dualsampler.sampling import KSampler
from dualsampler.upscale import (
    CfgScheduleHook,
    CombinedHook,
    DenoiseScheduleHook,
    StepsScheduleHook,
    TwoSamplersForMaskUpscaler,
    UpscaleHook,
    UpscaleSampler,
    iterative_upscale,
    iterative_upscale_image,
)

BASE, INSIDE, FULL = -1.0, 1.0, 0.25


class Constant:
    """x0 = value everywhere, whatever x and sigma: after a denoise-1 run the region holds exactly `value`."""

    def __init__(self, value: float, cfg: float = 5.0) -> None:
        self.value = value
        self.cfg = cfg

    def __call__(self, x, sigma):
        return torch.full_like(x, self.value)


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4, mid_block_add_attention=False,
    ).eval()


def sampler(value, steps=2, denoise=1.0):
    return UpscaleSampler(KSampler(Constant(value)), seed=3, steps=steps, denoise=denoise)


def right_half_mask(height=24, width=40):
    mask = torch.zeros(height, width)
    mask[:, width // 2 :] = 1
    return mask


def make(vae, schedule="none", **kwargs):
    kwargs.setdefault("base_sampler", sampler(BASE))
    kwargs.setdefault("mask_sampler", sampler(INSIDE))
    return TwoSamplersForMaskUpscaler(
        "bilinear", schedule, False, mask=right_half_mask(), vae=vae, tile_size=64, **kwargs
    )


@pytest.fixture
def calls(monkeypatch):
    """Every two_samplers_for_mask call the upscaler makes:
    (latent shape, mask, base (seed, steps, denoise), mask (seed, steps, denoise), base cfg, mask cfg)."""
    seen = []
    real = upscaler_module.two_samplers_for_mask

    def spy(latent, base, mask_sampler, mask, seed, steps, denoise, callback=None, **mask_settings):
        inside = (mask_settings["mask_seed"], mask_settings["mask_steps"], mask_settings["mask_denoise"])
        seen.append((tuple(latent.shape[-2:]), mask, (seed, steps, denoise), inside, base.denoiser.cfg,
                     mask_sampler.denoiser.cfg))
        return real(latent, base, mask_sampler, mask, seed, steps, denoise, callback=callback, **mask_settings)

    monkeypatch.setattr(upscaler_module, "two_samplers_for_mask", spy)
    return seen


def test_latent_shapes_and_mask_per_iteration_on_a_non_square_latent(vae, calls):
    latent = torch.zeros(1, 4, 6, 10)  # 24 x 40 pixels
    out = iterative_upscale(latent, 2.0, 3, make(vae))
    # pixel targets 32x53.3, 40x66.7, 48x80 -> rounded down to multiples of 4 -> latents 8x13, 10x16, 12x20
    assert [shape for shape, *_ in calls] == [(8, 13), (10, 16), (12, 20)]
    assert out.shape == (1, 4, 12, 20)
    for shape, mask, *_ in calls:
        expected = F.interpolate(right_half_mask()[None, None], size=shape, mode="bilinear", align_corners=True)
        assert torch.equal(mask, expected)


def test_masked_iteration_puts_each_samplers_result_in_its_region(vae, calls):
    out = make(vae).upscale((0, 1), torch.zeros(1, 4, 6, 10), 2.0)
    mask = calls[0][1]
    assert torch.allclose(out, INSIDE * mask + BASE * (1 - mask), atol=1e-5)
    assert torch.allclose(out[..., 0], torch.full_like(out[..., 0], BASE))
    assert torch.allclose(out[..., -1], torch.full_like(out[..., -1], INSIDE))


@pytest.mark.parametrize("full_sampler, value", [(None, BASE), (sampler(FULL), FULL)])
def test_full_sample_iteration_samples_the_whole_latent(vae, calls, full_sampler, value):
    upscaler = make(vae, "last1", full_sampler=full_sampler)
    out = iterative_upscale(torch.zeros(1, 4, 6, 10), 1.5, 2, upscaler)
    assert len(calls) == 1  # iteration 0 masked, iteration 1 full
    assert torch.allclose(out, torch.full_like(out, value), atol=1e-5)
    assert set(upscaler.timings) == {"decode", "upscale", "encode", "base", "full"}


def test_upstream_compat_last1_never_full_samples(vae, calls):
    iterative_upscale(torch.zeros(1, 4, 6, 10), 1.5, 2, make(vae, "last1", upstream_compat=True))
    assert len(calls) == 2


def test_hooks_reach_the_samplers_every_iteration(vae, calls):
    upscaler = make(
        vae,
        hook_mask=CfgScheduleHook(1.0),
    )
    iterative_upscale(torch.zeros(1, 4, 6, 10), 2.0, 3, upscaler)
    assert [base_cfg for *_, base_cfg, _ in calls] == [5.0, 5.0, 5.0]
    assert [mask_cfg for *_, mask_cfg in calls] == pytest.approx([5.0, 3.0, 1.0])


def test_each_sampler_runs_its_own_hooked_settings(vae, calls):
    upscaler = make(
        vae,
        base_sampler=sampler(BASE, steps=2, denoise=1.0),
        mask_sampler=UpscaleSampler(KSampler(Constant(INSIDE)), seed=7, steps=3, denoise=0.9),
        hook_base=CombinedHook(StepsScheduleHook(4), DenoiseScheduleHook(0.5)),
    )
    iterative_upscale(torch.zeros(1, 4, 6, 10), 2.0, 3, upscaler)
    assert [base for _, _, base, *_ in calls] == [(3, 2, 1.0), (3, 3, 0.75), (3, 4, 0.5)]
    assert [inside for _, _, _, inside, *_ in calls] == [(7, 3, 0.9)] * 3
    assert set(upscaler.timings) == {"decode", "upscale", "encode", "base", "mask"}


def test_a_hook_that_breaks_a_later_iteration_is_caught_before_work(vae, calls):
    class Overdenoise(UpscaleHook):
        def pre_sample(self, spec):
            return dataclasses.replace(spec, denoise=spec.denoise + self.cur_step)

    with pytest.raises(ValueError, match="denoise must be a finite number in"):
        iterative_upscale(torch.zeros(1, 4, 6, 10), 2.0, 2, make(vae, hook_mask=Overdenoise()))
    assert calls == []


def test_image_variant_returns_upscaled_images(vae):
    images = torch.rand(2, 3, 24, 40)
    out = iterative_upscale_image(images, 2.0, 2, make(vae), step_mode="geometric")
    assert out.shape == (2, 3, 48, 80)
    assert 0 <= out.min() and out.max() <= 1


def test_tiled_upscaler_matches_the_untiled_shapes(vae, calls):
    upscaler = TwoSamplersForMaskUpscaler(
        "lanczos", "none", True, sampler(BASE), sampler(INSIDE), right_half_mask(), vae, tile_size=64
    )
    out = upscaler.upscale((0, 1), torch.zeros(1, 4, 20, 28), 1.5)
    assert out.shape == (1, 4, 30, 42)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scale_method="nearest"), "scale_method must be one of"),
        (dict(full_sample_schedule="last3"), "full_sample_schedule must be one of"),
        (dict(tile_size=48), "tile_size must be an integer >= 64"),
        (dict(tile_size=70), "multiple of the VAE factor 4"),
        (dict(base_sampler=KSampler(Constant(0.0))), "base_sampler must be an UpscaleSampler"),
    ],
)
def test_bad_constructor_arguments_are_rejected(vae, kwargs, message):
    args = dict(scale_method="bilinear", full_sample_schedule="none", use_tiled_vae=True,
                base_sampler=sampler(BASE), mask_sampler=sampler(INSIDE), mask=right_half_mask(), vae=vae)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        TwoSamplersForMaskUpscaler(**args)


def test_factor_below_one_is_rejected(vae, calls):
    with pytest.raises(ValueError, match=r"factor must be a finite number in \[1, 16\]"):
        make(vae).upscale((0, 1), torch.zeros(1, 4, 6, 10), 0.5)
    with pytest.raises(ValueError, match=r"upscale_factor \(upscaler.factor\) must be a finite number in \[1, 16\]"):
        iterative_upscale(torch.zeros(1, 4, 6, 10), 0.9, 2, make(vae))
    assert calls == []


class Recorder(UpscaleHook):
    """Records which pixel stages ran."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = []

    def post_decode(self, images):
        self.stages.append("decode")
        return images

    def post_encode(self, latent, noise_mask=None):
        self.stages.append("encode")
        return latent


def doubling_model(images):
    return images.repeat_interleave(2, -2).repeat_interleave(2, -1)


@pytest.mark.parametrize("upstream_compat, pixel_hook", [(False, "base"), (True, "mask")])
def test_pixel_stage_hook_with_an_upscale_model(vae, calls, upstream_compat, pixel_hook):
    hooks = {"base": Recorder(), "mask": Recorder()}
    upscaler = make(vae, upscale_model=doubling_model, hook_base=hooks["base"], hook_mask=hooks["mask"],
                    upstream_compat=upstream_compat)
    out = upscaler.upscale((0, 1), torch.zeros(1, 4, 6, 10), 1.5)
    assert out.shape == (1, 4, 9, 15)
    assert hooks[pixel_hook].stages == ["decode", "encode"]
    assert hooks["mask" if pixel_hook == "base" else "base"].stages == []
