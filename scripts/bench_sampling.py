"""Per-step cost of the sampling loop against the bare UNet forward (issue: target ratio <= 1.05 on CPU).

    python scripts/bench_sampling.py [--steps 20] [--repeats 5]

ratio = loop time / (model evaluations x time of one bare forward of the same batch).
"""

from __future__ import annotations

import argparse

import torch

from bench_common import ForwardCounter, best_time, denoiser, small_unet
from dualsampler.sampling import KSampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samplers", default="euler,euler_ancestral,heun,dpmpp_2m,dpmpp_sde,dpmpp_3m_sde,lms,uni_pc")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared 2-core CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unet = small_unet()
    den = denoiser(unet, 1)
    latent = torch.zeros(1, 4, 32, 32)
    x_in, t_in = torch.randn(2, 4, 32, 32), torch.full((2,), 500.0)
    hidden = torch.cat([den.cond, den.uncond])
    with torch.no_grad():
        forward = best_time(lambda: unet(x_in, t_in, encoder_hidden_states=hidden).sample, args.repeats * 4)
    print(f"bare forward (batch 2 = cond+uncond, 4x32x32): {forward * 1e3:.2f} ms  threads={torch.get_num_threads()}")
    print(f"{'sampler':<18}{'evals':>6}{'loop s':>9}{'evals x fwd s':>15}{'ratio':>8}")
    for name in args.samplers.split(","):
        ks = KSampler(den, name, "karras")
        counter = ForwardCounter(unet)
        ks.sample(latent, 0, args.steps)
        evals = counter.count
        loop = best_time(lambda: ks.sample(latent, 0, args.steps), args.repeats)
        print(f"{name:<18}{evals:>6}{loop:>9.3f}{evals * forward:>15.3f}{loop / (evals * forward):>8.3f}")


if __name__ == "__main__":
    main()
