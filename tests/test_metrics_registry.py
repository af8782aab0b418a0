"""The metrics registry: every key a job can report has a declared family (meaning, direction, range, unit, needs,
aggregation, sample size), derived keys come from reported ones, and SPEC §13 lists every family."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dualsampler.metrics.evaluator import Evaluator
from dualsampler.metrics.perceptual import PERCEPTUAL
from dualsampler.metrics.registry import (
    DIRECTIONS,
    FAMILIES,
    axis_label,
    derived,
    derived_keys,
    derived_means,
    describe,
    spec_entry,
)

SPEC = Path(__file__).resolve().parents[1] / "SPEC.md"


def evaluators(clip_folder: Path) -> list[Evaluator]:
    """Every kind of evaluation a config can ask for: with and without the judge, references and the real set,
    each perceptual metric, and CLIP (the constructor only checks that the folder holds a config.json)."""
    (clip_folder / "config.json").write_text("{}")
    return [Evaluator(), Evaluator(judge=False), Evaluator(references=False), Evaluator(real_images=0),
            *(Evaluator(perceptual=name) for name in PERCEPTUAL), Evaluator(clip=str(clip_folder))]


def test_every_key_an_evaluation_can_report_is_declared(tmp_path):
    keys = {key for evaluator in evaluators(tmp_path) for regions in (1, 3)
            for key in evaluator.keys(regions=regions, inputs=True)}
    # per-image readings that live in the rows only
    keys |= {f"judge/{where}" for where in ("inside", "outside", "region0", "region2")}
    assert {"region_clip/inside", "background/lpips", "region_color/region2", "fid/judge", "lpips/vgg"} <= keys
    for key in sorted(keys):
        info = describe(key)  # a ValueError here: a metric without a declaration in registry.py
        assert info.direction in DIRECTIONS and info.meaning and info.aggregate and info.sample, key


def test_a_concrete_key_resolves_to_its_family_and_an_unknown_one_is_refused():
    assert describe("region_accuracy/region2").pattern == "region_accuracy/<region>"
    assert describe("seam/gradient_ratio/region12").pattern == "seam/gradient_ratio/region<k>"
    assert describe("lpips/squeeze").pattern == "lpips/<net>"
    assert describe("clip_score/region3").pattern == "clip_score/<scope>"
    assert describe("kid/inception_std").pattern == "kid/<features>_std"
    for unknown in ("seam/gradient", "region_accuracy/left", "region_clip/region1", "seam/gradient_ratio/regionx"):
        with pytest.raises(ValueError, match=f"metric '{unknown}' is not declared"):
            describe(unknown)
    with pytest.raises(ValueError, match="metric key must be a string, got 3"):
        describe(3)


def test_each_family_says_which_way_is_better_and_what_it_needs():
    ratio = describe("seam/gradient_ratio")
    assert (ratio.direction, ratio.target, ratio.range) == ("target", 1.0, "[0, inf)")
    accuracy = describe("region_accuracy/inside")
    assert (accuracy.direction, accuracy.range, accuracy.unit, accuracy.needs) == ("higher", "[0, 1]", "share",
                                                                                   ("judge",))
    fid = describe("fid/judge")
    assert fid.direction == "lower" and fid.min_images == 2 and fid.aggregate.startswith("set-level")
    assert "RISES as blending heals the seam" in describe("seam/perceptual").caveat
    assert describe("judge/inside").direction == "none"
    assert describe("background/psnr").unit == "dB" and "input image" in describe("background/ssim").needs[0]
    assert all(info.target is not None for info in FAMILIES if info.direction == "target")


def test_axis_labels_carry_the_direction_and_unit():
    assert axis_label("seam/gradient_ratio") == "seam/gradient_ratio (healthy = 1)"
    assert axis_label("fid/judge") == "fid/judge ↓ (judge-feature FID)"
    assert axis_label("region_accuracy/inside") == "region_accuracy/inside ↑ (share)"
    assert axis_label("seam/gradient_ratio_error") == "seam/gradient_ratio_error ↓"


def test_the_gradient_ratio_error_is_taken_per_image_then_averaged():
    rows = [{"seed": 0, "item": "a", "seam/gradient_ratio": 0.8, "seam/gradient_ratio/region1": 1.25,
             "judge/inside": "red dots"},
            {"seed": 1, "seam/gradient_ratio": 1.2, "seam/color_jump": 0.3},
            {"seed": 2, "seam/gradient_ratio": math.nan}]  # an unread value derives nothing
    assert derived(rows[0]) == pytest.approx({"seam/gradient_ratio_error": 0.2,
                                              "seam/gradient_ratio_error/region1": 0.25})
    assert derived(rows[2]) == {} and derived({"seam/gradient_ratio": True}) == {}
    # mean |G - 1| = 0.2, where |mean G - 1| would read a healthy 0
    assert derived_means(rows) == pytest.approx({"seam/gradient_ratio_error": 0.2,
                                                 "seam/gradient_ratio_error/region1": 0.25})
    assert derived_keys(["seam/gradient_ratio", "seam/color_jump", "seam/gradient_ratio/region0"]) == [
        "seam/gradient_ratio_error", "seam/gradient_ratio_error/region0"]
    assert describe("seam/gradient_ratio_error").source == "seam/gradient_ratio"


def test_spec_lists_every_family_as_the_registry_declares_it():
    text = SPEC.read_text()
    assert "## 13. Metrics" in text
    section = " ".join(text.split("## 13. Metrics", 1)[1].split("\n## ", 1)[0].split())
    for info in FAMILIES:
        assert f"- `{info.pattern}` — " in section, f"SPEC §13 has no entry for {info.pattern}"
        # the whole entry: formula, range, direction, unit, needs, aggregation and sample size cannot drift
        assert " ".join(spec_entry(info).split()) in section, f"SPEC §13's entry for {info.pattern} differs"


def test_each_per_image_function_gives_one_value_per_image_for_its_own_family_only():
    from dualsampler.masks import rectangle_mask
    from dualsampler.metrics.features import frozen
    from dualsampler.metrics.per_image import Batch, Regions, Tools
    from dualsampler.metrics.registry import measured
    from dualsampler.models import load_model

    world = load_model("world")
    masks = [rectangle_mask(128, 128, 0.0, 0.0, 0.5, 0.5)[0, 0], rectangle_mask(128, 128, 0.5, 0.5, 1.0, 1.0)[0, 0]]
    regions = Regions(masks, torch.maximum(*masks), masks)
    prompts = [["red dots"] * 2, ["green waves"] * 2]
    images = world.reference_images("blue stripes", list(zip(masks, ["red dots", "green waves"])), [0, 1])
    judge = frozen(world.judge)
    batch = Batch(images, ["blue stripes"] * 2, prompts, regions, images, regions, references=images,
                  background=(images, images, (1 - regions.union).expand(2, 1, 128, 128)))
    tools = Tools(4, judge, perceptual=("perceptual/judge", None))
    families = measured({"prompts", "judge", "references", "input"})
    assert {info.pattern for info in families} >= {"seam/gradient_ratio", "region_color/<region>", "judge/<region>",
                                                    "perceptual/judge", "background/ssim"}
    for info in families:
        values = info.per_image(batch, tools)
        assert values, info.pattern
        for key, value in values.items():
            assert describe(key).pattern == info.pattern, key
            assert len(value) == 2 and (isinstance(value, list) or value.dtype == torch.float64), key
    assert measured({"prompts"}) == [info for info in FAMILIES if info.per_image and not info.requires]
