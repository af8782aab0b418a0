"""World: the bundle of models behind every config, loaded offline from package data or a diffusers folder."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from . import architectures
from .judge import Judge
from .prompt_encoder import PromptEncoder
from .upscaler import Upscaler2x

WEIGHTS_DIR = Path(__file__).parent / "weights"
REQUIRED = ("vae", "unet", "prompt_encoder")
BORROWED = ("judge", "upscaler")
HASHED_BYTES_LIMIT = 64 * 2**20  # bigger files are fingerprinted by size and modification time


@dataclass
class World:
    """VAE + UNet + prompt encoder (+ judge and upscaler) and the model's sampling constants."""

    vae: AutoencoderKL
    unet: UNet2DConditionModel
    prompt_encoder: PromptEncoder
    judge: Judge
    upscaler: Upscaler2x
    model_sampling: object

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent along each side: 2 ** (number of VAE blocks - 1)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    def to(self, device: str | torch.device) -> "World":
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
        """UNetDenoiser for `prompt` with `negative_prompt` as the CFG unconditional branch."""
        from ..sampling import UNetDenoiser

        return UNetDenoiser(
            self.unet,
            model_sampling=self.model_sampling,
            cond=self.encode_prompt(prompt),
            uncond=self.encode_prompt(negative_prompt),
            cfg=cfg,
        )

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in [0, 1] -> latents = mean(q(z|x)) * scaling_factor, [B, 4, H/f, W/f]."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W] in [0, 1], got {tuple(images.shape)}")
        x = images.to(self.vae.device, self.vae.dtype) * 2 - 1
        return self.vae.encode(x).latent_dist.mean * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [B, 4, h, w] -> images [B, 3, h*f, w*f] = clamp((D(z / scaling_factor) + 1) / 2, 0, 1)."""
        z = latents.to(self.vae.device, self.vae.dtype) / self.vae.config.scaling_factor
        return ((self.vae.decode(z).sample + 1) / 2).clamp(0, 1)

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
    judge/, upscaler/ (the embedded ones when the folder has none). Raises naming a missing required subfolder."""
    folder = WEIGHTS_DIR if path is None else Path(path)
    for sub in REQUIRED:
        if not (folder / sub).is_dir():
            raise ValueError(f"path {str(folder)!r} must contain the subfolders vae/, unet/, prompt_encoder/; missing {sub}/")
    folders = {sub: folder / sub for sub in REQUIRED}
    if (folder / "scheduler").is_dir():
        folders["scheduler"] = folder / "scheduler"
    folders.update({sub: folder / sub if (folder / sub).is_dir() else WEIGHTS_DIR / sub for sub in BORROWED})
    return folders


def weights_fingerprint(path: str | Path | None = None) -> str:
    """sha256 (16 hex digits) over every file `load_world(path)` reads: its name within its subfolder and its bytes
    (size and modification time for files over 64 MiB, so real checkpoints are not read in full)."""
    digest = hashlib.sha256()
    for sub, folder in sorted(world_folders(path).items()):
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{sub}/{file.relative_to(folder).as_posix()}\0".encode())
            stat = file.stat()
            digest.update(file.read_bytes() if stat.st_size <= HASHED_BYTES_LIMIT else f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def load_world(path: str | Path | None = None, device: str | torch.device = "cpu") -> World:
    """Load a World offline from a diffusers-style folder (vae/, unet/, prompt_encoder/, judge/, upscaler/).

    `path=None` loads the embedded tiny world shipped in the package. A folder without judge/ or
    upscaler/ borrows the embedded ones; a prompt_encoder/ subfolder is required (a CLIP text
    encoder is not bundled).
    """
    folders = world_folders(path)
    kwargs = dict(torch_dtype=torch.float32, low_cpu_mem_usage=False)
    world = World(
        vae=AutoencoderKL.from_pretrained(folders["vae"], **kwargs),
        unet=UNet2DConditionModel.from_pretrained(folders["unet"], **kwargs),
        prompt_encoder=PromptEncoder.from_pretrained(folders["prompt_encoder"], **kwargs),
        judge=Judge.from_pretrained(folders["judge"], **kwargs),
        upscaler=Upscaler2x.from_pretrained(folders["upscaler"], **kwargs),
        model_sampling=_model_sampling_for(folders.get("scheduler")),
    )
    for model in (world.vae, world.unet, world.prompt_encoder, world.judge, world.upscaler):
        model.eval().requires_grad_(False)
    return world.to(device)


def random_world(seed: int = 0, device: str | torch.device = "cpu") -> World:
    """A World of the embedded architectures with random weights (for fast tests)."""
    from ..sampling import ModelSampling

    torch.manual_seed(seed)
    world = World(
        vae=architectures.build_vae(),
        unet=architectures.build_unet(),
        prompt_encoder=architectures.build_prompt_encoder(),
        judge=architectures.build_judge(),
        upscaler=architectures.build_upscaler(),
        model_sampling=ModelSampling(),
    )
    for model in (world.vae, world.unet, world.prompt_encoder, world.judge, world.upscaler):
        model.eval().requires_grad_(False)
    return world.to(device)
