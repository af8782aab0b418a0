"""Saving a job's images: one PNG per seed and a labelled grid."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

LABEL_HEIGHT = 14
MIN_CELL = 128
CHAR_WIDTH = 6  # pixels per character of PIL's default font


def to_pil(image: torch.Tensor) -> Image.Image:
    """An image Tensor[3, H, W] in [0, 1] as an 8-bit RGB PIL image."""
    array = (image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array)


def save_images(images: torch.Tensor, seeds: list[int], folder: Path) -> list[Path]:
    """Write `images[B, 3, H, W]` as `folder/seed<seed>.png`, one per seed; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for image, seed in zip(images, seeds):
        path = folder / f"seed{seed}.png"
        to_pil(image).save(path)
        paths.append(path)
    return paths


def labelled_grid(images: torch.Tensor, labels: list[str], title: str, columns: int | None = None) -> Image.Image:
    """A grid of the images (nearest-upscaled to >= MIN_CELL px) with a label under each and a wrapped title on top."""
    count = images.shape[0]
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    h, w = images.shape[-2:]
    zoom = max(1, math.ceil(MIN_CELL / min(h, w)))
    cell_h, cell_w = h * zoom + LABEL_HEIGHT, w * zoom
    title_lines = textwrap.wrap(title, max(1, columns * cell_w // CHAR_WIDTH)) or [""]
    top = LABEL_HEIGHT * len(title_lines)
    grid = Image.new("RGB", (columns * cell_w, top + rows * cell_h), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    draw.multiline_text((2, 1), "\n".join(title_lines), fill="black", font=font, spacing=2)
    for index, (image, label) in enumerate(zip(images, labels)):
        x, y = (index % columns) * cell_w, top + (index // columns) * cell_h
        grid.paste(to_pil(image).resize((w * zoom, h * zoom), Image.NEAREST), (x, y))
        draw.text((x + 2, y + h * zoom + 1), label, fill="black", font=font)
    return grid
