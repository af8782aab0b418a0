"""How far a seed list's images are from the images each seed gives alone (batched-convolution rounding):
the world, `blue stripes` outside / `red dots` inside an ellipse, 4 seeds, 20 steps, 128 px, one thread.

    python scripts/measure_seed_lists.py
"""

from __future__ import annotations

import torch

from dualsampler.dual import Alternate, Fused
from dualsampler.masks import ellipse_mask
from dualsampler.models import load_model
from dualsampler.sampling import KSampler


def main() -> None:
    torch.set_num_threads(1)
    model = load_model()
    base = KSampler(model.denoiser("blue stripes", cfg=3.0), "euler")
    inside = KSampler(model.denoiser("red dots", cfg=3.0), "dpmpp_2m")
    mask = ellipse_mask(128, 128, ry=0.3, rx=0.3)
    seeds = [0, 1, 2, 3]
    for algorithm in (Alternate(4), Fused(4)):
        def run(seed: list[int]) -> torch.Tensor:
            latent = torch.zeros(len(seed), 4, 32, 32)
            return algorithm(latent, base_sampler=base, mask_sampler=inside, mask=mask, seed=seed, steps=20)

        batched = run(seeds)
        worst = max((batched[k:k + 1] - run([s])).abs().max().item() for k, s in enumerate(seeds))
        print(f"{algorithm.name}: max |batched - alone| = {worst:.2g}")


if __name__ == "__main__":
    main()
