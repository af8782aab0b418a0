"""The upscaler as the Impact Pack runs it (issue 18): full-sample passes span the SDE Brownian tree over the whole
steps/denoise schedule and return the last x0 prediction; `upstream_compat` reproduces ComfyUI's 8-bit lanczos,
unclamped bicubic, floored resize with the encoder's centre crop, the first-row mask and the unmasked noise."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dualsampler.sampling import KSampler
from dualsampler.upscale import NoiseInjectionHook, TwoSamplersForMaskUpscaler, UpscaleHook, UpscaleSampler
from dualsampler.upscale.pixel_upscale import PixelUpscaler, centre_crop
from dualsampler.upscale.scale_methods import resize_images
from dualsampler.upscale.two_samplers_upscaler import upstream_mask_for_latent


def latent_like(seed=0, shape=(1, 4, 6, 6)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def last_x0_and_final_x(ks, latent, seed, sigmas, noise_span):
    """The last step's x0 prediction and the final x of one run over `sigmas`."""
    seen = []
    final = ks.run_slice(True, seed, latent, sigmas, callback=lambda info: seen.append(info["denoised"]),
                         noise_span=noise_span)
    return seen[-1], final


@pytest.mark.parametrize("sampler", ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"])
def test_full_pass_spans_the_brownian_tree_over_the_whole_steps_over_denoise_schedule(gaussian, sampler):
    """Bug 1: 4 steps at denoise 0.5 cut the last 5 sigmas of an 8-step schedule; the tree spans all 8 steps."""
    ks = KSampler(gaussian, sampler, "karras")
    latent = latent_like()
    full = ks.sigmas(8)
    out = UpscaleSampler(ks, seed=5, steps=4, denoise=0.5).sample(latent)
    spanned, _ = last_x0_and_final_x(ks, latent, 5, full[4:], full)
    by_slice, _ = last_x0_and_final_x(ks, latent, 5, full[4:], None)
    torch.testing.assert_close(out, spanned, atol=0, rtol=0)
    assert (out - by_slice).abs().max() > 1e-3


@pytest.mark.parametrize("sampler", ["dpm_fast", "dpm_adaptive", "uni_pc", "uni_pc_bh2"])
def test_full_pass_returns_the_last_x0_prediction(gaussian, sampler):
    """Bug 2: the Impact Pack's wrapper returns the last step's x0, not the final x (these samplers' last step
    does not land on it)."""
    ks = KSampler(gaussian, sampler, "karras")
    latent = latent_like(1)
    x0, final = last_x0_and_final_x(ks, latent, 3, ks.sigmas(6), None)
    out = UpscaleSampler(ks, seed=3, steps=6, denoise=1.0).sample(latent)
    torch.testing.assert_close(out, x0, atol=0, rtol=0)
    assert not torch.equal(out, final)


def smooth_images(height=16, width=24):
    ys = torch.linspace(0, 1, height)[:, None]
    xs = torch.linspace(0, 1, width)[None, :]
    planes = [0.5 + 0.4 * torch.sin(3 * xs + 2 * ys + k) for k in range(3)]
    return torch.stack(planes)[None]


def test_compat_lanczos_is_pillows_8bit_resize():
    """ComfyUI's lanczos: 255 x truncated to uint8, Pillow's RGB resize, / 255; the float filter is 1e-3..3e-2
    away on a smooth image."""
    images = smooth_images()
    out = resize_images(images, 40, 56, "lanczos", upstream_compat=True)
    codes = np.clip(255.0 * images[0].permute(1, 2, 0).numpy(), 0, 255).astype(np.uint8)
    pillow = np.asarray(Image.fromarray(codes).resize((56, 40), Image.Resampling.LANCZOS), dtype=np.float32) / 255
    torch.testing.assert_close(out[0], torch.from_numpy(pillow).permute(2, 0, 1), atol=0, rtol=0)
    gap = (out - resize_images(images, 40, 56, "lanczos")).abs().max()
    assert 1e-3 < gap < 3e-2


def test_compat_bicubic_is_not_clamped():
    step = torch.zeros(1, 3, 8, 8)
    step[..., 4:] = 1.0
    plain = F.interpolate(step, size=(16, 16), mode="bicubic", align_corners=False)
    assert plain.min() < 0 and plain.max() > 1
    torch.testing.assert_close(resize_images(step, 16, 16, "bicubic", upstream_compat=True), plain, atol=0, rtol=0)
    torch.testing.assert_close(resize_images(step, 16, 16, "bicubic"), plain.clamp(0, 1), atol=0, rtol=0)


class BlockCodec:
    """A stand-in 8x VAE on 3-channel latents: decoding repeats each cell over its 8x8 block, encoding averages
    the block (images are in [0, 1] when the latents are)."""

    config = type("Config", (), {"block_out_channels": (1, 1, 1, 1), "scaling_factor": 1.0, "shift_factor": None})

    def parameters(self):
        yield torch.zeros(1)

    def decode(self, z):
        return type("Out", (), {"sample": z.repeat_interleave(8, -2).repeat_interleave(8, -1) * 2 - 1})

    def encode(self, x):
        mode = F.avg_pool2d((x + 1) / 2, 8)
        return type("Out", (), {"latent_dist": type("Dist", (), {"mode": staticmethod(lambda: mode)})})


def test_centre_crop_takes_the_middle_of_each_side():
    images = torch.arange(11 * 14.0).reshape(1, 1, 11, 14)  # remainders 3 and 2: offsets 1 and 1
    torch.testing.assert_close(centre_crop(images, 4), images[..., 1:9, 1:13], atol=0, rtol=0)


def test_compat_resizes_to_the_floor_and_crops_the_remainder_as_upstreams_encoder():
    """64 px to 83.2 px: upstream resizes to 83 and its encoder keeps pixels 1..80 of each side; by default the
    image is resized to 80 directly. Same latent shape, different content."""
    latent = smooth_images(8, 8)
    pixels = latent.repeat_interleave(8, -2).repeat_interleave(8, -1)
    runs = {compat: PixelUpscaler(BlockCodec(), "bilinear", upstream_compat=compat)(latent, 83.2, 83.2, UpscaleHook())
            for compat in (False, True)}
    floored = F.interpolate(pixels, size=(83, 83), mode="bilinear", align_corners=False)[..., 1:81, 1:81]
    direct = F.interpolate(pixels, size=(80, 80), mode="bilinear", align_corners=False)
    torch.testing.assert_close(runs[True], F.avg_pool2d(floored, 8))
    torch.testing.assert_close(runs[False], F.avg_pool2d(direct, 8))
    assert (runs[True] - runs[False]).abs().max() > 1e-3


def test_compat_mask_is_the_first_row_stretched_over_the_latents_height():
    mask = torch.zeros(1, 1, 4, 5)
    mask[0, 0, 0] = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    mask[0, 0, 1:] = 1.0  # ignored upstream
    out = upstream_mask_for_latent(mask, torch.zeros(1, 4, 9, 3))
    assert out.shape == (1, 1, 9, 3)
    torch.testing.assert_close(out[0, 0, :, 0], torch.linspace(0, 1, 9), atol=1e-6, rtol=0)
    assert torch.equal(out[0, 0], out[0, 0, :, :1].expand(9, 3))


class Copy:
    def __call__(self, x, sigma):
        return x


def test_compat_injects_noise_without_the_latents_noise_mask():
    """Upstream's noise hook sees the encoder's fresh latent, which has no noise mask."""
    seen = []

    class Spy(NoiseInjectionHook):
        def post_encode(self, latent, noise_mask=None):
            seen.append(noise_mask)
            return super().post_encode(latent, noise_mask)

    spec = UpscaleSampler(KSampler(Copy()), seed=1, steps=1, denoise=1.0)
    for compat in (False, True):
        upscaler = TwoSamplersForMaskUpscaler("bilinear", "none", False, spec, spec, torch.ones(8, 8), BlockCodec(),
                                              hook_base=Spy(3, 0.5, 0.5), upstream_compat=compat)
        upscaler.upscale_shape((0, 1), torch.rand(1, 3, 2, 2), 32, 32, noise_mask=torch.ones(8, 8))
    assert seen[0] is not None and seen[1] is None
