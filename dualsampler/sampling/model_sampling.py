"""Discrete VP model sampling (SPEC §1): betas -> sigmas, sigma <-> timestep, network in/out scalings."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

BETA_SCHEDULES = ("scaled_linear", "linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "v_prediction")
# alphas_cumprod given to the last timestep of a zero-terminal-SNR schedule, whose true value 0 makes sigma infinite:
# upstream (ComfyUI) substitutes this tiny value, so sigma_max is finite (about 4518.9) and the samplers run unchanged.
ZERO_SNR_ALPHA_CUMPROD = 4.8973451890853435e-08


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


def config_alphas_cumprod(config: Mapping[str, Any]) -> Tensor:
    """float64 `alphas_cumprod` of a diffusers scheduler config: `trained_betas` when given, else the named
    `beta_schedule` (computed in float64 as upstream does), then diffusers' own `rescale_zero_terminal_snr`
    (Lin et al. 2024, Algorithm 1) when `rescale_betas_zero_snr` is set. A schedule not in BETA_SCHEDULES is taken
    from the diffusers scheduler the config builds (`DDPMScheduler.from_config(config).alphas_cumprod`)."""
    trained = config.get("trained_betas")
    schedule = config.get("beta_schedule", "scaled_linear")
    if trained is not None:
        betas = torch.as_tensor(list(trained), dtype=torch.float64)
    elif schedule in BETA_SCHEDULES:
        betas = make_betas(schedule, config.get("beta_start", 0.00085), config.get("beta_end", 0.012),
                           config.get("num_train_timesteps", 1000))
    else:
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(dict(config)).alphas_cumprod.double()
    if config.get("rescale_betas_zero_snr", False):
        from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr

        betas = rescale_zero_terminal_snr(betas)
    return torch.cumprod(1.0 - betas, dim=0)


class ModelSampling:
    """Sigma-space view of a discrete VP model: `sigmas = sqrt((1 - acp) / acp)`, `acp = cumprod(1 - betas)`.

    `alphas_cumprod`, when given, replaces the betas arguments (a zero terminal value becomes
    ZERO_SNR_ALPHA_CUMPROD). Two instances are equal when their prediction types and training sigmas are equal:
    samplers built from one config separately still share one UNet forward (`JointDenoiser`).
    """

    def __init__(
        self,
        beta_schedule: str = "scaled_linear",
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        num_timesteps: int = 1000,
        prediction_type: str = "epsilon",
        alphas_cumprod: Sequence[float] | Tensor | None = None,
    ) -> None:
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        if alphas_cumprod is None:
            if num_timesteps < 2:
                raise ValueError(f"num_timesteps must be >= 2, got {num_timesteps}")
            alphas_cumprod = torch.cumprod(1.0 - make_betas(beta_schedule, beta_start, beta_end, num_timesteps), dim=0)
        acp = torch.as_tensor(alphas_cumprod, dtype=torch.float64).clone()
        if acp.ndim != 1 or len(acp) < 2 or not ((acp >= 0) & (acp < 1)).all() or (acp[:-1] <= 0).any():
            raise ValueError("alphas_cumprod must be a 1-D sequence of at least 2 values in (0, 1) (the last may be 0)")
        if acp[-1] <= 0:
            acp[-1] = ZERO_SNR_ALPHA_CUMPROD
        self.prediction_type = prediction_type
        sigmas = ((1 - acp) / acp) ** 0.5
        self.sigmas = sigmas.float()
        self.log_sigmas = sigmas.log().float()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ModelSampling:
        """Build from a diffusers scheduler config: every field that changes the training noise levels counts
        (`beta_schedule`, `beta_start`, `beta_end`, `num_train_timesteps`, `trained_betas`,
        `rescale_betas_zero_snr`; see `config_alphas_cumprod`) and `prediction_type`. `timestep_spacing` and
        `steps_offset` only place diffusers' own inference steps; the schedule here comes from the scheduler name."""
        prediction_type = config.get("prediction_type", "epsilon")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        return cls(prediction_type=prediction_type, alphas_cumprod=config_alphas_cumprod(config))

    @classmethod
    def from_scheduler(cls, scheduler) -> ModelSampling:
        """From a diffusers scheduler object (its config, as `from_config`)."""
        return cls.from_config(scheduler.config)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelSampling):
            return NotImplemented
        return self is other or (
            self.prediction_type == other.prediction_type
            and self.sigmas.shape == other.sigmas.shape
            and torch.equal(self.sigmas, other.sigmas)
        )

    def __hash__(self) -> int:
        return hash((self.prediction_type, len(self.sigmas), self.sigma_min, self.sigma_max))

    def __repr__(self) -> str:
        return (f"ModelSampling({self.prediction_type}, {len(self.sigmas)} steps, "
                f"sigma {self.sigma_min:.4g}..{self.sigma_max:.4g})")

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
        """Start of sampling: `latent + noise*sigma`, or `noise*sqrt(1+sigma^2)` scaling at/above sigma_max (the
        factor in the noise's dtype as upstream computes it: dpm_adaptive's first error estimates are rounding
        noise, so a 1-ulp difference in x moves its whole step sequence)."""
        if math.isclose(sigma, self.sigma_max, rel_tol=1e-5) or sigma > self.sigma_max:
            return latent + noise * torch.sqrt(1.0 + torch.tensor(sigma, dtype=noise.dtype) ** 2.0)
        return latent + noise * sigma

    @staticmethod
    def inverse_noise_scaling(sigma: float, latent: Tensor) -> Tensor:
        """A sample stopped at `sigma` as a latent: itself (a VP sample left with noise is `latent + noise*sigma`)."""
        return latent


def check_model_sampling(model_sampling: object) -> None:
    """None or a model sampling object (`ModelSampling`, `FlowModelSampling`, ...: it has `sigma_min`,
    `sigma_max` and `noise_scaling`), not a name such as 'sd'."""
    if model_sampling is not None and not all(
            hasattr(model_sampling, key) for key in ("sigma_min", "sigma_max", "noise_scaling")):
        raise ValueError("model_sampling must be None or a model sampling object (dualsampler.sampling."
                         f"ModelSampling, FlowModelSampling, FluxModelSampling), got {model_sampling!r}")
