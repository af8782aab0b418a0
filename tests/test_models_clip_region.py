"""region_clip/inside|outside (dualsampler.metrics.clip_region): arithmetic with a CLIP whose scores are known, and
the real path with a tiny random-weight CLIP folder (clip_fixtures.write_tiny_clip)."""

import math
from types import SimpleNamespace

import pytest
import torch
from clip_fixtures import write_tiny_clip
from torch import nn

from dualsampler.metrics.clip_region import RegionCLIPScore

WORDS = {"red": 0, "blue": 1}


class ColorCLIP(nn.Module):
    """A CLIP stand-in with known scores: an image's embedding is (mean red, mean blue) of its pixels, the text
    "red" embeds as (1, 0) and "blue" as (0, 1); so a crop is closer to "red" exactly when it is redder than blue."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def get_image_features(self, pixel_values):
        return torch.stack([pixel_values[:, 0].mean((1, 2)), pixel_values[:, 2].mean((1, 2))], dim=1)

    def get_text_features(self, input_ids):
        return nn.functional.one_hot(input_ids[:, 0], 2).float()


def word_tokenizer(prompts, padding=True, return_tensors="pt"):
    return {"input_ids": torch.tensor([[WORDS[p]] for p in prompts])}


PROCESSOR = SimpleNamespace(tokenizer=word_tokenizer, image_processor=SimpleNamespace(
    crop_size={"height": 16, "width": 16}, image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0]))


def halves(left: str, right: str, size: int = 64) -> torch.Tensor:
    """An image whose left half is `left` and right half `right` (pure red or blue)."""
    color = {"red": torch.tensor([1.0, 0, 0]), "blue": torch.tensor([0, 0, 1.0])}
    image = torch.empty(3, size, size)
    image[:, :, : size // 2] = color[left][:, None, None]
    image[:, :, size // 2 :] = color[right][:, None, None]
    return image


LEFT_MASK = torch.zeros(1, 1, 64, 64)
LEFT_MASK[..., :32] = 1


def metric(region: str) -> RegionCLIPScore:
    return RegionCLIPScore((ColorCLIP(), PROCESSOR), region, band_width=2, patch_size=16, stride=4)


def test_every_crop_of_a_region_painted_its_own_prompt_scores_one():
    inside, outside = metric("inside"), metric("outside")
    image = halves("red", "blue")[None]
    inside.update(image, LEFT_MASK, "red", "blue")
    outside.update(image, LEFT_MASK, "blue", "red")
    assert float(inside.compute()) == 1.0 and float(outside.compute()) == 1.0


def test_the_score_is_the_mean_over_images_of_their_shares():
    inside = metric("inside")
    images = torch.stack([halves("red", "blue"), halves("blue", "blue"), halves("red", "red")])
    inside.update(images, LEFT_MASK, "red", "blue")
    assert float(inside.compute()) == pytest.approx(2 / 3)  # shares 1, 0, 1
    swapped = metric("inside")
    swapped.update(images, LEFT_MASK, "blue", "red")
    assert float(swapped.compute()) == pytest.approx(1 / 3)


def test_a_region_too_small_for_a_crop_gives_nan_not_a_number_that_looks_measured():
    inside = metric("inside")
    small = torch.zeros(1, 1, 64, 64)
    small[..., :8, :8] = 1
    inside.update(halves("red", "blue")[None], small, "red", "blue")
    assert math.isnan(float(inside.compute()))


def test_a_tiny_random_clip_folder_loads_offline_and_scores_in_range(tmp_path, monkeypatch):
    folder = write_tiny_clip(tmp_path / "clip")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("socket.socket.connect", lambda *a, **k: pytest.fail("network touched"))
    inside = RegionCLIPScore(str(folder), "inside", band_width=2, patch_size=16, stride=16)
    inside.update(torch.rand(2, 3, 64, 64), LEFT_MASK, ["red dots", "blue"], ["blue", "red dots"])
    assert 0.0 <= float(inside.compute()) <= 1.0 and int(inside.count) == 2
    total = float(inside.total) * 4  # 4 whole crops per image (x 0..15, y 0/16/32/48): each share is k/4
    assert total == pytest.approx(round(total))


def test_unknown_region_and_missing_folder_are_errors(tmp_path):
    with pytest.raises(ValueError, match="region must be one of"):
        RegionCLIPScore((ColorCLIP(), PROCESSOR), "middle")
    with pytest.raises(ValueError, match="clip must be a local CLIP folder"):
        RegionCLIPScore(str(tmp_path / "absent"))
