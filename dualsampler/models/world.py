"""World: the bundle of models behind every config, loaded offline from package data or a diffusers folder."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from . import architectures
from ..validation import check_bounded
from .checks import check_config_file, weights_files
from .codec import decode_latents, encode_images
from .fingerprint import files_fingerprint, folder_files
from .judge import Judge
from .prompt_encoder import PromptEncoder
from .upscaler import Upscaler2x

WEIGHTS_DIR = Path(__file__).parent / "weights"
REQUIRED = ("vae", "unet", "prompt_encoder")
BORROWED = ("judge", "upscaler")


@dataclass
class World:
    """VAE + UNet + prompt encoder (+ judge and upscaler) and the model's sampling constants."""

    vae: AutoencoderKL
    unet: UNet2DConditionModel
    prompt_encoder: PromptEncoder
    judge: Judge
    upscaler: Upscaler2x
    model_sampling: object
    path: Path | None = None  # the folder the weights were read from; None for random weights
    seed: int | None = None  # the seed of random weights (random_world)
    kind: ClassVar[str] = "world"

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent along each side: 2 ** (number of VAE blocks - 1)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def canvas_multiple(self) -> int:
        """A canvas side is a multiple of the VAE factor."""
        return self.vae_scale_factor

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def fingerprint(self) -> str:
        """`weights_fingerprint` of the folder the world was loaded from; `random-<seed>` for `random_world`'s
        weights; otherwise sha256 (16 hex digits) over every parameter and buffer of its models."""
        if self.path is not None:
            return weights_fingerprint(self.path)
        if self.seed is not None:
            return f"random-{self.seed}"
        digest = hashlib.sha256()
        for name, model in (("vae", self.vae), ("unet", self.unet), ("prompt_encoder", self.prompt_encoder),
                            ("judge", self.judge), ("upscaler", self.upscaler)):
            for key, tensor in model.state_dict().items():
                digest.update(f"{name}.{key}\0".encode())
                digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def to(self, device: str | torch.device) -> World:
        """Move every model to `device` in place; returns self."""
        for model in (self.vae, self.unet, self.prompt_encoder, self.judge, self.upscaler):
            model.to(device)
        return self

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str] | str) -> torch.Tensor:
        """Prompts -> encoder_hidden_states Tensor[B, L, D]; "" is the unconditional prompt."""
        if isinstance(prompts, str):
            prompts = [prompts]
        return self.prompt_encoder.encode(list(prompts)).to(self.unet.dtype)

    def denoiser(self, prompt: str | list[str], negative_prompt: str | list[str] = "", cfg: float = 5.0):
        """UNetDenoiser for `prompt` with `negative_prompt` as the CFG unconditional branch; `cfg` is checked before
        the prompts are encoded."""
        from ..sampling import UNetDenoiser

        check_bounded(cfg, "cfg")

        return UNetDenoiser(
            self.unet,
            model_sampling=self.model_sampling,
            cond=self.encode_prompt(prompt),
            uncond=self.encode_prompt(negative_prompt),
            cfg=cfg,
            vae_scale_factor=self.vae_scale_factor,
        )

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in [0, 1] -> latents [B, 4, H/f, W/f] (the one codec, `models.codec.encode_images`:
        scaling and shift factors of the VAE config)."""
        return encode_images(self.vae, images)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [B, 4, h, w] -> images [B, 3, h*f, w*f] in [0, 1] (the one codec, `models.codec.decode_latents`)."""
        return decode_latents(self.vae, latents)

    def reference_images(self, base_prompt: str, regions: list[tuple[torch.Tensor, str]],
                         seeds: list[int]) -> torch.Tensor:
        """The metrics' reference set: one hard composite of the base prompt's texture and each region's (mask,
        prompt), later regions on top, per seed, at the masks' size -> Tensor[len(seeds), 3, H, W]
        (`world.composites.render_regions`)."""
        from ..world.composites import render_regions

        regions = [(mask.float().cpu().reshape(1, 1, *mask.shape[-2:]), prompt) for mask, prompt in regions]
        return torch.stack([render_regions(base_prompt, regions, s) for s in seeds])

    @torch.no_grad()
    def generate(
        self,
        prompt: str,
        seeds: list[int],
        height: int = 128,
        width: int = 128,
        steps: int = 20,
        cfg: float = 5.0,
        sampler: str = "euler",
        scheduler: str = "normal",
        negative_prompt: str = "",
    ) -> torch.Tensor:
        """Text-to-image for one prompt: one image per seed -> Tensor[len(seeds), 3, height, width]."""
        from ..sampling import KSampler

        f = self.vae_scale_factor
        if height % f or width % f:
            raise ValueError(f"height and width must be multiples of {f}, got {height}x{width}")
        latent = torch.zeros(len(seeds), self.unet.config.in_channels, height // f, width // f, device=self.device)
        ks = KSampler(self.denoiser(prompt, negative_prompt, cfg), sampler=sampler, scheduler=scheduler)
        return self.decode(ks.sample(latent, list(seeds), steps))


def _model_sampling_for(scheduler: Path | None):
    """ModelSampling from `scheduler/scheduler_config.json` when the world has one, else SD's defaults."""
    from ..sampling import ModelSampling

    config_file = scheduler / "scheduler_config.json" if scheduler is not None else None
    if config_file is not None and config_file.exists():
        return ModelSampling.from_config(json.loads(config_file.read_text()))
    return ModelSampling()


def world_folders(path: str | Path | None = None) -> dict[str, Path]:
    """The folders `load_world(path)` reads: vae/, unet/, prompt_encoder/ (required), scheduler/ when present, and
    judge/, upscaler/ (the embedded ones when the folder has none). Raises naming a missing required subfolder, or
    a model subfolder without its config.json or with a missing or damaged (truncated) weights file: checked from
    the files' headers, before any weight loads."""
    folder = WEIGHTS_DIR if path is None else Path(path)
    for sub in REQUIRED:
        if not (folder / sub).is_dir():
            raise ValueError(f"path {str(folder)!r} must contain the subfolders vae/, unet/, prompt_encoder/; missing {sub}/")
    folders = {sub: folder / sub for sub in REQUIRED}
    if (folder / "scheduler").is_dir():
        folders["scheduler"] = folder / "scheduler"
    folders.update({sub: folder / sub if (folder / sub).is_dir() else WEIGHTS_DIR / sub for sub in BORROWED})
    for sub in (*REQUIRED, *BORROWED):
        check_config_file(folders[sub] / "config.json")
        weights_files(folders[sub], ("diffusion_pytorch_model",))
    return folders


def world_vocabulary(path: str | Path | None = None) -> tuple[list[str], list[str]]:
    """The (colors, patterns) the world's prompt encoder reads: its config's, else the embedded world's."""
    from ..world.prompts import COLORS, PATTERNS

    config = check_config_file(world_folders(path)["prompt_encoder"] / "config.json")
    return list(config.get("colors", COLORS)), list(config.get("patterns", PATTERNS))


def weights_fingerprint(path: str | Path | None = None) -> str:
    """sha256 (16 hex digits) over every file `load_world(path)` reads: its name within its subfolder and its bytes
    (size and modification time for files over 64 MiB, so real checkpoints are not read in full)."""
    return files_fingerprint([pair for sub, folder in world_folders(path).items() for pair in folder_files(folder, f"{sub}/")])


def load_world(path: str | Path | None = None, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> World:
    """Load a World offline from a diffusers-style folder (vae/, unet/, prompt_encoder/, judge/, upscaler/).

    `path=None` loads the embedded tiny world shipped in the package. A folder without judge/ or
    upscaler/ borrows the embedded ones; a prompt_encoder/ subfolder is required (a CLIP text
    encoder is not bundled). `dtype` applies to the VAE, UNet and prompt encoder; the judge and the
    upscaler stay float32.
    """
    folders = world_folders(path)
    kwargs = {"torch_dtype": torch.float32, "low_cpu_mem_usage": False}
    sampled = {**kwargs, "torch_dtype": dtype}
    world = World(
        vae=AutoencoderKL.from_pretrained(folders["vae"], **sampled),
        unet=UNet2DConditionModel.from_pretrained(folders["unet"], **sampled),
        prompt_encoder=PromptEncoder.from_pretrained(folders["prompt_encoder"], **sampled),
        judge=Judge.from_pretrained(folders["judge"], **kwargs),
        upscaler=Upscaler2x.from_pretrained(folders["upscaler"], **kwargs),
        model_sampling=_model_sampling_for(folders.get("scheduler")),
        path=WEIGHTS_DIR if path is None else Path(path),
    )
    for model in (world.vae, world.unet, world.prompt_encoder, world.judge, world.upscaler):
        model.eval().requires_grad_(False)
    return world.to(device)


def random_world(seed: int = 0, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> World:
    """A World of the embedded architectures with random weights (for fast tests); `dtype` as in `load_world`."""
    from ..sampling import ModelSampling

    torch.manual_seed(seed)
    world = World(
        vae=architectures.build_vae(),
        unet=architectures.build_unet(),
        prompt_encoder=architectures.build_prompt_encoder(),
        judge=architectures.build_judge(),
        upscaler=architectures.build_upscaler(),
        model_sampling=ModelSampling(),
        seed=seed,
    )
    for model in (world.vae, world.unet, world.prompt_encoder, world.judge, world.upscaler):
        model.eval().requires_grad_(False)
    if dtype != torch.float32:
        for model in (world.vae, world.unet, world.prompt_encoder):
            model.to(dtype)
    return world.to(device)
