"""Mixture of Diffusers (Jiménez 2023, "Mixture of Diffusers for scene composition and high resolution image
generation"): overlapping predictions mixed with Gaussian weights centred on each region."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor

from .base import ONE_TRAJECTORY, RegionRun, RegionSampler
from ..validation import check_bounded, check_real
from .joint import combined_denoiser, joint_report, run_trajectory, trajectory_sigmas
from .multidiffusion import background_weight, normalized, region_weights, weighted_average

WEIGHTS = ("gaussian", "flat")
WEIGHT_FLOOR = 1e-12  # a region alone at a pixel keeps it however far from its centre


def gaussian_weight(support: Tensor, sigma_scale: float) -> Tensor:
    """The paper's tile weight on a region: `exp(-(y - cy)^2 / (2 (s H)^2) - (x - cx)^2 / (2 (s W)^2))`, peak 1,
    centred on the bounding box of `support > 0` (per batch element), `H x W` its extent in latent pixels,
    `s = sigma_scale` (0.1 in the paper: variance 0.01 of the tile size); floored at 1e-12. `[B,1,h,w]`."""
    batch, _, height, width = support.shape
    ys = torch.arange(height, dtype=support.dtype, device=support.device).reshape(height, 1)
    xs = torch.arange(width, dtype=support.dtype, device=support.device).reshape(1, width)
    out = torch.ones_like(support)
    for b in range(batch):
        rows = torch.nonzero(support[b, 0].amax(1) > 0).flatten()
        cols = torch.nonzero(support[b, 0].amax(0) > 0).flatten()
        if len(rows) == 0:
            continue
        top, bottom, left, right = float(rows[0]), float(rows[-1]), float(cols[0]), float(cols[-1])
        std_y, std_x = sigma_scale * (bottom - top + 1), sigma_scale * (right - left + 1)
        exponent = ((ys - (top + bottom) / 2) / std_y) ** 2 + ((xs - (left + right) / 2) / std_x) ** 2
        out[b, 0] = torch.exp(-0.5 * exponent)
    return out.clamp(min=WEIGHT_FLOOR)


@dataclass
class MixtureOfDiffusers(RegionSampler):
    """Mixture of Diffusers (Jiménez 2023, sec. 3): one trajectory with the base sampler's algorithm and schedule
    over `D(x) = sum_k w_k D_k(x) / sum_k w_k`. Each region is a "tile" whose weight is its soft mask (extended by
    the mask grown by `overlap_factor` latent pixels) times a Gaussian centred on the region's bounding box with
    std `sigma_scale` times its extent (paper: 0.1), so that where predictions overlap the one whose region is
    nearer its centre dominates and transitions are smooth; `weights: flat` drops the Gaussian (the paper's
    uniform-weight ablation; then this is MultiDiffusion without bootstrapping). The base is the canvas-wide
    background with the flat weight `max(0, 1 - sum_k M_k)`: a Gaussian over the whole canvas would give it the
    same peak as a region at the canvas centre. One batched forward per model call when the UNet is shared."""

    overlap_factor: int = 0
    sigma_scale: float = 0.1
    weights: str = "gaussian"
    name: ClassVar[str] = "mixture_of_diffusers"
    consumes: ClassVar[tuple[str, ...]] = ONE_TRAJECTORY

    def __post_init__(self) -> None:
        self.overlap_factor = check_bounded(self.overlap_factor, "overlap_factor")
        self.sigma_scale = check_real(self.sigma_scale, "sigma_scale", 0.01, 10.0)
        if self.weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}; got {self.weights!r}")

    @classmethod
    def inert(cls, settings: Mapping[str, Any]) -> frozenset[str]:
        """`sigma_scale` with `weights: flat` (no Gaussian to scale)."""
        return frozenset({"sigma_scale"}) if settings.get("weights", "gaussian") == "flat" else frozenset()

    def mixing_weights(self, run: RegionRun) -> list[Tensor]:
        """The base's and each region's mixing weight `[B,1,h,w]`."""
        regions = region_weights(run, self.overlap_factor)
        if self.weights == "gaussian":
            regions = [w * gaussian_weight(w, self.sigma_scale) for w in regions]
        return [background_weight(run)] + regions

    def _sample(self, run: RegionRun) -> Tensor:
        weights = self.mixing_weights(run)
        shares = normalized(weights)
        denoiser = combined_denoiser([run.base.denoiser] + [r.sampler.denoiser for r in run.regions],
                                     lambda predictions, sigma: weighted_average(predictions, weights))
        return run_trajectory(run, denoiser, trajectory_sigmas(run), joint_report(run, self.name, lambda sigma: shares))

