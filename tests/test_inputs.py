"""Input images (`input=image input.path=FILE|DIR`): checked before any model loads, then loaded as RGB in [0, 1],
resized to cover the canvas and centre-cropped."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from dualsampler.runner.inputs import ImageInput, InputImage, NoiseInput, fit_box, load_image, load_images

CONF_DIR = Path(str(files("dualsampler.conf")))  # conf/ of the checkout, as dualsampler.run finds it


def solid(path, rgb, size=(24, 16), **save_options):
    """Write a `size` (width, height) image of one colour to `path`."""
    Image.new("RGB", size, rgb).save(path, **save_options)
    return path


def test_noise_input_has_no_images():
    assert NoiseInput().check(128, 128) == []


def test_a_folder_gives_its_images_sorted_by_name_and_ignores_other_files(tmp_path):
    solid(tmp_path / "b_green.jpg", (0, 255, 0), quality=95)
    solid(tmp_path / "a_red.png", (255, 0, 0))
    solid(tmp_path / "c_blue.WEBP", (0, 0, 255), lossless=True)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "nested").mkdir()
    solid(tmp_path / "nested" / "d.png", (0, 0, 0))

    images = ImageInput(str(tmp_path)).check(32, 48)

    assert images == [InputImage("a_red", tmp_path / "a_red.png"), InputImage("b_green", tmp_path / "b_green.jpg"),
                      InputImage("c_blue", tmp_path / "c_blue.WEBP")]
    batch = load_images(images, 32, 48)
    assert batch.shape == (3, 3, 32, 48) and batch.dtype == torch.float32
    means = batch.mean(dim=(2, 3))
    assert torch.allclose(means, torch.eye(3), atol=0.02)


def test_a_single_file_is_one_image(tmp_path):
    path = solid(tmp_path / "photo.jpeg", (10, 20, 30))
    assert ImageInput(str(path)).check(8, 8) == [InputImage("photo", path)]


def test_alpha_is_ignored_not_composited(tmp_path):
    rgba = np.zeros((6, 8, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:, 4:, 3] = 255  # the left half fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut_out.png")

    image = load_image(tmp_path / "cut_out.png", 6, 8)

    expected = torch.tensor([200, 100, 50]).view(3, 1, 1) / 255
    assert torch.allclose(image, expected.expand(3, 6, 8))


def test_a_palette_image_keeps_its_colours_where_transparent(tmp_path):
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "palette.png", transparency=bytes([0, 255]))  # red fully transparent

    image = load_image(tmp_path / "palette.png", 1, 2)

    assert torch.equal(image[:, 0, :], torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]))


def test_exif_orientation_6_turns_the_image_a_quarter_clockwise(tmp_path):
    stored = np.zeros((4, 6, 3), dtype=np.uint8)
    stored[0] = 255  # the stored top row is white
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)

    image = load_image(tmp_path / "phone.png", 6, 4)  # displayed 6 px high, 4 wide

    assert torch.equal(image[:, :, -1], torch.ones(3, 6))  # the top row became the right column
    assert torch.equal(image[:, :, :-1], torch.zeros(3, 6, 3))


def test_greyscale_becomes_three_channels_and_16_bit_is_scaled_by_65535(tmp_path):
    values = np.array([[0, 1000], [32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "depth16.png")
    Image.fromarray(np.array([[0, 51], [102, 255]], dtype=np.uint8)).save(tmp_path / "grey8.png")

    deep = load_image(tmp_path / "depth16.png", 2, 2)
    grey = load_image(tmp_path / "grey8.png", 2, 2)

    assert torch.allclose(deep, torch.from_numpy(values / 65535).float().expand(3, 2, 2))
    assert torch.allclose(grey, torch.tensor([[0.0, 0.2], [0.4, 1.0]]).expand(3, 2, 2))


@pytest.mark.parametrize("size, canvas, expected", [
    ((300, 200), (128, 128), (192, 128, 32, 0)),  # scale 128/200 = 0.64: 300 * 0.64 = 192 high, 32 rows off the top
    ((200, 300), (128, 128), (128, 192, 0, 32)),  # the same image turned: 32 columns off the left
    ((3, 5), (4, 4), (4, 7, 0, 1)),  # scale 4/3: 5 * 4/3 = 6.67 -> 7 wide; 3 columns over: 1 left, 2 right
    ((100, 101), (100, 100), (100, 101, 0, 0)),  # one column over: it comes off the right
    ((4, 5), (2, 2), (2, 3, 0, 0)),  # scale 1/2: 5 / 2 = 2.5 rounds up to 3
    ((10, 10), (4, 8), (8, 8, 2, 0)),  # scale 8/10 set by the width; 4 rows over, 2 off each side
    ((64, 32), (128, 128), (256, 128, 64, 0)),  # upscaled by 4
])
def test_fit_box_covers_the_canvas_then_crops_the_centre(size, canvas, expected):
    assert fit_box(*size, *canvas) == expected


def stripes(height, width, axis):
    """Greyscale stripes: row (axis 0) or column (axis 1) i has the value 10 * i."""
    ramp = np.arange(height if axis == 0 else width, dtype=np.uint8) * 10
    return np.broadcast_to(ramp[:, None] if axis == 0 else ramp[None, :], (height, width)).copy()


@pytest.mark.parametrize("height, width, axis, kept", [
    (8, 12, 1, range(2, 10)),  # a wide image keeps its centre columns
    (8, 11, 1, range(1, 9)),  # odd leftover: 1 column off the left, 2 off the right
    (13, 8, 0, range(2, 10)),  # a tall image keeps its centre rows, the extra one off the bottom
])
def test_an_image_of_the_canvas_height_is_centre_cropped(tmp_path, height, width, axis, kept):
    Image.fromarray(stripes(height, width, axis)).save(tmp_path / "stripes.png")

    image = load_image(tmp_path / "stripes.png", 8, 8)

    expected = torch.tensor([10.0 * i for i in kept]) / 255
    expected = expected.view(1, 8, 1) if axis == 0 else expected.view(1, 1, 8)
    assert torch.allclose(image, expected.expand(3, 8, 8))


def test_downscaling_is_antialiased(tmp_path):
    checkerboard = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    Image.fromarray(checkerboard).save(tmp_path / "fine.png")

    image = load_image(tmp_path / "fine.png", 16, 16)

    assert torch.allclose(image, torch.full((3, 16, 16), 0.5), atol=0.05)  # not aliased to black or white


def truncated_png(path):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("case, named", [
    ("missing", "nowhere"),
    ("empty folder", "empty"),
    ("truncated png", "cut.png"),
    ("truncated png in a folder", "cut.png"),
    ("text named .png", "fake.png"),
    ("duplicate ids", "a.jpg and a.png"),
    ("unsupported file", "notes.txt"),
    ("side over MAX_SIDE", "wide.png"),
])
def test_bad_input_paths_are_refused_naming_input_path_and_the_file(tmp_path, case, named):
    if case == "missing":
        path = tmp_path / "nowhere"
    elif case == "empty folder":
        path = tmp_path / "empty"
        path.mkdir()
        (path / "readme.txt").write_text("no images here")
    elif case == "truncated png":
        path = truncated_png(tmp_path / "cut.png")
    elif case == "truncated png in a folder":
        solid(tmp_path / "fine.png", (1, 2, 3))
        truncated_png(tmp_path / "cut.png")
        path = tmp_path
    elif case == "text named .png":
        path = tmp_path / "fake.png"
        path.write_text("not a PNG")
    elif case == "duplicate ids":
        solid(tmp_path / "a.png", (1, 2, 3))
        solid(tmp_path / "a.jpg", (1, 2, 3))
        path = tmp_path
    elif case == "unsupported file":
        path = tmp_path / "notes.txt"
        path.write_text("hello")
    else:
        path = tmp_path / "wide.png"
        Image.new("L", (16_385, 1)).save(path)

    with pytest.raises(ValueError, match=r"^input\.path") as error:
        ImageInput(str(path)).check(128, 128)
    assert named in str(error.value)


@pytest.mark.parametrize("path", ["", None, 3])
def test_input_path_must_be_a_non_empty_string(path):
    with pytest.raises(ValueError, match=r"^input\.path must be a non-empty string"):
        ImageInput(path)


def test_a_canvas_side_out_of_range_is_refused_before_any_file_is_read(tmp_path):
    with pytest.raises(ValueError, match="height"):
        ImageInput(str(tmp_path / "nowhere")).check(0, 128)
    with pytest.raises(ValueError, match="width"):
        NoiseInput().check(128, 16_385)


def test_load_images_needs_at_least_one_image():
    with pytest.raises(ValueError, match="images must hold at least one"):
        load_images([], 8, 8)


def test_the_input_configs_instantiate_the_two_inputs(tmp_path):
    image_config = OmegaConf.load(CONF_DIR / "input" / "image.yaml")
    image_config.path = str(tmp_path)

    assert instantiate(OmegaConf.load(CONF_DIR / "input" / "noise.yaml")) == NoiseInput()
    assert instantiate(image_config) == ImageInput(str(tmp_path))


def test_a_world_texture_survives_the_world_vae_round_trip(tmp_path):
    from dualsampler.models import load_model
    from dualsampler.runner.images import to_pil
    from dualsampler.world.textures import render_texture

    to_pil(render_texture("blue stripes", 128, 128, 0)).save(tmp_path / "stripes.png")
    x = load_images(ImageInput(str(tmp_path)).check(128, 128), 128, 128)
    model = load_model()

    with torch.no_grad():
        y = model.decode(model.encode(x))

    psnr = 10 * torch.log10(1 / ((y - x) ** 2).mean())
    assert psnr > 31.0  # measured 32.8 dB
