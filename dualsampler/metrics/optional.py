"""The optional `vision` extra (torchvision, torch-fidelity) and its weights, checked lazily and offline.

A missing package raises an ImportError naming it and the install command; missing weights a
FileNotFoundError naming the file. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import torch

VISION_HINT = "pip install 'dualsampler[vision]'"
LPIPS_NETS = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}


def require(package: str, purpose: str) -> ModuleType:
    """Import `package` or raise ImportError naming it, what needs it and the install command."""
    try:
        return importlib.import_module(package)
    except Exception as error:  # torchvision can fail with errors other than ImportError on a mismatched torch
        raise ImportError(f"{purpose} needs the package '{package}', which does not import here ({error}); "
                          f"install it with: {VISION_HINT}") from error


def hub_checkpoint(url: str) -> str:
    """The path where torch.hub keeps the weights file of `url` (it may not exist)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def inception_weights(weights_path: str | None = None) -> str:
    """Path of local torch-fidelity InceptionV3 weights: `weights_path`, or by default the file torch-fidelity itself
    caches in torch hub's checkpoints folder. FileNotFoundError naming `metrics.inception_weights` for a missing file
    (a given path is checked before any import), ImportError naming the package when the `vision` extra is missing.
    torch-fidelity downloads the weights when given no path: it is always given this existing one."""
    if weights_path is not None:
        _check_inception_file(weights_path)
    require("torchvision", "fid/inception and kid/inception")
    require("torch_fidelity", "fid/inception and kid/inception")
    if weights_path is not None:
        return weights_path
    extractor = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    path = hub_checkpoint(extractor.URL_INCEPTION_V3)
    _check_inception_file(path)
    return path


def _check_inception_file(path: str) -> None:
    if not isinstance(path, str) or not path:
        raise ValueError(f"metrics.inception_weights must be a non-empty path to a file, got {path!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"fid/inception needs the torch-fidelity InceptionV3 weights at {path} "
                                "(metrics.inception_weights; no downloads at run time: copy the file there or pass "
                                "its path; scripts/write_inception_weights.py writes random ones for dry runs)")


def vision_missing() -> str | None:
    """None when the `vision` extra imports (torchvision and torch-fidelity), else why not and what to install."""
    try:
        require("torchvision", "fid/inception and kid/inception")
        require("torch_fidelity", "fid/inception and kid/inception")
    except ImportError as error:
        return str(error)
    return None


def lpips_weights(net: str) -> str:
    """Path of the local torchvision backbone weights for `lpips/<net>`; ImportError / FileNotFoundError otherwise."""
    if net not in LPIPS_NETS:
        raise ValueError(f"lpips net must be one of {sorted(LPIPS_NETS)}, got {net!r}")
    torchvision = require("torchvision", f"lpips/{net}")
    path = hub_checkpoint(getattr(torchvision.models, LPIPS_NETS[net]).DEFAULT.url)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"lpips/{net} needs the torchvision weights at {path} "
                                "(no downloads at run time: copy the file there)")
    return path


def lpips_available(net: str = "alex") -> bool:
    """True when torchvision imports and the `net` backbone weights are on disk (so `lpips/<net>` runs offline)."""
    try:
        lpips_weights(net)
    except (ImportError, FileNotFoundError):
        return False
    return True
