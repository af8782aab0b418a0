"""Samplers by the names users know (SPEC §3): each a function `(denoiser, x, sigmas, *, noise, callback) -> x`."""

from __future__ import annotations

from typing import Callable

from ...validation import check_choice
from .common import Callback, Denoiser, NoiseFn
from .ddim import sample_ddim
from .ddpm import sample_ddpm
from .deis import sample_deis
from .dpm_2 import sample_dpm_2
from .dpm_2_ancestral import sample_dpm_2_ancestral
from .dpm_adaptive import sample_dpm_adaptive
from .dpm_fast import sample_dpm_fast
from .dpmpp_2m import sample_dpmpp_2m
from .dpmpp_2m_cfg_pp import sample_dpmpp_2m_cfg_pp
from .dpmpp_2m_sde import sample_dpmpp_2m_sde
from .dpmpp_2m_sde_gpu import sample_dpmpp_2m_sde_gpu
from .dpmpp_2m_sde_heun import sample_dpmpp_2m_sde_heun
from .dpmpp_2m_sde_heun_gpu import sample_dpmpp_2m_sde_heun_gpu
from .dpmpp_2s_ancestral import sample_dpmpp_2s_ancestral
from .dpmpp_2s_ancestral_cfg_pp import sample_dpmpp_2s_ancestral_cfg_pp
from .dpmpp_3m_sde import sample_dpmpp_3m_sde
from .dpmpp_3m_sde_gpu import sample_dpmpp_3m_sde_gpu
from .dpmpp_sde import sample_dpmpp_sde
from .dpmpp_sde_gpu import sample_dpmpp_sde_gpu
from .er_sde import sample_er_sde
from .euler import sample_euler
from .euler_ancestral import sample_euler_ancestral
from .euler_ancestral_cfg_pp import sample_euler_ancestral_cfg_pp
from .euler_cfg_pp import sample_euler_cfg_pp
from .gradient_estimation import sample_gradient_estimation
from .gradient_estimation_cfg_pp import sample_gradient_estimation_cfg_pp
from .heun import sample_heun
from .heunpp2 import sample_heunpp2
from .ipndm import sample_ipndm
from .ipndm_v import sample_ipndm_v
from .lcm import sample_lcm
from .lms import sample_lms
from .res_multistep import sample_res_multistep
from .res_multistep_ancestral import sample_res_multistep_ancestral
from .res_multistep_ancestral_cfg_pp import sample_res_multistep_ancestral_cfg_pp
from .res_multistep_cfg_pp import sample_res_multistep_cfg_pp
from .sa_solver import sample_sa_solver
from .sa_solver_pece import sample_sa_solver_pece
from .seeds_2 import sample_seeds_2
from .seeds_3 import sample_seeds_3
from .uni_pc import sample_uni_pc, sample_uni_pc_bh2

SAMPLER_FUNCTIONS: dict[str, Callable[..., object]] = {
    "euler": sample_euler,
    "euler_cfg_pp": sample_euler_cfg_pp,
    "euler_ancestral": sample_euler_ancestral,
    "euler_ancestral_cfg_pp": sample_euler_ancestral_cfg_pp,
    "heun": sample_heun,
    "heunpp2": sample_heunpp2,
    "dpm_2": sample_dpm_2,
    "dpm_2_ancestral": sample_dpm_2_ancestral,
    "lms": sample_lms,
    "dpm_fast": sample_dpm_fast,
    "dpm_adaptive": sample_dpm_adaptive,
    "dpmpp_2s_ancestral": sample_dpmpp_2s_ancestral,
    "dpmpp_2s_ancestral_cfg_pp": sample_dpmpp_2s_ancestral_cfg_pp,
    "dpmpp_sde": sample_dpmpp_sde,
    "dpmpp_sde_gpu": sample_dpmpp_sde_gpu,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_2m_cfg_pp": sample_dpmpp_2m_cfg_pp,
    "dpmpp_2m_sde": sample_dpmpp_2m_sde,
    "dpmpp_2m_sde_gpu": sample_dpmpp_2m_sde_gpu,
    "dpmpp_2m_sde_heun": sample_dpmpp_2m_sde_heun,
    "dpmpp_2m_sde_heun_gpu": sample_dpmpp_2m_sde_heun_gpu,
    "dpmpp_3m_sde": sample_dpmpp_3m_sde,
    "dpmpp_3m_sde_gpu": sample_dpmpp_3m_sde_gpu,
    "ddpm": sample_ddpm,
    "lcm": sample_lcm,
    "ipndm": sample_ipndm,
    "ipndm_v": sample_ipndm_v,
    "deis": sample_deis,
    "res_multistep": sample_res_multistep,
    "res_multistep_cfg_pp": sample_res_multistep_cfg_pp,
    "res_multistep_ancestral": sample_res_multistep_ancestral,
    "res_multistep_ancestral_cfg_pp": sample_res_multistep_ancestral_cfg_pp,
    "gradient_estimation": sample_gradient_estimation,
    "gradient_estimation_cfg_pp": sample_gradient_estimation_cfg_pp,
    "er_sde": sample_er_sde,
    "seeds_2": sample_seeds_2,
    "seeds_3": sample_seeds_3,
    "sa_solver": sample_sa_solver,
    "sa_solver_pece": sample_sa_solver_pece,
    "ddim": sample_ddim,
    "uni_pc": sample_uni_pc,
    "uni_pc_bh2": sample_uni_pc_bh2,
}
SAMPLERS: tuple[str, ...] = tuple(SAMPLER_FUNCTIONS)
STOCHASTIC_SAMPLERS = frozenset(
    {"euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde",
     "euler_ancestral_cfg_pp", "dpmpp_2s_ancestral_cfg_pp", "ddpm", "lcm", "res_multistep_ancestral",
     "res_multistep_ancestral_cfg_pp"}
    | {"dpmpp_sde_gpu", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde_gpu"}
    | {"er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece"}
)
# Samplers whose schedule is computed for steps+1 and loses its penultimate sigma (upstream behaviour).
DISCARD_PENULTIMATE_SIGMA = frozenset({"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"})


def check_sampler(sampler: str) -> str:
    """One of SAMPLERS -> the name."""
    return check_choice(sampler, "sampler", SAMPLERS)


__all__ = ["SAMPLERS", "SAMPLER_FUNCTIONS", "STOCHASTIC_SAMPLERS", "DISCARD_PENULTIMATE_SIGMA", "check_sampler",
           "Callback", "Denoiser", "NoiseFn"]
