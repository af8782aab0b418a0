"""DPM-Solver++(2M) SDE, Heun correction (Lu et al. 2022, DPM-Solver++), with its Brownian tree
on the latent's device, as upstream's `_gpu` variant.

Only where the tree draws its noise differs from the CPU variant, so on a CPU latent both agree and on an
accelerator this one follows that device's generator (and upstream's `dpmpp_2m_sde_heun_gpu` image).
"""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn
from .dpmpp_2m_sde import sample_dpmpp_2m_sde


def sample_dpmpp_2m_sde_heun_gpu(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    model_sampling: object = None,
) -> Tensor:
    """`dpmpp_2m_sde` with `solver_type="heun"` and `on_latent_device=True`:
    the correction weight is `c = (1 - e^{-g})/(-g) + 1`."""
    return sample_dpmpp_2m_sde(
        denoiser, x, sigmas, noise=noise, callback=callback, solver_type="heun", on_latent_device=True,
        model_sampling=model_sampling,
    )
