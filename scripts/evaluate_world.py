"""Measure the embedded world's quality bars and print a table (optionally write JSON).

Bars: VAE PSNR >= 28 dB; judge accuracy >= 97% color / >= 95% pattern (held-out textures);
generation (euler, 20 steps, cfg 5, 128x128, N seeds per prompt) read back by the judge >= 85%;
upscaler PSNR >= bicubic + 1.5 dB at 2x; one 128x128 image with CFG in <= 2 s.
Two-region rows (the dual samplers' premise): VAE round trip of held-out composites, and
two_samplers_for_mask with a right-half mask (euler, 20 steps, 128x128) over 6 prompt pairs, each read
by the judge on the outer 3/8 of each side, away from the seam, at `--dual-cfg` values (default 3 and 5).
Usage: python scripts/evaluate_world.py [--seeds 64] [--prompts diagonal|all] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

from dualsampler.dual import two_samplers_for_mask
from dualsampler.masks import half_mask
from dualsampler.models import load_world
from dualsampler.sampling import KSampler
from dualsampler.world import COLORS, PATTERNS, PROMPTS, render_composite
from world_training import EVAL_SEED, downsample2x, eval_composites, eval_textures, labels, psnr

DIAGONAL = [f"{c} {p}" for c, p in zip(COLORS, PATTERNS)]
PAIRS = [(DIAGONAL[i], DIAGONAL[(i + 3) % len(DIAGONAL)]) for i in range(len(DIAGONAL))]


def judge_accuracy(judge, images: torch.Tensor, prompts: list[str]) -> dict[str, float]:
    """Color, pattern and joint (both right) accuracy of the judge on `images` labelled by `prompts`."""
    colors, patterns = labels(prompts)
    with torch.no_grad():
        color_logits, pattern_logits = judge(images)
    color_ok, pattern_ok = color_logits.argmax(1) == colors, pattern_logits.argmax(1) == patterns
    return {
        "color": float(color_ok.float().mean()),
        "pattern": float(pattern_ok.float().mean()),
        "joint": float((color_ok & pattern_ok).float().mean()),
    }


def side_strips(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The left and right 3/8 of `images`: the outside and inside of a right-half mask, away from the seam."""
    width = images.shape[-1]
    return images[..., : width * 3 // 8], images[..., width * 5 // 8 :]


def region_rows(world, name: str, images: torch.Tensor, pairs: list[tuple[str, str]]) -> list[tuple[str, float, str]]:
    """Judge's joint accuracy on the outside (base prompt) and inside (mask prompt) strips of right-half composites."""
    outside, inside = side_strips(images)
    return [
        (f"{name}/outside_joint_acc", judge_accuracy(world.judge, outside, [a for a, _ in pairs])["joint"], ""),
        (f"{name}/inside_joint_acc", judge_accuracy(world.judge, inside, [b for _, b in pairs])["joint"], ""),
    ]


def dual_generate(world, pair: tuple[str, str], seeds: list[int], size: int, steps: int, cfg: float) -> torch.Tensor:
    """two_samplers_for_mask from an empty latent with a right-half mask -> decoded images [len(seeds), 3, size, size]."""
    base, inside = (KSampler(world.denoiser(prompt, cfg=cfg)) for prompt in pair)
    latent = torch.zeros(len(seeds), 4, size // world.vae_scale_factor, size // world.vae_scale_factor)
    return world.decode(two_samplers_for_mask(latent, base, inside, half_mask(size, size, "right"), seeds, steps))


def batched(fn, images: torch.Tensor, size: int = 64) -> torch.Tensor:
    return torch.cat([fn(images[i : i + size]) for i in range(0, len(images), size)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=64, help="generation seeds per prompt")
    parser.add_argument("--prompts", choices=["diagonal", "all"], default="diagonal",
                        help="diagonal: 6 prompts covering every color and pattern once")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--dual-cfg", type=float, nargs="+", default=[3.0, 5.0], help="CFG scales of the two-region rows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    world = load_world()
    rows: list[tuple[str, float, str]] = []

    def round_trip(images: torch.Tensor) -> torch.Tensor:
        return batched(lambda x: world.decode(world.encode(x)), images)

    textures, prompts = eval_textures(4, 64)
    recon = round_trip(textures)
    rows.append(("vae/psnr_db (64px held-out, 144 imgs)", psnr(recon, textures), ">= 28"))
    composites = eval_composites(144, 64)
    rows.append(("vae/composite_psnr_db (64px held-out two-region, 144 imgs)", psnr(round_trip(composites), composites), ""))
    half = half_mask(128, 128, "right")
    halves = torch.stack([render_composite(a, b, half, EVAL_SEED + 2 * s) for a, b in PAIRS for s in range(8)])
    rows += region_rows(world, "vae/half_composite_round_trip (6 pairs x 8, 128px)", round_trip(halves),
                        [pair for pair in PAIRS for _ in range(8)])

    for size in (64, 128):
        images, labels_ = eval_textures(4, size)
        acc = judge_accuracy(world.judge, images, labels_)
        rows.append((f"judge/color_acc ({size}px held-out)", acc["color"], ">= 0.97"))
        rows.append((f"judge/pattern_acc ({size}px held-out)", acc["pattern"], ">= 0.95"))

    high, _ = eval_textures(2, 128)
    low = downsample2x(high)
    with torch.no_grad():
        up = batched(world.upscaler, low)
    bicubic = F.interpolate(low, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
    rows.append(("upscaler/psnr_db (64->128 px)", psnr(up, high), ""))
    rows.append(("upscaler/bicubic_psnr_db", psnr(bicubic, high), ""))
    rows.append(("upscaler/gain_db", psnr(up, high) - psnr(bicubic, high), ">= 1.5"))

    gen_prompts = DIAGONAL if args.prompts == "diagonal" else list(PROMPTS)
    generated, gen_labels = [], []
    start = time.time()
    for prompt in gen_prompts:
        for chunk in range(0, args.seeds, 32):
            seeds = list(range(chunk, min(args.seeds, chunk + 32)))
            generated.append(world.generate(prompt, seeds, 128, 128, steps=args.steps, cfg=args.cfg))
            gen_labels += [prompt] * len(seeds)
    generated = torch.cat(generated)
    gen_time = time.time() - start
    acc = judge_accuracy(world.judge, generated, gen_labels)
    for key, value in acc.items():
        rows.append((f"generation/{key}_acc ({len(gen_prompts)} prompts x {args.seeds} seeds)", value, ">= 0.85" if key == "joint" else ""))
    for prompt in gen_prompts:
        sel = [i for i, p in enumerate(gen_labels) if p == prompt]
        rows.append((f"generation/joint_acc[{prompt}]", judge_accuracy(world.judge, generated[sel], [gen_labels[i] for i in sel])["joint"], ""))
    rows.append(("generation/wall_s (all images)", gen_time, ""))

    dual_seeds = list(range(min(args.seeds, 16)))
    for cfg in args.dual_cfg:
        dual = torch.cat([dual_generate(world, pair, dual_seeds, 128, args.steps, cfg) for pair in PAIRS])
        rows += region_rows(world, f"dual_generation cfg {cfg:g} ({len(PAIRS)} pairs x {len(dual_seeds)} seeds)", dual,
                            [pair for pair in PAIRS for _ in dual_seeds])

    times = []
    for seed in range(3):
        t = time.perf_counter()
        world.generate(DIAGONAL[seed], [seed], 128, 128, steps=args.steps, cfg=args.cfg)
        times.append(time.perf_counter() - t)
    rows.append(("speed/one_128px_image_s (20 steps, cfg, decode; median of 3)", statistics.median(times), "<= 2.0"))
    rows.append(("speed/load_average_1min", os.getloadavg()[0], ""))

    width = max(len(name) for name, _, _ in rows)
    print(f"{'metric':<{width}}  {'value':>9}  bar")
    for name, value, bar in rows:
        print(f"{name:<{width}}  {value:9.4f}  {bar}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({name: value for name, value, _ in rows}, f, indent=2)


if __name__ == "__main__":
    main()
