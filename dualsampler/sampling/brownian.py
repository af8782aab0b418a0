"""Brownian-tree noise for the SDE samplers, drawn as upstream draws it so a seed gives upstream's image (SPEC §3).

The tree is `torchsde.BrownianTree` over `[sigma_min, sigma_max]` of the run's sigmas (the smallest nonzero one
and the largest), with the call's seed as its entropy and a float32 state shaped like the latent (one tree per
element, shaped like one element, when each element has its own seed). Times are sigmas themselves, rounded to
float32 as upstream's float32 sigmas are: the tree resolves queries on a 1e-6 grid, so the rounding decides which
grid point a query lands on. A query `(sigma, sigma_next)` returns the normalised increment
`(W(sigma_next) - W(sigma)) / sqrt(|sigma_next - sigma|)`, a standard normal for each query and exactly
consistent across nested queries, whatever their order.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torchsde
from torch import Tensor


def as_float32(value: float) -> float:
    """`value` rounded to the nearest float32, as a Python float."""
    return float(torch.tensor(value, dtype=torch.float32))


def float32_log_midpoint(sigma: float, sigma_next: float, r: float) -> float:
    """`exp(-(l_s + r (l_t - l_s)))` with `l = -log(sigma)`, computed in float32 like upstream's float32 sigmas, so
    a query at this point lands on upstream's grid point of the tree."""
    s, t = torch.tensor(sigma, dtype=torch.float32), torch.tensor(sigma_next, dtype=torch.float32)
    lambda_s, lambda_t = s.log().neg(), t.log().neg()
    return float((lambda_s + r * (lambda_t - lambda_s)).neg().exp())


def noise_interval(sigmas: Sequence[float]) -> tuple[float, float]:
    """The tree's span: the smallest nonzero sigma and the largest one, in float32."""
    nonzero = [s for s in sigmas if s > 0]
    if not nonzero:
        raise ValueError("sigmas must hold at least one value > 0 for a Brownian tree")
    return as_float32(min(nonzero)), as_float32(max(sigmas))


class BrownianTreeNoise:
    """Normalised increments of one seeded Brownian path per seed over `[sigma_min, sigma_max]`.

    `seeds` holds one seed for the whole batch (`per_element=False`) or one per element. The path's state is
    float32 on `device` (the CPU for upstream's plain SDE samplers, the latent's device for their `_gpu`
    variants), and increments come back in `like`'s dtype and on its device.
    """

    def __init__(
        self,
        like: Tensor,
        sigma_min: float,
        sigma_max: float,
        seeds: Sequence[int],
        per_element: bool,
        device: torch.device | str = "cpu",
    ) -> None:
        if per_element and len(seeds) != like.shape[0]:
            raise ValueError(f"seed must hold one int per batch element ({like.shape[0]}), got {len(seeds)}")
        t0, t1 = sorted((as_float32(sigma_min), as_float32(sigma_max)))
        shape = like.shape[1:] if per_element else like.shape
        w0 = torch.zeros(shape, dtype=torch.float32, device=device)
        self.trees = [torchsde.BrownianTree(t0, w0, t1, entropy=int(seed)) for seed in seeds]
        self.per_element = per_element
        self.like_device, self.like_dtype = like.device, like.dtype

    def increment(self, sigma: float, sigma_next: float) -> Tensor:
        """`W(sigma_next) - W(sigma)` (float32, on the tree's device)."""
        a, b = as_float32(sigma), as_float32(sigma_next)
        lo, hi = min(a, b), max(a, b)
        with warnings.catch_warnings():
            # torchsde rounds the span's ends to its 1e-6 grid and warns when an end query lies just outside.
            warnings.filterwarnings("ignore", message="Should have", category=UserWarning)
            w = torch.stack([tree(lo, hi) for tree in self.trees])
        w = w if self.per_element else w[0]
        return -w if a > b else w

    def __call__(self, sigma: float, sigma_next: float) -> Tensor:
        """`(W(sigma_next) - W(sigma)) / sqrt(|sigma_next - sigma|)`: N(0, 1) per element."""
        a = torch.tensor(as_float32(sigma), dtype=torch.float32)
        b = torch.tensor(as_float32(sigma_next), dtype=torch.float32)
        z = self.increment(sigma, sigma_next) / (b - a).abs().sqrt().to(self.trees[0].device)
        return z.to(device=self.like_device, dtype=self.like_dtype)
