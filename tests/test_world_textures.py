"""The procedural world: vocabulary, deterministic textures, composites."""
import pytest
import torch

from dualsampler.world import COLORS, PATTERNS, PROMPTS, parse_prompt, random_region_mask, render_composite, render_texture


def test_vocabulary_is_every_color_with_every_pattern():
    assert len(COLORS) >= 6 and len(PATTERNS) >= 6
    assert len(PROMPTS) == len(set(PROMPTS)) == len(COLORS) * len(PATTERNS)
    assert parse_prompt("red stripes") == ("red", "stripes")
    assert parse_prompt("  Blue   DOTS ") == ("blue", "dots")


@pytest.mark.parametrize("bad", ["red zebra", "magenta dots", "red", "red blue stripes", ""])
def test_bad_prompts_raise_listing_the_vocabulary(bad):
    with pytest.raises(ValueError, match="stripes") as info:
        parse_prompt(bad)
    assert "purple" in str(info.value)


def test_partial_prompts_are_allowed_on_request():
    assert parse_prompt("", allow_partial=True) == ("", "")
    assert parse_prompt("grid", allow_partial=True) == ("", "grid")
    with pytest.raises(ValueError, match="zebra"):
        parse_prompt("zebra", allow_partial=True)


def test_render_texture_is_deterministic_in_range_and_shaped():
    a = render_texture("green waves", 40, 56, seed=7)
    assert a.shape == (3, 40, 56) and a.dtype == torch.float32
    assert 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, render_texture("green waves", 40, 56, seed=7))
    assert not torch.equal(a, render_texture("green waves", 40, 56, seed=8))


def test_every_prompt_renders_a_distinct_varied_texture():
    textures = torch.stack([render_texture(p, 48, 48, seed=3) for p in PROMPTS])
    assert (textures.flatten(1).std(1) > 0.05).all(), "every texture has structure"
    distances = torch.cdist(textures.flatten(1), textures.flatten(1))
    assert (distances + torch.eye(len(PROMPTS)) * 1e3).min() > 1.0


def test_color_is_the_dominant_hue():
    red, blue = render_texture("red checker", 64, 64, 0), render_texture("blue checker", 64, 64, 0)
    assert red[0].mean() > red[2].mean() and blue[2].mean() > blue[0].mean()


def test_seeds_vary_orientation_and_scale():
    a, b = render_texture("yellow stripes", 64, 64, 1), render_texture("yellow stripes", 64, 64, 2)
    assert (a - b).abs().mean() > 0.1


def test_textures_are_translation_invariant_in_statistics():
    big = render_texture("orange dots", 256, 256, seed=5)
    corner, centre = big[:, :64, :64], big[:, 96:160, 96:160]
    assert abs(float(corner.mean() - centre.mean())) < 0.05


def test_composite_has_a_hard_edge_between_two_textures():
    mask = torch.zeros(64, 64)
    mask[:, 32:] = 1
    out = render_composite("red stripes", "blue dots", mask, seed=4)
    assert out.shape == (3, 64, 64)
    assert torch.equal(out[:, :, :32], render_texture("red stripes", 64, 64, 4)[:, :, :32])
    assert torch.equal(out[:, :, 32:], render_texture("blue dots", 64, 64, 5)[:, :, 32:])
    assert torch.equal(out, render_composite("red stripes", "blue dots", mask[None, None], seed=4))


def test_composite_rejects_a_batch_of_masks():
    with pytest.raises(ValueError, match="mask"):
        render_composite("red stripes", "blue dots", torch.zeros(2, 1, 8, 8), seed=0)


def test_random_region_masks_are_seeded_hard_and_leave_both_regions_visible():
    masks = [random_region_mask(48, 64, seed) for seed in range(40)]
    assert torch.equal(masks[3], random_region_mask(48, 64, 3))
    for mask in masks:
        assert mask.shape == (48, 64)
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        assert 0.2 <= float(mask.mean()) <= 0.8
    assert len({tuple(m.flatten().tolist()) for m in masks}) == len(masks)
    inside_the_canvas = [not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()) for m in masks]
    covering_a_side = [bool(m[0].all() or m[-1].all() or m[:, 0].all() or m[:, -1].all()) for m in masks]
    assert any(inside_the_canvas) and any(covering_a_side), "expected closed shapes and half-planes"


def test_random_region_mask_rejects_a_tiny_canvas():
    with pytest.raises(ValueError, match="height and width"):
        random_region_mask(2, 64, seed=0)
