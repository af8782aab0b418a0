"""compute_metrics: one call, a flat dict whose keys depend on the inputs given and name their feature space; the
same registry families and per-image values as the runner's Evaluator; no judge given, no judge metrics."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from dualsampler.masks import ellipse_mask
from dualsampler.metrics import SeamColorJump, compute_metrics
from dualsampler.metrics.compute import NO_JUDGE_GIVEN, evaluate_images
from dualsampler.metrics.evaluator import Evaluator
from dualsampler.models import Judge, load_model
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
                               "region_accuracy/inside", "region_accuracy/outside", "region_color/inside",
                               "region_color/outside", "region_pattern/inside", "region_pattern/outside",
                               "fid/judge", "kid/judge", "kid/judge_std"}
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


def test_without_a_judge_its_metrics_are_absent_with_the_reason_and_no_judge_is_loaded(batch, monkeypatch):
    import dualsampler.models

    def refuse(*args, **kwargs):
        raise AssertionError("compute_metrics loaded the world")

    monkeypatch.setattr(dualsampler.models, "load_world", refuse)
    images, masks = batch["images"], batch["masks"]
    args = (images, masks, batch["base_prompts"], batch["mask_prompts"])
    kwargs = dict(references=batch["references"], real_images=batch["real_images"], perceptual="judge")
    assert set(compute_metrics(*args, **kwargs)) == {"seam/gradient_ratio", "seam/color_jump"}
    absent = evaluate_images(*args, **kwargs).absent
    judged = {f"region_{share}/{side}" for share in ("accuracy", "color", "pattern") for side in ("inside", "outside")}
    judged |= {"perceptual/judge", "seam/perceptual", "fid/judge", "kid/judge", "kid/judge_std"}
    assert absent == dict.fromkeys(judged, NO_JUDGE_GIVEN)


def test_per_image_rows_are_the_evaluators_for_the_same_images():
    world = load_model("world")
    mask = ellipse_mask(128, 128)
    images = world.reference_images("red stripes", [(mask, "blue dots")], [3, 4, 5])
    images = (images + 0.05 * torch.randn(images.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    references = world.reference_images("red stripes", [(mask, "blue dots")], [3, 4, 5])
    evaluated = evaluate_images(images, mask, "red stripes", "blue dots", references=references, judge=world.judge,
                                perceptual="judge")
    evaluation = Evaluator(perceptual="judge", real_images=0).start(world, "cpu")
    evaluation.update(images, [3, 4, 5], "red stripes", [(mask, "blue dots")])
    aggregates, rows = evaluation.compute()
    assert [row.pop("image") for row in evaluated.rows] == [0, 1, 2]
    assert [{key: value for key, value in row.items() if key != "seed"} for row in rows] == evaluated.rows
    assert "judge/inside" in evaluated.rows[0] and "seam/perceptual" in evaluated.rows[0]
    assert evaluated.values == aggregates
