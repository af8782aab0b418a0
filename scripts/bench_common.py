"""Shared pieces of the benchmarks: a small conditioned UNet of the real architecture, timing helpers."""

from __future__ import annotations

import time
from typing import Callable

import torch
from diffusers import UNet2DConditionModel

from dualsampler.sampling import UNetDenoiser


def small_unet(seed: int = 0) -> UNet2DConditionModel:
    """A small diffusers UNet2DConditionModel (32/64 channels, cross-attention at the first level)."""
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
    ).eval()


def denoiser(unet: UNet2DConditionModel, prompt_seed: int, cfg: float = 5.0) -> UNetDenoiser:
    g = torch.Generator().manual_seed(prompt_seed)
    return UNetDenoiser(unet, cond=torch.randn(1, 4, 32, generator=g), uncond=torch.zeros(1, 4, 32), cfg=cfg)


class ForwardCounter:
    def __init__(self, module: torch.nn.Module) -> None:
        self.count = 0
        module.register_forward_hook(lambda *_: setattr(self, "count", self.count + 1))


def best_time(fn: Callable[[], object], repeats: int = 5) -> float:
    """Minimum wall time of `repeats` calls (after one warm-up), the least noisy estimate on a shared CPU."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
