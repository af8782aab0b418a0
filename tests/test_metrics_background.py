"""Background preservation: PSNR and SSIM between an output and its input image over the kept pixels (keep = 1),
values derived by hand; LPIPS where it runs, else absent with its reason; jobs from noise list the keys as absent."""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from dualsampler.masks import rectangle_mask
from dualsampler.metrics.background import (BACKGROUND_KEYS, NO_INPUT, PSNR_CAP_DB, check_background,
                                             kept_composite, masked_lpips, masked_psnr, masked_ssim)
from dualsampler.metrics.evaluator import Evaluator
from dualsampler.models import load_model

MASK = rectangle_mask(128, 128, 0.25, 0.25, 0.75, 0.75)[0, 0]  # the region: the centre 64 px square
KEEP = 1 - MASK  # what the runner passes: 1 outside every region's grown mask


@pytest.fixture(scope="module")
def world():
    return load_model("world")


@pytest.fixture(autouse=True)
def no_torchvision(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # lpips absent, with its reason, on every machine


def inputs_and_inside_changes() -> tuple[torch.Tensor, torch.Tensor]:
    """(input images, outputs equal to them outside MASK and noise inside it)."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(2, 3, 128, 128, generator=generator)
    outputs = torch.where(MASK.bool(), torch.rand(2, 3, 128, 128, generator=generator), inputs)
    return inputs, outputs


def test_identical_kept_pixels_read_the_psnr_cap_and_ssim_one_whatever_changed_inside():
    inputs, outputs = inputs_and_inside_changes()
    images, inputs, keep = check_background(outputs, inputs, KEEP)
    assert masked_psnr(images, inputs, keep).tolist() == [PSNR_CAP_DB] * 2 == [100.0] * 2  # not inf: JSON holds it
    assert masked_ssim(images, inputs, keep).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    whole = structural_similarity_index_measure(outputs, inputs, data_range=1.0)
    assert whole < 0.9  # over the whole image the changes inside count; over the eroded kept pixels they do not


def test_a_constant_offset_outside_gives_psnr_minus_twenty_log_of_it():
    inputs = torch.full((1, 3, 128, 128), 0.4, dtype=torch.float64)
    for offset in (0.1, 0.01, 0.3):
        outputs = torch.where(MASK.bool(), 0.9, inputs + offset)
        images, source, keep = check_background(outputs, inputs, KEEP)
        assert masked_psnr(images, source, keep).item() == pytest.approx(-20 * math.log10(offset), rel=1e-6)


def test_ssim_of_a_constant_offset_on_a_flat_background_is_its_luminance_term():
    inputs = torch.full((1, 3, 128, 128), 0.4, dtype=torch.float64)
    outputs = torch.where(MASK.bool(), 0.0, inputs + 0.1)
    c1 = 0.01**2  # torchmetrics' (k1 * data range)^2; flat images: variances 0, the structure term is 1
    expected = (2 * 0.4 * 0.5 + c1) / (0.4**2 + 0.5**2 + c1)
    assert masked_ssim(*check_background(outputs, inputs, KEEP)).item() == pytest.approx(expected, rel=1e-9)


def test_lpips_of_the_kept_composite_sees_only_kept_pixels():
    inputs, outputs = inputs_and_inside_changes()
    images, inputs, keep = check_background(outputs, inputs, KEEP)
    assert torch.equal(kept_composite(images, inputs, keep), inputs)  # the outputs match them outside the mask

    def distance(a, b):  # a stand-in for LPIPS, which needs torchvision
        return (a - b).abs().mean()

    assert masked_lpips(distance, images, inputs, keep).tolist() == [0.0, 0.0]
    shifted = (images + 0.1 * keep).clamp(0, 1)  # a change of the kept pixels
    assert all(value > 0 for value in masked_lpips(distance, shifted, inputs, keep).tolist())


def test_an_upscaled_output_is_compared_at_the_inputs_size():
    inputs, outputs = inputs_and_inside_changes()
    upscaled = F.interpolate(outputs, scale_factor=2, mode="nearest")
    images, source, keep = check_background(upscaled, inputs, KEEP)
    assert images.shape == inputs.shape and masked_psnr(images, source, keep).tolist() == [100.0, 100.0]


def test_the_evaluation_reports_background_values_for_items_with_inputs(world):
    inputs, outputs = inputs_and_inside_changes()
    evaluator = Evaluator(real_images=0, perceptual="judge")
    evaluation = evaluator.start(world, "cpu", canvas=(128, 128))
    offset = torch.where(MASK.bool(), outputs, (inputs + 0.1).clamp(max=1.0))
    evaluation.update(outputs, [0, 1], "blue stripes", [(MASK, "red dots")], "a", inputs=inputs, keep=KEEP)
    evaluation.update(offset, [2, 3], "blue stripes", [(MASK, "red dots")], "b")  # no input: no background values
    aggregates, rows = evaluation.compute()
    assert [row["background/psnr"] for row in rows[:2]] == [100.0, 100.0]
    assert all(row["background/ssim"] == pytest.approx(1.0) for row in rows[:2])
    assert not any(key.startswith("background/") for row in rows[2:] for key in row)
    assert aggregates["background/psnr"] == 100.0 and aggregates["background/ssim"] == pytest.approx(1.0)
    assert "torchvision" in evaluation.absent["background/lpips"]
    assert set(aggregates) | set(evaluation.absent) == set(evaluator.keys(1, inputs=True))


def test_a_job_from_noise_lists_the_background_keys_as_absent(world):
    evaluator = Evaluator(real_images=0, perceptual="judge")
    evaluation = evaluator.start(world, "cpu")
    evaluation.update(world.reference_images("blue stripes", [(MASK, "red dots")], [0]), [0], "blue stripes",
                      [(MASK, "red dots")])
    aggregates, _ = evaluation.compute()
    assert {key: evaluation.absent[key] for key in BACKGROUND_KEYS} == dict.fromkeys(BACKGROUND_KEYS, NO_INPUT)
    assert NO_INPUT == "the job starts from noise (no input image)"
    assert set(aggregates) | set(evaluation.absent) == set(evaluator.keys(1, inputs=True))
    assert not set(BACKGROUND_KEYS) & set(evaluator.keys(1))  # what an objective of such a job may name


def test_nothing_kept_leaves_the_values_absent_with_the_reason(world):
    inputs, outputs = inputs_and_inside_changes()
    evaluation = Evaluator(real_images=0, perceptual="judge").start(world, "cpu")
    evaluation.update(outputs, [0, 1], "blue stripes", [(MASK, "red dots")], inputs=inputs,
                      keep=torch.zeros(128, 128))
    aggregates, rows = evaluation.compute()
    assert not any(key.startswith("background/") for key in aggregates)
    assert evaluation.absent["background/psnr"] == "no image kept a pixel (keep was 0 everywhere)"


@pytest.mark.parametrize(("arguments", "message"), [
    (dict(inputs=torch.zeros(2, 3, 128, 128)), "inputs and keep must be given together"),
    (dict(keep=KEEP), "inputs and keep must be given together"),
    (dict(inputs=torch.zeros(1, 3, 128, 128), keep=KEEP), r"inputs must hold one input image per image \(2\), got 1"),
    (dict(inputs=torch.zeros(2, 3, 256, 256), keep=KEEP),
     "inputs must be at most the images' size 128x128, got 256x256"),
    (dict(inputs=torch.full((2, 3, 128, 128), 2.0), keep=KEEP), r"inputs values must lie in \[0, 1\]"),
    (dict(inputs=torch.zeros(2, 3, 128, 128), keep=torch.ones(50, 50)),
     "keep size must be the image size 128x128 or an integer fraction of it"),
    (dict(inputs=torch.zeros(2, 3, 128, 128), keep=torch.full((128, 128), 2.0)), r"keep values must lie in \[0, 1\]"),
])
def test_bad_background_arguments_are_refused_before_any_metric_runs(world, arguments, message):
    evaluation = Evaluator(real_images=0, perceptual="judge").start(world, "cpu")
    with pytest.raises(ValueError, match=message):
        evaluation.update(torch.zeros(2, 3, 128, 128), [0, 1], "blue stripes", [(MASK, "red dots")], **arguments)
    assert evaluation.rows == [] and not evaluation.inputs_seen
