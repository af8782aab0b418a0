"""How much of an input image a refinement keeps: PSNR between each output and its input image, outside the mask
grown by the overlap band (the base sampler's region, same prompt as the image) and inside the mask (re-sampled
with the mask prompt), for several `denoise` values, on the embedded world.

    python scripts/input_refinement.py [--seeds 4] [--steps 12] [--out runs/input_refinement]

Input images are world textures of the base prompt (`blue stripes`), written as PNGs; the job is the default
(`dual=alternate`, ellipse mask, `red dots` inside), run as one sweep over denoise with `input=image`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from dualsampler.masks import ellipse_mask, grow_mask
from dualsampler.runner.images import to_pil
from dualsampler.runner.inputs import load_image
from dualsampler.world.textures import render_texture

DENOISE = (0.25, 0.5, 0.75, 1.0)
SIZE = 128
VAE_FACTOR = 4  # the world's VAE: 128 px canvas, 32 latent px
OVERLAP = 4  # latent px, the default job's overlap_factor


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor) -> float:
    """10 log10(1 / MSE) over the pixels where `where` is 1 (images in [0, 1])."""
    mse = (((a - b) ** 2) * where).sum() / (where.sum() * a.shape[0])
    return float(10 * torch.log10(1 / mse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path("runs/input_refinement"))
    args = parser.parse_args()
    inputs = args.out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    for k in range(2):
        to_pil(render_texture("blue stripes", SIZE, SIZE, 100 + k)).save(inputs / f"stripes{k}.png")
    sweep = args.out / "sweep"
    command = ["dualsampler-run", "-m", "input=image", f"input.path={inputs.resolve()}", f"seeds={args.seeds}",
               f"steps={args.steps}", "logger=none", "name=input_refinement", f"hydra.sweep.dir={sweep}",
               "denoise=" + ",".join(map(str, DENOISE))]
    subprocess.run(command, check=True)
    mask = ellipse_mask(SIZE, SIZE, ry=0.3, rx=0.3)
    outside = 1 - grow_mask(mask, SIZE, SIZE, OVERLAP * VAE_FACTOR)[0, 0]
    inside = (mask[0, 0] > 0.5).float()
    print("| denoise | PSNR outside the grown mask (dB) | PSNR inside the mask (dB) | region_accuracy/inside |")
    print("|---|---|---|---|")
    for result_file in sorted(sweep.rglob("result.json"), key=lambda p: json.loads(p.read_text())["config"]["denoise"]):
        result = json.loads(result_file.read_text())
        values = {"outside": [], "inside": []}
        for row in result["per_seed"]:
            given = load_image(inputs / f"{row['item']}.png", SIZE, SIZE)
            out = load_image(result_file.parent / row["image"], SIZE, SIZE)
            values["outside"].append(psnr(out, given, outside))
            values["inside"].append(psnr(out, given, inside))
        mean = {key: sum(v) / len(v) for key, v in values.items()}
        accuracy = result["metrics"].get("region_accuracy/inside", float("nan"))
        print(f"| {result['config']['denoise']} | {mean['outside']:.1f} | {mean['inside']:.1f} | {accuracy:.2f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
