"""DDIM with eta = 0 (Song et al. 2021): in sigma space (x / alpha) its update is exactly Euler's step."""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn
from .euler import sample_euler


def sample_ddim(
    denoiser: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseFn | None = None, callback: Callback | None = None
) -> Tensor:
    """`x_next = D + s_next * (x - D) / s`, which is the Euler step `x + (x - D)/s * (s_next - s)`."""
    return sample_euler(denoiser, x, sigmas, callback=callback)
