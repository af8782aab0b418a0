"""Rectified-flow model sampling (SPEC §1.1): `x = (1 - sigma) x0 + sigma noise`, sigma in (0, 1].

`FlowModelSampling` is SD3's discrete flow with a time shift, `FluxModelSampling` Flux's exponential shift; both
noise a latent as `sigma noise + (1 - sigma) latent` and undo it on a sample left at sigma > 0 by dividing by
`1 - sigma`, and the samplers that upstream switches to rectified-flow variants read `is_flow`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from ..validation import check_int, check_real

NUM_FLOW_TIMESTEPS = 1000
NUM_FLUX_TIMESTEPS = 10000
MAX_SHIFT = 100.0
# The latent tokens (8x8 pixels per latent cell, 2x2 cells per token) at which Flux's shift interpolation is
# anchored: base_shift at 256 tokens, max_shift at 4096.
FLUX_TOKENS = (256, 4096)
FLUX_PIXELS_PER_TOKEN = 8 * 8 * 2 * 2
MAX_RESOLUTION = 16384


def time_snr_shift(shift: float, t: Tensor) -> Tensor:
    """SD3's shifted time `shift t / (1 + (shift - 1) t)` (t itself at shift 1)."""
    if shift == 1.0:
        return t
    return shift * t / (1 + (shift - 1) * t)


def flux_time_shift(mu: float, t: Tensor) -> Tensor:
    """Flux's shifted time `e^mu / (e^mu + 1/t - 1)`."""
    return math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** 1.0)


def flux_shift(tokens: float, base_shift: float, max_shift: float,
               token_range: tuple[float, float] = FLUX_TOKENS) -> float:
    """Flux's shift (mu) for `tokens` image tokens: linear through `base_shift` at `token_range[0]` tokens and
    `max_shift` at `token_range[1]` (upstream's ModelSamplingFlux node, diffusers' `calculate_shift`)."""
    low, high = token_range
    slope = (max_shift - base_shift) / (high - low)
    return tokens * slope + (base_shift - slope * low)


def reshape_sigma(sigma: float | Tensor, like: Tensor) -> float | Tensor:
    """A float as is; a tensor of one sigma per batch element as `[B, 1, ...]` to broadcast over `like`."""
    if isinstance(sigma, Tensor) and sigma.numel() > 1:
        return sigma.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)
    return float(sigma) if isinstance(sigma, Tensor) else sigma


class FlowSampling(ABC):
    """What every flow model sampling shares: the float32 training `sigmas` (ascending), the noising and its
    inverse. Subclasses define the shifted time and the timestep <-> sigma maps."""

    shift: float
    sigmas: Tensor

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FlowSampling):
            return NotImplemented
        return self is other or (type(self) is type(other) and torch.equal(self.sigmas, other.sigmas))

    def __hash__(self) -> int:
        return hash((type(self).__name__, len(self.sigmas), self.sigma_min, self.sigma_max))

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    @abstractmethod
    def t_to_sigma(self, t: Tensor) -> Tensor:
        """Sigma at a (fractional) timestep."""

    @abstractmethod
    def sigma_to_t(self, sigma: Tensor) -> Tensor:
        """The timestep of a sigma (continuous: no rounding to a training timestep)."""

    @abstractmethod
    def shifted(self, t: Tensor) -> Tensor:
        """The model's shifted time at `t` in [0, 1] (its sigma there)."""

    def percent_to_sigma(self, percent: float) -> float:
        """The sigma `percent` of the way through sampling: 1 at 0, 0 at 1, else the shifted time `1 - percent`."""
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return float(self.shifted(torch.tensor(1.0 - percent, dtype=torch.float64)))

    @staticmethod
    def c_in(sigma: Tensor) -> Tensor:
        """The network sees the noisy latent unscaled: 1."""
        return torch.ones_like(torch.as_tensor(sigma, dtype=torch.float32))

    @staticmethod
    def denoised(x: Tensor, sigma: Tensor, model_output: Tensor) -> Tensor:
        """x0 from the predicted velocity `v = noise - x0`: `x - sigma v`."""
        return x - sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype) * model_output

    @staticmethod
    def noise_scaling(sigma: float | Tensor, noise: Tensor, latent: Tensor) -> Tensor:
        """`sigma noise + (1 - sigma) latent`; `sigma` a float or one per batch element."""
        s = reshape_sigma(sigma, noise)
        return s * noise + (1.0 - s) * latent

    @staticmethod
    def inverse_noise_scaling(sigma: float, latent: Tensor) -> Tensor:
        """A sample stopped at `sigma` as the latent that `noise_scaling(sigma, 0, .)` turns back into it:
        `latent / (1 - sigma)`."""
        return latent / (1.0 - sigma)


class FlowModelSampling(FlowSampling):
    """SD3's discrete flow (upstream's ModelSamplingDiscreteFlow): `sigma(t) = time_snr_shift(shift, t/multiplier)`
    at the training timesteps `t = k multiplier / 1000`, k = 1..1000, and `t(sigma) = sigma multiplier`."""

    def __init__(self, shift: float = 3.0, multiplier: float = 1000.0) -> None:
        self.shift = check_real(shift, "shift", 0.0, MAX_SHIFT, low_open=True)
        self.multiplier = check_real(multiplier, "multiplier", 0.0, 1e6, low_open=True)
        steps = torch.arange(1, NUM_FLOW_TIMESTEPS + 1, 1) / NUM_FLOW_TIMESTEPS
        self.sigmas = self.t_to_sigma(steps * self.multiplier).float()

    def __repr__(self) -> str:
        return f"FlowModelSampling(shift={self.shift:g}, multiplier={self.multiplier:g})"

    def shifted(self, t: Tensor) -> Tensor:
        return time_snr_shift(self.shift, t)

    def t_to_sigma(self, t: Tensor) -> Tensor:
        return time_snr_shift(self.shift, torch.as_tensor(t) / self.multiplier)

    def sigma_to_t(self, sigma: Tensor) -> Tensor:
        return torch.as_tensor(sigma) * self.multiplier


class FluxModelSampling(FlowSampling):
    """Flux's flow (upstream's ModelSamplingFlux): `sigma(t) = e^shift / (e^shift + 1/t - 1)` at the training
    timesteps `t = k / 10000`, k = 1..10000, and `t(sigma) = sigma`; `shift` is Flux's mu."""

    def __init__(self, shift: float = 1.15) -> None:
        self.shift = check_real(shift, "shift", 0.0, MAX_SHIFT)
        self.sigmas = self.t_to_sigma(torch.arange(1, NUM_FLUX_TIMESTEPS + 1, 1) / NUM_FLUX_TIMESTEPS).float()

    def __repr__(self) -> str:
        return f"FluxModelSampling(shift={self.shift:g})"

    @classmethod
    def for_size(cls, height: int, width: int, base_shift: float = 0.5, max_shift: float = 1.15) -> FluxModelSampling:
        """The shift upstream's ModelSamplingFlux node gives an image of `height` x `width` pixels: linear in its
        token count `h w / 256` through `base_shift` at 256 tokens and `max_shift` at 4096."""
        height = check_int(height, "height", 16, MAX_RESOLUTION)
        width = check_int(width, "width", 16, MAX_RESOLUTION)
        base_shift = check_real(base_shift, "base_shift", 0.0, MAX_SHIFT)
        max_shift = check_real(max_shift, "max_shift", 0.0, MAX_SHIFT)
        return cls(flux_shift(width * height / FLUX_PIXELS_PER_TOKEN, base_shift, max_shift))

    def shifted(self, t: Tensor) -> Tensor:
        return flux_time_shift(self.shift, t)

    def t_to_sigma(self, t: Tensor) -> Tensor:
        return flux_time_shift(self.shift, torch.as_tensor(t))

    def sigma_to_t(self, sigma: Tensor) -> Tensor:
        return torch.as_tensor(sigma).clone()


def is_flow(model_sampling: object) -> bool:
    """Whether samplers take their rectified-flow branch (upstream's `isinstance(model_sampling, CONST)`)."""
    return isinstance(model_sampling, FlowSampling)


def half_log_snr(sigma: float, model_sampling: object) -> float:
    """`log(alpha / sigma)`: `log((1 - sigma) / sigma)` for a flow model, `-log(sigma)` otherwise."""
    if is_flow(model_sampling):
        return math.log((1 - sigma) / sigma)
    return -math.log(sigma)


def half_log_snr_to_sigma(lam: float, model_sampling: object) -> float:
    """The inverse of `half_log_snr`: `1 / (1 + e^lam)` for a flow model, `e^-lam` otherwise."""
    if is_flow(model_sampling):
        return 1 / (1 + math.exp(lam))
    return math.exp(-lam)


def signal_scale(sigma: float, model_sampling: object) -> float:
    """alpha at `sigma`: `1 - sigma` for a flow model, 1 otherwise."""
    return 1.0 - sigma if is_flow(model_sampling) else 1.0


def offset_first_sigma(sigmas: list[float], model_sampling: object, percent_offset: float = 1e-4) -> list[float]:
    """For a flow model, a first sigma >= 1 (infinite noise-to-signal) moved to `percent_to_sigma(1e-4)` (in
    float32, as upstream's sigma tensors), as upstream's SNR-based samplers do; otherwise the list itself."""
    if len(sigmas) > 1 and is_flow(model_sampling) and sigmas[0] >= 1:
        first = model_sampling.percent_to_sigma(percent_offset)  # type: ignore[attr-defined]
        return [float(torch.tensor(first, dtype=torch.float32)), *sigmas[1:]]
    return sigmas


def flow_ancestral_step(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float, float]:
    """Upstream's rectified-flow ancestral split of a step: a deterministic move to
    `sigma_down = sigma_next (1 + (sigma_next/sigma - 1) eta)`, then `x <- scale x + renoise z` with
    `scale = (1 - sigma_next) / (1 - sigma_down)` and `renoise = sqrt(sigma_next^2 - sigma_down^2 scale^2)`, which
    lands on the marginal at `sigma_next`. Returns `(sigma_down, scale, renoise)`."""
    down = sigma_next * (1 + (sigma_next / sigma - 1) * eta)
    scale = (1 - sigma_next) / (1 - down)
    return down, scale, math.sqrt(max(sigma_next**2 - down**2 * scale**2, 0.0))


def log_snr_step(sigma: float, sigma_next: float, model_sampling: object) -> float:
    """`h = half_log_snr(sigma_next) - half_log_snr(sigma)`; for a VP model `log(sigma) - log(sigma_next)`."""
    if is_flow(model_sampling):
        return half_log_snr(sigma_next, model_sampling) - half_log_snr(sigma, model_sampling)
    return math.log(sigma) - math.log(sigma_next)


def stage_sigma(sigma: float, h: float, r: float, model_sampling: object) -> float:
    """The sigma a fraction `r` of a step of `h` (in half-log-SNR) below `sigma`: `sigma e^{-r h}` for a VP model,
    `half_log_snr_to_sigma(half_log_snr(sigma) + r h)` for a flow model."""
    if is_flow(model_sampling):
        return half_log_snr_to_sigma(half_log_snr(sigma, model_sampling) + r * h, model_sampling)
    return sigma * math.exp(-r * h)


def float32_flow_midpoint(sigma: float, sigma_next: float, r: float) -> float:
    """`stage_sigma` of a flow model computed in float32 as upstream's float32 sigmas are: `sigmoid(-(l_s + r (l_t -
    l_s)))`, `l = -logit(sigma)`, so a Brownian tree query at this point lands on upstream's grid point."""
    s, t = torch.tensor(sigma, dtype=torch.float32), torch.tensor(sigma_next, dtype=torch.float32)
    lambda_s, lambda_t = s.logit().neg(), t.logit().neg()
    return float((lambda_s + r * (lambda_t - lambda_s)).neg().sigmoid())
