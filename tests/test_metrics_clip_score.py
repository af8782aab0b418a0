"""clip_score/image|inside|region<k> (dualsampler.metrics.clip_score): the formula with a CLIP whose embeddings are
known, the crops pixel by pixel, and the real path with a tiny random CLIP folder (clip_fixtures) checked against
torchmetrics' own clip_score on the same model."""

import math
import shutil

import pytest
import torch
from clip_fixtures import CLIP_SIDE, tiny_clip, write_tiny_clip  # noqa: F401  (tiny_clip is a fixture)
from torch import nn

from dualsampler.metrics.clip_score import (
    CLIPScore,
    LocalCLIP,
    clip_record,
    clip_scores,
    full_prompt,
    item_scores,
    load_clip,
    region_clip_scores,
    region_crops,
    score_from_features,
)

WORDS = {"red": (1.0, 0.0), "blue": (0.0, 1.0), "purple": (1.0, 1.0), "unred": (-1.0, 0.0)}
RED, BLUE = torch.tensor([1.0, 0, 0]), torch.tensor([0, 0, 1.0])


class ColorCLIP(nn.Module):
    """A CLIP stand-in with known embeddings: an image embeds as (mean red, mean blue) of the pixels it is given; a
    prompt as the sum of its words' vectors in WORDS (the stand-in tokenizer passes the vector as input_ids)."""

    config = type("Config", (), {"text_config": type("Text", (), {"max_position_embeddings": 77})})

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def get_image_features(self, pixel_values):
        return torch.stack([pixel_values[:, 0].mean((1, 2)), pixel_values[:, 2].mean((1, 2))], dim=1)

    def get_text_features(self, input_ids):
        return input_ids


def word_tokenizer(prompts, **kwargs):
    vectors = [torch.tensor([WORDS[w] for w in p.replace(",", " ").split()]).sum(0) for p in prompts]
    return {"input_ids": torch.stack(vectors)}


def color_clip() -> LocalCLIP:
    from transformers import CLIPImageProcessor

    processor = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16},
                                   image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0])
    return LocalCLIP(ColorCLIP(), type("Processor", (), {"image_processor": processor, "tokenizer": word_tokenizer}),
                     {"name": "color", "fingerprint": "-"})


def painted(*colors: torch.Tensor, size: int = 16) -> torch.Tensor:
    """A batch of images [N,3,size,size], image n painted `colors[n]`."""
    return torch.stack([color[:, None, None].expand(3, size, size) for color in colors])


def halves(left: torch.Tensor, right: torch.Tensor, size: int = 16) -> torch.Tensor:
    image = torch.empty(1, 3, size, size)
    image[..., : size // 2] = left[:, None, None]
    image[..., size // 2:] = right[:, None, None]
    return image


LEFT = torch.zeros(16, 16)
LEFT[:, :8] = 1


def test_the_score_is_100_times_a_positive_cosine_and_0_for_a_negative_one():
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    texts = torch.tensor([[2.0, 0.0], [1.0, 1.0], [4.0, 3.0], [-1.0, 0.5]])
    assert score_from_features(features, texts).tolist() == pytest.approx([100.0, 100 / math.sqrt(2), 96.0, 0.0])


def test_images_score_their_prompt_through_the_processor_as_hand_computed():
    clip = color_clip()
    images = painted(RED, RED, RED, RED, RED + BLUE)
    scores = clip_scores(images, ["red", "purple", "blue", "unred", "red"], clip)
    assert scores.tolist() == pytest.approx([100.0, 100 / math.sqrt(2), 0.0, 0.0, 100 / math.sqrt(2)])


def test_the_metric_is_the_mean_of_the_per_image_scores_floored_one_by_one():
    metric = CLIPScore(color_clip())
    assert math.isnan(float(metric.compute()))
    metric.update(painted(RED, RED), ["red", "unred"])  # 100 and 0 (the cosine -1 is floored per image)
    metric.update(painted(RED + BLUE), "red")  # 70.7
    assert float(metric.compute()) == pytest.approx((100 + 0 + 100 / math.sqrt(2)) / 3, rel=1e-6)


def test_a_crop_is_the_masks_bounding_box_padded_evenly_to_a_square():
    image = torch.arange(3 * 8 * 8, dtype=torch.float32).reshape(1, 3, 8, 8) / (3 * 8 * 8)
    mask = torch.zeros(8, 8)
    mask[2:5, 1:6] = 1  # 3 rows x 5 columns: one row of fill above, one below
    mask[3, 3] = 0  # a hole does not change the box
    crop = region_crops(image, mask, size=5, fill=(0.25, 0.5, 0.75))
    assert crop.shape == (1, 3, 5, 5)
    assert torch.equal(crop[0, :, 1:4], image[0, :, 2:5, 1:6])
    fill = torch.tensor([0.25, 0.5, 0.75])[:, None]
    assert torch.equal(crop[0, :, 0], fill.expand(3, 5)) and torch.equal(crop[0, :, 4], fill.expand(3, 5))


def test_crops_of_a_batch_are_resized_to_the_size_asked_and_an_empty_mask_is_all_fill():
    images = painted(RED, BLUE, size=8)
    masks = torch.zeros(2, 1, 8, 8)
    masks[0, :, 2:6, 2:6] = 1
    crops = region_crops(images, masks, size=12, fill=(0.5, 0.5, 0.5))
    assert crops.shape == (2, 3, 12, 12)
    assert torch.allclose(crops[0], RED[:, None, None].expand(3, 12, 12), atol=1e-6)  # one colour stays one colour
    assert torch.equal(crops[1], torch.full((3, 12, 12), 0.5))


def test_a_region_scores_the_crop_of_its_box_and_an_empty_region_gives_nan():
    clip = color_clip()
    image = halves(RED, BLUE)
    assert region_clip_scores(image, LEFT, "red", clip).tolist() == pytest.approx([100.0])
    assert region_clip_scores(image, LEFT, "blue", clip).tolist() == pytest.approx([0.0])
    assert math.isnan(float(region_clip_scores(image, torch.zeros(16, 16), "red", clip)[0]))


def test_an_item_scores_the_whole_image_against_all_its_prompts_and_each_region_alone():
    clip = color_clip()
    right = 1 - LEFT
    scores = item_scores(halves(RED, BLUE), "blue", [(LEFT, "red"), (right, "red"), (torch.zeros(16, 16), "blue")],
                         clip)
    assert float(scores["clip_score/image"][0]) == pytest.approx(100.0)  # (0.5, 0.5) against "blue, red, red, blue"
    assert float(scores["clip_score/region0"][0]) == pytest.approx(100.0)
    assert float(scores["clip_score/region1"][0]) == pytest.approx(0.0)
    assert math.isnan(float(scores["clip_score/region2"][0]))
    assert float(scores["clip_score/inside"][0]) == pytest.approx(50.0)  # the empty region is left out


def test_the_full_prompt_is_the_base_prompt_then_the_region_prompts():
    assert full_prompt("blue stripes", ["red dots", " green waves "]) == "blue stripes, red dots, green waves"
    assert full_prompt("", ["red dots"]) == "red dots"


def test_the_tiny_clip_matches_torchmetrics_clip_score_on_the_same_model(tiny_clip):
    from torchmetrics.functional.multimodal import clip_score

    clip = load_clip(tiny_clip)

    class Features(nn.Module):  # torchmetrics 1.9 expects tensors from get_*_features, transformers 5 wraps them
        def __init__(self, model):
            super().__init__()
            self.model, self.config = model, model.config

        def get_image_features(self, *args, **kwargs):
            return self.model.get_image_features(*args, **kwargs).pooler_output

        def get_text_features(self, *args, **kwargs):
            return self.model.get_text_features(*args, **kwargs).pooler_output

    pixels = torch.randint(0, 256, (4, 3, CLIP_SIDE, CLIP_SIDE), generator=torch.Generator().manual_seed(0))
    prompts = ["red dots", "blue", "red", "dots"]
    ours = clip_scores(pixels.float() / 255, prompts, clip)
    theirs = [float(clip_score(image.to(torch.uint8), prompt, lambda: (Features(clip.model), clip.processor)))
              for image, prompt in zip(pixels, prompts)]
    assert ours.tolist() == pytest.approx(theirs, abs=1e-4)
    assert (ours >= 0).all() and (ours <= 100).all()


def test_same_pairs_score_the_same_and_a_batch_scores_as_its_images_one_by_one(tiny_clip):
    clip = load_clip(tiny_clip)
    images = torch.rand(3, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    batch = clip_scores(torch.cat([images, images[:1]]), ["red dots", "blue", "red", "red dots"], clip)
    assert batch[0] == batch[3]
    alone = torch.cat([clip_scores(image[None], prompt, clip) for image, prompt in
                       zip(images, ["red dots", "blue", "red"])])
    assert torch.allclose(batch[:3], alone, atol=1e-4)
    masks = torch.zeros(3, 48, 64)
    masks[:, 8:40, 4:20] = 1
    crops = region_clip_scores(images, masks, "red", clip)
    assert torch.allclose(crops, torch.cat([region_clip_scores(image[None], mask, "red", clip)
                                            for image, mask in zip(images, masks)]), atol=1e-4)


def test_the_folder_loads_offline_and_is_recorded_by_name_and_fingerprint(tiny_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("socket.socket.connect", lambda *a, **k: pytest.fail("network touched"))
    copy = shutil.copytree(tiny_clip, tmp_path / "clip-copy")
    assert load_clip(copy).record == {"name": "clip-copy", "fingerprint": clip_record(tiny_clip)["fingerprint"]}
    other = write_tiny_clip(tmp_path / "other", seed=1)
    assert len(clip_record(other)["fingerprint"]) == 16
    assert clip_record(other)["fingerprint"] != clip_record(tiny_clip)["fingerprint"]


def test_a_folder_that_is_not_a_clip_is_refused_naming_metrics_clip_before_anything_loads(tmp_path):
    with pytest.raises(ValueError, match="metrics.clip must be a local CLIP folder.*config.json"):
        CLIPScore(tmp_path / "absent")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="metrics.clip.*lacks preprocessor_config.json or processor_config.json"):
        load_clip(tmp_path / "half")
    (tmp_path / "half" / "preprocessor_config.json").write_text("{}")
    with pytest.raises(ValueError, match="metrics.clip: .* does not load"):
        load_clip(tmp_path / "half")


def test_bad_inputs_are_refused_naming_them():
    clip = color_clip()
    with pytest.raises(ValueError, match="prompts must be a string or 2 strings"):
        clip_scores(painted(RED, BLUE), ["red"], clip)
    with pytest.raises(ValueError, match=r"images values must lie in \[0, 1\]"):
        clip_scores(painted(RED) * 2, "red", clip)
    with pytest.raises(ValueError, match="fill must be an RGB colour"):
        region_crops(painted(RED), LEFT, 8, fill=(2, 0, 0))
    with pytest.raises(ValueError, match="size must be an integer"):
        region_crops(painted(RED), LEFT, 0)
    with pytest.raises(ValueError, match="regions must hold at least one"):
        item_scores(painted(RED), "red", [], clip)
