"""Denoisers over diffusers UNets: conditioning and classifier-free guidance in one batched forward (SPEC §1, §9).

The UNet runs in its own dtype (float16/bfloat16 on a GPU); everything around it (input scaling, x0, CFG) is
float32: the denoiser casts at its boundary, so samplers always do their arithmetic in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .model_sampling import ModelSampling
from ..validation import check_bounded


@dataclass(frozen=True, eq=False)
class Conditioning:
    """A prompt as the UNet sees it: `hidden` = encoder_hidden_states [B|1, L, D], and for SDXL the added
    conditioning: `text_embeds` (pooled text embeddings [B|1, P]) and `time_ids` [B|1, 6] (original size, crop
    corner, target size). `time_ids=None` with `text_embeds` set: computed at each call from the latent's size,
    `(H*f, W*f, 0, 0, H*f, W*f)` with f the VAE factor (the diffusers pipeline's default for that image size)."""

    hidden: Tensor
    text_embeds: Tensor | None = None
    time_ids: Tensor | None = None

    def same_as(self, other: Conditioning) -> bool:
        """Equal tensors field by field (a repeated negative prompt is evaluated once)."""
        return all(_same_tensor(a, b) for a, b in
                   ((self.hidden, other.hidden), (self.text_embeds, other.text_embeds), (self.time_ids, other.time_ids)))

    def signature(self) -> tuple:
        """What must agree for conditionings to be stacked into one batch: shapes past the batch, added fields."""
        return (tuple(self.hidden.shape[1:]), None if self.text_embeds is None else tuple(self.text_embeds.shape[1:]),
                None if self.time_ids is None else tuple(self.time_ids.shape[1:]))


Cond = Conditioning | Tensor | None


def _same_tensor(a: Tensor | None, b: Tensor | None) -> bool:
    if a is None or b is None:
        return a is b
    return a is b or (a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b.to(a.device)))


def same_cond(a: Cond, b: Cond) -> bool:
    """True when two conditionings are the same value."""
    if isinstance(a, Conditioning) and isinstance(b, Conditioning):
        return a.same_as(b)
    if isinstance(a, Conditioning) or isinstance(b, Conditioning):
        return False
    return _same_tensor(a, b)


def _signature(cond: Cond) -> tuple:
    if cond is None:
        return ("none",)
    if isinstance(cond, Conditioning):
        return ("conditioning", cond.signature())
    return ("hidden" if cond.is_floating_point() else "labels", tuple(cond.shape[1:]))


def expand_cond(cond: Tensor, batch: int) -> Tensor:
    """A conditioning of batch 1 or `batch`, repeated to `batch`."""
    if cond.shape[0] not in (1, batch):
        raise ValueError(f"conditioning batch must be 1 or {batch}, got {cond.shape[0]}")
    return cond.expand(batch, *cond.shape[1:]) if cond.shape[0] == 1 else cond


def size_time_ids(x: Tensor, vae_scale_factor: int) -> Tensor:
    """SDXL's time ids for a latent `x` [B, C, h, w]: `(h*f, w*f, 0, 0, h*f, w*f)` per row, float32."""
    height, width = x.shape[-2] * vae_scale_factor, x.shape[-1] * vae_scale_factor
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32, device=x.device)


def unet_inputs(conds: Sequence[Cond], x: Tensor, dtype: torch.dtype, vae_scale_factor: int) -> dict[str, Any]:
    """Keyword arguments of the UNet call for `conds` stacked in order, each repeated to x's batch."""
    first, batch, device = conds[0], x.shape[0], x.device
    if first is None:
        return {}
    if isinstance(first, Conditioning):
        hidden = torch.cat([expand_cond(c.hidden.to(device), batch) for c in conds]).to(dtype)
        inputs: dict[str, Any] = {"encoder_hidden_states": hidden}
        if first.text_embeds is not None:
            pooled = torch.cat([expand_cond(c.text_embeds.to(device), batch) for c in conds]).to(dtype)
            ids = [c.time_ids.to(device) if c.time_ids is not None else size_time_ids(x, vae_scale_factor) for c in conds]
            time_ids = torch.cat([expand_cond(t, batch) for t in ids]).to(dtype)
            inputs["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
        return inputs
    if first.is_floating_point():
        return {"encoder_hidden_states": torch.cat([expand_cond(c, batch) for c in conds]).to(device=device, dtype=dtype)}
    return {"class_labels": torch.cat([expand_cond(c, batch) for c in conds]).to(device)}


@torch.no_grad()
def run_unet(
    unet: nn.Module, model_sampling: ModelSampling, x: Tensor, sigma: Tensor, conds: Sequence[Cond],
    vae_scale_factor: int = 8,
) -> list[Tensor]:
    """float32 x0 predictions of `x` under each conditioning, all in ONE forward of batch `len(conds) * B`:
    the UNet sees `x * c_in(sigma)` cast to its own dtype at `t = sigma_to_t(sigma)`; its output is cast back
    to float32 before `model_sampling.denoised`."""
    x, sigma = x.float(), torch.as_tensor(sigma, device=x.device).float()
    dtype = next(unet.parameters()).dtype
    scaled = (x * model_sampling.c_in(sigma).reshape(-1, 1, 1, 1)).to(dtype)
    timesteps = model_sampling.sigma_to_t(sigma).to(x.device)
    out = unet(scaled.repeat(len(conds), 1, 1, 1), timesteps.repeat(len(conds)),
               **unet_inputs(conds, x, dtype, vae_scale_factor)).sample.float()
    return [model_sampling.denoised(x, sigma, chunk) for chunk in out.chunk(len(conds))]


class UNetDenoiser:
    """`D(x, sigma)` for a diffusers `UNet2DConditionModel` (cond = encoder_hidden_states, or a `Conditioning`
    with SDXL's added conditioning) or `UNet2DModel` (cond = optional class labels). The network sees
    `x / sqrt(sigma^2 + 1)` at `t = sigma_to_t(sigma)`; with `uncond` and `cfg != 1` the result is
    `uncond + (cond - uncond) * cfg`, both in one forward. `cfg` may be changed between calls (hooks do)."""

    def __init__(
        self,
        unet: nn.Module,
        model_sampling: ModelSampling | None = None,
        cond: Cond = None,
        uncond: Cond = None,
        cfg: float = 1.0,
        vae_scale_factor: int = 8,
    ) -> None:
        self.unet = unet
        self.model_sampling = model_sampling or ModelSampling()
        self.cond = cond
        self.uncond = uncond
        self.cfg = check_bounded(cfg, "cfg")  # NaN or inf guidance would sample NaN images
        self.vae_scale_factor = vae_scale_factor

    def conditionings(self, with_uncond: bool = False) -> list[Cond]:
        """The conditionings one call evaluates: `[cond]`, or `[cond, uncond]` when guidance is on (or when the
        unconditional prediction is asked for, whatever cfg)."""
        if self.uncond is None or (self.cfg == 1 and not with_uncond):
            return [self.cond]
        return [self.cond, self.uncond]

    def combine(self, outputs: Sequence[Tensor]) -> Tensor:
        """x0 from the per-conditioning x0 predictions: CFG `uncond + (cond - uncond) * cfg`."""
        if len(outputs) == 1 or self.cfg == 1:
            return outputs[0]
        cond, uncond = outputs
        return uncond + (cond - uncond) * self.cfg

    def split(self, outputs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """(guided x0, unconditional x0) from the outputs of `conditionings(with_uncond=True)`; without an
        unconditional prompt both are the conditional prediction."""
        return self.combine(outputs), outputs[-1]

    def run(self, x: Tensor, sigma: Tensor, conds: Sequence[Cond]) -> list[Tensor]:
        return run_unet(self.unet, self.model_sampling, x, sigma, conds, self.vae_scale_factor)

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.combine(self.run(x, sigma, self.conditionings()))

    def with_uncond(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """(x0 guided, x0 unconditional) from the same one batched forward (SPEC §9; the cfg_pp samplers)."""
        return self.split(self.run(x, sigma, self.conditionings(with_uncond=True)))


def shares_one_forward(denoisers: Sequence[object]) -> bool:
    """True when all denoisers are `UNetDenoiser`s of one network with equal model sampling (compared by value)
    and VAE factor, and conditionings that stack into one batch (same kind and shapes past the batch)."""
    if not denoisers or not all(isinstance(d, UNetDenoiser) for d in denoisers):
        return False
    first = denoisers[0]
    same_model = all(
        d.unet is first.unet and d.model_sampling == first.model_sampling and d.vae_scale_factor == first.vae_scale_factor
        for d in denoisers
    )
    signatures = {_signature(c) for d in denoisers for c in d.conditionings(with_uncond=True)}
    return same_model and len(signatures) == 1


class JointDenoiser:
    """Several denoisers evaluated at the same `(x, sigma)`: one batched forward when `shares_one_forward`, with
    equal conditionings (typically the shared negative prompt) evaluated once. The plan (which conditionings,
    which output feeds which denoiser) is remade only when a member's conditionings change (a hook setting cfg)."""

    def __init__(self, denoisers: Sequence[object]) -> None:
        self.denoisers = list(denoisers)
        self.shared = shares_one_forward(self.denoisers)
        self._plans: dict[tuple, tuple[list[Cond], list[list[int]]]] = {}

    def plan(self, with_uncond: bool = False) -> tuple[list[Cond], list[list[int]]]:
        """(unique conditionings, for each denoiser the indices of its conditionings among them)."""
        members = [d.conditionings(with_uncond) for d in self.denoisers]
        key = tuple(id(c) for conds in members for c in conds) + (len(members), with_uncond)
        if key not in self._plans:
            unique: list[Cond] = []
            slots = []
            for conds in members:
                row = []
                for cond in conds:
                    k = next((k for k, u in enumerate(unique) if same_cond(u, cond)), None)
                    if k is None:
                        unique.append(cond)
                        k = len(unique) - 1
                    row.append(k)
                slots.append(row)
            self._plans = {key: (unique, slots)}
        return self._plans[key]

    def _outputs(self, x: Tensor, sigma: Tensor, with_uncond: bool) -> list[list[Tensor]]:
        unique, slots = self.plan(with_uncond)
        outputs = self.denoisers[0].run(x, sigma, unique)
        return [[outputs[k] for k in row] for row in slots]

    def __call__(self, x: Tensor, sigma: Tensor) -> list[Tensor]:
        if not self.shared:
            return [d(x, sigma) for d in self.denoisers]
        return [d.combine(out) for d, out in zip(self.denoisers, self._outputs(x, sigma, False))]

    def with_uncond(self, x: Tensor, sigma: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Each member's (x0 guided, x0 unconditional), from one forward when shared. A member without
        `with_uncond` (not a UNetDenoiser) gives its x0 twice."""
        if not self.shared:
            return [d.with_uncond(x, sigma) if callable(getattr(d, "with_uncond", None)) else (d(x, sigma),) * 2
                    for d in self.denoisers]
        return [d.split(out) for d, out in zip(self.denoisers, self._outputs(x, sigma, True))]


def denoise_together(denoisers: Sequence[object], x: Tensor, sigma: Tensor) -> list[Tensor]:
    """Each denoiser's x0 at the same `(x, sigma)` (one call of a `JointDenoiser`)."""
    return JointDenoiser(denoisers)(x, sigma)
