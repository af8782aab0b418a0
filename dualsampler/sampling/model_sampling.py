"""Discrete VP model sampling (SPEC §1): betas -> sigmas, sigma <-> timestep, network in/out scalings."""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor

BETA_SCHEDULES = ("scaled_linear", "linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "v_prediction")


def make_betas(beta_schedule: str, beta_start: float, beta_end: float, num_timesteps: int) -> Tensor:
    """Betas of a discrete VP model: `scaled_linear` = linspace(sqrt(start), sqrt(end))**2, `linear`, or cosine."""
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64) ** 2
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
    if beta_schedule == "squaredcos_cap_v2":
        steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
        alpha_bar = torch.cos((steps + 0.008) / 1.008 * math.pi / 2) ** 2
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {beta_schedule!r}")


class ModelSampling:
    """Sigma-space view of a discrete VP model: `sigmas = sqrt((1 - acp) / acp)`, `acp = cumprod(1 - betas)`."""

    def __init__(
        self,
        beta_schedule: str = "scaled_linear",
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        num_timesteps: int = 1000,
        prediction_type: str = "epsilon",
    ) -> None:
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        if num_timesteps < 2:
            raise ValueError(f"num_timesteps must be >= 2, got {num_timesteps}")
        self.prediction_type = prediction_type
        betas = make_betas(beta_schedule, beta_start, beta_end, num_timesteps)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.sigmas = sigmas.float()
        self.log_sigmas = sigmas.log().float()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ModelSampling":
        """Build from a diffusers scheduler config (`beta_schedule`, `beta_start`, `beta_end`, ...)."""
        return cls(
            beta_schedule=config.get("beta_schedule", "scaled_linear"),
            beta_start=config.get("beta_start", 0.00085),
            beta_end=config.get("beta_end", 0.012),
            num_timesteps=config.get("num_train_timesteps", 1000),
            prediction_type=config.get("prediction_type", "epsilon"),
        )

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: Tensor) -> Tensor:
        """Nearest discrete timestep in log-sigma (upstream behaviour); float tensor of sigma's shape."""
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        dists = sigma.log().reshape(-1, 1).cpu() - self.log_sigmas.reshape(1, -1)
        return dists.abs().argmin(dim=1).reshape(sigma.shape).float().to(sigma.device)

    def t_to_sigma(self, t: Tensor) -> Tensor:
        """Sigma at a (fractional) timestep: linear interpolation in log-sigma between neighbours."""
        t = torch.as_tensor(t, dtype=torch.float32).clamp(0, len(self.sigmas) - 1)
        low = t.floor().long().cpu()
        high = t.ceil().long().cpu()
        w = (t.cpu() - low.float())
        log_sigma = (1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]
        return log_sigma.exp().to(t.device)

    @staticmethod
    def c_in(sigma: Tensor) -> Tensor:
        """Network input scaling `1 / sqrt(sigma^2 + 1)`."""
        return 1.0 / (sigma**2 + 1.0) ** 0.5

    def denoised(self, x: Tensor, sigma: Tensor, model_output: Tensor) -> Tensor:
        """x0 from the network output: eps `x - sigma*eps`; v `x/(sigma^2+1) - v*sigma/sqrt(sigma^2+1)`."""
        s = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        if self.prediction_type == "epsilon":
            return x - s * model_output
        return x / (s**2 + 1) - model_output * s / (s**2 + 1) ** 0.5

    def noise_scaling(self, sigma: float, noise: Tensor, latent: Tensor) -> Tensor:
        """Start of sampling: `latent + noise*sigma`, or `noise*sqrt(1+sigma^2)` scaling at/above sigma_max."""
        if math.isclose(sigma, self.sigma_max, rel_tol=1e-5) or sigma > self.sigma_max:
            return latent + noise * (1.0 + sigma**2) ** 0.5
        return latent + noise * sigma
