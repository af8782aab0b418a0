"""Super-resolution models in pixel space: the embedded `Upscaler2x`, or any file spandrel can load."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from dualsampler.upscale.scale_methods import check_scale_method, resize_images

UpscaleModel = Callable[[torch.Tensor], torch.Tensor]
SPANDREL_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt")


def load_upscale_model(path: str | Path) -> UpscaleModel:
    """A spandrel `ImageModelDescriptor` (callable on `[B, 3, H, W]` in `[0, 1]`) for a `.pth`/`.safetensors` file.

    spandrel imports torchvision; where either is missing this raises ImportError saying how to install them.
    """
    path = Path(path)
    if path.suffix not in SPANDREL_SUFFIXES:
        raise ValueError(f"path must end in one of {', '.join(SPANDREL_SUFFIXES)}; got {str(path)!r}")
    if not path.is_file():
        raise ValueError(f"path must be an existing upscale model file; got {str(path)!r}")
    try:
        import spandrel
    except Exception as err:
        raise ImportError(
            "loading super-resolution model files needs spandrel, which imports torchvision: install the "
            "'vision' extra (pip install 'dualsampler[vision]') with a torchvision build that matches torch; "
            "the embedded 2x model (dualsampler.models.load_world().upscaler) works without it. "
            f"Import failed with: {err!r}"
        ) from err
    descriptor = spandrel.ModelLoader().load_from_file(str(path))
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ValueError(f"path must hold an image-to-image model; spandrel loaded a {type(descriptor).__name__}")
    return descriptor.eval()


def _device_dtype(model: UpscaleModel, images: torch.Tensor) -> tuple[torch.device, torch.dtype]:
    module = model if isinstance(model, torch.nn.Module) else getattr(model, "model", None)
    p = next(module.parameters(), None) if isinstance(module, torch.nn.Module) else None
    return (p.device, p.dtype) if p is not None else (images.device, images.dtype)


def apply_upscale_model(model: UpscaleModel, images: torch.Tensor) -> torch.Tensor:
    """`model(images)` without gradients, on the model's device and dtype, clamped to [0, 1], in the input's dtype
    (a fresh tensor, never an inference-mode one: spandrel runs its models under `torch.inference_mode`)."""
    device, dtype = _device_dtype(model, images)
    with torch.no_grad():
        out = model(images.to(device=device, dtype=dtype))
    return out.clamp(0, 1).to(device=images.device, dtype=images.dtype).clone()


def upscale_with_model(
    model: UpscaleModel, images: torch.Tensor, height: int, width: int, scale_method: str
) -> torch.Tensor:
    """Apply `model` until the width reaches `width` (or the model stops enlarging), then resize to exactly
    `(height, width)` with `scale_method`."""
    check_scale_method(scale_method)
    while images.shape[-1] < width:
        before = images.shape[-1]
        images = apply_upscale_model(model, images)
        if images.shape[-1] <= before:
            break
    return resize_images(images, height, width, scale_method)
