"""Judge: a small CNN classifying color and pattern; its penultimate layer is the FID/KID feature space."""
from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..world.prompts import COLORS, PATTERNS


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
        nn.GroupNorm(8, c_out),
        nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.GroupNorm(8, c_out),
        nn.SiLU(),
    )


class Judge(ModelMixin, ConfigMixin):
    """Strided conv stages -> global average pool -> Linear+SiLU features -> (color, pattern) logits.

    Images are [B, 3, H, W] in [0, 1] with H, W >= 32; global pooling makes it size-agnostic.
    """

    @register_to_config
    def __init__(
        self,
        colors: list[str] = list(COLORS),
        patterns: list[str] = list(PATTERNS),
        channels: tuple[int, ...] = (32, 48, 64, 96),
        feature_dim: int = 128,
    ):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels[0], 3, padding=1), nn.SiLU())
        widths = [channels[0], *channels]
        self.stages = nn.ModuleList(_stage(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.embed = nn.Sequential(nn.Linear(channels[-1] * 2, feature_dim), nn.SiLU())
        self.color_head = nn.Linear(feature_dim, len(colors))
        self.pattern_head = nn.Linear(feature_dim, len(patterns))

    def _check(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 3 or min(images.shape[-2:]) < 32:
            raise ValueError(f"images must be [B, 3, H, W] with H, W >= 32, got {tuple(images.shape)}")

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Intermediate activations, one [B, C, h, w] per stage (perceptual distance layers)."""
        self._check(images)
        x = self.stem(images.to(self.dtype) * 2 - 1)
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features Tensor[B, feature_dim] = SiLU(W [mean(h); std(h)] + b) of the last stage h."""
        last = self.feature_maps(images)[-1].flatten(2)
        return self.embed(torch.cat([last.mean(-1), last.std(-1)], dim=1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (color_logits [B, len(colors)], pattern_logits [B, len(patterns)])."""
        feats = self.features(images)
        return self.color_head(feats), self.pattern_head(feats)

    @torch.no_grad()
    def predict_prompts(self, images: torch.Tensor) -> list[str]:
        """Most likely "<color> <pattern>" for each image."""
        color_logits, pattern_logits = self(images)
        colors, patterns = self.config.colors, self.config.patterns
        return [f"{colors[c]} {patterns[p]}" for c, p in zip(color_logits.argmax(1).tolist(), pattern_logits.argmax(1).tolist())]
