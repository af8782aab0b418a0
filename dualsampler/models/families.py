"""The model families `load_model` detects in a diffusers folder beside Stable Diffusion 1.x / 2.x / XL (which
`detect.sd_kind` tells apart and `models.stable_diffusion` loads): one module each.

A family module exposes `KIND` (its kind name), `COMPONENTS` (component folder -> weights file stems, None for a
tokenizer or scheduler folder), `MODEL_CLASS` (what it loads: a `models.interface.Model`; the options its
`denoiser` takes are checked against a config before anything loads), `matches(model_index, folder) -> bool`,
`load_folder(info, dtype, device, compile)` and `load_single_file(path, info, dtype, device, compile)`; a family
whose model sampling depends on the canvas (Flux) offers `model_sampling_for(height, width)` and takes `height` and
`width` in its `denoiser`; adding a family is its module, a line in `FAMILY_MODULES`
and its config in `conf/model/`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

FAMILY_MODULES = ("sd3", "flux")


def families() -> list[ModuleType]:
    """The family modules, imported on first use (diffusers' pipelines load only when a folder is inspected)."""
    return [importlib.import_module(f"{__package__}.{name}") for name in FAMILY_MODULES]


def family_of_folder(model_index: dict, folder: Path) -> ModuleType | None:
    """The family whose `matches` accepts the folder; None for a Stable Diffusion (UNet) folder."""
    return next((family for family in families() if family.matches(model_index, folder)), None)


def family_of_kind(kind: str) -> ModuleType | None:
    """The family module of a detected kind; None for sd1 / sd2 / sdxl."""
    return next((family for family in families() if family.KIND == kind), None)
