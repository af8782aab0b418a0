"""Denoisers over diffusers UNets: conditioning and classifier-free guidance in one batched forward (SPEC §1)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .model_sampling import ModelSampling


def expand_cond(cond: Tensor, batch: int) -> Tensor:
    """A conditioning of batch 1 or `batch`, repeated to `batch`."""
    if cond.shape[0] not in (1, batch):
        raise ValueError(f"conditioning batch must be 1 or {batch}, got {cond.shape[0]}")
    return cond.expand(batch, *cond.shape[1:]) if cond.shape[0] == 1 else cond


class UNetDenoiser:
    """`D(x, sigma)` for a diffusers `UNet2DConditionModel` (cond = encoder_hidden_states) or `UNet2DModel`
    (cond = optional class labels). The network sees `x / sqrt(sigma^2 + 1)` at `t = sigma_to_t(sigma)`;
    with `uncond` and `cfg != 1` the result is `uncond + (cond - uncond) * cfg`, both in one forward."""

    def __init__(
        self,
        unet: nn.Module,
        model_sampling: ModelSampling | None = None,
        cond: Tensor | None = None,
        uncond: Tensor | None = None,
        cfg: float = 1.0,
    ) -> None:
        self.unet = unet
        self.model_sampling = model_sampling or ModelSampling()
        self.cond = cond
        self.uncond = uncond
        self.cfg = cfg

    def conditionings(self) -> list[Tensor | None]:
        """The conditionings one call evaluates: `[cond]`, or `[cond, uncond]` when guidance is on."""
        if self.uncond is None or self.cfg == 1:
            return [self.cond]
        return [self.cond, self.uncond]

    def combine(self, outputs: Sequence[Tensor]) -> Tensor:
        """x0 from the per-conditioning x0 predictions: CFG `uncond + (cond - uncond) * cfg`."""
        if len(outputs) == 1:
            return outputs[0]
        cond, uncond = outputs
        return uncond + (cond - uncond) * self.cfg

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.combine(run_unet(self.unet, self.model_sampling, x, sigma, self.conditionings()))


@torch.no_grad()
def run_unet(
    unet: nn.Module, model_sampling: ModelSampling, x: Tensor, sigma: Tensor, conds: Sequence[Tensor | None]
) -> list[Tensor]:
    """x0 predictions of `x` under each conditioning, all in ONE forward of batch `len(conds) * B`."""
    batch = x.shape[0]
    dtype = next(unet.parameters()).dtype
    scaled = (x * model_sampling.c_in(sigma).reshape(-1, 1, 1, 1).to(x.dtype)).to(dtype)
    timesteps = model_sampling.sigma_to_t(sigma).to(x.device)
    x_in = scaled.repeat(len(conds), 1, 1, 1)
    t_in = timesteps.repeat(len(conds))
    if conds[0] is not None and conds[0].is_floating_point():
        hidden = torch.cat([expand_cond(c, batch) for c in conds]).to(device=x.device, dtype=dtype)
        out = unet(x_in, t_in, encoder_hidden_states=hidden).sample
    elif conds[0] is not None:
        labels = torch.cat([expand_cond(c, batch) for c in conds]).to(x.device)
        out = unet(x_in, t_in, class_labels=labels).sample
    else:
        out = unet(x_in, t_in).sample
    out = out.to(x.dtype)
    return [model_sampling.denoised(x, sigma, chunk) for chunk in out.chunk(len(conds))]


def shares_one_forward(denoisers: Sequence[object]) -> bool:
    """True when all denoisers are `UNetDenoiser`s of one network and model sampling with stackable conds."""
    if not denoisers or not all(isinstance(d, UNetDenoiser) for d in denoisers):
        return False
    first = denoisers[0]
    conds = [c for d in denoisers for c in d.conditionings()]
    same_kind = all((c is None) == (conds[0] is None) for c in conds)
    same_shape = same_kind and (conds[0] is None or all(c.shape[1:] == conds[0].shape[1:] for c in conds))
    return all(d.unet is first.unet and d.model_sampling is first.model_sampling for d in denoisers) and same_shape


class JointDenoiser:
    """Several denoisers evaluated at the same `(x, sigma)`: one batched forward when `shares_one_forward`, with
    identical conditionings (typically the shared negative prompt) evaluated once. The plan (which conditionings,
    which output feeds which denoiser) is made once, not at every model call."""

    def __init__(self, denoisers: Sequence[object]) -> None:
        self.denoisers = list(denoisers)
        self.shared = shares_one_forward(self.denoisers)
        self.unique: list[Tensor | None] = []
        self.slots: list[list[int]] = []
        if self.shared:
            for d in self.denoisers:
                self.slots.append([self._slot(cond) for cond in d.conditionings()])

    def _slot(self, cond: Tensor | None) -> int:
        for k, u in enumerate(self.unique):
            if u is cond or (u is not None and cond is not None and u.shape == cond.shape and torch.equal(u, cond)):
                return k
        self.unique.append(cond)
        return len(self.unique) - 1

    def __call__(self, x: Tensor, sigma: Tensor) -> list[Tensor]:
        if not self.shared:
            return [d(x, sigma) for d in self.denoisers]
        first = self.denoisers[0]
        outputs = run_unet(first.unet, first.model_sampling, x, sigma, self.unique)
        return [d.combine([outputs[k] for k in ks]) for d, ks in zip(self.denoisers, self.slots)]


def denoise_together(denoisers: Sequence[object], x: Tensor, sigma: Tensor) -> list[Tensor]:
    """Each denoiser's x0 at the same `(x, sigma)` (one call of a `JointDenoiser`)."""
    return JointDenoiser(denoisers)(x, sigma)
