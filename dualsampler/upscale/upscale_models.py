"""Super-resolution models in pixel space: the embedded `Upscaler2x`, or any file spandrel can load.

spandrel (and the torchvision it imports) is an optional extra, imported only when a file is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from dualsampler.upscale.scale_methods import check_scale_method, resize_images

UpscaleModel = Callable[[torch.Tensor], torch.Tensor]
SPANDREL_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt")
VISION_INSTALL = (
    "install the 'vision' extra (pip install 'dualsampler[vision]') with a torchvision build that matches torch "
    "(a pair that works: pip install torch==2.14.1 torchvision==0.29.1)"
)


def import_spandrel():
    """The spandrel module, or ImportError saying what is missing (spandrel itself, or a torchvision that imports
    with this torch) and what to install."""
    from importlib.util import find_spec

    if find_spec("spandrel") is None:
        raise ImportError(
            f"loading super-resolution model files needs spandrel, which imports torchvision, and spandrel is not "
            f"installed: {VISION_INSTALL}; the embedded 2x model (upscale_model: true on the world) works without it"
        )
    try:
        import spandrel
    except Exception as err:
        raise ImportError(
            f"loading super-resolution model files needs spandrel, which imports torchvision: spandrel is installed "
            f"but failed to import ({err!r}); {VISION_INSTALL}"
        ) from err
    return spandrel


def load_upscale_model(path: str | Path, device: str | torch.device | None = None) -> UpscaleModel:
    """A spandrel `ImageModelDescriptor` (callable on `[B, 3, H, W]` in `[0, 1]`) for a `.pth`/`.safetensors`
    file, on `device` when given. The file is checked before spandrel is imported."""
    path = Path(path)
    if path.suffix not in SPANDREL_SUFFIXES:
        raise ValueError(f"path must end in one of {', '.join(SPANDREL_SUFFIXES)}; got {str(path)!r}")
    if not path.is_file():
        raise ValueError(f"path must be an existing upscale model file; got {str(path)!r}")
    spandrel = import_spandrel()
    descriptor = spandrel.ModelLoader().load_from_file(str(path))
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ValueError(f"path must hold an image-to-image model; spandrel loaded a {type(descriptor).__name__}")
    if device is not None:
        descriptor.to(device)
    return descriptor.eval()


def check_upscale_model_choice(choice: bool | str | None) -> None:
    """Raise ValueError (before anything loads) unless `choice` is false/null, true (the model's embedded
    upscaler), or the path of an existing file with a suffix spandrel reads."""
    if choice is None or isinstance(choice, bool):
        return
    path = Path(str(choice))
    if path.suffix not in SPANDREL_SUFFIXES or not path.is_file():
        raise ValueError(
            f"upscale_model must be false, true (the world's embedded 2x model) or an existing "
            f"{'/'.join(SPANDREL_SUFFIXES)} file; got {choice!r}"
        )


def resolve_upscale_model(choice: bool | str | None, model) -> UpscaleModel | None:
    """The upscale model a config's `upscaler.upscale_model` names: None for false/null, the loaded model's own
    `upscaler` for true (the embedded world has one; Stable Diffusion has none: ValueError), or a file loaded
    through spandrel onto the model's device."""
    check_upscale_model_choice(choice)
    if not choice:
        return None
    if choice is True:
        if getattr(model, "upscaler", None) is None:
            raise ValueError("upscale_model: true uses the model's embedded upscaler, which only the world has; "
                             "give the path of an upscale model file instead")
        return model.upscaler
    return load_upscale_model(choice, device=getattr(model, "device", None))


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
    model: UpscaleModel,
    images: torch.Tensor,
    height: int,
    width: int,
    scale_method: str,
    reach_width: float | None = None,
    upstream_compat: bool = False,
) -> torch.Tensor:
    """Apply `model` while the width is below `reach_width` (default `width`; it stops early if the model does not
    enlarge), then resize to exactly `(height, width)` with `scale_method` (`resize_images`, `upstream_compat`)."""
    check_scale_method(scale_method)
    reach_width = width if reach_width is None else reach_width
    while images.shape[-1] < reach_width:
        before = images.shape[-1]
        images = apply_upscale_model(model, images)
        if images.shape[-1] <= before:
            break
    return resize_images(images, height, width, scale_method, upstream_compat)
