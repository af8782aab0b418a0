"""DPM-Solver++(2M) SDE, Heun correction (Lu et al. 2022, DPM-Solver++).

The second-order correction uses the exponential integrator's phi_2 weight instead of the midpoint's 1/2;
noise as upstream draws it, from the seeded Brownian tree.
"""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn
from .dpmpp_2m_sde import sample_dpmpp_2m_sde


def sample_dpmpp_2m_sde_heun(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    model_sampling: object = None,
) -> Tensor:
    """`dpmpp_2m_sde` with `solver_type="heun"`: the correction weight is `c = (1 - e^{-g})/(-g) + 1`."""
    return sample_dpmpp_2m_sde(
        denoiser, x, sigmas, noise=noise, callback=callback, solver_type="heun", on_latent_device=False,
        model_sampling=model_sampling,
    )
