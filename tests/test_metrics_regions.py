"""The job's evaluation over items of 1..16 regions: rows name the item, items with 2+ regions add per-region keys,
one-region items report what the two-region evaluation always did; the world's N-region reference composites."""

from __future__ import annotations

import math

import pytest
import torch

from dualsampler.masks import ellipse_mask, half_mask, rectangle_mask
from dualsampler.metrics import RegionAccuracy, SeamColorJump, SeamGradientRatio
from dualsampler.metrics.background import BACKGROUND_KEYS, NO_INPUT
from dualsampler.metrics.evaluator import REAL_SEED_OFFSET, Evaluator
from dualsampler.models import load_model
from dualsampler.world import render_composite, render_texture
from dualsampler.world.composites import render_regions

BASE = "blue stripes"
# Three regions on the world's 128 px canvas, each with whole 32 px judge patches of its own: the first two overlap
# in a 13 px column (the second on top), the third leaves the bottom corners to the base prompt.
THREE = [(rectangle_mask(128, 128, 0.0, 0.0, 0.55, 0.55), "red dots"),
         (rectangle_mask(128, 128, 0.0, 0.45, 0.55, 1.0), "green checker"),
         (rectangle_mask(128, 128, 0.55, 0.3, 1.0, 0.7), "yellow waves")]
ONE = [(ellipse_mask(128, 128, rx=0.3, ry=0.3), "purple grid")]
PER_REGION = ["region_accuracy/region{k}", "region_color/region{k}", "region_pattern/region{k}",
              "seam/gradient_ratio/region{k}", "seam/color_jump/region{k}"]
FROM_NOISE = dict.fromkeys(BACKGROUND_KEYS, NO_INPUT)  # what `absent` holds for items without an input image


@pytest.fixture(scope="module")
def world():
    return load_model("world")


def evaluate(world, batches, **settings) -> tuple[dict, list[dict], dict]:
    """(aggregates, rows, absent) of an evaluation on the world updated with `batches` of update's arguments."""
    evaluation = Evaluator(**{"perceptual": "judge", "real_images": 0, **settings}).start(world, "cpu")
    for batch in batches:
        evaluation.update(*batch)
    aggregates, rows = evaluation.compute()
    return aggregates, rows, evaluation.absent


def swapped(regions, first: int, second: int):
    """`regions` with the prompts of regions `first` and `second` exchanged."""
    prompts = [prompt for _, prompt in regions]
    prompts[first], prompts[second] = prompts[second], prompts[first]
    return [(mask, prompt) for (mask, _), prompt in zip(regions, prompts)]


def test_one_region_composite_is_render_composite_bit_for_bit():
    for seed, mask in enumerate([ellipse_mask(96, 64), half_mask(96, 64, "left"), torch.rand(1, 1, 96, 64)]):
        expected = render_composite("red stripes", "blue dots", mask, seed)
        assert torch.equal(render_regions("red stripes", [(mask, "blue dots")], seed), expected)
        assert torch.equal(render_regions("red stripes", [(mask[0, 0], "blue dots")], seed), expected)


def test_later_regions_are_pasted_on_top_each_with_its_own_seed():
    out = render_regions(BASE, THREE, seed=7)
    texture = {prompt: render_texture(prompt, 128, 128, 7 + 1 + k) for k, (_, prompt) in enumerate(THREE)}
    assert torch.equal(out[:, 127, 0], render_texture(BASE, 128, 128, 7)[:, 127, 0])  # bottom-left corner: base
    assert torch.equal(out[:, 10, 10], texture["red dots"][:, 10, 10])
    assert torch.equal(out[:, 10, 64], texture["green checker"][:, 10, 64])  # the overlap: the later region
    assert torch.equal(out[:, 100, 64], texture["yellow waves"][:, 100, 64])


def test_render_regions_refuses_what_it_cannot_paint():
    mask = torch.ones(8, 8)
    with pytest.raises(ValueError, match="regions must be a non-empty list"):
        render_regions(BASE, [], 0)
    with pytest.raises(ValueError, match=r"regions\[1\] must be a \(mask tensor, prompt string\) pair"):
        render_regions(BASE, [(mask, "red dots"), (mask, 3)], 0)
    with pytest.raises(ValueError, match=r"regions\[1\] mask must have the size of regions\[0\]'s mask"):
        render_regions(BASE, [(mask, "red dots"), (torch.ones(8, 9), "red dots")], 0)


def test_the_world_references_of_three_regions_are_its_composites(world):
    references = world.reference_images(BASE, THREE, [3, 4])
    assert torch.equal(references[1], render_regions(BASE, THREE, 4))
    one = world.reference_images(BASE, ONE, [3])
    assert torch.equal(one[0], render_composite(BASE, ONE[0][1], ONE[0][0], 3))


def test_the_references_themselves_read_right_in_every_region(world):
    images = world.reference_images(BASE, THREE, [0, 1])
    aggregates, rows, absent = evaluate(world, [(images, [0, 1], BASE, THREE)])
    for k in range(3):
        assert aggregates[f"region_accuracy/region{k}"] == 1.0
        assert all(row[f"region_accuracy/region{k}"] == 1.0 for row in rows)
    assert aggregates["region_accuracy/inside"] == aggregates["region_accuracy/outside"] == 1.0
    assert aggregates["perceptual/judge"] == pytest.approx(0, abs=1e-5)
    assert aggregates["seam/perceptual"] == pytest.approx(0, abs=1e-5)
    assert absent == FROM_NOISE


def test_swapping_two_regions_prompts_reads_zero_for_both(world):
    images = world.reference_images(BASE, THREE, [0, 1])
    aggregates, rows, _ = evaluate(world, [(images, [0, 1], BASE, swapped(THREE, 0, 2))])
    assert aggregates["region_accuracy/region0"] == aggregates["region_accuracy/region2"] == 0.0
    assert aggregates["region_accuracy/region1"] == 1.0
    assert aggregates["region_accuracy/inside"] == pytest.approx(1 / 3)  # per image, the mean over its regions
    assert aggregates["region_accuracy/outside"] == 1.0
    assert aggregates["seam/perceptual"] > 0.1  # region 0 and 2 differ from the references' textures


def test_two_items_rows_name_their_item_and_region_keys_aggregate_over_the_items_that_have_them(world):
    first = world.reference_images(BASE, ONE, [0, 1])
    second = world.reference_images(BASE, THREE, [2, 3])
    aggregates, rows, absent = evaluate(world, [(first, [0, 1], BASE, ONE, "a"),
                                                (second[:1], [2], BASE, swapped(THREE, 0, 1), "b"),
                                                (second[1:], [3], BASE, swapped(THREE, 0, 1), "b")])
    assert [(row["seed"], row["item"]) for row in rows] == [(0, "a"), (1, "a"), (2, "b"), (3, "b")]
    region_keys = {key.format(k=k) for key in PER_REGION for k in range(3)}
    assert all(not region_keys & set(row) for row in rows[:2])
    assert all(region_keys <= set(row) for row in rows[2:])
    for key in region_keys | {"seam/gradient_ratio", "region_accuracy/inside"}:
        images = rows if key in ("seam/gradient_ratio", "region_accuracy/inside") else rows[2:]
        assert aggregates[key] == pytest.approx(sum(row[key] for row in images) / len(images)), key
    assert aggregates["region_accuracy/region0"] == aggregates["region_accuracy/region1"] == 0.0
    assert aggregates["region_accuracy/inside"] == pytest.approx((1 + 1 + 1 / 3 + 1 / 3) / 4)
    assert absent == FROM_NOISE


def test_rows_without_item_look_as_before(world):
    images = world.reference_images(BASE, ONE, [5])
    _, rows, _ = evaluate(world, [(images, [5], BASE, ONE)])
    assert list(rows[0])[:2] == ["seed", "seam/gradient_ratio"] and "item" not in rows[0]


# The two-region evaluation as it was before items and N regions (Evaluator.start(model, mask, (base, inside),
# device); update(images, seeds)), on the world, perceptual="judge", real_images=4: images painted with the rectangle
# PAINTED, evaluated against the ellipse ELLIPSE, seeds 5 and 6 in one batch, then 7.
PAINTED = rectangle_mask(128, 128, 0.1, 0.3, 0.7, 0.9)
ELLIPSE = ellipse_mask(128, 128, rx=0.3, ry=0.3)
OLD_AGGREGATES = {
    "seam/gradient_ratio": 0.9701477885246277, "seam/color_jump": 0.24282985925674438,
    "region_accuracy/inside": 1.0, "region_accuracy/outside": 0.6666666865348816,
    "perceptual/judge": 1.9292616844177246, "seam/perceptual": 3.4200868606567383,
    "fid/judge": 35.329769134521484, "kid/judge": 29.381737359065283}
OLD_ROWS = [
    {"seed": 5, "seam/gradient_ratio": 0.9403148293495178, "seam/color_jump": 0.31724998354911804,
     "region_accuracy/inside": 1.0, "region_accuracy/outside": 0.5, "perceptual/judge": 1.827195167541504,
     "seam/perceptual": 3.325767993927002},
    {"seed": 6, "seam/gradient_ratio": 0.9631975889205933, "seam/color_jump": 0.20382502675056458,
     "region_accuracy/inside": 1.0, "region_accuracy/outside": 0.75, "perceptual/judge": 2.0494823455810547,
     "seam/perceptual": 3.551356077194214},
    {"seed": 7, "seam/gradient_ratio": 1.006930947303772, "seam/color_jump": 0.20741455256938934,
     "region_accuracy/inside": 1.0, "region_accuracy/outside": 0.75, "perceptual/judge": 1.9111076593399048,
     "seam/perceptual": 3.383136510848999}]


def test_one_region_results_are_the_old_evaluations(world):
    images = world.reference_images("red stripes", [(PAINTED, "blue dots")], [5, 6, 7])
    regions = [(ELLIPSE, "blue dots")]
    aggregates, rows, absent = evaluate(world, [(images[:2], [5, 6], "red stripes", regions),
                                                (images[2:], [7], "red stripes", regions)], real_images=4)
    old_keys = [key for key in aggregates if key in OLD_AGGREGATES]
    assert {key: aggregates[key] for key in old_keys} == pytest.approx(OLD_AGGREGATES, rel=1e-5)
    assert old_keys == list(OLD_AGGREGATES)  # the new keys (colour, pattern) come between, in keys() order
    assert len(rows) == 3 and absent == FROM_NOISE
    for row, old in zip(rows, OLD_ROWS):
        assert {key: row[key] for key in old} == pytest.approx(old, rel=1e-5)
        assert [key for key in row if key in old] == list(old)


def test_one_region_values_are_the_metrics_own_bit_for_bit(world):
    """Per image and aggregated, a one-region item's values are those of RegionAccuracy and the seam metrics on its
    mask (a latent-size mask is brought to the images' size as the metrics do)."""
    images = world.reference_images("red stripes", [(PAINTED, "blue dots")], [0, 1, 2])
    latent_mask = ELLIPSE[..., ::8, ::8]
    aggregates, rows, _ = evaluate(world, [(images, [0, 1, 2], "red stripes", [(latent_mask, "blue dots")])])
    direct = {"seam/gradient_ratio": SeamGradientRatio(4), "seam/color_jump": SeamColorJump(4),
              "region_accuracy/inside": RegionAccuracy(world.judge, "inside", 4),
              "region_accuracy/outside": RegionAccuracy(world.judge, "outside", 4)}
    prompts = {"region_accuracy/inside": "blue dots", "region_accuracy/outside": "red stripes"}
    for k, row in enumerate(rows):
        for key, metric in direct.items():
            value = metric(images[k:k + 1], latent_mask, *([prompts[key]] if key in prompts else []))
            assert row[key] == float(value), key
    for key, metric in direct.items():
        assert aggregates[key] == float(metric.compute()), key
    assert 0 < aggregates["region_accuracy/outside"] < 1  # the painted rectangle reaches outside the ellipse


def test_a_region_too_small_to_read_is_absent_with_its_reason(world):
    tiny = rectangle_mask(128, 128, 0.85, 0.85, 0.95, 0.95)  # 13 px: no whole 32 px patch
    regions = [ONE[0], (tiny, "red dots")]
    images = world.reference_images(BASE, regions, [0, 1])
    aggregates, rows, absent = evaluate(world, [(images, [0, 1], BASE, regions)])
    reason = ("no image had region 1 large enough to read (the part of its mask no other region covers holds no "
              "whole 32 px patch 4 px from its edge)")
    assert absent == {**{f"region_{share}/region1": reason for share in ("accuracy", "color", "pattern")},
                      **FROM_NOISE}
    assert all("region_accuracy/region1" not in row and "seam/gradient_ratio/region1" in row for row in rows)
    assert aggregates["region_accuracy/region0"] == aggregates["region_accuracy/inside"] == 1.0  # region 0 alone


def test_the_fid_real_set_is_spread_round_robin_over_the_items_seen(world):
    class Recorded:
        """The world, its reference composites recorded: (base prompt, region prompts, seeds) per call."""

        judge = world.judge

        def __init__(self) -> None:
            self.calls = []

        def reference_images(self, base_prompt, regions, seeds):
            self.calls.append((base_prompt, [prompt for _, prompt in regions], list(seeds)))
            return world.reference_images(base_prompt, regions, seeds)

    model = Recorded()
    evaluation = Evaluator(references=False, real_images=7).start(model, "cpu")
    items = {"a": ("red stripes", ONE), "b": (BASE, THREE), "c": ("orange blobs", swapped(THREE, 0, 1))}
    for name in ("b", "a", "c", "a"):
        base, regions = items[name]
        evaluation.update(world.reference_images(base, regions, [0]), [0], base, regions, name)
    aggregates, _ = evaluation.compute()
    real = [[REAL_SEED_OFFSET + i for i in indices] for indices in ((0, 3, 6), (1, 4), (2, 5))]
    assert model.calls == [(BASE, ["red dots", "green checker", "yellow waves"], real[0]),  # "b" came first
                           ("red stripes", ["purple grid"], real[1]),
                           ("orange blobs", ["green checker", "red dots", "yellow waves"], real[2])]
    assert math.isfinite(aggregates["fid/judge"]) and math.isfinite(aggregates["kid/judge"])


def test_keys_name_every_key_an_evaluation_of_so_many_regions_may_report(world):
    evaluator = Evaluator(perceptual="judge", real_images=4)
    assert evaluator.keys() == evaluator.keys(1) == evaluator.keys(1, inputs=False) == [
        "seam/gradient_ratio", "seam/color_jump", "region_accuracy/inside", "region_accuracy/outside",
        "region_color/inside", "region_color/outside", "region_pattern/inside", "region_pattern/outside",
        "perceptual/judge", "seam/perceptual", "fid/judge", "kid/judge", "kid/judge_std"]
    assert evaluator.keys(3)[13:] == [key.format(k=k) for k in range(3) for key in PER_REGION]
    assert evaluator.keys(1, inputs=True) == evaluator.keys(1) + list(BACKGROUND_KEYS)
    images = world.reference_images(BASE, THREE, [0, 1])
    aggregates, _, _ = evaluate(world, [(images, [0, 1], BASE, THREE)], real_images=4)
    assert set(aggregates) == set(evaluator.keys(3))
    assert Evaluator(judge=False).keys(2) == ["seam/gradient_ratio", "seam/color_jump",
                                              "seam/gradient_ratio/region0", "seam/color_jump/region0",
                                              "seam/gradient_ratio/region1", "seam/color_jump/region1"]
    for regions in (0, 17, 2.5, "2"):
        with pytest.raises(ValueError, match=r"regions must be an integer in \[1, 16\]"):
            evaluator.keys(regions)


@pytest.mark.parametrize(("arguments", "message"), [
    (dict(seeds=[0]), r"seeds must hold one seed per image \(2\), got 1"),
    (dict(regions=[]), r"regions must be a list of 1 to 16 \(mask, prompt\) pairs, got 0 pairs"),
    (dict(regions=ONE * 17), r"regions must be a list of 1 to 16 \(mask, prompt\) pairs, got 17 pairs"),
    (dict(regions=ONE[0][0]), r"regions must be a list of 1 to 16 \(mask, prompt\) pairs, got Tensor"),
    (dict(regions=[ONE[0][0]]), r"regions\[0\] must be a \(mask tensor, prompt\) pair, got Tensor"),
    (dict(regions=[ONE[0], (torch.ones(50, 50), "red dots")]),
     r"regions\[1\] masks size must be the image size 128x128 or an integer fraction of it"),
    (dict(regions=[(torch.ones(2, 128, 128), "red dots")]), r"regions\[0\] mask must be \[H,W\], \[1,H,W\] or"),
    (dict(regions=[(ONE[0][0], None)]), r"regions\[0\] prompt must be a string, got None"),
    (dict(base_prompt=3), r"base_prompt must be a string, got 3"),
    (dict(item=7), r"item must be a string, got 7"),
])
def test_bad_updates_are_refused_before_any_metric_runs(world, arguments, message):
    evaluation = Evaluator(perceptual="judge", real_images=4).start(world, "cpu")
    batch = {"images": torch.zeros(2, 3, 128, 128), "seeds": [0, 1], "base_prompt": BASE, "regions": ONE,
             "item": None}
    with pytest.raises(ValueError, match=message):
        evaluation.update(**{**batch, **arguments})
    assert evaluation.rows == [] and evaluation.measurement.images == 0 and evaluation.measurement.totals == {}
