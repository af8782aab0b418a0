"""Shared fixtures: a Gaussian data distribution whose denoiser and probability-flow ODE are exact."""

from __future__ import annotations

import math

import pytest
import torch


class GaussianData:
    """Data ~ N(mu, std^2) per element: `D(x, s) = mu + (x - mu) std^2 / (std^2 + s^2)`; the PF-ODE solution is
    `x(s1) = mu + (x(s0) - mu) sqrt((std^2 + s1^2) / (std^2 + s0^2))`."""

    def __init__(self, mu: float = 0.5, std: float = 0.7) -> None:
        self.mu, self.std = mu, std
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        s2 = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype) ** 2
        return self.mu + (x - self.mu) * self.std**2 / (self.std**2 + s2)

    def flow(self, x: torch.Tensor, s0: float, s1: float) -> torch.Tensor:
        return self.mu + (x - self.mu) * math.sqrt((self.std**2 + s1**2) / (self.std**2 + s0**2))


@pytest.fixture
def gaussian() -> GaussianData:
    return GaussianData()
