"""Noise masks (SPEC §4.4): the denoiser sees the held latent outside the mask and returns it there."""

from __future__ import annotations

import torch
from torch import Tensor

from ..masks import as_mask_batch
from .flow_sampling import is_flow
from .samplers import Denoiser


def latent_noise_mask(mask: Tensor, latent: Tensor) -> Tensor:
    """The mask resized bilinearly to the latent's H x W, as `[B, 1, H, W]` with B = the latent's batch."""
    m = as_mask_batch(mask, "noise_mask", batch=latent.shape[0])
    if m.shape[-2:] != latent.shape[-2:]:
        m = torch.nn.functional.interpolate(m, size=latent.shape[-2:], mode="bilinear")
    return m.expand(latent.shape[0], 1, *latent.shape[-2:]).to(device=latent.device, dtype=latent.dtype)


class MaskedDenoiser:
    """`x_in = x*m + (latent + noise*sigma)*(1-m)`, `x0 = D(x_in, sigma)*m + latent*(1-m)`; under a flow model
    sampling the held region is its noising `(sigma*noise + (1-sigma)*latent)*(1-m)` instead.

    `noise` is what the held region is noised with: the run's added noise, or for `ddim` upstream's separate
    inpainting draw (see `KSampler.run_slice`)."""

    def __init__(self, inner: Denoiser, mask: Tensor, latent: Tensor, noise: Tensor,
                 model_sampling: object = None) -> None:
        self.inner = inner
        self.mask = mask
        self.noise = noise
        self.latent = latent
        self.keep = 1 - mask
        self.held_x0 = latent * self.keep
        self.flow = model_sampling if is_flow(model_sampling) else None

    def masked_input(self, x: Tensor, sigma: Tensor) -> Tensor:
        if self.flow is not None:
            return x * self.mask + self.flow.noise_scaling(sigma, self.noise, self.latent) * self.keep
        s = sigma.reshape(-1, 1, 1, 1).to(x.dtype)
        return x * self.mask + self.held_x0 + self.noise * self.keep * s

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.inner(self.masked_input(x, sigma), sigma) * self.mask + self.held_x0


class MaskedUncondDenoiser(MaskedDenoiser):
    """A `MaskedDenoiser` over a denoiser with `with_uncond` (SPEC §9): the guided x0 is masked as above; the
    unconditional x0 is the inner denoiser's at the same masked input, unmasked, which is what upstream's cfg_pp
    samplers receive (their post-CFG hook runs inside the model call, before the noise mask's blend)."""

    def with_uncond(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        x0, x0_uncond = self.inner.with_uncond(self.masked_input(x, sigma), sigma)  # type: ignore[attr-defined]
        return x0 * self.mask + self.held_x0, x0_uncond


def masked_denoiser(inner: Denoiser, mask: Tensor, latent: Tensor, noise: Tensor,
                    model_sampling: object = None) -> MaskedDenoiser:
    """The noise-mask wrapper, offering `with_uncond` exactly when the inner denoiser does; `model_sampling`
    decides how the held region is noised (None: discrete VP)."""
    cls = MaskedUncondDenoiser if hasattr(inner, "with_uncond") else MaskedDenoiser
    return cls(inner, mask, latent, noise, model_sampling)
