"""DPM-Solver++(3M) SDE (Lu et al. 2022, DPM-Solver++) with its Brownian tree on the latent's device, as
upstream's `_gpu` variant.

Only where the tree draws its noise differs from `dpmpp_3m_sde`, so on a CPU latent both agree and on an
accelerator this one follows that device's generator (and upstream's `dpmpp_3m_sde_gpu` image).
"""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn
from .dpmpp_3m_sde import sample_dpmpp_3m_sde


def sample_dpmpp_3m_sde_gpu(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    model_sampling: object = None,
) -> Tensor:
    """`dpmpp_3m_sde` with `on_latent_device=True`."""
    return sample_dpmpp_3m_sde(denoiser, x, sigmas, noise=noise, callback=callback, on_latent_device=True,
                               model_sampling=model_sampling)
