"""`PipelineModel`: the part of the `Model` interface every diffusers family shares over its loaded pipeline (the
VAE codec, device and dtype of its denoising network, the files' fingerprint, LoRA loading)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .codec import decode_latents, encode_images
from .fingerprint import files_fingerprint
from .lora import Adapters, LoraSpec, load_loras


class PipelineModel:
    """Mixed into each family's model class, which holds `pipeline` (a diffusers pipeline) and `files` (label ->
    path it was loaded from) and names its denoising network in `NETWORK` ("unet" or "transformer")."""

    NETWORK: ClassVar[str]
    judge: ClassVar[None] = None  # the judge and the 2x upscaler are the embedded world's
    upscaler: ClassVar[None] = None
    pipeline: Any
    files: dict[str, Path]

    @property
    def network(self) -> nn.Module:
        return getattr(self.pipeline, self.NETWORK)

    @property
    def vae(self) -> nn.Module:
        return self.pipeline.vae

    @property
    def device(self) -> torch.device:
        return self.network.device

    @property
    def dtype(self) -> torch.dtype:
        """The denoising network's dtype (the VAE may run in float32: `pipelines.prepare_pipeline`)."""
        return self.network.dtype

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent along each side: 2 ** (number of VAE blocks - 1)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def fingerprint(self) -> str:
        """sha256 of the files this model was loaded from (see `files_fingerprint`)."""
        return files_fingerprint(self.files.items())

    def to(self, device: str | torch.device) -> PipelineModel:
        self.pipeline.to(device)
        return self

    def load_loras(self, specs: Sequence[LoraSpec]) -> Adapters:
        """Each LoRA file of `specs` loaded once into the pipeline (`models.lora.load_loras`); the adapter set
        `((adapter_name, scale), ...)` a backbone activates."""
        return load_loras(self.pipeline, specs)

    def encode(self, images: Tensor) -> Tensor:
        """Images [B, 3, H, W] in [0, 1] -> latents (the one codec, `models.codec.encode_images`, with the VAE's
        scaling and shift factors)."""
        return encode_images(self.vae, images)

    def decode(self, latents: Tensor) -> Tensor:
        """Latents -> images in [0, 1] (the one codec, `models.codec.decode_latents`)."""
        return decode_latents(self.vae, latents)
