"""Noise masks (SPEC §4.4): the denoiser sees the held latent outside the mask and returns it there."""

from __future__ import annotations

import torch
from torch import Tensor

from ..masks import as_mask_batch
from .samplers import Denoiser


def latent_noise_mask(mask: Tensor, latent: Tensor) -> Tensor:
    """The mask resized bilinearly to the latent's H x W, as `[B, 1, H, W]` with B = the latent's batch."""
    m = as_mask_batch(mask, "noise_mask", batch=latent.shape[0])
    if m.shape[-2:] != latent.shape[-2:]:
        m = torch.nn.functional.interpolate(m, size=latent.shape[-2:], mode="bilinear")
    return m.expand(latent.shape[0], 1, *latent.shape[-2:]).to(device=latent.device, dtype=latent.dtype)


class MaskedDenoiser:
    """`x_in = x*m + (latent + noise*sigma)*(1-m)`, `x0 = D(x_in, sigma)*m + latent*(1-m)`."""

    def __init__(self, inner: Denoiser, mask: Tensor, latent: Tensor, noise: Tensor) -> None:
        self.inner = inner
        self.mask = mask
        self.noise = noise
        self.keep = 1 - mask
        self.held_x0 = latent * self.keep

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        s = sigma.reshape(-1, 1, 1, 1).to(x.dtype)
        x_in = x * self.mask + self.held_x0 + self.noise * self.keep * s
        return self.inner(x_in, sigma) * self.mask + self.held_x0
