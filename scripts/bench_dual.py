"""Wall time of the dual-sampler modes against one single-sampler run with the same steps, in one run.

    python scripts/bench_dual.py [--steps 20] [--repeats 3] [--sampler euler]

Targets on the 2-core CPU: seed <= 2.1x single; fused <= 0.95x seed.
"""

from __future__ import annotations

import argparse

import torch

from bench_common import ForwardCounter, best_time, denoiser, small_unet
from dualsampler.dual import MODES, two_advanced_samplers_for_mask
from dualsampler.masks import rectangle_mask
from dualsampler.sampling import KSampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared 2-core CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unet = small_unet()
    base = KSampler(denoiser(unet, 1), args.sampler, "karras")
    inside = KSampler(denoiser(unet, 2), args.sampler, "karras", base.model_sampling)
    inside.denoiser.model_sampling = base.denoiser.model_sampling
    latent = torch.zeros(1, 4, 32, 32)
    mask = rectangle_mask(32, 32, 0.25, 0.25, 0.75, 0.75)
    runs = {"single": lambda: base.sample(latent, 0, args.steps)}
    for mode in MODES:
        runs[mode] = lambda mode=mode: two_advanced_samplers_for_mask(0, args.steps, 1.0, latent, base, inside, mask, 4, mode)
    counter = ForwardCounter(unet)
    times, forwards = {}, {}
    for name, run in runs.items():
        counter.count = 0
        run()
        forwards[name] = counter.count
        times[name] = best_time(run, args.repeats)
    print(f"sampler={args.sampler} steps={args.steps} latent=1x4x32x32 threads={torch.get_num_threads()}")
    print(f"{'run':<10}{'forwards':>9}{'time s':>9}{'x single':>10}{'x seed':>8}")
    for name in runs:
        print(f"{name:<10}{forwards[name]:>9}{times[name]:>9.3f}{times[name] / times['single']:>10.2f}"
              f"{times[name] / times['seed']:>8.2f}")


if __name__ == "__main__":
    main()
