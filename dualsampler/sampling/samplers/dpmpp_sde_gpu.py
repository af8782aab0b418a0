"""DPM-Solver++ SDE (Lu et al. 2022) with its Brownian tree on the latent's device, as upstream's `_gpu` variant.

Same algorithm as `dpmpp_sde`; only where the tree draws its noise differs, so on a CPU latent both agree and on
an accelerator this one follows that device's generator (and upstream's `dpmpp_sde_gpu` image).
"""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn
from .dpmpp_sde import sample_dpmpp_sde


def sample_dpmpp_sde_gpu(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    model_sampling: object = None,
) -> Tensor:
    """`dpmpp_sde` with `on_latent_device=True`."""
    return sample_dpmpp_sde(denoiser, x, sigmas, noise=noise, callback=callback, on_latent_device=True,
                            model_sampling=model_sampling)
