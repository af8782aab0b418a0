"""Samplers by the names users know (SPEC §3): each a function `(denoiser, x, sigmas, *, noise, callback) -> x`."""

from __future__ import annotations

from typing import Callable

from .common import Callback, Denoiser, NoiseFn
from .ddim import sample_ddim
from .dpm_2 import sample_dpm_2
from .dpm_2_ancestral import sample_dpm_2_ancestral
from .dpmpp_2m import sample_dpmpp_2m
from .dpmpp_2m_sde import sample_dpmpp_2m_sde
from .dpmpp_2s_ancestral import sample_dpmpp_2s_ancestral
from .dpmpp_3m_sde import sample_dpmpp_3m_sde
from .dpmpp_sde import sample_dpmpp_sde
from .euler import sample_euler
from .euler_ancestral import sample_euler_ancestral
from .heun import sample_heun
from .lms import sample_lms
from .uni_pc import sample_uni_pc, sample_uni_pc_bh2

SAMPLER_FUNCTIONS: dict[str, Callable[..., object]] = {
    "euler": sample_euler,
    "euler_ancestral": sample_euler_ancestral,
    "heun": sample_heun,
    "dpm_2": sample_dpm_2,
    "dpm_2_ancestral": sample_dpm_2_ancestral,
    "lms": sample_lms,
    "dpmpp_2s_ancestral": sample_dpmpp_2s_ancestral,
    "dpmpp_sde": sample_dpmpp_sde,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_2m_sde": sample_dpmpp_2m_sde,
    "dpmpp_3m_sde": sample_dpmpp_3m_sde,
    "ddim": sample_ddim,
    "uni_pc": sample_uni_pc,
    "uni_pc_bh2": sample_uni_pc_bh2,
}
SAMPLERS: tuple[str, ...] = tuple(SAMPLER_FUNCTIONS)
STOCHASTIC_SAMPLERS = frozenset(
    {"euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"}
)
# Samplers whose schedule is computed for steps+1 and loses its penultimate sigma (upstream behaviour).
DISCARD_PENULTIMATE_SIGMA = frozenset({"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"})


def check_sampler(sampler: str) -> None:
    if sampler not in SAMPLER_FUNCTIONS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")


__all__ = ["SAMPLERS", "SAMPLER_FUNCTIONS", "STOCHASTIC_SAMPLERS", "DISCARD_PENULTIMATE_SIGMA", "check_sampler",
           "Callback", "Denoiser", "NoiseFn"]
