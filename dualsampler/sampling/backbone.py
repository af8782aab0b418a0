"""The network behind a denoiser (SPEC §9): a `Backbone` owns conditioning batching and the network call, so one
guided denoiser (`ModelDenoiser`) and one joint forward serve UNets and transformers alike.

`run_backbone` is the one x0 prediction: the network sees `x * c_in(sigma)` at `t = sigma_to_t(sigma)` in its own
dtype; its output comes back float32 and `model_sampling.denoised` turns it into x0, so samplers always do their
arithmetic in float32.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from .conditioning import Cond, Conditioning, stack_conditionings, stack_rows
from .model_sampling import ModelSampling

Adapters = tuple[tuple[str, float], ...]


class Backbone(Protocol):
    """`key`: equal keys may share one batch (same network, same active adapters); `dtype`: the network's;
    `latent_channels`: the channels of the latents it denoises.
    `stack(conds, x)`: one conditioning of `len(conds) * x.shape[0]` rows, each repeated to x's batch, in order.
    `backbone(x, t, cond)`: the float32 network output for `x` [N, C, h, w] (already scaled by c_in) at timesteps
    `t` [N] under `cond` stacked to N rows (packing, ids and casts happen inside)."""

    key: Hashable
    dtype: torch.dtype
    latent_channels: int

    def stack(self, conds: Sequence[Cond], x: Tensor) -> Cond: ...

    def __call__(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor: ...


def network_dtype(network: nn.Module) -> torch.dtype:
    """The dtype of a network's first parameter."""
    return next(network.parameters()).dtype


def activate(network: nn.Module, adapters: Adapters) -> None:
    """Exactly `adapters` active on `network` when LoRAs were ever loaded into it (`models.lora`); else nothing."""
    if adapters or getattr(network, "peft_config", None):
        from ..models.lora import activate_adapters

        activate_adapters(network, adapters)


def size_time_ids(x: Tensor, vae_scale_factor: int) -> Tensor:
    """SDXL's time ids for a latent `x` [B, C, h, w]: `(h*f, w*f, 0, 0, h*f, w*f)` per row, float32."""
    height, width = x.shape[-2] * vae_scale_factor, x.shape[-1] * vae_scale_factor
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32, device=x.device)


class UNetBackbone:
    """A diffusers `UNet2DConditionModel` (cond = encoder_hidden_states, or a `Conditioning` with SDXL's added
    conditioning) or `UNet2DModel` (cond = optional class labels), with `adapters` the LoRAs active in its forward."""

    def __init__(self, unet: nn.Module, vae_scale_factor: int = 8, adapters: Adapters = ()) -> None:
        self.unet = unet
        self.vae_scale_factor = vae_scale_factor
        self.adapters = tuple(adapters)
        self.key = (id(unet), self.adapters)

    @property
    def dtype(self) -> torch.dtype:
        return network_dtype(self.unet)

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    def stack(self, conds: Sequence[Cond], x: Tensor) -> Cond:
        first, batch, device = conds[0], x.shape[0], x.device
        if first is None:
            return None
        if not isinstance(first, Conditioning):
            return stack_rows(list(conds), batch, device)
        if first.text_embeds is not None:
            conds = [c if c.time_ids is not None else replace(c, time_ids=size_time_ids(x, self.vae_scale_factor))
                     for c in conds]
        return stack_conditionings(list(conds), batch, device)

    def inputs(self, cond: Cond) -> dict[str, Any]:
        """Keyword arguments of the UNet call for a stacked conditioning, in the UNet's dtype."""
        if cond is None:
            return {}
        if isinstance(cond, Conditioning):
            inputs: dict[str, Any] = {"encoder_hidden_states": cond.hidden.to(self.dtype)}
            if cond.text_embeds is not None:
                inputs["added_cond_kwargs"] = {"text_embeds": cond.text_embeds.to(self.dtype),
                                               "time_ids": cond.time_ids.to(self.dtype)}
            return inputs
        if cond.is_floating_point():
            return {"encoder_hidden_states": cond.to(self.dtype)}
        return {"class_labels": cond}

    def __call__(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        activate(self.unet, self.adapters)
        return self.unet(x.to(self.dtype), t, **self.inputs(cond)).sample.float()


def sigma_rows(sigma: Tensor | float, batch: int, device: torch.device) -> Tensor:
    """sigma as a float32 row per batch element [batch] (a scalar or one-element sigma repeated)."""
    sigma = torch.as_tensor(sigma, device=device).float().reshape(-1)
    return sigma.expand(batch) if sigma.numel() == 1 else sigma


@torch.no_grad()
def denoise_stacked(backbone: Backbone, model_sampling: ModelSampling, x: Tensor, sigma: Tensor, cond: Cond) -> Tensor:
    """float32 x0 of `x` [N, ...] at `sigma` [N] under `cond` already stacked to N rows: one forward."""
    x = x.float()
    scaled = x * model_sampling.c_in(sigma).reshape(-1, 1, 1, 1)
    out = backbone(scaled, model_sampling.sigma_to_t(sigma).to(x.device), cond)
    return model_sampling.denoised(x, sigma, out)


def run_backbone(backbone: Backbone, model_sampling: ModelSampling, x: Tensor, sigma: Tensor | float,
                 conds: Sequence[Cond]) -> list[Tensor]:
    """float32 x0 predictions of `x` under each conditioning, all in ONE forward of batch `len(conds) * B`."""
    rows = sigma_rows(sigma, x.shape[0], x.device)
    n = len(conds)
    x0 = denoise_stacked(backbone, model_sampling, x.repeat(n, 1, 1, 1), rows.repeat(n), backbone.stack(conds, x))
    return list(x0.chunk(n))
