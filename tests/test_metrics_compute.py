"""compute_metrics: one call, a flat dict whose keys depend on the inputs given and name their feature space."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from dualsampler.masks import ellipse_mask
from dualsampler.metrics import SeamColorJump, compute_metrics
from dualsampler.models import Judge
from dualsampler.world import render_composite, render_texture

PAIRS = [("red stripes", "blue dots"), ("green checker", "yellow waves"), ("purple grid", "orange blobs")] * 2


@pytest.fixture(scope="module")
def judge() -> Judge:
    torch.manual_seed(0)
    return Judge()


@pytest.fixture(scope="module")
def batch() -> dict:
    mask = ellipse_mask(128, 128)  # the world's canvas: whole judge patches fit inside and outside
    references = torch.stack([render_composite(base, inside, mask, seed) for seed, (base, inside) in enumerate(PAIRS)])
    images = (references + 0.05 * torch.randn(references.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    real = torch.stack([render_texture(inside, 128, 128, seed) for seed, (_, inside) in enumerate(PAIRS)])
    return {"images": images, "masks": mask, "references": references, "real_images": real,
            "base_prompts": [base for base, _ in PAIRS], "mask_prompts": [inside for _, inside in PAIRS]}


@pytest.fixture(autouse=True)
def no_torchvision(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # the same keys on every machine


def test_keys_follow_the_inputs_given(batch, judge):
    images, masks = batch["images"], batch["masks"]
    assert set(compute_metrics(images, masks, None, None, judge=judge)) == {"seam/gradient_ratio", "seam/color_jump"}
    with_references = compute_metrics(images, masks, None, None, references=batch["references"], judge=judge)
    assert set(with_references) == {"seam/gradient_ratio", "seam/color_jump", "perceptual/judge", "seam/perceptual"}
    everything = compute_metrics(images, masks, batch["base_prompts"], batch["mask_prompts"],
                                 references=batch["references"], judge=judge, real_images=batch["real_images"])
    assert set(everything) == {"seam/gradient_ratio", "seam/color_jump", "perceptual/judge", "seam/perceptual",
                               "region_accuracy/inside", "region_accuracy/outside", "fid/judge", "kid/judge"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in everything.values())


def test_region_accuracy_is_absent_when_no_judge_patch_fits_the_region(judge):
    mask = ellipse_mask(64, 64)  # no whole 32 px patch outside the ellipse on a 64 px canvas
    images = torch.stack([render_composite("red stripes", "blue dots", mask, seed) for seed in range(2)])
    result = compute_metrics(images, mask, ["red stripes"] * 2, ["blue dots"] * 2, judge=judge)
    assert set(result) == {"seam/gradient_ratio", "seam/color_jump"}  # nor inside: 32 px squares miss the ellipse


def test_values_do_not_depend_on_the_batch_size(batch, judge):
    kwargs = dict(references=batch["references"], judge=judge, real_images=batch["real_images"])
    args = (batch["images"], batch["masks"], batch["base_prompts"], batch["mask_prompts"])
    whole, chunked = compute_metrics(*args, **kwargs, batch_size=64), compute_metrics(*args, **kwargs, batch_size=4)
    assert chunked == pytest.approx(whole, rel=1e-4, abs=1e-6)


def test_values_match_the_metric_used_alone_and_latent_masks_are_accepted(batch):
    latent_mask = ellipse_mask(32, 32)
    result = compute_metrics(batch["images"], latent_mask, None, None, band_width=2)
    alone = SeamColorJump(band_width=2)
    alone.update(batch["images"], latent_mask)
    assert result["seam/color_jump"] == pytest.approx(alone.compute().item())


def test_fid_in_inception_space_needs_the_vision_extra(batch):
    with pytest.raises(ImportError, match=r"pip install 'dualsampler\[vision\]'"):
        compute_metrics(batch["images"], batch["masks"], None, None, real_images=batch["real_images"],
                        fid_features="inception")
