"""Honest world metrics: colour and pattern scored apart with the judge's reading in the rows, the judge reading
upscaled images at the job's canvas, every key the settings name either reported or absent with its reason, and a
Stable Diffusion folder that loads without library chatter."""

from __future__ import annotations

import logging
import sys
import types
import warnings

import pytest
import torch
import torch.nn.functional as F

from dualsampler.masks import ellipse_mask, rectangle_mask
from dualsampler.metrics.background import BACKGROUND_KEYS, NO_INPUT
from dualsampler.metrics.evaluator import NO_JUDGE, Evaluator
from dualsampler.models import load_model

BASE = "blue stripes"
ELLIPSE = ellipse_mask(128, 128, rx=0.3, ry=0.3)
# Two regions of the world's 128 px canvas, apart, each holding whole 32 px judge patches.
TWO = [(rectangle_mask(128, 128, 0.0, 0.0, 0.55, 0.55), "red dots"),
       (rectangle_mask(128, 128, 0.55, 0.3, 1.0, 0.7), "yellow waves")]
SHARES = ("accuracy", "color", "pattern")


@pytest.fixture(scope="module")
def world():
    return load_model("world")


@pytest.fixture(autouse=True)
def no_torchvision(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # lpips absent, with its reason, on every machine


def evaluate(model, batches, canvas=None, **settings):
    """(aggregates, rows, absent) of an evaluation updated with `batches` of update's keyword arguments."""
    evaluation = Evaluator(**{"real_images": 0, **settings}).start(model, "cpu", canvas=canvas)
    for batch in batches:
        evaluation.update(**batch)
    aggregates, rows = evaluation.compute()
    return aggregates, rows, evaluation.absent


def test_dots_of_the_wrong_colour_score_on_pattern_and_the_row_says_what_the_judge_read(world):
    images = world.reference_images(BASE, [(ELLIPSE, "red dots")], [0, 1])
    aggregates, rows, _ = evaluate(world, [dict(images=images, seeds=[0, 1], base_prompt="blue waves",
                                                regions=[(ELLIPSE, "orange dots")])])
    assert aggregates["region_accuracy/inside"] == aggregates["region_color/inside"] == 0.0
    assert aggregates["region_pattern/inside"] == 1.0
    assert aggregates["region_accuracy/outside"] == aggregates["region_pattern/outside"] == 0.0
    assert aggregates["region_color/outside"] == 1.0
    assert [(row["judge/inside"], row["judge/outside"]) for row in rows] == [("red dots", BASE)] * 2
    assert all(isinstance(value, float) for value in aggregates.values())  # readings stay in the rows


def test_items_of_two_regions_record_each_regions_reading(world):
    images = world.reference_images(BASE, TWO, [3])
    regions = [(TWO[0][0], "red checker"), (TWO[1][0], "green waves")]
    aggregates, rows, _ = evaluate(world, [dict(images=images, seeds=[3], base_prompt=BASE, regions=regions)])
    assert rows[0]["judge/region0"] == "red dots" and rows[0]["judge/region1"] == "yellow waves"
    assert rows[0]["judge/inside"] in ("red dots", "yellow waves")  # the most frequent over both regions
    assert (aggregates["region_color/region0"], aggregates["region_pattern/region0"]) == (1.0, 0.0)
    assert (aggregates["region_color/region1"], aggregates["region_pattern/region1"]) == (0.0, 1.0)
    assert aggregates["region_color/inside"] == aggregates["region_pattern/inside"] == 0.5
    assert aggregates["region_accuracy/inside"] == 0.0


def test_an_upscaled_image_is_judged_at_the_jobs_canvas(world):
    seeds = [0, 1, 2, 3]
    references = world.reference_images(BASE, [(ELLIPSE, "red dots")], seeds)
    upscaled = F.interpolate(references, scale_factor=2, mode="bilinear").clamp(0, 1)
    batch = dict(images=upscaled, seeds=seeds, base_prompt=BASE, regions=[(ELLIPSE, "red dots")])
    at_256, rows_256, _ = evaluate(world, [batch], perceptual="judge")
    at_canvas, rows, _ = evaluate(world, [batch], canvas=(128, 128), perceptual="judge", real_images=4)
    # At 256 px the stripes are twice as wide as the judge learnt them: it reads blobs (0.125 and 0.031 here).
    assert at_256["region_accuracy/outside"] < 0.5 and at_256["region_accuracy/inside"] < 0.5
    assert {row["judge/outside"] for row in rows_256} == {"blue blobs"}
    for share in SHARES:
        assert at_canvas[f"region_{share}/inside"] == at_canvas[f"region_{share}/outside"] == 1.0
    assert {(row["judge/inside"], row["judge/outside"]) for row in rows} == {("red dots", BASE)}
    assert at_canvas["perceptual/judge"] < 0.01 < at_256["perceptual/judge"]  # references rendered at the canvas
    assert at_canvas["seam/gradient_ratio"] == at_256["seam/gradient_ratio"]  # seams read at the images' size
    full_size_mask = F.interpolate(ELLIPSE, scale_factor=2, mode="nearest")
    same, _, _ = evaluate(world, [{**batch, "regions": [(full_size_mask, "red dots")]}], canvas=(128, 128),
                          perceptual="judge", real_images=4)
    assert same == pytest.approx(at_canvas)


def test_a_canvas_is_a_size_no_larger_than_the_images(world):
    with pytest.raises(ValueError, match=r"canvas must be None or \(height, width\), got 128"):
        Evaluator().start(world, "cpu", canvas=128)
    with pytest.raises(ValueError, match="canvas width must be an integer >= 1, got 0"):
        Evaluator().start(world, "cpu", canvas=(128, 0))
    evaluation = Evaluator(real_images=0).start(world, "cpu", canvas=(256, 256))
    with pytest.raises(ValueError, match="images must be at least the canvas 256x256 px, got 128x128"):
        evaluation.update(torch.zeros(1, 3, 128, 128), [0], BASE, [(ELLIPSE, "red dots")])
    assert evaluation.rows == []


def test_every_key_the_world_may_report_is_reported_or_absent_with_its_reason(world):
    evaluator = Evaluator(real_images=4)  # perceptual=auto: lpips/alex without torchvision falls back to the judge
    images = world.reference_images(BASE, TWO, [0, 1])
    aggregates, _, absent = evaluate(world, [dict(images=images, seeds=[0, 1], base_prompt=BASE, regions=TWO)],
                                     real_images=4)
    assert set(aggregates) | set(absent) == set(evaluator.keys(2, inputs=True))
    assert set(aggregates) == set(evaluator.keys(2)) - {"lpips/alex"}
    assert absent["lpips/alex"].startswith("metrics.perceptual=auto measures perceptual/judge instead: lpips/alex "
                                           "needs the package 'torchvision'")
    assert {absent[key] for key in BACKGROUND_KEYS} == {NO_INPUT}


def test_a_model_without_a_judge_lists_every_judge_key_as_absent():
    stand_in = types.SimpleNamespace()  # a Stable Diffusion model's evaluation sees no `judge`
    evaluator = Evaluator(real_images=4)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    mask, corner = rectangle_mask(64, 64, 0.25, 0.25, 0.75, 0.75), rectangle_mask(64, 64, 0.0, 0.0, 0.3, 0.3)
    aggregates, rows, absent = evaluate(stand_in, [dict(images=images, seeds=[0, 1], base_prompt="a cat",
                                                        regions=[(mask, "a dog"), (corner, "a hat")])],
                                        real_images=4)
    assert set(aggregates) | set(absent) == set(evaluator.keys(2, inputs=True))
    assert set(aggregates) == {key for key in evaluator.keys(2) if key.startswith("seam/") and key != "seam/perceptual"}
    judged = [key for key in evaluator.keys(2) if key.split("/")[0] in
              ("region_accuracy", "region_color", "region_pattern", "perceptual", "lpips", "fid", "kid")]
    assert len(judged) == 6 + 3 * 2 + 2 + 3 and {absent[key] for key in judged + ["seam/perceptual"]} == {NO_JUDGE}
    assert not any(key.startswith("judge/") for row in rows for key in row)


def test_a_stable_diffusion_folder_reports_its_absent_metrics(sd_models):
    model = load_model(sd_models.sd15)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    regions = [(rectangle_mask(64, 64, 0.25, 0.25, 0.75, 0.75), "a dog")]
    inputs = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    aggregates, _, absent = evaluate(model, [dict(images=images, seeds=[0, 1], base_prompt="a cat", regions=regions,
                                                  inputs=inputs, keep=1 - regions[0][0][0, 0])], real_images=4)
    keys = Evaluator(real_images=4).keys(1, inputs=True)
    assert set(aggregates) | set(absent) == set(keys)
    assert {"fid/judge", "kid/judge", "perceptual/judge", "seam/perceptual", "region_color/inside"} <= set(absent)
    assert {"background/psnr", "background/ssim"} <= set(aggregates)
    assert "torchvision" in absent["background/lpips"]


def test_a_second_stable_diffusion_load_prints_nothing(sd_models, capfd):
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    libraries = [logging.getLogger("diffusers"), logging.getLogger("transformers")]
    load_model(sd_models.sd15)
    load_model(sd_models.sd15_checkpoint, config=sd_models.sd15)
    capfd.readouterr()
    for library in libraries:
        library.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_model(sd_models.sd15)
            load_model(sd_models.sd15_checkpoint, config=sd_models.sd15)
        logging.getLogger("transformers.utils.import_utils").warning(
            "`CLIPImageProcessor` requires torchvision (not installed); falling back to `CLIPImageProcessorPil`")
        logging.getLogger("diffusers.models.modeling_utils").warning(
            "There are modules in UNet2DConditionModel that should be kept in float32: ['conv_in'].")
    finally:
        for library in libraries:
            library.removeHandler(handler)
    # silenced by message: a notice that names something still shows
    assert [record.getMessage() for record in records] == [
        "There are modules in UNet2DConditionModel that should be kept in float32: ['conv_in']."]
    assert [str(w.message) for w in caught] == []
    assert capfd.readouterr() == ("", "")
