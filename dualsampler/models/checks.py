"""Cheap checks made before any weight loads: dtype names, model files present and whole (devices:
`dualsampler.validation.check_device`)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def check_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """`None` -> float32; "float32" | "float16" | "bfloat16" (or those torch dtypes) -> the torch dtype."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f"dtype must be one of {' | '.join(DTYPES)}; got {dtype!r}")


def check_safetensors(path: Path) -> None:
    """Raise ValueError naming `path` unless its header parses and the file holds every byte the header lists."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(f.read(length))
    except (struct.error, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"weights file {str(path)!r} is damaged: not a readable safetensors file ({err})") from None
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if size < 8 + length + end:
        raise ValueError(f"weights file {str(path)!r} is damaged (truncated): {size} bytes of the {8 + length + end} "
                         "its header lists")


def weights_files(folder: Path, stems: tuple[str, ...]) -> list[Path]:
    """The weights of one component folder: `<stem>[.fp16].safetensors` or `.bin`, or the shards a
    `<name>.index.json` lists (then the index first, then the shards); safetensors files checked whole. Raises
    ValueError naming the folder and the names looked for, or the missing shard."""
    names = [f"{stem}{variant}{ext}" for stem in stems for ext in (".safetensors", ".bin") for variant in ("", ".fp16")]
    for name in names:
        path, index = folder / name, folder / f"{name}.index.json"
        if path.is_file():
            files = [path]
        elif index.is_file():
            shards = sorted(set(check_config_file(index).get("weight_map", {}).values()))
            missing = [shard for shard in shards if not (folder / shard).is_file()]
            if missing or not shards:
                raise ValueError(f"weights index {str(index)!r} lists missing shards: {', '.join(missing) or 'none listed'}")
            files = [index] + [folder / shard for shard in shards]
        else:
            continue
        for file in files:
            if file.name.endswith(".safetensors"):
                check_safetensors(file)
        return files
    raise ValueError(f"model folder {str(folder)!r} has no weights file: expected one of {', '.join(names)} "
                     "(or its .index.json with shards)")


def check_config_file(path: Path) -> dict:
    """A component's JSON config, or ValueError naming the missing or unreadable file."""
    if not path.is_file():
        raise ValueError(f"model folder is missing {str(path)!r}")
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"config file {str(path)!r} is not valid JSON ({err})") from None
