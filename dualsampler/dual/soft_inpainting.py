"""Soft inpainting (AUTOMATIC1111's stable-diffusion-webui, extensions-builtin/soft-inpainting, by CodeHatchling
2024): the mask raised to a power that depends on sigma, latents blended with their magnitude preserved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from torch import Tensor

from ..masks import feather_mask
from .base import ONE_TRAJECTORY, RegionRun, RegionSampler
from ..validation import check_bounded, check_real
from .joint import combined_denoiser, joint_report, run_trajectory, trajectory_sigmas
from .multidiffusion import region_weights


def scheduled_mask(mask: Tensor, sigma: Tensor | float, schedule_bias: float, preservation_strength: float) -> Tensor:
    """`t = m ** (sigma ** schedule_bias * preservation_strength)` where m > 0, 0 where m == 0: at high sigma the
    partially masked pixels lean to the base (t < m), at low sigma to the region (t -> 1). `sigma` is a float or
    a `[B]` tensor."""
    s = torch.as_tensor(sigma, dtype=mask.dtype, device=mask.device).reshape(-1, 1, 1, 1)
    exponent = s**schedule_bias * preservation_strength
    return torch.where(mask > 0, mask.clamp(min=1e-12) ** exponent, torch.zeros_like(mask))


def magnitude_blend(a: Tensor, b: Tensor, t: Tensor, transition_contrast_boost: float) -> Tensor:
    """`(a (1-t) + b t) * m / |a (1-t) + b t|` with `m = ((1-t) |a|^p + t |b|^p)^(1/p)`, `|.|` the norm over
    channels per pixel and `p = transition_contrast_boost`: the linear blend's direction with the magnitudes
    blended as p-norms, so that a partial blend keeps the contrast a linear one loses (p = 1 keeps the lerp's
    direction with the lerp of the magnitudes; larger p leans to the larger magnitude). Magnitudes in float64."""
    p = transition_contrast_boost
    mixed = a * (1 - t) + b * t
    current = torch.linalg.vector_norm(mixed, dim=1, keepdim=True).double() + 1e-5
    norm_a = torch.linalg.vector_norm(a, dim=1, keepdim=True).double()
    norm_b = torch.linalg.vector_norm(b, dim=1, keepdim=True).double()
    t64 = t.double()
    desired = ((1 - t64) * norm_a**p + t64 * norm_b**p) ** (1 / p)
    return mixed * (desired / current).to(mixed.dtype)


def region_shares(ts: Sequence[Tensor]) -> list[Tensor]:
    """Shares of the base and each region in sequential blends by `ts` (later regions on top), magnitudes aside:
    region k keeps `t_k prod_{j>k}(1 - t_j)`, the base `prod_j (1 - t_j)`."""
    shares, rest = [], torch.ones_like(ts[0])
    for t in reversed(ts):
        shares.append(t * rest)
        rest = rest * (1 - t)
    return [rest] + shares[::-1]


@dataclass
class SoftInpainting(RegionSampler):
    """A1111's soft inpainting, its latent-blending core (`on_mask_blend`, applied to the x0 predictions): one
    trajectory with the base sampler's algorithm and schedule whose x0 is, starting from the base's `D_0(x)`, for
    each region k in order `D = magnitude_blend(D, D_k(x), t_k(sigma))`, `t_k = scheduled_mask(m_k, sigma)`,
    m_k the region's soft mask extended by its mask grown by `overlap_factor`, blurred by `feather` latent pixels (A1111 recommends a
    high mask blur: soft masks are what this method blends). Hyper-parameters with A1111's defaults and ranges:
    `schedule_bias` (mask_blend_power, 1, [0, 8]), `preservation_strength` (mask_blend_scale, 0.5, [0, 8]),
    `transition_contrast_boost` (inpaint_detail_preservation, 4, [1, 32]). A1111's pixel composite settings (mask
    influence, difference threshold, difference contrast) compare the decoded result with an img2img original;
    a region run has no original image, so they are not part of this latent core. One batched forward per model
    call when the denoisers share a UNet."""

    overlap_factor: int = 0
    feather: float = 4.0
    schedule_bias: float = 1.0
    preservation_strength: float = 0.5
    transition_contrast_boost: float = 4.0
    name: ClassVar[str] = "soft_inpainting"
    consumes: ClassVar[tuple[str, ...]] = ONE_TRAJECTORY

    def __post_init__(self) -> None:
        self.overlap_factor = check_bounded(self.overlap_factor, "overlap_factor")
        self.feather = check_bounded(self.feather, "fused_feather", "feather")
        self.schedule_bias = check_real(self.schedule_bias, "schedule_bias", 0.0, 8.0)
        self.preservation_strength = check_real(self.preservation_strength, "preservation_strength", 0.0, 8.0)
        self.transition_contrast_boost = check_real(self.transition_contrast_boost, "transition_contrast_boost",
                                                        1.0, 32.0)

    def masks(self, run: RegionRun) -> list[Tensor]:
        """Each region's soft mask m_k at the latent's size."""
        return [feather_mask(w, self.feather) for w in region_weights(run, self.overlap_factor)]

    def blend(self, predictions: Sequence[Tensor], masks: Sequence[Tensor], sigma: Tensor | float) -> Tensor:
        out = predictions[0]
        for prediction, mask in zip(predictions[1:], masks):
            t = scheduled_mask(mask, sigma, self.schedule_bias, self.preservation_strength)
            out = magnitude_blend(out, prediction, t, self.transition_contrast_boost)
        return out

    def _sample(self, run: RegionRun) -> Tensor:
        masks = self.masks(run)
        denoiser = combined_denoiser([run.base.denoiser] + [r.sampler.denoiser for r in run.regions],
                                     lambda predictions, sigma: self.blend(predictions, masks, sigma))

        def shares(sigma: float) -> list[Tensor]:
            return region_shares([scheduled_mask(m, sigma, self.schedule_bias, self.preservation_strength)
                                  for m in masks])

        return run_trajectory(run, denoiser, trajectory_sigmas(run), joint_report(run, self.name, shares))
