"""Upscale models: applied until the width reaches the target, then an exact resize."""

import sys

import pytest
import torch
from torch import nn

from dualsampler.models import random_world
from dualsampler.upscale import load_upscale_model, upscale_with_model


class CountingNearest(nn.Module):
    """A stand-in super-resolution model: nearest-neighbour by `scale`, counting its calls."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.calls = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return images.repeat_interleave(self.scale, -2).repeat_interleave(self.scale, -1)


@pytest.mark.parametrize("width, calls", [(40, 1), (64, 2), (100, 3), (16, 0)])
def test_model_runs_until_the_width_reaches_the_target(width, calls):
    model = CountingNearest(2)
    images = torch.rand(2, 3, 12, 20)
    out = upscale_with_model(model, images, 30, width, "bilinear")
    assert model.calls == calls
    assert out.shape == (2, 3, 30, width)


def test_an_exact_2x_target_is_the_model_output_itself():
    model = CountingNearest(2)
    images = torch.rand(1, 3, 8, 10)
    assert torch.equal(upscale_with_model(model, images, 16, 20, "lanczos"), model(images))


def test_a_1x_model_is_applied_once_then_the_scale_method_finishes():
    model = CountingNearest(1)
    out = upscale_with_model(model, torch.rand(1, 3, 8, 8), 24, 24, "bicubic")
    assert model.calls == 1
    assert out.shape == (1, 3, 24, 24)


def test_the_embedded_upscaler_doubles_non_square_batches():
    upscaler = random_world(0).upscaler
    out = upscale_with_model(upscaler, torch.rand(2, 3, 16, 24), 32, 48, "area")
    assert out.shape == (2, 3, 32, 48)


def test_missing_spandrel_gives_a_clear_message(tmp_path, monkeypatch):
    path = tmp_path / "4x_model.pth"
    torch.save({}, path)
    monkeypatch.setitem(sys.modules, "spandrel", None)
    with pytest.raises(ImportError, match=r"needs spandrel, which imports torchvision.*dualsampler\[vision\]"):
        load_upscale_model(path)


def test_load_upscale_model_rejects_unknown_files(tmp_path):
    with pytest.raises(ValueError, match="path must end in one of"):
        load_upscale_model(tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="existing upscale model file"):
        load_upscale_model(tmp_path / "absent.safetensors")


def test_spandrel_loads_a_2x_compact_model_where_it_imports(tmp_path):
    try:
        from spandrel.architectures.Compact import SRVGGNetCompact
    except Exception as err:  # spandrel absent, or torchvision failing to import with this torch
        pytest.skip(f"spandrel does not import here: {err!r}")
    torch.manual_seed(0)
    net = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2)
    torch.save(net.state_dict(), tmp_path / "2x_compact.pth")
    model = load_upscale_model(tmp_path / "2x_compact.pth")
    assert model.scale == 2
    assert upscale_with_model(model, torch.rand(2, 3, 16, 24), 40, 60, "bilinear").shape == (2, 3, 40, 60)
