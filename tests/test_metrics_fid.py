"""FID / KID through torchmetrics over the judge's feature space (here a tiny stand-in judge)."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn
from torchmetrics.image.kid import KernelInceptionDistance

from dualsampler.metrics import frechet_distance, kernel_distance
from dualsampler.metrics.features import JudgeFeatures
from dualsampler.world import PROMPTS, render_texture


class TinyJudge(nn.Module):
    """Stand-in with the judge's `features(images) -> [B, D]` interface: two random convs, mean-pooled."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2), nn.SiLU(), nn.Conv2d(16, 16, 3, stride=2), nn.SiLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


@pytest.fixture(scope="module")
def textures() -> torch.Tensor:
    return torch.stack([render_texture(PROMPTS[i % len(PROMPTS)], 32, 32, seed=i) for i in range(40)])


def distance(make, real: torch.Tensor, generated: torch.Tensor) -> float:
    metric = make("judge", TinyJudge())
    metric.update(real, real=True)
    metric.update(generated, real=False)
    value = metric.compute()
    return float(value[0] if isinstance(value, tuple) else value)


@pytest.mark.parametrize("make", [frechet_distance, kernel_distance], ids=["fid", "kid"])
def test_distance_is_zero_against_itself_and_grows_with_a_brightness_shift(make, textures):
    itself = distance(make, textures, textures)
    shifted = [distance(make, textures, (textures + shift).clamp(0, 1)) for shift in (0.15, 0.3, 0.45)]
    assert abs(itself) < 0.1 * shifted[0]  # KID's unbiased estimate on one set against itself is just below 0
    assert all(a < b for a, b in zip(shifted, shifted[1:])), shifted


def test_fid_accumulated_over_batches_equals_one_big_batch(textures):
    generated = (textures.flip(0) + 0.1).clamp(0, 1)
    parts = frechet_distance("judge", TinyJudge())
    for chunk in textures.split(7):
        parts.update(chunk, real=True)
    for chunk in generated.split(9):
        parts.update(chunk, real=False)
    assert parts.compute().item() == pytest.approx(distance(frechet_distance, textures, generated), rel=1e-4)


def test_kid_is_reproducible_and_works_with_fewer_samples_than_its_subset_size(textures):
    first = distance(kernel_distance, textures[:10], textures[10:25])
    assert first == distance(kernel_distance, textures[:10], textures[10:25])


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_kid_on_whole_sets_matches_torchmetrics(textures):
    reference = KernelInceptionDistance(feature=JudgeFeatures(TinyJudge()), subsets=3, subset_size=20)
    reference.update(textures[:20], real=True)
    reference.update(textures[20:], real=False)
    ours = distance(kernel_distance, textures[:20], textures[20:])
    assert ours == pytest.approx(reference.compute()[0].item(), rel=2e-3)  # torchmetrics sums in float32


def test_unknown_extractor_is_a_value_error():
    with pytest.raises(ValueError, match="extractor must be one of"):
        frechet_distance("clip", TinyJudge())


@pytest.mark.parametrize("make", [frechet_distance, kernel_distance], ids=["fid", "kid"])
def test_inception_without_the_vision_extra_names_what_to_install(make, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as on the CPU machines, where it does not import
    with pytest.raises(ImportError, match=r"torchvision.*pip install 'dualsampler\[vision\]'"):
        make("inception")


@pytest.mark.parametrize("make", [frechet_distance, kernel_distance], ids=["fid", "kid"])
def test_inception_with_a_missing_weights_file_names_the_key_before_importing_anything(make, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # the file is checked first, whatever is installed
    with pytest.raises(FileNotFoundError, match=r"absent.pth \(metrics.inception_weights; no downloads"):
        make("inception", weights_path=str(tmp_path / "absent.pth"))
