"""MultiDiffusion (Bar-Tal, Yariv, Lipman, Dekel 2023, "MultiDiffusion: Fusing Diffusion Paths for Controlled Image
Generation"): at every model call the per-pixel average of the base's and the regions' x0 predictions weighted by
their masks, with the paper's bootstrapping. Also the pieces the other blending methods share: each member
denoiser at its own input in one batched forward (`denoise_each`), a denoiser that combines its members'
predictions (`CombinedDenoiser`), and the trace report of a joint trajectory (`joint_report`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import torch
from torch import Tensor

from ..masks import grow_mask
from ..sampling.noise import NoiseStream, Seed
from ..sampling.sample import integrate
from ..sampling.samplers import Callback
from ..sampling.unet_denoiser import Conditioning, JointDenoiser, expand_cond, run_unet, size_time_ids
from .base import RegionRun, RegionSampler, warn_if_covering
from .checks import check_overlap

Combine = Callable[[list[Tensor], Tensor], Tensor]


def check_fraction(value: Any, name: str, low: float = 0.0, high: float = 1.0) -> float:
    """A real number in [low, high] -> float; the error names the parameter and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def member_roles(run: RegionRun) -> list[str]:
    """The roles of the base and the regions, as the other algorithms name them: `base`, then `mask` (one region)
    or `region<k>`."""
    return ["base"] + (["mask"] if len(run.regions) == 1 else [f"region{k}" for k in range(len(run.regions))])


def _stack_conds(conds: Sequence[Any], batch: int, x: Tensor, vae_scale_factor: int) -> Any:
    """Conditionings of one batch each, repeated to `batch` and stacked into one conditioning of
    `len(conds) * batch` rows (SDXL time ids computed from the latent's size where a conditioning has none)."""
    first = conds[0]
    if first is None:
        return None
    if not isinstance(first, Conditioning):
        return torch.cat([expand_cond(c, batch) for c in conds])
    hidden = torch.cat([expand_cond(c.hidden, batch) for c in conds])
    if first.text_embeds is None:
        return Conditioning(hidden)
    pooled = torch.cat([expand_cond(c.text_embeds, batch) for c in conds])
    ids = [c.time_ids if c.time_ids is not None else size_time_ids(x, vae_scale_factor) for c in conds]
    return Conditioning(hidden, pooled, torch.cat([expand_cond(t.to(x.device), batch) for t in ids]))


def denoise_each(joint: JointDenoiser, xs: Sequence[Tensor], sigma: Tensor, with_uncond: bool = False) -> list[Any]:
    """Member k of `joint` evaluated at `xs[k]` (all at `sigma`): each member's x0, or (x0, x0 unconditional) with
    `with_uncond`. When the members share a UNet, one forward whose batch stacks every member's input under each of
    its conditionings; when every input is the same tensor, the joint call (equal conditionings evaluated once)."""
    if all(x is xs[0] for x in xs):
        return joint.with_uncond(xs[0], sigma) if with_uncond else joint(xs[0], sigma)
    members = joint.denoisers
    if not joint.shared:
        if with_uncond:
            return [d.with_uncond(x, sigma) if callable(getattr(d, "with_uncond", None)) else (d(x, sigma),) * 2
                    for d, x in zip(members, xs)]
        return [d(x, sigma) for d, x in zip(members, xs)]
    first, batch = members[0], xs[0].shape[0]
    entries = [(k, cond) for k, d in enumerate(members) for cond in d.conditionings(with_uncond)]
    stacked_x = torch.cat([xs[k] for k, _ in entries])
    stacked_sigma = torch.as_tensor(sigma, device=xs[0].device).reshape(-1).expand(batch).repeat(len(entries))
    cond = _stack_conds([c for _, c in entries], batch, xs[0], first.vae_scale_factor)
    out = run_unet(first.unet, first.model_sampling, stacked_x, stacked_sigma, [cond], first.vae_scale_factor)[0]
    chunks = out.chunk(len(entries))
    outputs: list[list[Tensor]] = [[] for _ in members]
    for (k, _), chunk in zip(entries, chunks):
        outputs[k].append(chunk)
    return [d.split(o) if with_uncond else d.combine(o) for d, o in zip(members, outputs)]


class CombinedDenoiser:
    """`D(x, s) = combine([D_k(x_k, s)], s)` over member denoisers, `x_k = inputs(x, s)[k]` (default: x for all),
    in one batched forward when they share a UNet."""

    def __init__(self, denoisers: Sequence[object], combine: Combine,
                 inputs: Callable[[Tensor, Tensor], list[Tensor]] | None = None) -> None:
        self.joint = JointDenoiser(denoisers)
        self.combine = combine
        self.inputs = inputs or (lambda x, sigma: [x] * len(self.joint.denoisers))

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.combine(denoise_each(self.joint, self.inputs(x, sigma), sigma), sigma)


class GuidedCombinedDenoiser(CombinedDenoiser):
    """A `CombinedDenoiser` whose members all give their unconditional prediction: `with_uncond` combines both."""

    def with_uncond(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        pairs = denoise_each(self.joint, self.inputs(x, sigma), sigma, with_uncond=True)
        return self.combine([p[0] for p in pairs], sigma), self.combine([p[1] for p in pairs], sigma)


def combined_denoiser(denoisers: Sequence[object], combine: Combine,
                      inputs: Callable[[Tensor, Tensor], list[Tensor]] | None = None) -> CombinedDenoiser:
    """A `GuidedCombinedDenoiser` when every member has `with_uncond` (the cfg_pp samplers need it)."""
    guided = all(callable(getattr(d, "with_uncond", None)) for d in denoisers)
    return (GuidedCombinedDenoiser if guided else CombinedDenoiser)(denoisers, combine, inputs)


def weighted_average(predictions: Sequence[Tensor], weights: Sequence[Tensor]) -> Tensor:
    """`sum_k W_k D_k / sum_k W_k` per pixel (the weights' sum must be > 0 everywhere)."""
    total = sum(w * p for w, p in zip(weights, predictions))
    return total / sum(weights)


def normalized(weights: Sequence[Tensor]) -> list[Tensor]:
    """Each weight divided by the weights' per-pixel sum."""
    total = sum(weights)
    return [w / total for w in weights]


def joint_report(run: RegionRun, role: str, shares: Callable[[float], list[Tensor]]) -> Callback | None:
    """The run's report of a joint trajectory (the whole latent, `mask` None) with `shares`: for each member role
    its share `[B,1,h,w]` of the x0 that step wrote, at the step's sigma (for the trace's last-writer map)."""
    report = run.report(None, role, None, run.start)
    if report is None:
        return None
    roles = member_roles(run)
    return lambda info: report({**info, "shares": dict(zip(roles, shares(float(info["sigma"]))))})


def region_weights(run: RegionRun, overlap_factor: int) -> list[Tensor]:
    """Each region's weight at the latent's size: its soft (bilinearly resized) mask, extended by the mask grown
    by `overlap_factor` latent pixels."""
    out = []
    for region in run.regions:
        grown = grow_mask(region.mask, *run.size, overlap_factor).to(device=run.latent.device, dtype=run.latent.dtype)
        warn_if_covering(grown, "overlap_factor")
        soft = run.at_latent(region.mask)
        out.append(torch.maximum(soft, grown.expand_as(soft)))
    return out


def background_weight(run: RegionRun) -> Tensor:
    """The base's weight `max(0, 1 - sum_k M_k)` (the MultiDiffusion authors' region-based code), M_k the soft
    region masks at the latent's size."""
    return (1 - sum(run.at_latent(r.mask) for r in run.regions)).clamp(min=0)


def constant_backgrounds(run: RegionRun, seed: Seed) -> list[tuple[Tensor, Tensor]]:
    """For each region a seeded random constant latent `c_k` ~ N(0, 1) per channel and its fixed noise `n_k`
    (per batch element when the seed is a list)."""
    batch, channels = run.latent.shape[:2]
    seeds = [seed] * batch if isinstance(seed, int) else list(seed)
    out = []
    for k in range(len(run.regions)):
        colours, noises = [], []
        for s in seeds:
            generator = torch.Generator("cpu").manual_seed((int(s) * 1_000_003 + 7_919 * (k + 1)) % 2**63)
            colours.append(torch.randn(channels, 1, 1, generator=generator).expand(channels, *run.size))
            noises.append(torch.randn(channels, *run.size, generator=generator))
        out.append((torch.stack(colours).to(run.latent), torch.stack(noises).to(run.latent)))
    return out


@dataclass
class MultiDiffusion(RegionSampler):
    """MultiDiffusion (Bar-Tal et al. 2023, eq. 5 with region masks as the views): one trajectory with the base
    sampler's algorithm and schedule over `D(x) = sum_k W_k D_k(x_k) / sum_k W_k`, k over the base and the regions.
    W_base = max(0, 1 - sum_k M_k) (the authors' region-based code; an all-ones background would mix the background
    prompt into every region), W_k = the soft region mask extended by its mask grown by `overlap_factor` latent
    pixels, so that in that band the region and the base are averaged as overlapping views are in the paper.
    Bootstrapping (paper sec. 4.2, 20% of the steps): while `sigma > sigmas[round(bootstrap * steps)]`, region k
    is denoised over a random constant background, `x_k = M_k x + (1 - M_k)(c_k + sigma n_k)` with a seeded constant
    latent `c_k` and fixed noise `n_k` per region, so that it paints its own prompt inside its mask rather than
    continuing the base's content. One batched forward per model call when the denoisers share a UNet."""

    overlap_factor: int = 0
    bootstrap: float = 0.2
    name: ClassVar[str] = "multidiffusion"

    def __post_init__(self) -> None:
        self.overlap_factor = check_overlap(self.overlap_factor)
        self.bootstrap = check_fraction(self.bootstrap, "bootstrap")

    def weights(self, run: RegionRun) -> list[Tensor]:
        """The base's and each region's averaging weight `[B,1,h,w]`."""
        return [background_weight(run)] + region_weights(run, self.overlap_factor)

    def _sample(self, run: RegionRun) -> Tensor:
        weights = self.weights(run)
        sigmas = run.base.sigmas(run.adv_steps)[run.start:].to(run.latent.device)
        masks = [run.at_latent(r.mask) for r in run.regions]
        backgrounds = constant_backgrounds(run, run.seed)
        until = float(sigmas[min(round(self.bootstrap * (len(sigmas) - 1)), len(sigmas) - 1)])

        def inputs(x: Tensor, sigma: Tensor) -> list[Tensor]:
            s = float(sigma.reshape(-1)[0])
            if s <= until:
                return [x] * len(weights)
            return [x] + [x * m + (c + n * s) * (1 - m) for m, (c, n) in zip(masks, backgrounds)]

        shares = normalized(weights)
        denoiser = combined_denoiser([run.base.denoiser] + [r.sampler.denoiser for r in run.regions],
                                     lambda predictions, sigma: weighted_average(predictions, weights), inputs)
        x = run.base.model_sampling.noise_scaling(float(sigmas[0]), NoiseStream(run.seed)(run.latent), run.latent)
        return integrate(denoiser, x, sigmas, run.base.sampler, run.seed,
                         joint_report(run, self.name, lambda sigma: shares))
