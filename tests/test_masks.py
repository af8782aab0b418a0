"""Mask growth (SPEC §7), resize, feather and the shape makers."""

import pytest
import torch

from dualsampler.masks import ellipse_mask, feather_mask, grow_mask, half_mask, load_mask, rectangle_mask, resize_mask


def test_grow_by_three_adds_one_pixel_on_each_side():
    mask = torch.zeros(1, 1, 7, 9)
    mask[..., 3, 4] = 1
    grown = grow_mask(mask, 7, 9, 3)
    expected = torch.zeros(1, 1, 7, 9)
    expected[..., 2:5, 3:6] = 1
    assert torch.equal(grown, expected)


def test_even_grow_extends_down_and_right():
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., 3, 3] = 1
    # padding ceil(1/2) = 1: output o sums inputs o-1 and o, so pixel 3 reaches outputs 3 and 4
    grown = grow_mask(mask, 6, 6, 2)
    expected = torch.zeros(1, 1, 6, 6)
    expected[..., 3:5, 3:5] = 1
    assert torch.equal(grown, expected)


def test_grow_zero_only_resizes_and_rounds():
    mask = torch.zeros(16, 16)
    mask[:, 8:] = 1
    assert torch.equal(grow_mask(mask, 4, 4, 0), half_mask(4, 4, "right"))


def test_non_square_latent_is_not_transposed():
    image_mask = half_mask(64, 128, "right")
    grown = grow_mask(image_mask, 8, 16, 0)
    assert grown.shape == (1, 1, 8, 16)
    assert torch.equal(grown, half_mask(8, 16, "right"))


def test_grow_bigger_than_the_latent_covers_everything():
    mask = torch.zeros(1, 1, 5, 7)
    mask[..., 2, 3] = 1
    assert torch.equal(grow_mask(mask, 5, 7, 40), torch.ones(1, 1, 5, 7))


def test_negative_grow_is_rejected():
    with pytest.raises(ValueError, match="grow_by .* must be an integer in \\[0,"):
        grow_mask(torch.ones(4, 4), 4, 4, -1)


def test_resize_keeps_batch_and_accepts_every_rank():
    for mask in (torch.ones(8, 8), torch.ones(2, 8, 8), torch.ones(2, 1, 8, 8)):
        assert resize_mask(mask, 4, 6).shape[-3:] == (1, 4, 6)
    with pytest.raises(ValueError, match="must have shape"):
        resize_mask(torch.ones(2, 3, 8, 8), 4, 4)


def test_feather_softens_edges_and_stays_in_unit_range():
    hard = rectangle_mask(32, 32, 0.25, 0.25, 0.75, 0.75)
    soft = feather_mask(hard, 4)
    assert soft.min() >= 0 and soft.max() <= 1
    assert 0.2 < soft[0, 0, 16, 8].item() < 0.8
    assert soft[0, 0, 16, 16].item() > 0.99 and soft[0, 0, 0, 0].item() < 0.01
    assert torch.equal(feather_mask(hard, 0), hard)


def test_shape_makers():
    assert rectangle_mask(10, 20, 0, 0, 0.5, 0.5).sum() == 5 * 10
    assert half_mask(4, 6, "top")[0, 0, :2].all() and not half_mask(4, 6, "top")[0, 0, 2:].any()
    ellipse = ellipse_mask(64, 64, ry=0.25, rx=0.25)
    assert ellipse.sum().item() == pytest.approx(3.14159 * 16 * 16, rel=0.05)
    with pytest.raises(ValueError, match="side must be one of"):
        half_mask(4, 4, "middle")


def test_load_mask_from_image_file(tmp_path):
    from PIL import Image

    pixels = (half_mask(16, 24, "right")[0, 0].numpy() * 255).astype("uint8")
    Image.fromarray(pixels).save(tmp_path / "mask.png")
    assert torch.equal(load_mask(tmp_path / "mask.png"), half_mask(16, 24, "right"))
    assert load_mask(tmp_path / "mask.png", 4, 6).shape == (1, 1, 4, 6)
