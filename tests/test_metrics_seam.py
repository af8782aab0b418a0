"""Seam metrics on images whose seam is known: a brightness step of height h along the mask boundary."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dualsampler.masks import ellipse_mask, feather_mask, half_mask
from dualsampler.metrics import SeamColorJump, SeamGradientRatio, SeamPerceptual
from dualsampler.models import Judge

SIZE = 64


def wave_texture(batch: int, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """A seamless, continuous texture: three random plane waves per channel around grey 0.4, in [0.25, 0.55]."""
    generator = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = torch.full((batch, 3, size, size), 0.4)
    for _ in range(3):
        freq = torch.rand(batch, 3, 2, generator=generator) * 0.3 + 0.05
        phase = torch.rand(batch, 3, 1, 1, generator=generator) * 2 * math.pi
        out += 0.05 * torch.sin(freq[..., :1, None] * x + freq[..., 1:, None] * y + phase)
    return out


@pytest.fixture(scope="module")
def judge() -> Judge:
    torch.manual_seed(0)
    return Judge()


def seam_scores(images: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor, judge: Judge) -> dict[str, float]:
    metrics = {"gradient_ratio": SeamGradientRatio(band_width=4), "color_jump": SeamColorJump(band_width=4)}
    for metric in metrics.values():
        metric.update(images, mask)
    perceptual = SeamPerceptual(judge, band_width=4)
    perceptual.update(images, mask, reference)
    return {name: metric.compute().item() for name, metric in {**metrics, "perceptual": perceptual}.items()}


@pytest.mark.parametrize("mask", [ellipse_mask(SIZE, SIZE), half_mask(SIZE, SIZE, "right")], ids=["ellipse", "half"])
def test_a_higher_brightness_step_scores_worse_on_every_seam_metric(mask, judge):
    texture = wave_texture(4)
    scores = [seam_scores(texture + step * mask, mask, texture, judge) for step in (0.0, 0.05, 0.1, 0.2, 0.3)]
    for name in scores[0]:
        values = [s[name] for s in scores]
        assert all(a < b for a, b in zip(values, values[1:])), (name, values)


def test_seamless_beats_feathered_beats_hard(judge):
    texture, mask = wave_texture(4, seed=1), ellipse_mask(SIZE, SIZE)
    seamless = seam_scores(texture, mask, texture, judge)
    feathered = seam_scores(texture + 0.2 * feather_mask(mask, 8), mask, texture, judge)
    hard = seam_scores(texture + 0.2 * mask, mask, texture, judge)
    for name in hard:
        assert seamless[name] < feathered[name] < hard[name], (name, seamless[name], feathered[name], hard[name])
    assert seamless["gradient_ratio"] == pytest.approx(1, abs=0.05)
    assert seamless["perceptual"] == pytest.approx(0, abs=1e-5)


def test_a_latent_resolution_mask_scores_like_the_full_resolution_one(judge):
    texture = wave_texture(2, seed=2)
    latent_mask = half_mask(SIZE // 4, SIZE // 4, "left")
    full_mask = F.interpolate(latent_mask, scale_factor=4, mode="nearest")
    images = texture + 0.1 * full_mask
    from_latent = seam_scores(images, latent_mask, texture, judge)
    assert from_latent == pytest.approx(seam_scores(images, full_mask, texture, judge))


@pytest.mark.parametrize("fill", [0.0, 1.0], ids=["empty", "full"])
def test_a_mask_without_boundary_gives_the_no_seam_value(fill, judge):
    texture = wave_texture(2, seed=3)
    scores = seam_scores(texture, torch.full((SIZE, SIZE), fill), texture.flip(0), judge)
    assert scores == {"gradient_ratio": 1.0, "color_jump": 0.0, "perceptual": 0.0}


def test_images_without_boundary_are_left_out_of_the_mean(judge):
    texture = wave_texture(2, seed=4)
    mask = torch.stack([ellipse_mask(SIZE, SIZE)[0], torch.zeros(1, SIZE, SIZE)])
    images = texture + 0.2 * mask
    both, first = SeamColorJump(band_width=4), SeamColorJump(band_width=4)
    both.update(images, mask)
    first.update(images[:1], mask[:1])
    assert both.compute().item() == pytest.approx(first.compute().item())


def test_accumulating_batches_equals_one_big_batch(judge):
    texture = wave_texture(6, seed=5)
    mask = torch.stack([ellipse_mask(SIZE, SIZE, rx=0.1 + 0.05 * i)[0] for i in range(6)])
    images = texture + torch.linspace(0, 0.3, 6)[:, None, None, None] * mask
    for make in (lambda: SeamGradientRatio(4), lambda: SeamColorJump(4), lambda: SeamPerceptual(judge, 4)):
        big, parts = make(), make()
        extra = (texture,) if isinstance(big, SeamPerceptual) else ()
        big.update(images, mask, *extra)
        for part in (slice(0, 1), slice(1, 4), slice(4, 6)):
            parts.update(images[part], mask[part], *(e[part] for e in extra))
        assert parts.compute().item() == pytest.approx(big.compute().item(), rel=1e-5)


def test_band_width_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="band_width"):
        SeamColorJump(band_width=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_seam_metrics_run_on_the_gpu(judge):
    texture, mask = wave_texture(2, seed=6).cuda(), ellipse_mask(SIZE, SIZE).cuda()
    cpu = seam_scores(texture.cpu() + 0.2 * mask.cpu(), mask.cpu(), texture.cpu(), judge)
    metrics = [SeamGradientRatio(4).cuda(), SeamColorJump(4).cuda()]
    for metric in metrics:
        metric.update(texture + 0.2 * mask, mask)
    perceptual = SeamPerceptual(judge, 4).cuda()
    perceptual.update(texture + 0.2 * mask, mask, texture)
    values = [m.compute() for m in (*metrics, perceptual)]
    assert all(v.device.type == "cuda" for v in values)
    assert [v.item() for v in values] == pytest.approx(list(cpu.values()), rel=1e-3)
    judge.cpu()
