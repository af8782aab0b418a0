"""Seeded Gaussian noise from CPU generators, so a seed fixes the image on every device."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

Seed = int | Sequence[int]


def check_seed(seed: Seed, batch: int) -> None:
    """A seed is an int, or one int per batch element."""
    if isinstance(seed, bool):
        raise ValueError(f"seed must be an int or a list of {batch} ints, got {seed!r}")
    if isinstance(seed, int):
        return
    seeds = list(seed)
    if len(seeds) != batch or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seed must be an int or a list of {batch} ints (one per batch element), got {seed!r}")


class NoiseStream:
    """Draws N(0, 1) tensors shaped like a batch, from `torch.Generator('cpu').manual_seed(seed)`.

    An int seed uses one generator for the whole batch (`torch.randn(shape)`, bit-compatible with upstream);
    a list of seeds uses one generator per element, so element b gets exactly the noise it would get alone.
    """

    def __init__(self, seed: Seed) -> None:
        if isinstance(seed, int):
            self.generators = [torch.Generator("cpu").manual_seed(seed)]
            self.per_element = False
        else:
            self.generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seed]
            self.per_element = True

    def __call__(self, like: Tensor) -> Tensor:
        dtype = like.dtype if like.dtype in (torch.float32, torch.float64) else torch.float32
        if not self.per_element:
            out = torch.randn(like.shape, generator=self.generators[0], dtype=dtype)
        else:
            out = torch.stack([torch.randn(like.shape[1:], generator=g, dtype=dtype) for g in self.generators])
        return out.to(device=like.device, dtype=like.dtype)
