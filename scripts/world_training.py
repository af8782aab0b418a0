"""Shared pieces of the tiny-world training scripts: data batches, resumable checkpoints, logging, export."""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dualsampler.models.world import WEIGHTS_DIR
from dualsampler.world import PROMPTS, parse_prompt, random_region_mask, render_composite, render_texture

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPO / "checkpoints"
TRAIN_SEEDS = 1_000_000  # training textures use seeds below this; evaluation uses seeds from EVAL_SEED up
EVAL_SEED = 2_000_000_000


def base_parser(description: str, steps: int, batch_size: int, lr: float) -> argparse.ArgumentParser:
    """Arguments shared by every training script."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="1 thread: 2 OpenMP threads spin-wait when the shared cores are busy")
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--checkpoint-dir", type=Path, default=None, help="default: checkpoints/<name>/")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR, help="export root (package data)")
    return parser


def step_generator(seed: int, step: int) -> torch.Generator:
    """The RNG of one training step, so a resumed run sees the same data as an uninterrupted one."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def texture_batch(gen: torch.Generator, batch_size: int, size: int) -> tuple[torch.Tensor, list[str]]:
    """`batch_size` random training textures of `size` px -> (images [B, 3, size, size], prompts)."""
    idx = torch.randint(len(PROMPTS), (batch_size,), generator=gen).tolist()
    seeds = torch.randint(TRAIN_SEEDS, (batch_size,), generator=gen).tolist()
    prompts = [PROMPTS[i] for i in idx]
    return torch.stack([render_texture(p, size, size, s) for p, s in zip(prompts, seeds)]), prompts


def composite_batch(
    gen: torch.Generator, batch_size: int, size: int, fraction: float
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]]]:
    """Random training images of `size` px, a `fraction` of them two-region composites of two distinct prompts.

    -> (images [B, 3, size, size], masks [B, 1, size, size] (1 = the second prompt's region; all 0 for a
    single texture), prompt pairs (base, inside); a single texture has base == inside).
    """
    images, masks, pairs = [], [], []
    for _ in range(batch_size):
        first, second = torch.randint(len(PROMPTS), (2,), generator=gen).tolist()
        seed = int(torch.randint(TRAIN_SEEDS, (), generator=gen))
        if float(torch.rand((), generator=gen)) < fraction and first != second:
            mask = random_region_mask(size, size, seed)
            images.append(render_composite(PROMPTS[first], PROMPTS[second], mask, seed))
        else:
            second, mask = first, torch.zeros(size, size)
            images.append(render_texture(PROMPTS[first], size, size, seed))
        masks.append(mask)
        pairs.append((PROMPTS[first], PROMPTS[second]))
    return torch.stack(images), torch.stack(masks)[:, None], pairs


def eval_composites(count: int, size: int) -> torch.Tensor:
    """`count` held-out two-region composites of distinct prompts (seeds never used in training)."""
    gen = torch.Generator().manual_seed(EVAL_SEED)
    images = []
    for j in range(count):
        first, second = torch.randperm(len(PROMPTS), generator=gen)[:2].tolist()
        mask = random_region_mask(size, size, EVAL_SEED + j)
        images.append(render_composite(PROMPTS[first], PROMPTS[second], mask, EVAL_SEED + 2 * j))
    return torch.stack(images)


def eval_textures(count_per_prompt: int, size: int) -> tuple[torch.Tensor, list[str]]:
    """Held-out textures (seeds never used in training), `count_per_prompt` per prompt."""
    images, prompts = [], []
    for k, prompt in enumerate(PROMPTS):
        for j in range(count_per_prompt):
            images.append(render_texture(prompt, size, size, EVAL_SEED + 1000 * k + j))
            prompts.append(prompt)
    return torch.stack(images), prompts


def labels(prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts -> (color index [B], pattern index [B])."""
    from dualsampler.world import COLORS, PATTERNS

    pairs = [parse_prompt(p) for p in prompts]
    return torch.tensor([COLORS.index(c) for c, _ in pairs]), torch.tensor([PATTERNS.index(p) for _, p in pairs])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of 10 log10(1 / MSE) for images in [0, 1]."""
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return float((10 * torch.log10(1 / mse)).mean())


def cosine_lr(step: int, total: int, base: float, warmup: int = 100, floor: float = 0.1) -> float:
    """Linear warm-up for `warmup` steps, then cosine decay from `base` to `floor * base`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


class Checkpoint:
    """Resumable training state in `<dir>/last.pt`: model(s), optimizer, EMA and the step."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / "last.pt"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def load(self, **objects) -> int:
        """Restore state dicts into `objects` (name=module or optimizer); returns the step to resume at."""
        if not self.path.exists():
            return 0
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        for name, obj in objects.items():
            obj.load_state_dict(state[name])
        return int(state["step"])

    def save(self, step: int, **objects) -> None:
        """Atomically write the state dicts of `objects` and `step`."""
        state = {name: obj.state_dict() for name, obj in objects.items()}
        state["step"] = step
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.path)


class Logger:
    """Prints and appends progress lines to `<checkpoint dir>/train.log`, with elapsed wall time."""

    def __init__(self, directory: Path):
        self.file = Path(directory) / "train.log"
        self.start = time.time()

    def __call__(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')} +{time.time() - self.start:7.1f}s] {message}"
        print(line, flush=True)
        with self.file.open("a") as f:
            f.write(line + "\n")


def export(model: torch.nn.Module, directory: Path) -> None:
    """save_pretrained in float16 safetensors (package data stays small; loading casts back to float32), with no
    machine-specific `_name_or_path` in config.json."""
    from diffusers.utils import logging

    directory.mkdir(parents=True, exist_ok=True)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    model.to(torch.float16).save_pretrained(directory, safe_serialization=True)
    model.to(torch.float32)
    logging.set_verbosity(verbosity)
    config_file = directory / "config.json"
    config = json.loads(config_file.read_text())
    config.pop("_name_or_path", None)  # a fine-tuned model remembers the local folder it was loaded from
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def downsample2x(images: torch.Tensor) -> torch.Tensor:
    """Area (2x2 mean) down-sampling: the degradation the upscaler inverts."""
    return F.avg_pool2d(images, 2)
