"""One trajectory over several denoisers (the fused and blending algorithms): each member at its own input in one
batched forward when they share a network, a denoiser that combines the members' predictions, the run's start, and
the trace report of a joint trajectory."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ..sampling.backbone import denoise_stacked, sigma_rows
from ..sampling.noise import NoiseStream
from ..sampling.sample import integrate
from ..sampling.samplers import Callback
from ..sampling.unet_denoiser import JointDenoiser
from .base import RegionRun

Combine = Callable[[list[Tensor], Tensor], Tensor]


def denoise_each(joint: JointDenoiser, xs: Sequence[Tensor], sigma: Tensor, with_uncond: bool = False) -> list[Any]:
    """Member k of `joint` evaluated at `xs[k]` (all at `sigma`): each member's x0, or (x0, x0 unconditional) with
    `with_uncond`. When the members share a network, one forward whose batch stacks every member's input under each of
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
    stacked_sigma = sigma_rows(sigma, batch, xs[0].device).repeat(len(entries))
    cond = first.backbone.stack([c for _, c in entries], xs[0])
    out = denoise_stacked(first.backbone, first.model_sampling, stacked_x, stacked_sigma, cond)
    chunks = out.chunk(len(entries))
    outputs: list[list[Tensor]] = [[] for _ in members]
    for (k, _), chunk in zip(entries, chunks):
        outputs[k].append(chunk)
    return [d.split(o) if with_uncond else d.combine(o) for d, o in zip(members, outputs)]


class CombinedDenoiser:
    """`D(x, s) = combine([D_k(x_k, s)], s)` over member denoisers, `x_k = inputs(x, s)[k]` (default: x for all),
    in one batched forward when they share a network."""

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


def joint_report(run: RegionRun, role: str, shares: Callable[[float], list[Tensor]]) -> Callback | None:
    """The run's report of a joint trajectory (the whole latent, `mask` None) with `shares`: for each member role
    its share `[B,1,h,w]` of the x0 that step wrote, at the step's sigma (for the trace's last-writer map)."""
    report = run.report(None, role, None, run.start)
    if report is None:
        return None
    roles = run.roles()
    return lambda info: report({**info, "shares": dict(zip(roles, shares(float(info["sigma"]))))})


def trajectory_sigmas(run: RegionRun) -> Tensor:
    """The base sampler's schedule from the run's first step, on the latent's device."""
    return run.base.sigmas(run.adv_steps)[run.start:].to(run.latent.device)


def run_trajectory(run: RegionRun, denoiser: object, sigmas: Tensor, callback: Callback | None) -> Tensor:
    """The latent noised to `sigmas[0]` with the run's seed, integrated by the base sampler over `denoiser` (under
    the base's model sampling: its noising, and a flow model's sampler variants)."""
    x = run.base.model_sampling.noise_scaling(float(sigmas[0]), NoiseStream(run.seed)(run.latent), run.latent)
    return integrate(denoiser, x, sigmas, run.base.sampler, run.seed, callback,
                     model_sampling=run.base.model_sampling)
