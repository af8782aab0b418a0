"""Upscale models: applied until the width reaches the target, then an exact resize."""

import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from dualsampler.models import random_world
from dualsampler.upscale import load_upscale_model, upscale_with_model
from dualsampler.upscale.upscale_models import (
    check_upscale_model_choice,
    import_spandrel,
    resolve_upscale_model,
)


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


def test_spandrel_that_fails_to_import_gives_a_clear_message(tmp_path, monkeypatch):
    path = tmp_path / "4x_model.pth"
    torch.save({}, path)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    monkeypatch.setitem(sys.modules, "spandrel", None)
    with pytest.raises(ImportError, match=r"installed but failed to import.*dualsampler\[vision\].*torch==2.14.1 torchvision==0.29.1"):
        load_upscale_model(path)


def test_absent_spandrel_says_it_is_not_installed(tmp_path, monkeypatch):
    path = tmp_path / "4x_model.pth"
    torch.save({}, path)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"spandrel is not installed.*pip install 'dualsampler\[vision\]'"):
        load_upscale_model(path)


def test_upscale_model_choice_resolves_to_none_the_embedded_model_or_a_file(tmp_path):
    world = random_world(0)
    assert resolve_upscale_model(False, world) is None
    assert resolve_upscale_model(True, world) is world.upscaler
    with pytest.raises(ValueError, match="only the world has"):
        resolve_upscale_model(True, SimpleNamespace(upscaler=None))
    with pytest.raises(ValueError, match="upscale_model must be false, true .* or an existing"):
        check_upscale_model_choice(str(tmp_path / "absent.pth"))


def test_load_upscale_model_rejects_unknown_files(tmp_path):
    with pytest.raises(ValueError, match="path must end in one of"):
        load_upscale_model(tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="existing upscale model file"):
        load_upscale_model(tmp_path / "absent.safetensors")


def compact_2x_state_dict(features: int = 8, convs: int = 2) -> dict[str, torch.Tensor]:
    """A Real-ESRGAN "Compact" (SRVGG) 2x network's state dict, laid out as its released files are: body.0 conv
    3->F, body.1 PReLU(F), `convs` x (conv F->F, PReLU), then a conv F->3*2*2 before the pixel shuffle."""
    layers: list[nn.Module] = [nn.Conv2d(3, features, 3, padding=1), nn.PReLU(features)]
    for _ in range(convs):
        layers += [nn.Conv2d(features, features, 3, padding=1), nn.PReLU(features)]
    layers.append(nn.Conv2d(features, 3 * 4, 3, padding=1))
    torch.manual_seed(0)
    return {f"body.{k}": v for k, v in nn.Sequential(*layers).state_dict().items()}


def test_spandrel_loads_a_2x_compact_model_where_it_imports(tmp_path):
    try:
        import_spandrel()
    except ImportError as err:  # the message says whether spandrel is absent or fails to import (torchvision)
        pytest.skip(str(err))
    torch.save(compact_2x_state_dict(), tmp_path / "2x_compact.pth")
    model = load_upscale_model(tmp_path / "2x_compact.pth")
    assert model.scale == 2
    assert upscale_with_model(model, torch.rand(2, 3, 16, 24), 40, 60, "bilinear").shape == (2, 3, 40, 60)
