"""Tiny 2x super-resolution network: bicubic upsampling plus a learned pixel-shuffle residual."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class Upscaler2x(ModelMixin, ConfigMixin):
    """out = clamp(bicubic_2x(x) + PixelShuffle_2(body(x)), 0, 1); images [B, 3, H, W] in [0, 1] -> [B, 3, 2H, 2W]."""

    @register_to_config
    def __init__(self, channels: int = 32, num_layers: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.SiLU()]
        for _ in range(num_layers - 1):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.SiLU()]
        layers += [nn.Conv2d(channels, 3 * 4, 3, padding=1), nn.PixelShuffle(2)]
        self.body = nn.Sequential(*layers)
        nn.init.zeros_(layers[-2].weight)
        nn.init.zeros_(layers[-2].bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [0, 1] -> [B, 3, 2H, 2W] in [0, 1]."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
        x = images.to(self.dtype)
        base = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        return (base + self.body(x * 2 - 1)).clamp(0, 1)
