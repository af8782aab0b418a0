"""Bad input is a clear ValueError before any work; latent-resolution masks are resized."""

from __future__ import annotations

import pytest
import torch

from dualsampler.metrics import SeamColorJump, compute_metrics
from dualsampler.metrics.inputs import prepare_masks

IMAGES = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
MASK = torch.zeros(32, 32)
MASK[:, 16:] = 1


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (IMAGES * 2, r"images values must lie in \[0, 1\]"),
        (IMAGES - 0.5, r"images values must lie in \[0, 1\]"),
        (torch.full((2, 3, 32, 32), float("nan")), r"images values must lie in \[0, 1\]"),
        (IMAGES[0], r"images must have shape \[B,3,H,W\]"),
        (IMAGES[:, :1], r"images must have shape \[B,3,H,W\]"),
        ((IMAGES * 255).to(torch.uint8), "images must be a float Tensor"),
    ],
    ids=["above-1", "below-0", "nan", "rank-3", "one-channel", "uint8"],
)
def test_bad_images_are_a_value_error(images, message):
    with pytest.raises(ValueError, match=message):
        compute_metrics(images, MASK, None, None)
    with pytest.raises(ValueError, match=message):
        SeamColorJump().update(images, MASK)


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (torch.zeros(32, 30), "masks size must be the image size 32x32 or an integer fraction"),
        (torch.zeros(12, 12), "masks size must be the image size 32x32 or an integer fraction"),
        (torch.zeros(16, 8), "masks size must be the image size 32x32 or an integer fraction"),
        (torch.zeros(3, 32, 32), "masks batch must be 1 or 2"),
        (torch.zeros(2, 3, 32, 32), r"masks must have shape \[H,W\], \[B,H,W\] or \[B,1,H,W\]"),
        (MASK * 2, r"masks values must lie in \[0, 1\]"),
    ],
    ids=["other-width", "not-a-fraction", "unequal-factors", "batch", "channels", "values"],
)
def test_bad_masks_are_a_value_error(mask, message):
    with pytest.raises(ValueError, match=message):
        compute_metrics(IMAGES, mask, None, None)


def test_masks_at_latent_resolution_are_resized_to_the_image():
    latent = MASK[::4, ::4]
    assert torch.equal(prepare_masks(latent, IMAGES), prepare_masks(MASK, IMAGES))
    assert prepare_masks(latent[None, None], IMAGES).shape == (2, 1, 32, 32)


def test_other_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="references must have the shape of images"):
        compute_metrics(IMAGES, MASK, None, None, references=IMAGES[:1])
    with pytest.raises(ValueError, match="base_prompts must be a string or 2 strings"):
        compute_metrics(IMAGES, MASK, ["red dots"] * 3, "blue waves")
    with pytest.raises(ValueError, match="fid/kid need at least 2 images and 2 real_images"):
        compute_metrics(IMAGES, MASK, None, None, real_images=IMAGES[:1])
    with pytest.raises(ValueError, match="fid_features must be one of"):
        compute_metrics(IMAGES, MASK, None, None, real_images=IMAGES, fid_features="clip")
    with pytest.raises(ValueError, match="band_width must be an integer in \\[1,"):
        compute_metrics(IMAGES, MASK, None, None, band_width=0)
