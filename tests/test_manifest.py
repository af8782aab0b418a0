"""Data-set manifests: JSON Lines items of prompts and region masks, read and checked whole before any model loads."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue
from PIL import Image

from dualsampler.masks import ellipse_mask, half_mask, load_mask, rectangle_mask, resize_mask
from dualsampler.metrics.evaluator import Evaluator
from dualsampler.runner import manifest as manifest_module
from dualsampler.runner.manifest import (WORLD_MANIFEST, Manifest, ManifestItem, NoData, read_manifest,
                                          region_mask)
from dualsampler.world.prompts import parse_prompt

HALF = {"shape": "half", "side": "left"}
CONF_DIR = Path(str(files("dualsampler.conf")))  # conf/, as dualsampler.run finds it


def write_manifest(folder: Path, *lines: dict | str, name: str = "items.jsonl") -> Path:
    """A manifest whose lines are the given objects (as JSON) or raw strings."""
    path = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines), "utf-8")
    return path


def item(item_id: str = "a", prompt: str = "blue stripes", **values) -> dict:
    """One line's object: a half-canvas region by default."""
    return {"id": item_id, "prompt": prompt, "regions": [{"mask": HALF, "prompt": "red dots"}], **values}


def region(mask, prompt: str = "red dots", **settings) -> dict:
    return {"mask": mask, "prompt": prompt, **settings}


def save_mask(path: Path, height: int, width: int, box: tuple[slice, slice] | None = None) -> Path:
    """An 8-bit greyscale mask PNG, white inside `box` (everywhere when None)."""
    array = np.zeros((height, width), np.uint8) if box else np.full((height, width), 255, np.uint8)
    if box:
        array[box] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, "L").save(path)
    return path


def test_every_shape_kind_is_made_at_the_canvas_size_over_the_mask_configs_defaults(tmp_path):
    path = write_manifest(tmp_path, item(regions=[
        region({"shape": "ellipse"}),                              # conf/mask/ellipse.yaml: centre 0.5, radii 0.3
        region({"shape": "ellipse", "cx": 0.3, "rx": 0.2}, "green waves"),
        region({"shape": "rectangle", "top": 0.5}),                # the other edges from conf/mask/rectangle.yaml
        region({"shape": "half", "side": "bottom"}),
        region({"shape": "half"}),                                 # conf/mask/half.yaml: right
    ]))
    (read,) = read_manifest(path, 64, 96)
    masks = [r.mask for r in read.regions]
    assert all(mask.shape == (64, 96) and mask.dtype == torch.float32 for mask in masks)
    assert torch.equal(masks[0], ellipse_mask(64, 96, 0.5, 0.5, 0.3, 0.3)[0, 0])
    assert torch.equal(masks[1], ellipse_mask(64, 96, 0.5, 0.3, 0.3, 0.2)[0, 0])
    assert torch.equal(masks[2], rectangle_mask(64, 96, 0.5, 0.25, 0.75, 0.75)[0, 0])
    assert torch.equal(masks[3], half_mask(64, 96, "bottom")[0, 0])
    assert torch.equal(masks[4], half_mask(64, 96, "right")[0, 0])
    assert [r.prompt for r in read.regions] == ["red dots", "green waves", "red dots", "red dots", "red dots"]
    assert all(r.settings == {} for r in read.regions)


def test_a_mask_file_is_found_relative_to_the_manifest_or_absolute_and_resized_to_the_canvas(tmp_path):
    relative = save_mask(tmp_path / "masks" / "left.png", 32, 48, (slice(None), slice(0, 24)))
    absolute = save_mask(tmp_path / "elsewhere" / "top.png", 64, 96, (slice(0, 32), slice(None)))
    path = write_manifest(tmp_path / "set", item(regions=[region("../masks/left.png"), region(str(absolute))]))
    (read,) = read_manifest(path, 64, 96)
    assert torch.equal(read.regions[0].mask, resize_mask(load_mask(relative), 64, 96)[0, 0])
    assert torch.equal(read.regions[0].mask.round(), half_mask(64, 96, "left")[0, 0])  # bilinear: a soft edge
    assert torch.equal(read.regions[1].mask, half_mask(64, 96, "top")[0, 0])


def test_per_region_sampler_settings_are_kept_checked_and_only_those_given(tmp_path):
    path = write_manifest(tmp_path, item(regions=[
        region(HALF, sampler="euler", scheduler="karras", cfg=6, negative_prompt="blobs"),
        region({"shape": "half", "side": "right"}, "green waves", cfg=2.5),
        region({"shape": "half", "side": "top"}, "yellow grid"),
    ]))
    (read,) = read_manifest(path, 32, 32)
    assert read.regions[0].settings == {"sampler": "euler", "scheduler": "karras", "cfg": 6.0,
                                        "negative_prompt": "blobs"}
    assert read.regions[1].settings == {"cfg": 2.5}
    assert read.regions[2].settings == {}


def test_a_regions_loras_are_found_relative_to_the_manifest_and_its_guidance_kept(tmp_path):
    from safetensors.torch import save_file

    from dualsampler.models.lora import LoraSpec

    for name in ("dots", "waves"):
        (tmp_path / "set" / "loras").mkdir(parents=True, exist_ok=True)
        save_file({"lora.down.weight": torch.zeros(1, 1)}, tmp_path / "set" / "loras" / f"{name}.safetensors")
    path = write_manifest(tmp_path / "set", item(regions=[
        region(HALF, loras=["loras/dots.safetensors", {"path": "loras/waves.safetensors", "scale": 0.5}],
               guidance=4),
    ]))
    (read,) = read_manifest(path, 32, 32)
    folder = tmp_path / "set" / "loras"
    assert read.regions[0].settings == {"guidance": 4.0, "loras": (LoraSpec(str(folder / "dots.safetensors")),
                                                                   LoraSpec(str(folder / "waves.safetensors"), 0.5))}
    missing = write_manifest(tmp_path / "set", item(regions=[region(HALF, loras=["loras/gone.safetensors"])]),
                             name="missing.jsonl")
    with pytest.raises(ValueError, match=r"missing\.jsonl line 1: regions\[0\]: loras\[0\]\.path must be an existing"):
        read_manifest(missing, 32, 32)


def test_an_item_keeps_its_line_prompts_and_input_image_found_relative_to_the_manifest(tmp_path):
    Image.new("RGB", (16, 16), "blue").save(tmp_path / "inputs.png")
    path = write_manifest(tmp_path / "set", item("first"), "", "   ",
                          item("second.v2", "", negative_prompt="red dots", image="../inputs.png"))
    first, second = read_manifest(path, 32, 32)
    assert first == ManifestItem(1, "first", "blue stripes", None, first.regions, None)
    assert (second.line, second.id, second.prompt, second.negative_prompt) == (4, "second.v2", "", "red dots")
    assert second.image == tmp_path / "set" / ".." / "inputs.png" and second.image.is_file()
    assert len(second.regions) == 1 and second.regions[0].prompt == "red dots"


def test_a_manifest_builds_from_the_data_configs(tmp_path):
    path = write_manifest(tmp_path, item())
    manifest = OmegaConf.load(CONF_DIR / "data" / "manifest.yaml")
    with pytest.raises(MissingMandatoryValue):
        instantiate(manifest)
    manifest.path = str(path)
    data = instantiate(manifest)
    assert data == Manifest(str(path))
    assert [i.id for i in data.items(32, 32)] == ["a"]
    none = instantiate(OmegaConf.load(CONF_DIR / "data" / "none.yaml"))
    assert isinstance(none, NoData) and none.items(32, 32) is None


@pytest.mark.parametrize("path", ["", "missing.jsonl", "."])
def test_the_manifest_path_must_name_an_existing_file(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="^data.path must name an existing JSON Lines manifest file"):
        Manifest(path)
    with pytest.raises(ValueError, match="^data.path must name an existing"):
        read_manifest(path, 32, 32)


def test_an_empty_manifest_is_refused(tmp_path):
    path = write_manifest(tmp_path, "", "  ")
    with pytest.raises(ValueError, match=f"^data.path {re.escape(str(path))}: the file holds no items"):
        read_manifest(path, 32, 32)


def test_a_manifest_of_more_items_than_allowed_is_refused_before_the_extra_line_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_module, "MAX_ITEMS", 2)
    assert len(read_manifest(write_manifest(tmp_path, item("a"), item("b")), 32, 32)) == 2
    path = write_manifest(tmp_path, item("a"), item("b"), "not even JSON")
    with pytest.raises(ValueError, match="more than 2 items"):
        read_manifest(path, 32, 32)


REFUSED = [
    # (lines, the message after "data.path <file> ")
    (["# the world set"], "line 1: comments are not allowed: JSON Lines has none"),
    ([item(), '{"id": "b",'], "line 2: not valid JSON: "),
    ([[item()]], "line 1: must be one JSON object"),
    (['{"id": "a", "id": "b", "prompt": "", "regions": []}'], "line 1: id: the key appears 2 times in one object"),
    ([item(promt="x")], "line 1: promt: unknown key; allowed: id, prompt, regions, image, negative_prompt"),
    ([{"id": "a", "prompt": "x"}], "line 1: regions: missing; required: id, prompt, regions"),
    ([item("a/b")], "line 1: id: must be a non-empty string of letters, digits, '.', '_' and '-'"),
    ([item("")], "line 1: id: must be a non-empty string"),
    ([item("..")], "line 1: id: must be a non-empty string"),
    ([item(7)], "line 1: id: must be a non-empty string"),
    ([item("a" * 129)], "line 1: id: must be a non-empty string"),
    ([item("a"), item("b"), "", item("a")], "line 4: id 'a' repeats line 1"),
    ([item("a"), item("A")], "line 2: id 'A' repeats line 1 as 'a' (ids name folders: case is ignored)"),
    ([item(prompt=None)], "line 1: prompt: prompt must be a string, got None"),
    ([item(negative_prompt=None)], "line 1: negative_prompt: negative_prompt must be a string, got None"),
    ([item(regions=[])], "line 1: regions: must be a list of 1 to 16 region objects"),
    ([item(regions=[region(HALF)] * 17)], "line 1: regions: must be a list of 1 to 16 region objects"),
    ([item(regions={"mask": HALF})], "line 1: regions: must be a list"),
    ([item(regions=["half"])], "line 1: regions[0]: must be an object"),
    ([item(regions=[region(HALF), {"mask": HALF}])], "line 1: regions[1].prompt: missing"),
    ([item(regions=[region(HALF, seed=3)])], "line 1: regions[0].seed: unknown key; allowed: mask, prompt, sampler"),
    ([item(regions=[region(HALF), region("masks/x.png")])],
     "line 1: regions[1].mask: file 'masks/x.png' does not exist (a relative path starts at"),
    ([item(regions=[region("")])], "line 1: regions[0].mask: must be a non-empty path string"),
    ([item(regions=[region(0.5)])], "line 1: regions[0].mask: must be an image path string"),
    ([item(regions=[region({"side": "left"})])],
     "line 1: regions[0].mask.shape: must be one of ellipse, rectangle, half"),
    ([item(regions=[region({"shape": "file", "path": "m.png"})])],
     "line 1: regions[0].mask.shape: must be one of ellipse, rectangle, half (a mask file is given as a path string)"),
    ([item(regions=[region({"shape": "ellipse", "radius": 0.2})])],
     "line 1: regions[0].mask.radius: unknown parameter of shape 'ellipse'; allowed: cy, cx, ry, rx"),
    ([item(regions=[region({"shape": "ellipse", "cy": 5})])],
     "line 1: regions[0].mask: cy must be a finite number in [-1, 2]"),
    ([item(regions=[region({"shape": "half", "side": "middle"})])],
     "line 1: regions[0].mask: side must be one of left"),
    ([item(regions=[region({"shape": "rectangle", "top": 0.8})])],
     "line 1: regions[0].mask: box fractions need top < bottom"),
    ([item(regions=[region({"shape": "ellipse", "ry": 0.001, "rx": 0.001, "cy": 0.3})])],
     "line 1: regions[0].mask: the mask is empty on the 32x32 canvas (its largest value is 0 < 0.5)"),
    ([item(regions=[region(HALF, sampler="eulr")])], "line 1: regions[0].sampler: sampler must be one of euler"),
    ([item(regions=[region(HALF, scheduler=3)])], "line 1: regions[0].scheduler: scheduler must be one of"),
    ([item(regions=[region(HALF, cfg=1000)])], "line 1: regions[0].cfg: cfg must be a finite number in [0, 100]"),
    ([item(regions=[region(HALF, cfg=True)])], "line 1: regions[0].cfg: cfg must be a finite number"),
    ([item(regions=[region(HALF, negative_prompt=["x"])])], "line 1: regions[0].negative_prompt: negative_prompt must"),
    ([item(regions=[region(HALF, prompt=3)])], "line 1: regions[0].prompt: prompt must be a string"),
    ([item(image="missing.png")], "line 1: image: file 'missing.png' does not exist"),
    ([item(image="items.jsonl")], "line 1: image: file 'items.jsonl' is not a readable image"),
]


@pytest.mark.parametrize("lines, message", REFUSED)
def test_a_bad_line_is_refused_naming_the_file_the_line_and_the_key(tmp_path, lines, message):
    path = write_manifest(tmp_path, *lines)
    with pytest.raises(ValueError, match=f"^data.path {re.escape(str(path))} {re.escape(message)}"):
        read_manifest(path, 32, 32)


def test_a_line_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_bytes(json.dumps(item()).encode() + b"\n\xff\xfe{}\n")
    with pytest.raises(ValueError, match=f"^data.path {re.escape(str(path))} line 2: not UTF-8 text"):
        read_manifest(path, 32, 32)


@pytest.mark.parametrize("mask_size, refused", [((64, 64), True), ((100, 150), False), ((100, 152), True)])
def test_a_mask_file_of_another_aspect_ratio_than_the_canvas_is_refused_naming_the_sizes(tmp_path, mask_size,
                                                                                          refused):
    save_mask(tmp_path / "m.png", *mask_size)
    path = write_manifest(tmp_path, item(regions=[region("m.png")]))
    if not refused:  # 1.5 vs 96 / 64: the same ratio
        assert read_manifest(path, 64, 96)[0].regions[0].mask.min() == 1
        return
    with pytest.raises(ValueError, match=re.escape(
            f"line 1: regions[0].mask: file 'm.png' is {mask_size[0]}x{mask_size[1]} px (height x width) and the "
            f"canvas 64x96: their aspect ratios differ by more than 1%")):
        read_manifest(path, 64, 96)


def test_a_mask_file_empty_on_the_canvas_is_refused(tmp_path):
    save_mask(tmp_path / "dot.png", 64, 64, (slice(10, 11), slice(10, 11)))  # one pixel: < 0.5 once shrunk 4x
    path = write_manifest(tmp_path, item(regions=[region("dot.png")]))
    assert read_manifest(path, 64, 64)[0].regions[0].mask.max() == 1
    with pytest.raises(ValueError, match=r"line 1: regions\[0\].mask: the mask is empty on the 16x16 canvas"):
        read_manifest(path, 16, 16)


# The shipped world set ------------------------------------------------------------------------------------------


SHIPPED_IDS = [json.loads(line)["id"] for line in WORLD_MANIFEST.read_text("utf-8").splitlines() if line.strip()]
WORLD_SEEDS = [0, 1, 2, 3]  # each item's reference images: base texture seed s, region k's s + 1 + k


@pytest.fixture(scope="module")
def world_items() -> list[ManifestItem]:
    return read_manifest(WORLD_MANIFEST, 128, 128)


def test_the_shipped_world_set_has_four_items_each_of_one_two_and_three_regions(world_items):
    assert WORLD_MANIFEST.is_file() and WORLD_MANIFEST.parent.name == "world_regions"
    assert [sum(len(i.regions) == n for i in world_items) for n in (1, 2, 3)] == [4, 4, 4]
    assert len(world_items) == 12
    lines = [json.loads(line) for line in WORLD_MANIFEST.read_text().splitlines()]
    masks = [r["mask"] for line in lines for r in line["regions"]]
    assert {m["shape"] for m in masks if isinstance(m, dict)} == {"ellipse", "rectangle", "half"}
    assert sum(any(isinstance(r["mask"], str) for r in line["regions"]) for line in lines) >= 2
    for name in {m for m in masks if isinstance(m, str)}:
        with Image.open(WORLD_MANIFEST.parent / name) as image:
            assert image.size == (128, 128) and image.mode in ("1", "L")


def test_the_shipped_world_prompts_are_in_the_worlds_vocabulary_and_differ_from_the_base(world_items):
    for world_item in world_items:
        base = parse_prompt(world_item.prompt)
        words = [parse_prompt(r.prompt) for r in world_item.regions]
        assert all(color != base[0] and pattern != base[1] for color, pattern in words), world_item.id
        assert len({c for c, _ in words}) == len(words) and len({p for _, p in words}) == len(words), world_item.id


@pytest.fixture(scope="module")
def world_model():
    from dualsampler.models import load_model

    return load_model()


@pytest.mark.parametrize("index, item_id", list(enumerate(SHIPPED_IDS)), ids=SHIPPED_IDS)
def test_every_shipped_item_reads_1_on_every_region_accuracy_key_of_its_reference_images(world_items, world_model,
                                                                                          index, item_id):
    world_item = world_items[index]
    assert world_item.id == item_id
    regions = [(r.mask, r.prompt) for r in world_item.regions]
    images = world_model.reference_images(world_item.prompt, regions, WORLD_SEEDS)
    settings = Evaluator(references=False, real_images=0)
    evaluation = settings.start(world_model, "cpu")
    evaluation.update(images, WORLD_SEEDS, world_item.prompt, regions, item_id)
    results, _ = evaluation.compute()
    keys = [key for key in settings.keys(len(regions)) if key.startswith("region_accuracy/")]
    assert len(keys) == (2 if len(regions) == 1 else 2 + len(regions))
    assert {key: results.get(key) for key in keys} == dict.fromkeys(keys, 1.0), evaluation.absent


def test_region_mask_reads_a_configs_shape_mapping_or_a_file_relative_to_a_folder(tmp_path):
    save_mask(tmp_path / "top.png", 32, 32, (slice(0, 16), slice(None)))
    shape = OmegaConf.create({"shape": "rectangle", "bottom": 0.5})  # a config's regions[k].mask
    assert torch.equal(region_mask(shape, tmp_path, 32, 32), rectangle_mask(32, 32, 0.25, 0.25, 0.5, 0.75)[0, 0])
    assert torch.equal(region_mask("top.png", tmp_path, 32, 32), half_mask(32, 32, "top")[0, 0])
    with pytest.raises(ValueError, match=r"^regions\[2\].mask: file 'left.png' does not exist"):
        region_mask("left.png", tmp_path, 32, 32, "regions[2].mask")
    with pytest.raises(ValueError, match=r"^regions\[0\].mask.shape: must be one of ellipse, rectangle, half"):
        region_mask({"shape": "circle"}, tmp_path, 32, 32, "regions[0].mask")
