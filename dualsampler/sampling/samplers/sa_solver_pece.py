"""SA-Solver in PECE mode (predict, evaluate, correct, evaluate): the Stochastic Adams solver of Xue et al. 2023
(SA-Solver), as upstream's `sa_solver_pece`; two model calls per step after the first."""

from __future__ import annotations

from torch import Tensor

from .common import Callback, Denoiser, NoiseFn
from .sa_solver import sample_sa_solver


def sample_sa_solver_pece(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    model_sampling: object = None,
) -> Tensor:
    """`sa_solver` with `use_pece=True`: the corrected state is evaluated again and its D replaces the predicted
    one in the history, so the next predictor (and the final step to sigma 0) use the corrected D."""
    return sample_sa_solver(denoiser, x, sigmas, noise=noise, callback=callback, use_pece=True,
                            model_sampling=model_sampling)
