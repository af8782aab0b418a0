"""`Model`: the one interface every model family implements (the embedded world, Stable Diffusion 1.x/2.x/XL,
SD3, Flux), what samplers, region algorithms, the upscaler and the runner rely on (SPEC §9)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class Model(Protocol):
    """A loaded model. `denoiser(prompt, negative_prompt, cfg, **family options)` -> a guided denoiser
    `D(x, sigma) -> x0` over the model's backbone; `encode` images [B, 3, H, W] in [0, 1] -> latents
    [B, latent_channels, H / f, W / f] and `decode` back, f = `vae_scale_factor`; a canvas side must be a multiple
    of `canvas_multiple` pixels; `model_sampling` gives the noising and the sigma <-> t map; `fingerprint()` the
    sha256 of the files it was loaded from; `judge` and `upscaler` are the world's (None elsewhere)."""

    kind: str
    model_sampling: Any
    judge: Any
    upscaler: Any

    @property
    def latent_channels(self) -> int: ...

    @property
    def vae_scale_factor(self) -> int: ...

    @property
    def canvas_multiple(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def denoiser(self, prompt: str | list[str], negative_prompt: str | list[str] = "", cfg: float = ...,
                 **options: Any) -> Any: ...

    def encode(self, images: Tensor) -> Tensor: ...

    def decode(self, latents: Tensor) -> Tensor: ...

    def fingerprint(self) -> str: ...

    def to(self, device: str | torch.device) -> Model: ...
