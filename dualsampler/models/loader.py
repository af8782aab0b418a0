"""`load_model`: the embedded world, a diffusers folder of any model family (Stable Diffusion 1.x/2.x/XL, SD3,
Flux) or a single checkpoint file, one interface (`models.interface.Model`, SPEC §9). Every check (device, dtype, files) is made before any weight loads; nothing is ever downloaded."""

from __future__ import annotations

from pathlib import Path

import torch

from ..validation import check_bool, check_device
from .checks import check_dtype
from .detect import inspect_folder, is_world_folder
from .interface import Model

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")


def check_source(source: str | Path | None, config: str | Path | None = None):
    """What `source` is, checked without loading weights: ("world", folder or None) for the embedded world or a
    world folder, ("folder", FolderInfo) for a diffusers folder, ("file", (path, FolderInfo of `config`)) for a
    single checkpoint. Raises ValueError naming the missing or broken file, or asking for `config=`."""
    from .checks import check_safetensors
    from .world import world_folders

    if source is None or str(source) == "world":
        return "world", None
    path = Path(source)
    if path.is_file() or path.suffix in CHECKPOINT_SUFFIXES:
        if path.suffix not in CHECKPOINT_SUFFIXES:
            raise ValueError(f"model file {str(path)!r} must end in one of {', '.join(CHECKPOINT_SUFFIXES)}")
        if not path.is_file():
            raise ValueError(f"model file {str(path)!r} does not exist")
        if config is None:
            raise ValueError(
                f"single-file checkpoint {str(path)!r} needs config=: a local diffusers folder with the model's configs "
                "and tokenizers (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/); nothing is "
                "downloaded"
            )
        if path.suffix == ".safetensors":
            check_safetensors(path)
        return "file", (path, inspect_folder(config, require_weights=False))
    if not path.is_dir():
        raise ValueError(f"model path {str(path)!r} does not exist (a world folder, a diffusers folder or a "
                         f"{'/'.join(CHECKPOINT_SUFFIXES)} checkpoint)")
    if is_world_folder(path):
        world_folders(path)
        return "world", path
    return "folder", inspect_folder(path)


def load_model(
    source: str | Path | None = None,
    *,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device = "cpu",
    config: str | Path | None = None,
    compile: bool = False,
) -> Model:
    """The model behind `source`: None or "world" -> the embedded world; a world folder (vae/, unet/,
    prompt_encoder/); a diffusers folder (Stable Diffusion 1.x, 2.x eps or v, zero-SNR, SDXL base, or a family of
    `models/families.py`: SD3, Flux; detected from its files); or a single `.safetensors`/`.ckpt` checkpoint with
    `config=` a local diffusers folder.

    `dtype` float32 (default) | float16 | bfloat16 is the network's and text encoders' dtype (sampling math stays
    float32); `compile=True` wraps the network in `torch.compile`. Returns a `models.interface.Model`.
    """
    torch_dtype = check_dtype(dtype)
    torch_device = check_device(device)
    check_bool(compile, "compile")
    if config is not None and not isinstance(config, (str, Path)):
        raise ValueError(f"config must be a local folder path or None, got {config!r}")
    if source is not None and not isinstance(source, (str, Path)):
        raise ValueError(f"source must be None, 'world', a model folder or a checkpoint file path, got {source!r}")
    kind, info = check_source(source, config)
    if kind == "world":
        from .world import load_world

        world = load_world(info, device=torch_device, dtype=torch_dtype)
        if compile:
            world.unet.compile()
        return world
    from .families import family_of_kind
    from .stable_diffusion import load_sd_folder, load_sd_single_file

    folder_info = info if kind == "folder" else info[1]
    family = family_of_kind(folder_info.kind)
    if kind == "folder":
        return (family.load_folder if family else load_sd_folder)(info, torch_dtype, torch_device, compile)
    path = info[0]
    return (family.load_single_file if family else load_sd_single_file)(path, folder_info, torch_dtype, torch_device,
                                                                        compile)
