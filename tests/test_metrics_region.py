"""Region prompt accuracy: the judge reads the mask prompt inside the (eroded) mask and the base prompt outside."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dualsampler.masks import ellipse_mask, half_mask, rectangle_mask
from dualsampler.metrics import RegionAccuracy
from dualsampler.models import WEIGHTS_DIR, Judge
from dualsampler.world import PATTERNS, PROMPTS, render_composite

# Every prompt once outside and once inside; the inside one differs in colour and in pattern.
PAIRS = [(PROMPTS[i], PROMPTS[(i + len(PATTERNS) + 1) % len(PROMPTS)]) for i in range(len(PROMPTS))]
MASKS = [ellipse_mask(128, 128, rx=0.3, ry=0.3), half_mask(128, 128, "left"),
         rectangle_mask(128, 128, 0.2, 0.1, 0.8, 0.6)]


class BrightnessJudge(nn.Module):
    """Stand-in judge reading "bright" or "dark" from a patch's mean value."""

    def predict_prompts(self, images: torch.Tensor) -> list[str]:
        return ["bright" if value > 0.5 else "dark" for value in images.mean(dim=(1, 2, 3)).tolist()]


def accuracy(judge: nn.Module, region: str, images: torch.Tensor, masks: torch.Tensor, prompts) -> float:
    metric = RegionAccuracy(judge, region, band_width=4)
    metric.update(images, masks, prompts)
    return metric.compute().item()


def test_each_region_is_read_against_its_own_prompt():
    mask = ellipse_mask(128, 128)
    images = 0.1 + 0.8 * mask.expand(1, 3, 128, 128)
    assert accuracy(BrightnessJudge(), "inside", images, mask, "bright") == 1.0
    assert accuracy(BrightnessJudge(), "outside", images, mask, "dark") == 1.0
    assert accuracy(BrightnessJudge(), "inside", 1 - images, mask, "bright") == 0.0


def test_a_region_too_small_for_a_whole_patch_gives_no_value(caplog):
    mask = rectangle_mask(64, 64, 0.25, 0.25, 0.75, 0.75)  # 32 px square: 24 px after erosion by 4
    images = 0.1 + 0.8 * mask.expand(1, 3, 64, 64)
    with caplog.at_level("INFO", logger="dualsampler.metrics.region_accuracy"):
        assert math.isnan(accuracy(BrightnessJudge(), "inside", images, mask, "bright"))
    assert "1 of 1 images have no whole 32 px patch" in caplog.text


def test_outside_a_64_px_ellipse_no_patch_is_read_across_the_seam():
    mask = ellipse_mask(64, 64)  # no 32 px patch fits outside it: the most-outside one straddles the seam
    images = 0.1 + 0.8 * mask.expand(1, 3, 64, 64)
    assert math.isnan(accuracy(BrightnessJudge(), "outside", images, mask, "dark"))
    big_mask = ellipse_mask(128, 128)  # the world's 128 px canvas has whole patches in the corners
    big = 0.1 + 0.8 * big_mask.expand(1, 3, 128, 128)
    assert accuracy(BrightnessJudge(), "outside", big, big_mask, "dark") == 1.0


def test_an_empty_region_is_skipped():
    images = torch.full((2, 3, 64, 64), 0.9)
    masks = torch.stack([torch.zeros(1, 64, 64), torch.ones(1, 64, 64)])
    assert accuracy(BrightnessJudge(), "inside", images, masks, "bright") == 1.0  # only the full mask counts
    assert math.isnan(accuracy(BrightnessJudge(), "inside", images[:1], masks[:1], "bright"))  # nothing to read


def test_accumulating_batches_equals_one_big_batch():
    generator = torch.Generator().manual_seed(0)
    masks = torch.cat([ellipse_mask(64, 64, rx=r, ry=r) for r in (0.2, 0.3, 0.4, 0.45)])
    images = (masks * torch.rand(4, 1, 1, 1, generator=generator) + torch.rand(4, 3, 64, 64, generator=generator) * 0.5)
    images = images.clamp(0, 1)
    prompts = ["bright", "dark", "bright", "dark"]
    parts = RegionAccuracy(BrightnessJudge(), "inside", band_width=4, stride=8)
    parts.update(images[:3], masks[:3], prompts[:3])
    parts.update(images[3:], masks[3:], prompts[3:])
    big = RegionAccuracy(BrightnessJudge(), "inside", band_width=4, stride=8)
    big.update(images, masks, prompts)
    assert parts.compute().item() == pytest.approx(big.compute().item())


def test_bad_region_and_small_images_are_value_errors():
    with pytest.raises(ValueError, match="region must be one of"):
        RegionAccuracy(BrightnessJudge(), "border")
    with pytest.raises(ValueError, match="images must be at least patch_size=32"):
        RegionAccuracy(BrightnessJudge()).update(torch.zeros(1, 3, 16, 16), torch.zeros(16, 16), "dark")


@pytest.fixture(scope="module")
def trained_judge() -> Judge:
    return Judge.from_pretrained(WEIGHTS_DIR / "judge").eval()


@pytest.fixture(scope="module")
def composites() -> dict[bool, torch.Tensor]:
    """Reference composites of PAIRS (MASKS in turn), keyed by `swap`: each prompt painted in the other region."""
    return {swap: torch.stack([render_composite(*((inside, base) if swap else (base, inside)), mask[0], seed)
                               for seed, ((base, inside), mask) in enumerate(zip(PAIRS, composite_masks()))])
            for swap in (False, True)}


def composite_masks() -> torch.Tensor:
    return torch.cat([MASKS[i % len(MASKS)] for i in range(len(PAIRS))])


@pytest.mark.parametrize("region", ["inside", "outside"])
def test_the_trained_judge_reads_reference_composites_right_and_swapped_ones_wrong(trained_judge, composites, region):
    prompts = [inside for _, inside in PAIRS] if region == "inside" else [base for base, _ in PAIRS]
    assert accuracy(trained_judge, region, composites[False], composite_masks(), prompts) >= 0.95
    assert accuracy(trained_judge, region, composites[True], composite_masks(), prompts) <= 0.1
