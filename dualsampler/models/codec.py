"""The one VAE codec between images `[B, 3, H, W]` in `[0, 1]` and the latents a UNet samples.

`latents = (mode(E(2 * images - 1)) - shift_factor) * scaling_factor` and
`images = clamp((D(latents / scaling_factor + shift_factor) + 1) / 2, 0, 1)`, with `scaling_factor` and
`shift_factor` (0 when null) from the VAE's config. The VAE runs in its own dtype; latents and images come back
float32 on the input's device.
"""

from __future__ import annotations

import torch
from torch import Tensor


def vae_scaling(vae) -> tuple[float, float]:
    """(scaling_factor, shift_factor) of a diffusers AutoencoderKL's config (shift 0 when absent or null)."""
    shift = getattr(vae.config, "shift_factor", None)
    return float(vae.config.scaling_factor), float(shift) if shift is not None else 0.0


def _placement(vae) -> tuple[torch.device, torch.dtype]:
    p = next(vae.parameters())
    return p.device, p.dtype


@torch.no_grad()
def encode_images(vae, images: Tensor) -> Tensor:
    """Images [B, 3, H, W] in [0, 1] -> latents `(mode(E(2x - 1)) - shift) * scaling`, float32."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be [B, 3, H, W] in [0, 1], got {shape}")
    if not torch.isfinite(images).all():
        raise ValueError("images contains NaN or infinite values")
    device, dtype = _placement(vae)
    scaling, shift = vae_scaling(vae)
    z = vae.encode(images.to(device=device, dtype=dtype) * 2 - 1).latent_dist.mode()
    return ((z.float() - shift) * scaling).to(images.device)


@torch.no_grad()
def decode_latents(vae, latents: Tensor) -> Tensor:
    """Latents [B, C, h, w] (C the VAE's latent channels) -> images `clamp((D(z / scaling + shift) + 1) / 2, 0, 1)`,
    float32."""
    if not isinstance(latents, Tensor) or latents.dim() != 4:
        shape = tuple(latents.shape) if isinstance(latents, Tensor) else type(latents).__name__
        raise ValueError(f"latents must be [B, C, h, w], got {shape}")
    channels = getattr(vae.config, "latent_channels", None)
    if isinstance(channels, int) and latents.shape[1] != channels:
        raise ValueError(f"latent has {latents.shape[1]} channels but the VAE takes {channels}")
    device, dtype = _placement(vae)
    scaling, shift = vae_scaling(vae)
    z = (latents.to(device).float() / scaling + shift).to(dtype)
    return ((vae.decode(z).sample.float() + 1) / 2).clamp(0, 1).to(latents.device)
