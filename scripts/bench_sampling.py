"""Per-step cost of the sampling loop against the bare UNet forward (issue: target ratio <= 1.05 on CPU).

    python scripts/bench_sampling.py [--steps 20] [--repeats 5] [--samplers all|name,name,...] [--threads 1]

Every name in SAMPLERS by default; the cfg_pp samplers get their unconditional prediction from the same
UNetDenoiser (`with_uncond`, one batched forward of cond + uncond like every other sampler here).

ratio = loop time / time of the same number of bare forwards of the same batch, both timed as back-to-back
runs (best of `--repeats`), so that a single lucky forward does not set the reference. Times are this process's
CPU time (`--clock cpu`, the default: other jobs on a shared machine do not count) or wall time (`--clock wall`);
loop and bare runs alternate (ABBA...), so a load change reaches both sides alike.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch

from bench_common import denoiser, small_unet
from dualsampler.sampling import SAMPLERS, KSampler


def count_forwards(module: torch.nn.Module, fn) -> int:
    """Forwards of `module` during `fn()`, counted by a hook removed afterwards (so timed runs carry no hooks)."""
    count = 0

    def hook(*_: object) -> None:
        nonlocal count
        count += 1

    handle = module.register_forward_hook(hook)
    try:
        fn()
    finally:
        handle.remove()
    return count


def interleaved_best(
    a: Callable[[], object], b: Callable[[], object], repeats: int, clock: Callable[[], float] = time.process_time
) -> tuple[float, float]:
    """Minimum times of `a` and `b` on `clock` over `repeats` rounds in alternating order (after one warm-up each)."""
    a(), b()
    best = {a: float("inf"), b: float("inf")}
    for round_ in range(repeats):
        for fn in ((a, b) if round_ % 2 == 0 else (b, a)):
            start = clock()
            fn()
            best[fn] = min(best[fn], clock() - start)
    return best[a], best[b]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samplers", default="all", help="comma-separated names, or 'all' (every name in SAMPLERS)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared 2-core CPU)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unet = small_unet()
    den = denoiser(unet, 1)
    latent = torch.zeros(1, 4, 32, 32)
    x_in, t_in = torch.randn(2, 4, 32, 32), torch.full((2,), 500.0)
    hidden = torch.cat([den.cond, den.uncond])

    @torch.no_grad()
    def bare_forwards(count: int) -> None:
        for _ in range(count):
            unet(x_in, t_in, encoder_hidden_states=hidden).sample

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"bare forward: batch 2 (cond + uncond) x 4x32x32, threads={torch.get_num_threads()}, {args.clock} time")
    print(f"{'sampler':<32}{'evals':>6}{'loop s':>9}{'bare fwds s':>13}{'ratio':>8}")
    names = SAMPLERS if args.samplers == "all" else args.samplers.split(",")
    for name in names:
        ks = KSampler(den, name, "karras")
        evals = count_forwards(unet, lambda: ks.sample(latent, 0, args.steps))
        loop, bare = interleaved_best(lambda: ks.sample(latent, 0, args.steps), lambda: bare_forwards(evals),
                                      args.repeats, clock)
        print(f"{name:<32}{evals:>6}{loop:>9.3f}{bare:>13.3f}{loop / bare:>8.3f}")


if __name__ == "__main__":
    main()
