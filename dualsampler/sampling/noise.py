"""Seeded noise, so a seed fixes the image on every device and for every latent dtype.

Gaussian draws come from CPU generators; the SDE samplers' Brownian increments from a seeded Brownian tree
(`brownian.py`). Both are drawn in float32 whatever the latent's dtype and then cast, so a float64 latent
gets the float32 latent's noise.
"""

from __future__ import annotations

from numbers import Integral
from typing import Sequence

import torch
from torch import Tensor

from .brownian import BrownianTreeNoise, noise_interval

Seed = int | Sequence[int]
SEED_LIMIT = 2**64


def is_seed(value: object) -> bool:
    """An integer (Python's or numpy's, not a bool) in [0, 2**64)."""
    return isinstance(value, Integral) and not isinstance(value, bool) and 0 <= value < SEED_LIMIT


def check_seed(seed: Seed, batch: int) -> Seed:
    """A seed is an integer in [0, 2**64) (numpy integers included), or a sequence of `batch` such integers (one
    per batch element, a 1-D numpy array or tensor included) -> the seed as a Python int or list of ints."""
    if hasattr(seed, "tolist") and getattr(seed, "ndim", 0) == 1:  # a numpy array or tensor of seeds
        seed = seed.tolist()
    if isinstance(seed, bool) or not isinstance(seed, (Integral, Sequence)) or isinstance(seed, (str, bytes)):
        raise ValueError(f"seed must be an int in [0, 2**64) or a list of {batch} such ints, got {seed!r}")
    seeds = [seed] if isinstance(seed, Integral) else list(seed)
    if not isinstance(seed, Integral) and len(seeds) != batch:
        raise ValueError(f"seed must be an int or a list of {batch} ints (one per batch element), got {seed!r}")
    bad = [s for s in seeds if not is_seed(s)]
    if bad:
        raise ValueError(f"seed must be an int in [0, 2**64) (or a list of {batch} such ints), got {bad[0]!r}")
    return int(seed) if isinstance(seed, Integral) else [int(s) for s in seeds]


class NoiseStream:
    """Draws N(0, 1) tensors shaped like a batch, from `torch.Generator('cpu').manual_seed(seed)`, in float32.

    An int seed uses one generator for the whole batch (`torch.randn(shape)`, bit-compatible with upstream);
    a list of seeds uses one generator per element, so element b gets exactly the noise it would get alone.
    `brownian(like, sigmas)` gives the same seeds' Brownian tree for the SDE samplers.
    """

    def __init__(self, seed: Seed) -> None:
        self.per_element = not isinstance(seed, int)
        self.seeds = [int(s) for s in seed] if self.per_element else [seed]
        self.generators = [torch.Generator("cpu").manual_seed(s) for s in self.seeds]

    def __call__(self, like: Tensor) -> Tensor:
        if not self.per_element:
            out = torch.randn(like.shape, generator=self.generators[0], dtype=torch.float32)
        else:
            out = torch.stack([torch.randn(like.shape[1:], generator=g, dtype=torch.float32) for g in self.generators])
        return out.to(device=like.device, dtype=like.dtype)

    def brownian(self, like: Tensor, sigmas: Sequence[float], *, on_latent_device: bool = False) -> BrownianTreeNoise:
        """The seeds' Brownian tree over the run's `[sigma_min, sigma_max]`, on the CPU (upstream's plain SDE
        samplers) or on `like`'s device (their `_gpu` variants)."""
        sigma_min, sigma_max = noise_interval(sigmas)
        device = like.device if on_latent_device else torch.device("cpu")
        return BrownianTreeNoise(like, sigma_min, sigma_max, self.seeds, self.per_element, device)
