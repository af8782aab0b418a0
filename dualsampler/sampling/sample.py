"""`sample`: run a named sampler over a sigma list with noise seeded by the call's seed, counting model calls."""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any, Callable

import torch
from torch import Tensor

from .model_sampling import check_model_sampling
from .noise import NoiseStream, Seed, check_seed
from .samplers import SAMPLER_FUNCTIONS, Callback, Denoiser, check_sampler


def check_sigmas(sigmas: Tensor) -> None:
    """A 1-D tensor of finite sigmas >= 0, strictly decreasing."""
    if not isinstance(sigmas, Tensor) or sigmas.ndim != 1 or len(sigmas) < 1:
        shape = tuple(sigmas.shape) if isinstance(sigmas, Tensor) else type(sigmas).__name__
        raise ValueError(f"sigmas must be a 1-D tensor with at least one entry, got {shape}")
    if not torch.isfinite(sigmas).all() or (sigmas < 0).any():
        raise ValueError("sigmas must be finite and >= 0")
    if len(sigmas) > 1 and (sigmas[1:] >= sigmas[:-1]).any():
        raise ValueError("sigmas must be strictly decreasing")


def check_latent(x: Tensor, name: str = "latent") -> None:
    """A finite floating-point `[B, C, H, W]` tensor with every dimension at least 1."""
    if not isinstance(x, Tensor) or x.ndim != 4 or x.numel() == 0:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 4-D tensor [B, C, H, W] with every size >= 1, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def check_latent_channels(latent: Tensor, denoiser: Any, name: str) -> None:
    """The latent's channel count against the model behind `denoiser`, when it says (its `latent_channels`: a
    `ModelDenoiser`'s backbone's); the error names `name`'s model."""
    expected = getattr(denoiser, "latent_channels", None)
    if isinstance(expected, int) and latent.shape[1] != expected:
        raise ValueError(f"latent has {latent.shape[1]} channels but {name}'s model expects {expected}")


class CountingDenoiser:
    """Counts calls of a denoiser (`evals`); other attributes (`model_sampling`, ...) are the inner denoiser's."""

    def __init__(self, inner: Denoiser) -> None:
        self.inner = inner
        self.evals = 0

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        self.evals += 1
        return self.inner(x, sigma)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


class CountingUncondDenoiser(CountingDenoiser):
    """A `CountingDenoiser` for a denoiser that also offers `with_uncond(x, sigma) -> (x0, x0_uncond)` (SPEC §9)."""

    def with_uncond(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        self.evals += 1
        return self.inner.with_uncond(x, sigma)


def counting(denoiser: Denoiser) -> CountingDenoiser:
    """The call-counting wrapper that keeps `with_uncond` exactly when the denoiser has it."""
    return CountingUncondDenoiser(denoiser) if hasattr(denoiser, "with_uncond") else CountingDenoiser(denoiser)


def with_counts(callback: Callback, counter: CountingDenoiser, sigmas: list[float]) -> Callback:
    """Adds `evals` (model calls since the previous report, so they sum to the run's total when the sampler
    reports after each step's calls) and `sigma_next` (`sigmas[i+1]`, unless the sampler gave its own)."""
    reported = 0

    def report(info: dict[str, Any]) -> None:
        nonlocal reported
        i = info.get("i", 0)
        info = {"sigma_next": sigmas[min(i + 1, len(sigmas) - 1)], **info, "evals": counter.evals - reported}
        reported = counter.evals
        callback(info)

    return report


def sample(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    sampler: str = "euler",
    seed: Seed = 0,
    callback: Callback | None = None,
    model_sampling: Any = None,
) -> Tensor:
    """Integrate from `sigmas[0]` to `sigmas[-1]`; `x` is already noised to `sigmas[0]`.

    Stochastic samplers draw their noise from `NoiseStream(seed)` (Gaussian draws, or the seeded Brownian tree
    of the SDE samplers), so the same seed gives the same tensor. Each callback report also carries `evals`, the
    model calls since the previous report, and `sigma_next`. `model_sampling` (default: the denoiser's own, else
    discrete VP) picks the rectified-flow variants of the samplers that have one (`FlowModelSampling`, ...).
    """
    if not callable(denoiser):
        raise ValueError(f"denoiser must be a callable denoiser(x, sigma) -> x0, got {type(denoiser).__name__}")
    check_sampler(sampler)
    check_latent(x, "x")
    check_latent_channels(x, denoiser, "the denoiser")
    check_sigmas(sigmas)
    seed = check_seed(seed, x.shape[0])
    check_model_sampling(model_sampling)
    model_sampling = model_sampling or getattr(denoiser, "model_sampling", None)
    return integrate(denoiser, x, sigmas, sampler, seed, callback, model_sampling=model_sampling)


@cache
def takes_model_sampling(function: Callable[..., object]) -> bool:
    """Whether a sampler function branches on the model sampling (has a `model_sampling` keyword)."""
    return "model_sampling" in inspect.signature(function).parameters


def integrate(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    sampler: str,
    seed: Seed,
    callback: Callback | None = None,
    noise: NoiseStream | None = None,
    model_sampling: Any = None,
) -> Tensor:
    """`sample` without its checks, for inner loops whose public entry checked the inputs once; `noise` replaces
    `NoiseStream(seed)` (e.g. a Brownian tree over a longer schedule than `sigmas`); `model_sampling` goes to the
    samplers that branch on it (None: discrete VP)."""
    if len(sigmas) < 2:
        return x
    counter = counting(denoiser)
    report = None if callback is None else with_counts(callback, counter, [float(s) for s in sigmas])
    function = SAMPLER_FUNCTIONS[sampler]
    options = {"model_sampling": model_sampling} if takes_model_sampling(function) else {}
    return function(counter, x, sigmas, noise=noise or NoiseStream(seed), callback=report, **options)
