"""VAE decode/encode, plain and tiled; the tiler's blending and the seam against the untiled result."""

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from dualsampler.models import WEIGHTS_DIR
from dualsampler.upscale import vae_decode, vae_encode
from dualsampler.upscale.tiling import tile_starts, tiled_apply
from dualsampler.world import render_texture

# Measured on this VAE (tile 64 px, 80x112 textures of all 36 prompts; `scripts/bench_upscale.py --tiling-error`):
# decode mean |tiled - untiled| <= 0.057 of the [0, 1] range, mean error inside the blend bands <= 2.18x the
# error elsewhere, encode mean |difference| <= 0.20 latent std. The cause is GroupNorm statistics computed per
# tile, which random weights make large. Tolerances: the measured worst case plus ~50%.
DECODE_MEAN_TOL = 0.085
SEAM_RATIO_TOL = 3.0
ENCODE_REL_TOL = 0.30
HEIGHT, WIDTH = 80, 112


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64), norm_num_groups=8, mid_block_add_attention=False,
    ).eval()


def blend_bands():
    """Pixels where neighbouring 64 px tiles (16 latent cells, stride 12) overlap and blend."""
    band = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    for y in tile_starts(HEIGHT // 4, 16, 12)[1:]:
        band[y * 4 : y * 4 + 16] = True
    for x in tile_starts(WIDTH // 4, 16, 12)[1:]:
        band[:, x * 4 : x * 4 + 16] = True
    return band


def test_tile_starts_cover_the_length_and_end_flush():
    assert tile_starts(40, 16, 12) == [0, 12, 24]
    assert tile_starts(41, 16, 12) == [0, 12, 24, 25]
    assert tile_starts(10, 16, 12) == [0]


@pytest.mark.parametrize("shape", [(1, 2, 40, 52), (2, 1, 23, 70)])
def test_tiler_reproduces_a_pointwise_map_exactly(shape):
    torch.manual_seed(0)
    x = torch.rand(shape)

    def fn(t):
        return F.interpolate(t * 2 - 1, scale_factor=4, mode="nearest")

    assert torch.allclose(tiled_apply(fn, x, 16, 4, 4), fn(x), atol=1e-6)
    assert torch.allclose(tiled_apply(lambda t: t[..., ::4, ::4], fn(x), 64, 16, 0.25), x * 2 - 1, atol=1e-6)


def test_plain_roundtrip_shapes_follow_the_vae_factor(vae):
    images = torch.rand(2, 3, 48, 80)
    latent = vae_encode(vae, images)
    assert latent.shape == (2, 4, 12, 20)
    assert vae_decode(vae, latent).shape == (2, 3, 48, 80)


@pytest.mark.parametrize("prompt, seed", [("red stripes", 0), ("blue dots", 1)])
def test_tiled_decode_and_encode_agree_with_untiled(vae, prompt, seed):
    images = render_texture(prompt, HEIGHT, WIDTH, seed)[None]
    latent = vae_encode(vae, images)
    plain = vae_decode(vae, latent)
    tiled = vae_decode(vae, latent, tile_size=64)
    error = (plain - tiled).abs().mean(dim=1)[0]
    assert error.mean() < DECODE_MEAN_TOL

    band = blend_bands()
    assert error[band].mean() < SEAM_RATIO_TOL * error[~band].mean()

    tiled_latent = vae_encode(vae, images, tile_size=64)
    assert (tiled_latent - latent).abs().mean() < ENCODE_REL_TOL * latent.std()


def test_images_within_one_tile_are_not_tiled(vae):
    latent = torch.randn(1, 4, 16, 16)
    assert torch.equal(vae_decode(vae, latent, tile_size=64), vae_decode(vae, latent))


@pytest.mark.parametrize("tile_size", [32, 60, 66, 64.5])
def test_bad_tile_sizes_are_rejected(vae, tile_size):
    with pytest.raises(ValueError, match="tile_size must be an integer >= 64 and a multiple of the VAE factor 4"):
        vae_decode(vae, torch.randn(1, 4, 32, 32), tile_size=tile_size)
    with pytest.raises(ValueError, match="tile_size"):
        vae_encode(vae, torch.rand(1, 3, 128, 128), tile_size=tile_size)


def test_encode_rejects_sizes_off_the_factor(vae):
    with pytest.raises(ValueError, match="multiples of the VAE factor 4"):
        vae_encode(vae, torch.rand(1, 3, 30, 32))


# Measured on the trained world VAE (same script and sizes, all 36 prompts): decode mean |tiled - untiled| <= 0.024 (blobs;
# <= 0.009 for the periodic patterns, whose tiles share GroupNorm statistics), blend bands <= 1.73x the rest,
# encode <= 0.095 latent std; the VAE's own reconstruction error mean |x - decode(encode(x))| is 0.017 .. 0.058.
# Tolerances: worst case plus ~50%.
TRAINED_DECODE_MEAN_TOL = 0.035
TRAINED_SEAM_RATIO_TOL = 2.6
TRAINED_ENCODE_REL_TOL = 0.14


@pytest.mark.parametrize("prompt, seed", [("purple blobs", 11), ("orange checker", 2)])
def test_trained_vae_tiled_matches_untiled(prompt, seed):
    vae = AutoencoderKL.from_pretrained(WEIGHTS_DIR / "vae", torch_dtype=torch.float32).eval()
    images = render_texture(prompt, HEIGHT, WIDTH, seed)[None]
    latent = vae_encode(vae, images)
    plain = vae_decode(vae, latent)
    error = (plain - vae_decode(vae, latent, tile_size=64)).abs().mean(dim=1)[0]
    assert error.mean() < TRAINED_DECODE_MEAN_TOL
    band = blend_bands()
    assert error[band].mean() < TRAINED_SEAM_RATIO_TOL * error[~band].mean()
    assert (vae_encode(vae, images, tile_size=64) - latent).abs().mean() < TRAINED_ENCODE_REL_TOL * latent.std()
