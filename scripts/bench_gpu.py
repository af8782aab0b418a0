"""Real-model cost of the dual samplers: an SD 1.5-size UNet with random weights, 512x512, fp16, CFG, on a GPU.

    python scripts/bench_gpu.py [--steps 20] [--size 512] [--dtype float16] [--device cuda] [--compile] [--json F]
    python scripts/bench_gpu.py --tiny     # the same code path on the CPU with a tiny UNet (the tests run it)

Each run (single sampler, seed = Alternate, regional, fused) is timed and divided by its floor: the time of the
same forwards (same count, same batch sizes) of the bare UNet, so the ratio is the loop's overhead. Fused is
also compared with seed. Targets: single <= 1.05x its floor, fused <= 0.6x seed. Peak memory is CUDA's
max_memory_allocated over each run (not measured on the CPU).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable

import torch
from diffusers import UNet2DConditionModel

from dualsampler.dual import two_advanced_samplers_for_mask
from dualsampler.masks import rectangle_mask
from dualsampler.models.checks import check_dtype
from dualsampler.validation import check_device
from dualsampler.sampling import KSampler, ModelSampling, UNetDenoiser

SD15_UNET = {  # Stable Diffusion 1.5's UNet: 860M parameters
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280), "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, "cross_attention_dim": 768, "attention_head_dim": 8,
}
TINY_UNET = {
    "sample_size": 16, "in_channels": 4, "out_channels": 4, "layers_per_block": 1, "block_out_channels": (16, 32),
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"), "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 32, "attention_head_dim": 4, "norm_num_groups": 8,
}
RUNS = ("single", "seed", "regional", "fused")


def build_unet(config: dict, device: torch.device, dtype: torch.dtype) -> UNet2DConditionModel:
    """Random weights, built directly on `device` (default initialisation), then cast to `dtype`."""
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**config)
    if dtype != torch.float32:
        unet = unet.to(dtype)
    return unet.eval().requires_grad_(False)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Minimum wall time of `repeats` calls after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


class BatchLog:
    """Batch sizes of every forward of a module."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.batches: list[int] = []
        module.register_forward_hook(lambda m, args, out: self.batches.append(args[0].shape[0]))


def bare_forward_time(unet, batch: int, latent_size: int, text: torch.Tensor, device, dtype, repeats: int) -> float:
    """Seconds per bare UNet forward at `batch` (no sampler, no guidance arithmetic)."""
    x = torch.randn(batch, 4, latent_size, latent_size, device=device, dtype=dtype)
    t = torch.full((batch,), 500.0, device=device)
    hidden = text.expand(batch, -1, -1).to(dtype)
    calls = 5

    def run() -> None:
        with torch.no_grad():
            for _ in range(calls):
                unet(x, t, encoder_hidden_states=hidden)

    return timed(run, device, repeats) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny UNet on the CPU, 32 px, 3 steps (the test path)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (latent = size / 8)")
    parser.add_argument("--dtype", default=None, help="float32 | float16 | bfloat16 (default float16; float32 with --tiny)")
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default cuda; cpu with --tiny)")
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    parser.add_argument("--json", default=None, help="also write the table to this JSON file")
    args = parser.parse_args()
    if args.tiny:
        args.steps, args.size, args.repeats = min(args.steps, 3), 32, 1
    device = check_device(args.device or ("cpu" if args.tiny else "cuda"))
    dtype = check_dtype(args.dtype or ("float32" if args.tiny else "float16"))
    config = TINY_UNET if args.tiny else SD15_UNET
    unet = build_unet(config, device, dtype)
    if args.compile:
        unet.compile()
    latent_size = args.size // 8
    g = torch.Generator().manual_seed(0)
    text = [torch.randn(1, 77, config["cross_attention_dim"], generator=g).to(device) for _ in range(3)]
    model_sampling = ModelSampling()
    base = KSampler(UNetDenoiser(unet, model_sampling, text[0], text[2], args.cfg), args.sampler, "normal")
    inside = KSampler(UNetDenoiser(unet, ModelSampling(), text[1], text[2], args.cfg), args.sampler, "normal")
    latent = torch.zeros(1, 4, latent_size, latent_size, device=device)
    mask = rectangle_mask(latent_size, latent_size, 0.25, 0.25, 0.75, 0.75).to(device)
    overlap = max(latent_size // 16, 1)
    runs = {"single": lambda: base.sample(latent, 0, args.steps)}
    for mode in RUNS[1:]:
        runs[mode] = lambda mode=mode: two_advanced_samplers_for_mask(
            0, args.steps, 1.0, latent, base, inside, mask, overlap, mode)
    log = BatchLog(unet)
    rows = {}
    bare: dict[int, float] = {}
    for name, run in runs.items():
        log.batches.clear()
        with torch.inference_mode():
            run()
        batches = Counter(log.batches)
        for batch in batches:
            if batch not in bare:
                bare[batch] = bare_forward_time(unet, batch, latent_size, text[0], device, dtype, args.repeats)
        floor = sum(bare[b] * n for b, n in batches.items())
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with torch.inference_mode():
            seconds = timed(run, device, args.repeats)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        rows[name] = {"forwards": sum(batches.values()), "batches": dict(sorted(batches.items())), "seconds": seconds,
                      "floor_seconds": floor, "x_floor": seconds / floor, "peak_gib": peak}
    for row in rows.values():
        row["x_seed"] = row["seconds"] / rows["seed"]["seconds"]
    name = "tiny UNet" if args.tiny else "SD 1.5-size UNet (random weights)"
    print(f"{name}, {args.size}x{args.size} px, {args.dtype or dtype}, {args.steps} steps {args.sampler}, cfg "
          f"{args.cfg}, device {device}{', compiled' if args.compile else ''}")
    print(f"{'run':<10}{'forwards':>9}{'batches':>16}{'time s':>9}{'floor s':>9}{'x floor':>9}{'x seed':>8}{'peak GiB':>10}")
    for run_name, r in rows.items():
        batches = ",".join(f"{n}x{b}" for b, n in r["batches"].items())
        peak = "n/a" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        print(f"{run_name:<10}{r['forwards']:>9}{batches:>16}{r['seconds']:>9.3f}{r['floor_seconds']:>9.3f}"
              f"{r['x_floor']:>9.2f}{r['x_seed']:>8.2f}{peak:>10}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "dtype": str(dtype), "steps": args.steps, "size": args.size,
                       "compile": args.compile, "runs": rows}, f, indent=2)


if __name__ == "__main__":
    main()
