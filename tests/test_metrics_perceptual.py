"""Perceptual distance: `perceptual/judge` (LPIPS-style on the judge's layers), `lpips/<net>` only with torchvision."""

from __future__ import annotations

import sys

import pytest
import torch

from dualsampler.metrics import JudgePerceptualDistance, lpips_metric, perceptual_metric
from dualsampler.models import Judge
from dualsampler.world import render_texture


@pytest.fixture(scope="module")
def judge() -> Judge:
    torch.manual_seed(0)
    return Judge()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.stack([render_texture(p, 48, 48, seed=i) for i, p in enumerate(["red stripes", "blue dots"] * 2)])


def test_identical_images_are_at_distance_zero_and_noise_increases_it(judge, images):
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(images.shape, generator=generator)
    values = []
    for amount in (0.0, 0.05, 0.2):
        metric = JudgePerceptualDistance(judge)
        metric.update((images + amount * noise).clamp(0, 1), images)
        values.append(metric.compute().item())
    assert values[0] == pytest.approx(0, abs=1e-6)
    assert values[0] < values[1] < values[2]


def test_accumulating_batches_equals_one_big_batch(judge, images):
    references = images.flip(0)
    big, parts = JudgePerceptualDistance(judge), JudgePerceptualDistance(judge)
    big.update(images, references)
    parts.update(images[:1], references[:1])
    parts.update(images[1:], references[1:])
    assert parts.compute().item() == pytest.approx(big.compute().item(), rel=1e-5)


def test_without_lpips_auto_selects_the_judge_space_and_says_so(judge, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as on the CPU machines
    key, metric = perceptual_metric("auto", judge)
    assert key == "perceptual/judge"
    assert isinstance(metric, JudgePerceptualDistance)


def test_lpips_without_torchvision_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ImportError, match=r"lpips/alex.*torchvision.*pip install 'dualsampler\[vision\]'"):
        lpips_metric("alex")
    with pytest.raises(ImportError, match="torchvision"):
        perceptual_metric("lpips/vgg")


def test_unknown_perceptual_space_is_a_value_error(judge):
    with pytest.raises(ValueError, match="perceptual must be"):
        perceptual_metric("dists", judge)
    with pytest.raises(ValueError, match="lpips net must be one of"):
        lpips_metric("resnet")
