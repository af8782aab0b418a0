"""The unconditional prediction CFG++ samplers need (Chung et al. 2024; SPEC §9)."""

from __future__ import annotations

from torch import Tensor

from .common import Denoiser

# The samplers that call `with_uncond` (their names end in `_cfg_pp`, as upstream's do).
CFG_PP_SAMPLERS = frozenset({
    "euler_cfg_pp", "euler_ancestral_cfg_pp", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_2m_cfg_pp", "res_multistep_cfg_pp",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation_cfg_pp",
})


def require_uncond(denoiser: Denoiser, name: str) -> None:
    """Reject, before any model call, a denoiser that cannot give its unconditional prediction."""
    if not callable(getattr(denoiser, "with_uncond", None)):
        raise ValueError(
            f"sampler {name!r} is a CFG++ sampler: its denoiser must offer with_uncond(x, sigma) -> (x0, x0_uncond) "
            f"(SPEC §9); {type(denoiser).__name__} does not"
        )


def denoise_with_uncond(denoiser: Denoiser, x: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """`(D_cfg(x, s), D_uncond(x, s))` from one call, sigma broadcast to a `[B]` tensor."""
    return denoiser.with_uncond(x, x.new_full((x.shape[0],), sigma))  # type: ignore[attr-defined]
