"""Differential Diffusion (Levin and Fried 2023, "Differential Diffusion: Giving Each Pixel Its Strength"): a
per-pixel change map thresholded at each step into the mask that holds the latent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor

from ..masks import feather_mask
from ..sampling.model_sampling import ModelSampling
from ..sampling.noise import NoiseStream, Seed
from ..sampling.sample import integrate
from ..sampling.samplers import Callback
from ..sampling.unet_denoiser import JointDenoiser
from .base import ONE_TRAJECTORY, RegionRun, RegionSampler
from ..validation import check_bounded
from .joint import denoise_each, trajectory_sigmas
from .multidiffusion import region_weights


class Threshold:
    """`tau(sigma) = (t(sigma) - t_end) / (t_start - t_end)` clamped to [0, 1], t the model's timestep of a sigma,
    t_start that of the run's first sigma and t_end that of its last non-zero sigma (at least sigma_min): 1 at the
    first model call, 0 at the last (the threshold of ComfyUI's DifferentialDiffusion node)."""

    def __init__(self, model_sampling: ModelSampling, sigmas: Tensor) -> None:
        self.model_sampling = model_sampling
        last = max(float(sigmas[sigmas > 0][-1]), model_sampling.sigma_min)
        self.start = float(model_sampling.sigma_to_t(torch.tensor(float(sigmas[0]))))
        self.end = float(model_sampling.sigma_to_t(torch.tensor(last)))

    def __call__(self, sigma: float) -> float:
        if self.start == self.end:
            return 0.0
        t = float(self.model_sampling.sigma_to_t(torch.tensor(sigma)))
        return min(1.0, max(0.0, (t - self.end) / (self.start - self.end)))


def active(change: Tensor, threshold: float) -> Tensor:
    """The pixels a step denoises: `change >= threshold` and `change > 0` (a pixel of change 0 is never changed)."""
    return ((change >= threshold) & (change > 0)).to(change.dtype)


def stacked_seed(seed: Seed, batch: int) -> list[int]:
    """The seeds of the stacked `[held trajectory; edited trajectory]` batch: each element's seed twice, so both
    halves draw the same noise (an int seed becomes that seed for every element)."""
    seeds = [seed] * batch if isinstance(seed, int) else list(seed)
    return seeds + seeds


class DifferentialDenoiser:
    """The denoiser of the stacked state `[x_b; x]` (batch 2B): the base denoises the held trajectory `x_b` over the
    whole canvas; the edited trajectory `x` sees `x_in = x U + x_b (1 - U)` and gets `D = D_base(x_b)` then, for each
    region in order, `D = D (1 - A_k) + D_k(x_in) A_k`, `A_k = active(c_k, tau(sigma))`, `U` their union; one
    batched forward when the denoisers share a UNet."""

    def __init__(self, denoisers: Sequence[object], changes: Sequence[Tensor], threshold: Threshold) -> None:
        self.joint = JointDenoiser(denoisers)
        self.changes = list(changes)
        self.threshold = threshold
        if all(callable(getattr(d, "with_uncond", None)) for d in denoisers):
            self.with_uncond = self._with_uncond

    def masks(self, sigma: float) -> list[Tensor]:
        tau = self.threshold(sigma)
        return [active(c, tau) for c in self.changes]

    def _inputs(self, x: Tensor, sigma: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor]:
        batch = x.shape[0] // 2
        held, edited = x[:batch], x[batch:]
        masks = self.masks(float(sigma.reshape(-1)[0]))
        union = torch.stack(masks).amax(0)
        x_in = edited * union + held * (1 - union)
        return [held] + [x_in] * len(masks), masks, sigma.reshape(-1)[:batch]

    @staticmethod
    def _combine(predictions: Sequence[Tensor], masks: Sequence[Tensor]) -> Tensor:
        out = predictions[0]
        for prediction, mask in zip(predictions[1:], masks):
            out = out * (1 - mask) + prediction * mask
        return torch.cat([predictions[0], out])

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        xs, masks, s = self._inputs(x, sigma)
        return self._combine(denoise_each(self.joint, xs, s), masks)

    def _with_uncond(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        xs, masks, s = self._inputs(x, sigma)
        pairs = denoise_each(self.joint, xs, s, with_uncond=True)
        return self._combine([p[0] for p in pairs], masks), self._combine([p[1] for p in pairs], masks)


@dataclass
class DifferentialDiffusion(RegionSampler):
    """Differential Diffusion (Levin and Fried 2023, sec. 3) with the base's own trajectory as the original being
    edited: the base sampler's algorithm and schedule integrate the stacked state `[x_b; x]` (see
    `DifferentialDenoiser`), both halves from the same seeded noise; at each model call the change map c_k of
    region k (its soft mask extended by its mask grown by `overlap_factor`, blurred by `feather` latent pixels:
    `feather` 0 keeps the mask's own values, > 0 gives a soft map) is thresholded at `tau(sigma)`, falling from 1 at the first call to 0 at the last,
    into the pixels region k denoises; the others are held to the base's trajectory, the noised original, so a
    pixel of change c follows the base until `tau <= c` and the region after. Returns the edited half `x`. Every
    model call is one forward when the denoisers share a UNet (batch: the base at `x_b`, each region at `x_in`)."""

    overlap_factor: int = 0
    feather: float = 4.0
    name: ClassVar[str] = "differential_diffusion"
    consumes: ClassVar[tuple[str, ...]] = ONE_TRAJECTORY

    def __post_init__(self) -> None:
        self.overlap_factor = check_bounded(self.overlap_factor, "overlap_factor")
        self.feather = check_bounded(self.feather, "fused_feather", "feather")

    def changes(self, run: RegionRun) -> list[Tensor]:
        """Each region's change map c_k in [0, 1] at the latent's size."""
        return [feather_mask(w, self.feather) for w in region_weights(run, self.overlap_factor)]

    def _sample(self, run: RegionRun) -> Tensor:
        sigmas = trajectory_sigmas(run)
        denoiser = DifferentialDenoiser([run.base.denoiser] + [r.sampler.denoiser for r in run.regions],
                                        self.changes(run), Threshold(run.base.model_sampling, sigmas))
        x = run.base.model_sampling.noise_scaling(float(sigmas[0]), NoiseStream(run.seed)(run.latent), run.latent)
        batch = x.shape[0]
        out = integrate(denoiser, torch.cat([x, x]), sigmas, run.base.sampler, stacked_seed(run.seed, batch),
                        self._report(run, denoiser, batch), model_sampling=run.base.model_sampling)
        return out[batch:]

    def _report(self, run: RegionRun, denoiser: DifferentialDenoiser, batch: int) -> Callback | None:
        """The run's report of the edited half (`x`, `denoised`), with each member's share at the step's sigma."""
        report = run.report(None, self.name, None, run.start)
        if report is None:
            return None
        roles = run.roles()

        def edited(info: dict[str, Any]) -> None:
            masks = denoiser.masks(float(info["sigma"]))
            shares, rest = [], torch.ones_like(masks[0])
            for mask in reversed(masks):
                shares.append(mask * rest)
                rest = rest * (1 - mask)
            halves = {key: info[key][batch:] for key in ("x", "denoised") if isinstance(info.get(key), Tensor)}
            report({**info, **halves, "shares": dict(zip(roles, [rest] + shares[::-1]))})

        return edited
