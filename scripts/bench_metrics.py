"""Time every metric on 256 images of 128x128 on the CPU (issue target: compute_metrics <= 10 s in total).

    python scripts/bench_metrics.py [--images 256] [--size 128] [--threads 1]

Each metric is timed alone (its own judge passes), then compute_metrics with all keys, which shares
one judge pass per batch between FID/KID and between the two perceptual metrics. The trained judge
is used when its weights are present, otherwise a random one of the same architecture (same cost).
One torch thread by default: on the shared 2-core machine, where other processes hold the cores,
two OpenMP threads wait on each other at every operation and run about 5x slower than one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import torch

from dualsampler.masks import ellipse_mask, feather_mask
from dualsampler.metrics import (JudgePerceptualDistance, RegionAccuracy, SeamColorJump, SeamGradientRatio,
                                 SeamPerceptual, compute_metrics, frechet_distance, kernel_distance)
from dualsampler.metrics.features import FrozenJudge
from dualsampler.models import WEIGHTS_DIR, Judge
from dualsampler.world import PROMPTS, render_texture

sys.modules.setdefault("torchvision", None)  # as on the CPU machines: perceptual/judge, not lpips


def make_batch(count: int, size: int) -> dict:
    """Composites of world textures in ellipse masks: feathered images, hard references, real textures."""
    generator = torch.Generator().manual_seed(0)
    textures = torch.stack([render_texture(p, size, size, seed=i) for i, p in enumerate(PROMPTS)])
    base = torch.randint(len(PROMPTS), (count,), generator=generator)
    inside = (base + torch.randint(1, len(PROMPTS), (count,), generator=generator)) % len(PROMPTS)
    radii = 0.15 + 0.25 * torch.rand(count, generator=generator)
    masks = torch.cat([ellipse_mask(size, size, rx=float(r), ry=float(r)) for r in radii])
    soft = feather_mask(masks, 4)
    return {"images": textures[base] * (1 - soft) + textures[inside] * soft,
            "references": textures[base] * (1 - masks) + textures[inside] * masks,
            "masks": masks, "real_images": textures[torch.randint(len(PROMPTS), (count,), generator=generator)],
            "base_prompts": [PROMPTS[i] for i in base], "mask_prompts": [PROMPTS[i] for i in inside]}


def alone(batch: dict, judge: Judge, batch_size: int) -> dict[str, Callable[[], object]]:
    """One closure per metric key that computes that metric by itself over the batch."""
    chunks = [slice(s, s + batch_size) for s in range(0, len(batch["images"]), batch_size)]
    x, m, r, real = batch["images"], batch["masks"], batch["references"], batch["real_images"]

    def run(metric, update, real_too: bool = False):
        if real_too:
            for s in chunks:
                metric.update(real[s], real=True)
        for s in chunks:
            update(metric, s)
        return metric.compute()

    return {
        "seam/gradient_ratio": lambda: run(SeamGradientRatio(4), lambda mt, s: mt.update(x[s], m[s])),
        "seam/color_jump": lambda: run(SeamColorJump(4), lambda mt, s: mt.update(x[s], m[s])),
        "perceptual/judge": lambda: run(JudgePerceptualDistance(judge), lambda mt, s: mt.update(x[s], r[s])),
        "seam/perceptual": lambda: run(SeamPerceptual(judge, 4), lambda mt, s: mt.update(x[s], m[s], r[s])),
        "region_accuracy/inside": lambda: run(RegionAccuracy(judge, "inside", 4),
                                              lambda mt, s: mt.update(x[s], m[s], batch["mask_prompts"][s])),
        "region_accuracy/outside": lambda: run(RegionAccuracy(judge, "outside", 4),
                                               lambda mt, s: mt.update(x[s], m[s], batch["base_prompts"][s])),
        "fid/judge": lambda: run(frechet_distance("judge", judge), lambda mt, s: mt.update(x[s], real=False), True),
        "kid/judge": lambda: run(kernel_distance("judge", judge), lambda mt, s: mt.update(x[s], real=False), True),
    }


def seconds(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, value) of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    trained = (WEIGHTS_DIR / "judge").is_dir()
    judge = Judge.from_pretrained(WEIGHTS_DIR / "judge") if trained else Judge()
    batch = make_batch(args.images, args.size)
    print(f"{args.images} images {args.size}x{args.size}, {'trained' if trained else 'random'} judge, "
          f"threads={torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    def everything(count: int) -> dict[str, float]:
        return compute_metrics(batch["images"][:count], batch["masks"][:count], batch["base_prompts"][:count],
                               batch["mask_prompts"][:count], references=batch["references"][:count], judge=judge,
                               real_images=batch["real_images"][:count], batch_size=args.batch_size)

    everything(4)  # warm-up: first-call costs of the convolution kernels
    print(f"{'metric':<26}{'alone s':>9}{'CPU s':>8}{'value':>12}")
    wall_sum = cpu_sum = 0.0
    results = everything(args.images)
    for key, fn in alone(batch, judge, args.batch_size).items():
        wall, cpu, _ = seconds(fn)
        wall_sum, cpu_sum = wall_sum + wall, cpu_sum + cpu
        print(f"{key:<26}{wall:>9.2f}{cpu:>8.2f}{results[key]:>12.4g}")
    print(f"{'sum of the above':<26}{wall_sum:>9.2f}{cpu_sum:>8.2f}")
    frozen_judge = FrozenJudge(judge)
    wall, cpu, _ = seconds(lambda: [frozen_judge.feature_maps(c) for c in batch["images"].split(args.batch_size)])
    print(f"{'(one judge pass, for scale)':<26}{wall:>9.2f}{cpu:>8.2f}")
    wall, cpu, _ = seconds(lambda: everything(args.images))
    print(f"{'compute_metrics (all)':<26}{wall:>9.2f}{cpu:>8.2f}   target <= 10 s wall")


if __name__ == "__main__":
    main()
