"""`ModelSource`: the model a config names (conf/model/*.yaml), checked and fingerprinted before it loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..validation import check_bool, check_device, check_int
from .checks import check_config_file, check_dtype
from .fingerprint import files_fingerprint
from .loader import check_source, load_model


@dataclass(frozen=True)
class ModelSource:
    """Where a job's model comes from. `path`: None for the embedded world, a world folder, a diffusers Stable
    Diffusion folder, or a `.safetensors`/`.ckpt` checkpoint (then `config`: a local diffusers folder with its
    configs and tokenizers). `dtype`: float32 | float16 | bfloat16. `compile`: `torch.compile` the UNet.
    `random_seed`: instead of trained weights, the world's architectures with random weights from this seed
    (tests and dry runs of a sweep).

    The runner's contract: `source.check()` (cheap, raises before anything loads), `source.fingerprint()` (no
    weights loaded; what resume matches), then `source.load(device)`.
    """

    path: str | None = None
    dtype: str = "float32"
    config: str | None = None
    compile: bool = False
    random_seed: int | None = None

    def check(self) -> tuple[str, Any] | None:
        """Raise ValueError unless dtype is allowed and the files `path` (and `config`) name exist and are whole;
        returns what `check_source` found (None for random weights)."""
        check_dtype(self.dtype)
        check_bool(self.compile, "compile")
        if self.random_seed is not None:
            check_int(self.random_seed, "random_seed", 0, 2**32 - 1)
            if self.path is not None:
                raise ValueError(f"random_seed needs path null (random weights instead of files); got path={self.path!r}")
            return None
        if self.config is not None and not Path(self.config).is_dir():
            raise ValueError(f"config must be an existing local diffusers folder; got {self.config!r}")
        return check_source(self.path, self.config)

    def check_prompts(self, prompts: dict[str, str]) -> None:
        """Before any weight loads: for the world (embedded, a world folder or random weights) each prompt in its
        encoder's vocabulary (a color and/or a pattern; "" is unconditional); ValueError naming the prompt's key
        (`{key: prompt}`). Other models read any text."""
        from ..world.prompts import split_prompt
        from .world import world_vocabulary

        resolved = self.check()
        if resolved is not None and resolved[0] != "world":
            return
        colors, patterns = world_vocabulary(None if resolved is None else resolved[1])
        for key, prompt in prompts.items():
            try:
                split_prompt(prompt, colors, patterns, allow_partial=True)
            except ValueError as error:
                raise ValueError(f"{key}: {error}") from None

    def model_class(self) -> tuple[type, str]:
        """(the class `load` returns, the model's kind), from the files alone: what a config's sampler options are
        checked against before anything loads."""
        resolved = self.check()
        if resolved is None or resolved[0] == "world":
            from .world import World

            return World, "world"
        from .families import family_of_kind
        from .stable_diffusion import StableDiffusion

        kind = (resolved[1] if resolved[0] == "folder" else resolved[1][1]).kind
        family = family_of_kind(kind)
        return (family.MODEL_CLASS if family else StableDiffusion), kind

    def check_samplers(self, samplers: dict[str, Any]) -> None:
        """Each `runner.specs.SamplerSpec` (keyed by where it is configured) asks only for options this model's
        denoiser takes (LoRAs, Flux's guidance); ValueError naming the key otherwise."""
        cls, kind = self.model_class()
        for where, spec in samplers.items():
            spec.check_model(cls.denoiser, kind, where)

    def vae_scale_factor(self) -> int:
        """Pixels per latent cell of the model's VAE, from its config alone (no weights loaded): a job's canvas must
        be a multiple of it."""
        resolved = self.check()
        if resolved is None:
            from .architectures import VAE_CONFIG

            return 2 ** (len(VAE_CONFIG["block_out_channels"]) - 1)
        kind, info = resolved
        if kind == "world":
            from .world import world_folders

            folder = world_folders(info)["vae"]
        else:
            folder = (info if kind == "folder" else info[1]).folder / "vae"
        return 2 ** (len(check_config_file(folder / "config.json").get("block_out_channels", [0] * 4)) - 1)

    def check_canvas(self, height: int, width: int) -> None:
        """Raise ValueError naming height and width unless both are multiples of the VAE's factor."""
        factor = self.vae_scale_factor()
        if height % factor or width % factor:
            raise ValueError(f"height and width must be multiples of the model's VAE factor {factor}; "
                             f"got {height}x{width}")

    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of the files the model loads from (size and mtime for files over 64 MiB), without
        loading them; `random-<seed>` for random weights (fixed by the seed)."""
        resolved = self.check()
        if resolved is None:
            return f"random-{self.random_seed}"
        kind, info = resolved
        if kind == "world":
            from .world import weights_fingerprint

            return weights_fingerprint(info)
        if kind == "folder":
            return files_fingerprint(info.files.items())
        path, folder_info = info
        return files_fingerprint({**folder_info.files, "checkpoint": path}.items())

    def load(self, device: str | torch.device = "cpu"):
        """The model on `device` (see `load_model`)."""
        if self.random_seed is not None:
            from .world import random_world

            return random_world(self.random_seed, device=check_device(device), dtype=check_dtype(self.dtype))
        return load_model(self.path, dtype=self.dtype, device=device, config=self.config, compile=self.compile)
