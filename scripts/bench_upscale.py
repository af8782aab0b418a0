"""Time per iteration of the two-sampler iterative upscaler, split into decode / upscale / encode / base / mask.

    python scripts/bench_upscale.py [--iterations 2] [--repeats 3] [--tile-size 64] [--steps 8] [--denoise 0.5]
    python scripts/bench_upscale.py --tiling-error [--random-vae]

A 128 px dual-sampled latent of the embedded world (trained weights when present, else random weights of the
same architectures) is upscaled 2x (128 -> 256 px), untiled and with a tiled VAE; each stage's time is the
best of `--repeats` runs (the machine is shared, so the best run is the least disturbed one).
`--tiling-error` instead measures tiled (64 px) against untiled decode/encode on 80x112 textures of every
prompt: the numbers behind the tolerances in tests/test_upscale_vae.py (`--random-vae`: the tests' random VAE).
"""

from __future__ import annotations

import argparse
import json

import torch
from diffusers import AutoencoderKL

from dualsampler.dual import two_samplers_for_mask
from dualsampler.masks import rectangle_mask
from dualsampler.models import WEIGHTS_DIR, load_world, random_world
from dualsampler.sampling import KSampler
from dualsampler.upscale import TwoSamplersForMaskUpscaler, UpscaleSampler, upscale_plan, vae_decode, vae_encode
from dualsampler.upscale.tiling import tile_starts
from dualsampler.world import PROMPTS, render_texture

STAGES = ("decode", "upscale", "encode", "base", "mask")


def tiling_error(random_vae: bool) -> None:
    """Per prompt: decode mean/max |tiled - untiled|, blend-band error over the rest, encode error / latent std,
    and the VAE's reconstruction error mean |x - decode(encode(x))|."""
    if random_vae:
        torch.manual_seed(0)
        vae = AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(16, 32, 64), norm_num_groups=8, mid_block_add_attention=False,
        ).eval()
    else:
        vae = AutoencoderKL.from_pretrained(WEIGHTS_DIR / "vae", torch_dtype=torch.float32).eval()
    height, width = 80, 112
    band = torch.zeros(height, width, dtype=torch.bool)
    for y in tile_starts(height // 4, 16, 12)[1:]:
        band[y * 4 : y * 4 + 16] = True
    for x in tile_starts(width // 4, 16, 12)[1:]:
        band[:, x * 4 : x * 4 + 16] = True
    print("| prompt | seed | decode mean | decode max | band / rest | encode / std | reconstruction |")
    print("|---|---|---|---|---|---|---|")
    worst = [0.0] * 5
    for group in range(3):
        for seed, prompt in enumerate(PROMPTS[group::3]):
            images = render_texture(prompt, height, width, seed)[None]
            latent = vae_encode(vae, images)
            plain = vae_decode(vae, latent)
            error = (plain - vae_decode(vae, latent, tile_size=64)).abs().mean(dim=1)[0]
            encode = (vae_encode(vae, images, tile_size=64) - latent).abs().mean() / latent.std()
            row = [error.mean(), error.max(), error[band].mean() / error[~band].mean(), encode,
                   (images - plain).abs().mean()]
            worst = [max(w, float(v)) for w, v in zip(worst, row)]
            print(f"| {prompt} | {seed} | " + " | ".join(f"{float(v):.3f}" for v in row) + " |")
    print("| worst | | " + " | ".join(f"{v:.3f}" for v in worst) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2, help="upscale iterations from 128 to 256 px")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tile-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--denoise", type=float, default=0.5)
    parser.add_argument("--scale-method", default="lanczos")
    parser.add_argument("--json", help="also write the table here")
    parser.add_argument("--tiling-error", action="store_true", help="measure tiled vs untiled VAE error instead")
    parser.add_argument("--random-vae", action="store_true", help="with --tiling-error: the tests' random VAE")
    args = parser.parse_args()
    if args.tiling_error:
        tiling_error(args.random_vae)
        return

    trained = (WEIGHTS_DIR / "unet").is_dir()
    world = load_world() if trained else random_world(0)
    mask = rectangle_mask(128, 128, 0.25, 0.25, 0.75, 0.75)
    base = UpscaleSampler(KSampler(world.denoiser("blue stripes")), 0, args.steps, args.denoise)
    inside = UpscaleSampler(KSampler(world.denoiser("red dots")), 0, args.steps, args.denoise)
    empty = torch.zeros(1, 4, 128 // world.vae_scale_factor, 128 // world.vae_scale_factor)
    latent = two_samplers_for_mask(empty, base.ksampler, inside.ksampler, mask, 0, args.steps)
    plan = upscale_plan(2.0, args.iterations)
    print(f"world={'trained' if trained else 'random weights'} threads={torch.get_num_threads()} "
          f"steps={args.steps} denoise={args.denoise} scale_method={args.scale_method}")
    print(f"| vae | iteration | size px | {' | '.join(STAGES)} | total |")
    print("|---|---|---|" + "---|" * (len(STAGES) + 1))
    rows = []
    for tiled in (False, True):
        upscaler = TwoSamplersForMaskUpscaler(
            args.scale_method, "none", tiled, base, inside, mask, world.vae, tile_size=args.tile_size
        )
        best: list[dict[str, float]] = [{} for _ in plan]
        for _ in range(args.repeats):
            current = latent
            for k, (step_info, scale) in enumerate(plan):
                current = upscaler.upscale_shape(step_info, current, 128 * scale, 128 * scale)
                for stage in STAGES:
                    best[k][stage] = min(best[k].get(stage, float("inf")), upscaler.timings[stage])
        for k, (step_info, scale) in enumerate(plan):
            size = f"{int(128 * plan[k - 1][1]) if k else 128}->{int(128 * scale)}"
            name = f"tiled {args.tile_size}" if tiled else "untiled"
            total = sum(best[k].values())
            print(f"| {name} | {step_info[0]} | {size} | " + " | ".join(f"{best[k][s]:.3f}" for s in STAGES) + f" | {total:.3f} |")
            rows.append({"vae": name, "iteration": step_info[0], "size": size, **best[k], "total": total})
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
