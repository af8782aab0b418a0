"""Tiny prompt encoder: "<color> <pattern>" -> two learned word embeddings used as encoder_hidden_states."""
from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..world.prompts import COLORS, PATTERNS, split_prompt


class PromptEncoder(ModelMixin, ConfigMixin):
    """embeddings[b] = LayerNorm([color_table[c_b] + pos_0, pattern_table[p_b] + pos_1]) -> [B, 2, dim].

    Index 0 of each table is the "no word" token, so "" (all slots empty) is the unconditional
    prompt for classifier-free guidance and "red" alone conditions on the color only.
    """

    @register_to_config
    def __init__(self, colors: list[str] = list(COLORS), patterns: list[str] = list(PATTERNS), dim: int = 64):
        super().__init__()
        self.color_table = nn.Embedding(len(colors) + 1, dim)
        self.pattern_table = nn.Embedding(len(patterns) + 1, dim)
        self.position = nn.Parameter(torch.zeros(2, dim))
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.color_table.weight, std=1.0)
        nn.init.normal_(self.pattern_table.weight, std=1.0)

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> LongTensor[B, 2] of (color index + 1, pattern index + 1), 0 for a missing word."""
        colors, patterns = list(self.config.colors), list(self.config.patterns)
        rows = []
        for prompt in prompts:
            color, pattern = split_prompt(prompt, colors, patterns, allow_partial=True)
            rows.append([colors.index(color) + 1 if color else 0, patterns.index(pattern) + 1 if pattern else 0])
        return torch.tensor(rows, dtype=torch.long, device=self.device).view(len(prompts), 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """LongTensor[B, 2] -> Tensor[B, 2, dim]."""
        words = torch.stack([self.color_table(tokens[:, 0]), self.pattern_table(tokens[:, 1])], dim=1)
        return self.norm(words + self.position)

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> encoder_hidden_states Tensor[B, 2, dim]."""
        return self(self.tokenize(prompts))
