"""Scale methods on batches of any size and aspect ratio."""

import numpy as np
import pytest
import torch
from PIL import Image

from dualsampler.upscale import SCALE_METHODS, resize_images
from dualsampler.upscale.scale_methods import lanczos_matrix


@pytest.mark.parametrize("method", SCALE_METHODS)
@pytest.mark.parametrize("size", [(37, 53), (64, 16)])
def test_every_method_returns_the_requested_size_for_the_whole_batch(method, size):
    torch.manual_seed(0)
    images = torch.rand(3, 3, 20, 30)
    out = resize_images(images, *size, method)
    assert out.shape == (3, 3, *size)
    assert 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("method", SCALE_METHODS)
def test_a_flat_image_stays_flat(method):
    images = torch.full((2, 3, 11, 17), 0.3)
    assert torch.allclose(resize_images(images, 23, 40, method), torch.full((2, 3, 23, 40), 0.3), atol=1e-5)


def test_lanczos_matches_pillow_on_float_images_up_and_down():
    torch.manual_seed(1)
    images = torch.rand(1, 2, 31, 45)
    for height, width in [(62, 90), (13, 20), (31, 100)]:
        ours = resize_images(images, height, width, "lanczos")
        ref = np.stack(
            [np.array(Image.fromarray(c.numpy(), mode="F").resize((width, height), Image.LANCZOS)) for c in images[0]]
        )
        assert torch.allclose(ours[0], torch.from_numpy(ref).clamp(0, 1), atol=1e-5)


def test_lanczos_rows_sum_to_one():
    assert torch.allclose(lanczos_matrix(10, 27).sum(dim=1), torch.ones(27, dtype=torch.float64))


def test_nearest_exact_doubles_pixels():
    images = torch.tensor([[[[0.0, 1.0], [0.5, 0.25]]]])
    out = resize_images(images, 4, 4, "nearest-exact")
    assert torch.equal(out[0, 0, ::2, ::2], images[0, 0])
    assert torch.equal(out[0, 0, 1::2, 1::2], images[0, 0])


def test_area_downscale_averages_blocks():
    images = torch.arange(16.0).reshape(1, 1, 4, 4) / 16
    out = resize_images(images, 2, 2, "area")
    assert out[0, 0, 0, 0] == pytest.approx((0 + 1 + 4 + 5) / 64)


def test_unknown_method_and_bad_sizes_are_rejected():
    images = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="scale_method must be one of"):
        resize_images(images, 16, 16, "nearest")
    with pytest.raises(ValueError, match=r"height must be an integer in \[1, 16384\]"):
        resize_images(images, 0, 16, "bilinear")
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        resize_images(images[0], 16, 16, "bilinear")

